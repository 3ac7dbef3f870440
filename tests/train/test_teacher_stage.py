"""The teacher stage: fresh head + fine-tuning (optionally with a frozen encoder), and pass-through
when the folder already classifies exactly these labels."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load_file

from tests.helpers.hf_models import save_real_vocab_bert
from mlx_distill.data import Example
from mlx_distill.train.teacher import TeacherConfig, fine_tune_teacher
from mlx_distill.train.trainer import TrainConfig

NOTES = [
    ("Buy milk and eggs", "shopping"), ("Pick up bread and cheese", "shopping"), ("Order new running socks", "shopping"),
    ("Email the client the contract", "work"), ("Prepare the sprint review slides", "work"), ("Call Sam about the budget", "work"),
]


def _encoder_base(tmp_path, minilm_dir):
    return save_real_vocab_bert(tmp_path / "base", ["x", "y"], minilm_dir)


def test_frozen_encoder_trains_only_the_head_then_passes_through(tmp_path, minilm_dir):
    base = _encoder_base(tmp_path, minilm_dir)
    examples = [Example(t, label, f"mem:{i}") for i, (t, label) in enumerate(NOTES)]
    config = TeacherConfig(max_length=16, freeze_encoder=True,
                           train=TrainConfig(epochs=3, batch_size=4, learning_rate=1e-2, checkpoint_every=0))
    report = fine_tune_teacher(base, examples, examples, tmp_path / "teacher", config)
    assert report["fine_tuned"] and report["labels"] == ["shopping", "work"]
    before, after = load_file(base / "model.safetensors"), load_file(tmp_path / "teacher" / "model.safetensors")
    encoder_names = [k for k in after if k.startswith("bert.")]
    assert encoder_names and all(np.array_equal(after[k], before[k]) for k in encoder_names)
    assert after["classifier.weight"].shape == (2, 32)
    assert (tmp_path / "teacher" / "vocab.txt").exists() and (tmp_path / "teacher" / "training" / "report.json").exists()

    again = fine_tune_teacher(tmp_path / "teacher", examples, examples, tmp_path / "again", config)
    assert not again["fine_tuned"] and "already a classifier" in again["reason"]
    assert again["eval"]["accuracy"] == report["eval"]["accuracy"]


def test_fine_tuning_is_reproducible_from_its_seed(tmp_path, minilm_dir):
    """The fresh head is drawn from the training seed: the same command gives the same teacher."""
    base = save_real_vocab_bert(tmp_path / "base", ["x", "y"], minilm_dir)
    examples = [Example(t, label, f"mem:{i}") for i, (t, label) in enumerate(NOTES)]
    outputs = []
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        config = TeacherConfig(max_length=16, train=TrainConfig(epochs=2, batch_size=4, seed=seed, checkpoint_every=0))
        fine_tune_teacher(base, examples, examples, tmp_path / run, config)
        outputs.append(load_file(tmp_path / run / "model.safetensors"))
    assert all(np.array_equal(outputs[0][k], outputs[1][k]) for k in outputs[0])
    assert not np.array_equal(outputs[0]["classifier.weight"], outputs[2]["classifier.weight"])
