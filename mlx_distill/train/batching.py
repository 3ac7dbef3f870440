"""Encoded datasets and a resumable, seeded batch order.

Why a separate order object: resuming after a kill must replay exactly the batches an
uninterrupted run would have seen. The order for epoch ``e`` is a pure function of
``(seed, e)``, so the only state to checkpoint is (epoch, position).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from mlx_distill.data import Example
from mlx_distill.tokenizer import TextTokenizer


@dataclass
class EncodedDataset:
    """Token ids for a list of examples; ``labels`` are class ids (-1 where a row has no label)."""

    input_ids: np.ndarray  # (N, L) int32
    attention_mask: np.ndarray  # (N, L) int32
    labels: np.ndarray  # (N,) int32
    texts: list[str] = field(repr=False)

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def build(cls, examples: list[Example], tokenizer: TextTokenizer, labels: list[str]) -> "EncodedDataset":
        index = {name: i for i, name in enumerate(labels)}
        unknown = sorted({e.label for e in examples if e.label is not None and e.label not in index})
        if unknown:
            where = next(e.source for e in examples if e.label in unknown)
            raise ValueError(f"{where}: label(s) {unknown} are not among the model's labels {labels}")
        texts = [e.text for e in examples]
        encoded = tokenizer.encode(texts)
        ids = np.array([index[e.label] if e.label is not None else -1 for e in examples], dtype=np.int32)
        return cls(encoded.input_ids, encoded.attention_mask, ids, texts)

    def digest(self) -> str:
        """A hash of exactly what training sees (ids, masks, labels): the data part of a run's identity."""
        h = hashlib.sha256()
        for array in (self.input_ids, self.attention_mask, self.labels):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()[:24]

    def concat(self, other: "EncodedDataset") -> "EncodedDataset":
        return EncodedDataset(
            np.concatenate([self.input_ids, other.input_ids]), np.concatenate([self.attention_mask, other.attention_mask]),
            np.concatenate([self.labels, other.labels]), [*self.texts, *other.texts],
        )

    def batch_arrays(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(input_ids, attention_mask, length) of ``rows``, cut to the batch's length."""
        mask = self.attention_mask[rows]
        length = batch_length(mask)
        return self.input_ids[rows][:, :length], mask[:, :length], length

    def subset(self, rows: np.ndarray) -> "EncodedDataset":
        return EncodedDataset(
            self.input_ids[rows], self.attention_mask[rows], self.labels[rows], [self.texts[i] for i in rows]
        )


@dataclass
class BatchOrder:
    """Seeded shuffling with a cursor: (epoch, position) is all the state there is."""

    size: int
    batch_size: int
    seed: int
    epoch: int = 0
    position: int = 0  # index into this epoch's permutation

    def permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    @property
    def batches_per_epoch(self) -> int:
        return -(-self.size // self.batch_size)

    def next_rows(self) -> np.ndarray:
        """Rows of the next batch; advances the cursor (and the epoch at its end)."""
        if self.position >= self.size:
            self.epoch, self.position = self.epoch + 1, 0
        rows = self.permutation(self.epoch)[self.position : self.position + self.batch_size]
        self.position += len(rows)
        return rows

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def restore(self, state: dict[str, int]) -> None:
        if state["seed"] != self.seed:
            raise ValueError(f"checkpoint was made with data seed {state['seed']}, this run uses {self.seed}")
        self.epoch, self.position = state["epoch"], state["position"]


@dataclass
class Splits:
    """The encoded data of one stage: ``train`` is learnt from, ``evaluation`` picks the best
    checkpoint (and early-stops), ``test`` (optional) is only reported, so it stays unbiased."""

    train: EncodedDataset
    evaluation: EncodedDataset
    test: EncodedDataset | None

    @classmethod
    def encode(cls, tokenizer: TextTokenizer, labels: list[str], train: list[Example], evaluation: list[Example],
               test: list[Example] | None = None) -> "Splits":
        if not train:
            raise ValueError("no training examples")
        if not evaluation:
            raise ValueError(
                "the evaluation set is empty: pass --eval FILE, or give at least two examples per label so that "
                "some can be held out"
            )
        encode = lambda rows: EncodedDataset.build(rows, tokenizer, labels)  # noqa: E731
        return cls(encode(train), encode(evaluation), encode(test) if test else None)

    def fingerprint(self) -> dict[str, str]:
        return {"train": self.train.digest(), "evaluation": self.evaluation.digest()}


#: Batch lengths are rounded up to a multiple of this, so a compiled step sees few distinct shapes.
LENGTH_MULTIPLE = 8


def batch_length(attention_mask: np.ndarray, multiple: int = LENGTH_MULTIPLE) -> int:
    """The length a batch can be cut to: its longest row plus one, rounded up to ``multiple``, at
    most the padded length. Why: every text is padded to max_length, and short texts (to-do notes, support
    messages) are mostly padding; the cut positions are masked everywhere, so the result is the
    same (to float rounding) for a fraction of the work."""
    full = attention_mask.shape[-1]
    # One position past the longest row: MobileBERT's trigram input lets each token see its right
    # neighbour, so the last real token must still see a [PAD] token, as at the full length.
    longest = int(attention_mask.sum(axis=-1).max()) + 1 if attention_mask.size else full
    return min(full, max(multiple, -(-longest // multiple) * multiple))


def sequential_batches(size: int, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, size, batch_size):
        yield np.arange(start, min(start + batch_size, size))
