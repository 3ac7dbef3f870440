"""Stratified, seeded train/validation splits (when the user gives no evaluation file)."""

from __future__ import annotations

import numpy as np

from mlx_distill.data.records import Example


def stratified_split(examples: list[Example], fraction: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Hold out ``fraction`` of each label (at least one row per label that has two or more)."""
    if not 0 < fraction < 1:
        raise ValueError("fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    by_label: dict[str | None, list[int]] = {}
    for i, e in enumerate(examples):
        by_label.setdefault(e.label, []).append(i)
    held: set[int] = set()
    for label in sorted(by_label, key=str):
        rows = by_label[label]
        if len(rows) < 2:
            continue
        take = max(1, int(round(fraction * len(rows))))
        held.update(rng.permutation(rows)[:take].tolist())
    train = [e for i, e in enumerate(examples) if i not in held]
    held_out = [e for i, e in enumerate(examples) if i in held]
    return train, held_out


def label_set(examples: list[Example]) -> list[str]:
    """The sorted distinct labels (a stable order, so the same data always gives the same head)."""
    labels = sorted({e.label for e in examples if e.label is not None})
    if len(labels) < 2:
        raise ValueError(f"need at least two distinct labels to train a classifier, found {labels}")
    return labels
