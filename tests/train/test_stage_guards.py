"""What the stages refuse or respect: changed inputs on resume, lengths the model cannot embed,
empty evaluation sets, an existing head's label order, and each loss weight."""

from __future__ import annotations


import numpy as np
import pytest

import mlx.core as mx
from tests.helpers.hf_models import save_hf_classifier, save_real_vocab_bert
from mlx_distill.data import Example
from mlx_distill.models import load_classifier
from mlx_distill.train.distill import DistillConfig, make_objective
from mlx_distill.train.metrics import classification_metrics
from mlx_distill.train.teacher import TeacherConfig, fine_tune_teacher
from mlx_distill.train.trainer import TrainConfig

NOTES = [("Buy milk", "shopping"), ("Order socks", "shopping"), ("Email the client", "work"), ("Fix the report", "work")]


def _examples(rows):
    return [Example(t, label, f"mem:{i}") for i, (t, label) in enumerate(rows)]


def _config(max_length=16):
    return TeacherConfig(max_length=max_length, train=TrainConfig(epochs=1, batch_size=2, checkpoint_every=1))


def test_resume_with_changed_training_data_is_refused(tmp_path, minilm_dir):
    base = save_real_vocab_bert(tmp_path / "base", ["x", "y"], minilm_dir)
    fine_tune_teacher(base, _examples(NOTES), _examples(NOTES), tmp_path / "t", _config())
    changed = NOTES[:3] + [("Fix the quarterly report", "work")]
    with pytest.raises(ValueError, match=r"fingerprint.train changed.*--restart"):
        fine_tune_teacher(base, _examples(changed), _examples(NOTES), tmp_path / "t", _config())
    report = fine_tune_teacher(base, _examples(changed), _examples(NOTES), tmp_path / "t", _config(), resume=False)
    assert report["fine_tuned"] and report["train_examples"] == 4


def test_lengths_and_empty_eval_are_refused(tmp_path, minilm_dir):
    base = save_real_vocab_bert(tmp_path / "base", ["x", "y"], minilm_dir)  # 64 positions
    with pytest.raises(ValueError, match="max length 100 exceeds the model's max_position_embeddings \\(64\\)"):
        fine_tune_teacher(base, _examples(NOTES), _examples(NOTES), tmp_path / "t", _config(max_length=100))
    with pytest.raises(ValueError, match="evaluation set is empty"):
        fine_tune_teacher(base, _examples(NOTES), [], tmp_path / "t", _config())


def test_existing_head_keeps_its_label_order(tmp_path):
    save_hf_classifier("bert", tmp_path, ["work", "shopping"], vocab_size=120, hidden_size=32, num_hidden_layers=1,
                       num_attention_heads=4, intermediate_size=48, max_position_embeddings=64)
    loaded = load_classifier(tmp_path, labels=["shopping", "work"])
    assert loaded.weights.initialised == [] and loaded.config.labels == ["work", "shopping"]


def test_embedding_weight_is_its_own_term():
    from mlx_distill.models import MobileBertConfig, build_classifier
    from mlx_distill.train.distill import DistillModule

    cfg = MobileBertConfig(vocab_size=50, hidden_size=16, embedding_size=8, intra_bottleneck_size=8, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=16, num_feedforward_networks=1,
                           max_position_embeddings=8, id2label={0: "a", 1: "b"})
    student = build_classifier(cfg, seed=0)
    batch = {"input_ids": mx.array(np.arange(16).reshape(2, 8) % 50), "attention_mask": mx.ones((2, 8), dtype=mx.int32),
             "labels": mx.array([0, 1]), "teacher_logits": mx.array([[1.0, 0.0], [0.0, 1.0]]),
             "teacher_hidden.0": mx.ones((2, 8, 16)), "teacher_hidden.2": mx.ones((2, 8, 16))}
    losses = {}
    for weight in (0.001, 1000.0):
        config = DistillConfig(hidden_weight=0.0, attention_weight=0.0, embedding_weight=weight)
        objective, pairs, _ = make_objective(config, {1: 1, 2: 2}, 2, 2)
        assert pairs == [(0, 0)]
        loss, parts = objective(DistillModule(student, [0], 16, 16), batch)
        assert set(parts) == {"kd", "ce", "embedding"}
        expected = parts["kd"].item() + 0.5 * parts["ce"].item() + weight * parts["embedding"].item()
        assert loss.item() == pytest.approx(expected, rel=1e-5)
        losses[weight] = loss.item()
    assert losses[1000.0] > losses[0.001] + 1.0


def test_macro_f1_counts_predicted_but_absent_classes():
    logits = np.array([[1.0, 0.0]] * 2 + [[0.0, 1.0]] * 2)
    metrics = classification_metrics(logits, np.array([0, 0, 0, 0]), ["a", "b"])
    assert metrics["accuracy"] == 0.5
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)  # as scikit-learn computes it
    assert metrics["recall"] == {"a": 0.5}
