"""Losses that are means over tokens or over labelled rows combine exactly across micro-batches
(and, the same way, across ranks): each part is weighted by its share of the step's global count,
not by rows. One process, no launcher: the arithmetic a data-parallel step relies on."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_distill.models import MobileBertConfig, build_classifier
from mlx_distill.train import losses
from mlx_distill.train.trainer import TrainConfig, Trainer, weighted_sum

VOCAB, LENGTH, ROWS = 50, 12, 48


def _data():
    rng = np.random.default_rng(1)
    ids = rng.integers(10, VOCAB, (ROWS, LENGTH)).astype(np.int32)
    mask = (np.arange(LENGTH)[None, :] < rng.integers(3, LENGTH + 1, ROWS)[:, None]).astype(np.int32)
    labels = np.where(rng.random(ROWS) < 0.4, -1, rng.integers(0, 2, ROWS)).astype(np.int32)  # 40 % unlabelled
    return ids * mask, mask, labels


def objective(model, batch):
    out = model(batch["input_ids"], batch["attention_mask"], output_hidden_states=True)
    parts = {"ce": losses.cross_entropy(out.logits, batch["labels"]),
             "hidden": losses.hidden_mse(out.hidden_states[1], mx.zeros_like(out.hidden_states[1]),
                                         batch["attention_mask"])}
    return weighted_sum(parts, {"ce": 1.0, "hidden": 0.5}, batch), parts


def counts(batch):
    return {"ce": (batch["labels"] >= 0).sum(), "hidden": batch["attention_mask"].sum()}


def train(tmp_path, batch_size, accum, exact=True):
    cfg = MobileBertConfig(vocab_size=VOCAB, hidden_size=32, embedding_size=16, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=32, intra_bottleneck_size=16,
                           num_feedforward_networks=1, max_position_embeddings=LENGTH, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0, id2label={0: "no", 1: "yes"})
    model = build_classifier(cfg, seed=0)
    ids, mask, labels = _data()

    def make_batch(rows):
        return {"input_ids": mx.array(ids[rows]), "attention_mask": mx.array(mask[rows]),
                "labels": mx.array(labels[rows])}

    config = TrainConfig(epochs=1, batch_size=batch_size, grad_accum_steps=accum, learning_rate=1e-3,
                         checkpoint_every=0, log_every=1, warmup_ratio=0.0)
    trainer = Trainer(model, objective, make_batch, ROWS, config, tmp_path, part_counts=counts if exact else None)
    trainer.fit()
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}, [r for r in log if "loss" in r]


def test_accumulated_steps_equal_one_batch_when_parts_are_weighted_by_their_counts(tmp_path):
    big, big_log = train(tmp_path / "big", 16, 1)
    small, small_log = train(tmp_path / "small", 8, 2)
    assert len(big_log) == len(small_log) == 3
    for a, b in zip(big_log, small_log):
        for key in ("loss", "ce", "hidden", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=2e-6, abs=1e-7), (key, a, b)
    for name in big:
        if name.endswith("attention.self.key.bias"):
            # Softmax ignores a shift shared by every key, so this bias's true gradient is exactly 0;
            # what it gets is rounding noise, which Adam scales up to lr-sized steps.
            continue
        np.testing.assert_allclose(small[name], big[name], atol=1e-5, err_msg=name)


def test_weighting_by_rows_would_not_be_exact(tmp_path):
    """The same comparison weighting micro-batches by rows (the rule for losses that are means over
    rows): with unlabelled rows and ragged texts the step's loss is not the batch's."""
    _, big_log = train(tmp_path / "big", 16, 1)
    _, rows_log = train(tmp_path / "rows", 8, 2, exact=False)
    assert abs(rows_log[0]["loss"] - big_log[0]["loss"]) > 1e-4
