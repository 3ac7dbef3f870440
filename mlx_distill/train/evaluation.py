"""Evaluate a classifier on an encoded set: metrics, and agreement with teacher logits."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx_distill.distributed import World, all_sum
from mlx_distill.distributed import world as current_world
from mlx_distill.train.batching import EncodedDataset, sequential_batches
from mlx_distill.train.metrics import agreement_metrics, classification_metrics


def predict_logits(model: nn.Module, data: EncodedDataset, batch_size: int = 64,
                   world: World | None = None) -> np.ndarray:
    """Logits of every row of ``data`` (float32), in row order.

    Data-parallel runs (``world``, by default the launched run's) share the work: the one-process
    run's batches are split into contiguous runs, one per rank, so every row is computed in the very
    batch it is in with one process (a batch is cut to its longest row, and the cut can change a
    row's numbers) and its logits are the same to the bit. Each rank puts its rows into a zero
    matrix and one all-reduce sums them, so every rank returns all the logits, and the metrics made
    from them equal the one-process metrics exactly. Every rank must call it (it is a collective)."""
    world = world if world is not None else current_world()
    was_training = model.training
    model.eval()
    batches = list(sequential_batches(len(data), batch_size))
    mine = range(len(batches))
    if world.distributed:
        mine = np.array_split(np.arange(len(batches)), world.size)[world.rank]
    out = []
    for i in mine:
        ids, mask, _ = data.batch_arrays(batches[i])
        logits = model(mx.array(ids), mx.array(mask)).logits
        out.append(np.array(logits.astype(mx.float32)))
    if was_training:
        model.train()
    if not world.distributed:
        return np.concatenate(out)
    mine_rows = np.concatenate([batches[i] for i in mine]) if len(mine) else np.zeros(0, np.int64)
    full = np.zeros((len(data), model.config.num_labels), np.float32)
    full[mine_rows] = np.concatenate(out) if out else 0.0
    return np.array(all_sum(mx.array(full), world))


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
