"""Choose the on-device learning rate by measurement, not by a fixed default.

The seed's pitfall: on-device training whose loss stays at 2.3 because the learning rate is too
high ("0.01 -> try 0.001"), or barely moves because it is too low. At export we can run the
simulated on-device update (``export.runtime.neuralnetwork.simulate_update``) on the updatable head itself, so for each
candidate rate the head is trained on half of some texts' pooled embeddings and scored on the other
half after every epoch; the rate whose held-out loss ends lowest is written into the updatable
models (unless the user fixed one with ``--learning-rate``). The curves go to the manifest
(``update_learning_rate``) so the build report can plot them.

Texts: ``export_folder(..., texts=[...])`` (strings, or ``(text, label)`` pairs), else the file
``ExportConfig.learning_rate_texts`` names (``.txt`` one text per line, ``.jsonl`` with ``text`` and
optional ``label``, ``.csv`` with a ``text`` and optional ``label`` column), else the fixed sample
texts ``check`` uses (``export.check.config.DEFAULT_TEXTS``). Targets: a row's label where it has
one (it must be one of the model's labels); otherwise the model's own prediction moved to the next
class - a user correcting every prediction, as the check's simulated update does. Rows alternate
between training and held-out (even / odd), so the choice is deterministic.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

#: tried from high to low; all inside UpdateParams' default learning_rate_range [1e-6, 1]
DEFAULT_CANDIDATES: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01, 0.003, 0.001)

Row = tuple[str, Optional[str]]


class LearningRateTextsError(ValueError):
    """The learning-rate texts cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class LearningRateChoice:
    """What was measured and chosen; ``as_manifest()`` is the manifest's ``update_learning_rate``."""

    chosen: float
    fixed_by_user: bool
    candidates: tuple = ()
    held_out_loss: dict = field(default_factory=dict)  # str(rate) -> [before, after epoch 1, ...]
    texts: str = ""
    targets: str = ""
    train_examples: int = 0
    held_out_examples: int = 0

    def as_manifest(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "fixed_by_user": self.fixed_by_user, "candidates": list(self.candidates),
                "held_out_loss": {k: list(v) for k, v in self.held_out_loss.items()},
                "texts": self.texts, "targets": self.targets,
                "train_examples": self.train_examples, "held_out_examples": self.held_out_examples}


def read_texts(path: Union[str, Path]) -> list[Row]:
    """(text, label or None) rows of a .txt / .jsonl / .csv file; problems name ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise LearningRateTextsError(f"{path}: learning-rate texts file not found (ExportConfig.learning_rate_texts)")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LearningRateTextsError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows: list[Row] = []
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for number, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LearningRateTextsError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise LearningRateTextsError(f"{path}:{number}: expected an object with a string 'text'")
            rows.append((item["text"], None if item.get("label") is None else str(item["label"])))
    elif suffix == ".csv":
        reader = csv.DictReader(content.splitlines())
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise LearningRateTextsError(f"{path}:1: the header has no 'text' column ({reader.fieldnames})")
        for number, item in enumerate(reader, 2):
            label = (item.get("label") or "").strip() if "label" in reader.fieldnames else ""
            rows.append((item["text"] or "", label or None))
    else:
        rows = [(line, None) for line in content.splitlines()]
    rows = [(text, label) for text, label in rows if text.strip()]
    if len(rows) < 2:
        raise LearningRateTextsError(f"{path}: needs at least 2 non-empty texts (one to train on, one held out), "
                                     f"has {len(rows)}")
    return rows


def _rows(texts: Optional[Sequence[Any]]) -> list[Row]:
    rows = []
    for item in texts:
        text, label = (item, None) if isinstance(item, str) else (item[0], item[1])
        if str(text).strip():
            rows.append((str(text), None if label is None else str(label)))
    if len(rows) < 2:
        raise LearningRateTextsError(f"texts: needs at least 2 non-empty texts, got {len(rows)}")
    return rows


def targets_for(rows: Sequence[Row], predicted: np.ndarray, labels: Sequence[str], source: str) -> tuple[list, str]:
    """Each row's target label: its own label, else the prediction moved to the next class."""
    unknown = sorted({label for _, label in rows if label is not None and label not in labels})
    if unknown:
        raise LearningRateTextsError(f"{source}: labels {unknown} are not the model's labels {list(labels)}")
    out = [label if label is not None else labels[(int(p) + 1) % len(labels)] for (_, label), p in zip(rows, predicted)]
    given = sum(label is not None for _, label in rows)
    how = ("the rows' own labels" if given == len(rows) else
           "the model's prediction moved to the next class" if not given else
           f"the rows' own labels ({given}), else the prediction moved to the next class")
    return out, how


def measure(make_head: Callable[[float], Any], pooled: np.ndarray, targets: Sequence[str], candidates: Sequence[float],
            input_name: str, label_name: str) -> dict[float, list]:
    """Held-out loss curve per candidate rate: train on even rows, score odd rows after every epoch."""
    from export.runtime.neuralnetwork.simulate_update import simulate_update

    examples = [{input_name: np.asarray(v, np.float32), label_name: t} for v, t in zip(pooled, targets)]
    train, held = examples[0::2], examples[1::2]
    curves = {}
    for rate in candidates:
        result = simulate_update(make_head(rate), train, held_out=held)
        curves[float(rate)] = [float(v) for v in result.held_out_losses]
    return curves


def pick(curves: dict[float, list]) -> float:
    """The rate with the lowest final held-out loss (finite only; a tie goes to the smaller rate)."""
    finite = {rate: curve[-1] for rate, curve in curves.items() if curve and np.isfinite(curve).all()}
    if not finite:
        raise ValueError(f"no candidate learning rate gave a finite held-out loss: {curves}")
    return min(finite, key=lambda rate: (round(finite[rate], 12), rate))


def resolve_rows(texts: Optional[Sequence[Any]], texts_file: Optional[Union[str, Path]]) -> tuple[list[Row], str]:
    """(rows, where they came from): ``texts``, else the file, else check's fixed sample texts."""
    from export.check.config import DEFAULT_TEXTS

    if texts is not None:
        return _rows(texts), f"{len(texts)} texts passed to export_folder"
    if texts_file is not None:
        return read_texts(texts_file), str(texts_file)
    return [(t, None) for t in DEFAULT_TEXTS], "the fixed sample texts of export.check (DEFAULT_TEXTS)"


def choose(make_head: Callable[[float], Any], pooled_fn: Callable[[list[str]], tuple[np.ndarray, np.ndarray]],
           labels: Sequence[str], candidates: Sequence[float], rows: Sequence[Row], source: str,
           input_name: str, label_name: str) -> LearningRateChoice:
    """Measure every candidate on the rows and return the choice (``pooled_fn``: texts -> (pooled, predicted))."""
    pooled, predicted = pooled_fn([text for text, _ in rows])
    targets, how = targets_for(rows, predicted, labels, source)
    curves = measure(make_head, pooled, targets, candidates, input_name, label_name)
    return LearningRateChoice(chosen=pick(curves), fixed_by_user=False, candidates=tuple(float(c) for c in candidates),
                              held_out_loss={repr(rate): curve for rate, curve in curves.items()}, texts=source,
                              targets=how, train_examples=len(rows[0::2]), held_out_examples=len(rows[1::2]))
