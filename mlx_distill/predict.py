"""Classify texts with a Hugging Face-format classifier folder (teacher or student), in MLX."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlx_distill.models import LoadedModel, check_inputs_fit, load_classifier
from mlx_distill.tokenizer import TextTokenizer


@dataclass
class Prediction:
    text: str
    label: str
    probs: dict[str, float]

    def to_json(self) -> dict[str, object]:
        return {"text": self.text, "label": self.label, "probs": self.probs}


class TextClassifier:
    """Model + tokenizer of one folder. Batches texts; returns labels and class probabilities."""

    def __init__(self, model_dir: str | os.PathLike[str], max_length: int = 128, batch_size: int = 32):
        self.loaded: LoadedModel = load_classifier(model_dir)
        self.tokenizer = TextTokenizer.from_dir(self.loaded.path, max_length=max_length)
        self.labels = self.loaded.config.labels
        self.batch_size = batch_size
        check_inputs_fit(self.loaded.config, self.tokenizer.vocab_size, max_length, str(self.loaded.path))

    @property
    def path(self) -> Path:
        return self.loaded.path

    def probabilities_for_ids(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """(N, L) int ids -> (N, num_labels) probabilities. Rejects ids outside the vocabulary, which
        would otherwise index past the embedding table (undefined on every backend)."""
        ids = np.asarray(input_ids)
        vocab = self.loaded.config.vocab_size
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            bad = ids[(ids < 0) | (ids >= vocab)]
            raise ValueError(f"token ids must be in [0, {vocab}); got {bad[:5].tolist()}")
        check_inputs_fit(self.loaded.config, 0, ids.shape[-1], "input_ids")
        out = []
        for start in range(0, len(ids), self.batch_size):
            logits = self.loaded.model(
                mx.array(ids[start : start + self.batch_size].astype(np.int32)),
                mx.array(np.asarray(attention_mask)[start : start + self.batch_size].astype(np.int32)),
            ).logits
            out.append(np.array(mx.softmax(logits.astype(mx.float32), axis=-1)))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, texts: list[str]) -> list[Prediction]:
        if not texts:
            return []
        encoded = self.tokenizer.encode(texts)
        probs = self.probabilities_for_ids(encoded.input_ids, encoded.attention_mask)
        return [
            Prediction(text, self.labels[int(row.argmax())], {name: float(p) for name, p in zip(self.labels, row)})
            for text, row in zip(texts, probs)
        ]
