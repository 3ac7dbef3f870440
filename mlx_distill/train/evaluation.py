"""Evaluate a classifier on an encoded set: metrics, and agreement with teacher logits."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx_distill.train.batching import EncodedDataset, sequential_batches
from mlx_distill.train.metrics import agreement_metrics, classification_metrics


def predict_logits(model: nn.Module, data: EncodedDataset, batch_size: int = 64) -> np.ndarray:
    was_training = model.training
    model.eval()
    out = []
    for rows in sequential_batches(len(data), batch_size):
        ids, mask, _ = data.batch_arrays(rows)
        logits = model(mx.array(ids), mx.array(mask)).logits
        out.append(np.array(logits.astype(mx.float32)))
    if was_training:
        model.train()
    return np.concatenate(out)


def report_metrics(
    model: nn.Module, splits, labels: list[str], teacher_logits: dict[str, np.ndarray] | None = None, prefix: str = ""
) -> dict[str, object]:
    """{"<prefix>eval": ..., "<prefix>test": ...} for a report. ``teacher_logits`` ({"eval", "test"})
    adds agreement with the teacher and the KL to it."""
    out: dict[str, object] = {}
    for name, data in (("eval", splits.evaluation), ("test", splits.test)):
        if data is not None:
            reference = teacher_logits.get(name) if teacher_logits else None
            out[prefix + name] = evaluate_classifier(model, data, labels, reference)
    return out


def evaluate_classifier(
    model: nn.Module, data: EncodedDataset, labels: list[str], teacher_logits: np.ndarray | None = None
) -> dict[str, object]:
    logits = predict_logits(model, data)
    metrics = classification_metrics(logits, data.labels, labels)
    if teacher_logits is not None:
        metrics.update(agreement_metrics(logits, teacher_logits))
    return metrics
