"""The shared trainer: learning, compiled == eager, accumulation, kill-and-resume, early stop."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mlx.core as mx
from mlx.utils import tree_flatten, tree_map
from mlx_distill.models import MobileBertConfig, build_classifier
from mlx_distill.train.teacher import classifier_objective
from mlx_distill.train.trainer import TrainConfig, Trainer, learning_rate_schedule

VOCAB, LENGTH, ROWS = 50, 12, 64


def toy_data(seed=0):
    """Class = whether token 7 appears: learnable, not trivially constant."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(10, VOCAB, (ROWS, LENGTH)).astype(np.int32)
    labels = (np.arange(ROWS) % 2).astype(np.int32)
    positions = rng.integers(1, LENGTH - 3, ROWS)
    ids[labels == 1, positions[labels == 1]] = 7
    mask = np.ones_like(ids)
    mask[::3, -3:] = 0
    ids[mask == 0] = 0
    return ids, mask, labels


def make_trainer(tmp_path, config: TrainConfig, dropout=0.1, seed=0):
    cfg = MobileBertConfig(
        vocab_size=VOCAB, hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, intra_bottleneck_size=16, num_feedforward_networks=2, max_position_embeddings=LENGTH,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, id2label={0: "no", 1: "yes"},
    )
    model = build_classifier(cfg, seed=seed)
    ids, mask, labels = toy_data()

    def make_batch(rows):
        return {"input_ids": mx.array(ids[rows]), "attention_mask": mx.array(mask[rows]), "labels": mx.array(labels[rows])}

    def evaluate():
        logits = np.array(model(mx.array(ids), mx.array(mask)).logits)
        return {"accuracy": float((logits.argmax(-1) == labels).mean())}

    return model, Trainer(model, classifier_objective, make_batch, ROWS, config, tmp_path, evaluate=evaluate)


def weights(model):
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}


def test_loss_goes_down_and_model_learns(tmp_path):
    config = TrainConfig(epochs=12, batch_size=16, learning_rate=3e-3, warmup_ratio=0.1, log_every=4, checkpoint_every=0)
    model, trainer = make_trainer(tmp_path, config, dropout=0.0)
    result = trainer.fit()
    log = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert result.steps == 48
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2]), losses
    assert result.best_metrics["accuracy"] >= 0.9
    assert all({"tokens_per_s", "lr", "grad_norm"} <= set(r) for r in log if "loss" in r)
    assert (tmp_path / "checkpoint" / "trainer.json").exists() and (tmp_path / "best.safetensors").exists()


def assert_same_training(tmp_path, a: TrainConfig, b: TrainConfig, atol: float, steps: int | None = None) -> None:
    """Train the same model (dropout off) under two configurations; the weights must agree."""
    trained = []
    for name, config in (("a", a), ("b", b)):
        model, trainer = make_trainer(tmp_path / name, config, dropout=0.0)
        if steps is not None:
            assert trainer.total_steps == steps
        trainer.fit()
        trained.append(weights(model))
    for name in trained[0]:
        np.testing.assert_allclose(trained[0][name], trained[1][name], atol=atol, err_msg=name)


def test_compiled_step_equals_eager_step(tmp_path):
    base = dict(epochs=1, batch_size=16, learning_rate=1e-3, checkpoint_every=0)
    assert_same_training(tmp_path, TrainConfig(**base, compile=True), TrainConfig(**base, compile=False), atol=1e-5)


def test_gradient_accumulation_matches_large_batch(tmp_path):
    big = TrainConfig(epochs=2, batch_size=16, grad_accum_steps=1, learning_rate=1e-3, checkpoint_every=0)
    small = TrainConfig(epochs=2, batch_size=8, grad_accum_steps=2, learning_rate=1e-3, checkpoint_every=0)
    assert_same_training(tmp_path, big, small, atol=2e-5, steps=8)


def test_accumulation_weights_a_short_last_micro_batch_by_its_rows(tmp_path):
    """64 rows: batch 24 x 3 micro-batches (24, 24, 16) per step must equal one batch of 64."""
    one = TrainConfig(epochs=2, batch_size=64, grad_accum_steps=1, learning_rate=1e-3, checkpoint_every=0)
    three = TrainConfig(epochs=2, batch_size=24, grad_accum_steps=3, learning_rate=1e-3, checkpoint_every=0)
    assert_same_training(tmp_path, one, three, atol=2e-5, steps=2)


def test_kill_and_resume_gives_identical_weights(tmp_path):
    """With dropout on (so RNG state matters), a run killed after step 7 (last checkpoint at 5) and
    resumed by a fresh process-like Trainer ends bit-identical to an uninterrupted run."""
    config = TrainConfig(epochs=3, batch_size=16, learning_rate=2e-3, checkpoint_every=5, eval_every=4)
    model_full, trainer_full = make_trainer(tmp_path / "full", config)
    trainer_full.fit()

    _, interrupted = make_trainer(tmp_path / "crash", config)
    make_batch = interrupted.make_batch

    def crash_in_step_8(rows):  # Ctrl-C while step 8's batch is made: step 7 done, not checkpointed
        if interrupted.step >= 7:
            raise KeyboardInterrupt("interrupted in step 8")
        return make_batch(rows)

    interrupted.make_batch = crash_in_step_8
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    assert interrupted.step == 7
    assert json.loads((tmp_path / "crash" / "checkpoint" / "trainer.json").read_text())["step"] == 5

    mx.random.seed(12345)  # a new process would start from some other RNG state
    model_resumed, resumed = make_trainer(tmp_path / "crash", config, seed=99)  # different init: must be overwritten
    resumed.fit()
    full, again = weights(model_full), weights(model_resumed)
    for name in full:
        np.testing.assert_array_equal(full[name], again[name], err_msg=name)
    steps = [json.loads(l)["step"] for l in (tmp_path / "crash" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps), "the log of a resumed run must read as one run"


def test_resume_refuses_changed_settings(tmp_path):
    config = TrainConfig(epochs=1, batch_size=16, checkpoint_every=2)
    _, trainer = make_trainer(tmp_path, config)
    trainer.fit()
    _, other = make_trainer(tmp_path, TrainConfig(epochs=1, batch_size=16, checkpoint_every=2, learning_rate=1.0))
    with pytest.raises(ValueError, match=r"different run \(learning_rate changed\)"):
        other.fit()


def test_resume_refuses_a_different_fingerprint_and_restart_clears(tmp_path):
    config = TrainConfig(epochs=1, batch_size=16, checkpoint_every=2)
    _, trainer = make_trainer(tmp_path, config)
    trainer.fingerprint = {"data": "abc", "labels": ["no", "yes"]}
    trainer.fit()
    _, other = make_trainer(tmp_path, config)
    other.fingerprint = {"data": "abd", "labels": ["no", "yes"]}
    with pytest.raises(ValueError, match=r"fingerprint.data changed.*--restart"):
        other.fit()
    result = other.fit(resume=False)
    assert result.steps == 4 and (tmp_path / "checkpoint" / "trainer.json").exists()
    steps = [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[0] <= 4, "a restart must not keep the old run's log"


def test_early_stopping(tmp_path):
    config = TrainConfig(epochs=50, batch_size=16, learning_rate=1e-12, warmup_ratio=0.0, eval_every=2,
                         early_stopping_patience=2, checkpoint_every=0, decay="constant")
    _, trainer = make_trainer(tmp_path, config)
    result = trainer.fit()
    assert result.stopped_early and result.steps == 6  # evals at 2 (best), 4, 6 -> stop
    _, again = make_trainer(tmp_path, config)  # the same command run again: the run is finished
    rerun = again.fit()
    assert rerun.stopped_early and rerun.steps == 6


def test_schedule_warmup_then_decay():
    schedule = learning_rate_schedule(TrainConfig(learning_rate=1.0, warmup_ratio=0.1, decay="linear"), 100)
    values = [schedule(mx.array(s)).item() for s in (0, 5, 10, 55, 100)]
    assert values[0] == pytest.approx(0.0) and values[1] == pytest.approx(0.5)
    assert values[2] == pytest.approx(1.0) and values[3] == pytest.approx(0.5) and values[4] == pytest.approx(0.0)
    cosine = learning_rate_schedule(TrainConfig(learning_rate=1.0, warmup_ratio=0.0, decay="cosine"), 100)
    assert cosine(mx.array(50)).item() == pytest.approx(0.5, abs=1e-3)


def test_bfloat16_compute_keeps_fp32_masters_and_learns(tmp_path):
    config = TrainConfig(epochs=12, batch_size=16, learning_rate=3e-3, compute_dtype="bfloat16", checkpoint_every=0)
    model, trainer = make_trainer(tmp_path, config, dropout=0.0)
    result = trainer.fit()
    assert all(v.dtype == mx.float32 for _, v in tree_flatten(model.parameters()))
    assert result.best_metrics["accuracy"] >= 0.9


def test_weight_decay_spares_biases_and_norms(tmp_path):
    from mlx_distill.train.trainer import decays

    assert decays("mobilebert.encoder.layer.0.attention.self.query.weight")
    assert not decays("mobilebert.encoder.layer.0.attention.self.query.bias")
    assert not decays("mobilebert.encoder.layer.0.attention.output.LayerNorm.weight")  # MobileBERT's NoNorm too
    assert not decays("bert.embeddings.LayerNorm.weight") and decays("classifier.weight")
    # With zero gradients only weight decay moves a parameter: decayed weights shrink, the rest stay.
    config = TrainConfig(epochs=1, batch_size=16, learning_rate=0.1, weight_decay=0.5, warmup_ratio=0.0,
                         decay="constant", checkpoint_every=0, max_grad_norm=0.0)
    model, trainer = make_trainer(tmp_path, config)
    before = weights(model)
    zeros = tree_map(mx.zeros_like, model.trainable_parameters())
    trainer.optimizer.update(model, zeros)
    after = weights(model)
    for name in before:
        moved = not np.allclose(before[name], after[name])
        assert moved == (decays(name) and bool(np.any(before[name]))), name


def test_tokens_per_second_counts_real_tokens_only(tmp_path):
    config = TrainConfig(epochs=2, batch_size=16, learning_rate=1e-3, checkpoint_every=0)
    _, trainer = make_trainer(tmp_path, config)
    result = trainer.fit()
    _, mask, _ = toy_data()
    real = int(mask.sum()) * 2  # two epochs
    assert mask.size * 2 > real, "the toy data must hold padding for this test to mean anything"
    assert result.tokens_per_s * result.seconds == pytest.approx(real, rel=1e-6)
