"""The transfer set (`distill --unlabeled`) and synthetic rows (`--synthetic`): the teacher
soft-labels every unlabelled row into the cache, CE applies to labelled rows only, and rows that
repeat the labelled data or leak from the evaluation / test data are dropped and counted."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

import mlx_distill
from tests.helpers.hf_models import copy_tokenizer, save_hf_classifier
from mlx_distill.data import Example
from mlx_distill.train.distill import DistillConfig, distill
from mlx_distill.train.student_init import StudentSpec
from mlx_distill.train.trainer import TrainConfig

LABELS = ["shopping", "work"]
TRAIN = [("Buy milk", "shopping"), ("Order socks", "shopping"), ("Email the client", "work"),
         ("Fix the report", "work")]
EVAL = [("Book the dentist", "work"), ("Get bread", "shopping")]
UNLABELED = ["Pick up eggs", "pick up   EGGS", "Send the invoice", "buy milk", "get bread", "Call the bank"]


def _rows(pairs, name):
    return [Example(text, label, f"{name}:{i + 1}") for i, (text, label) in enumerate(pairs)]


def _teacher(tmp_path, minilm_dir):
    folder = tmp_path / "teacher"
    save_hf_classifier("bert", folder, LABELS, vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=48, max_position_embeddings=64)
    copy_tokenizer(minilm_dir, folder)
    return folder


def test_transfer_rows_join_the_cache_and_leaks_are_counted(tmp_path, minilm_dir):
    teacher = _teacher(tmp_path, minilm_dir)
    config = DistillConfig(max_length=16, labelled_repeats=2,
                           train=TrainConfig(epochs=2, batch_size=4, learning_rate=1e-3, checkpoint_every=0))
    unlabeled = [Example(text, None, f"u.txt:{i + 1}") for i, text in enumerate(UNLABELED)]
    synthetic = _rows([("Restock the printer paper", "work"), ("GET BREAD", "shopping")], "s.jsonl")
    report = distill(teacher, _rows(TRAIN, "t"), _rows(EVAL, "e"), tmp_path / "student", StudentSpec(preset="tiny"),
                     config, unlabeled=unlabeled, synthetic=synthetic)
    # "pick up EGGS" repeats "Pick up eggs"; "buy milk" is labelled already; "get bread" is an eval text.
    assert report["transfer"] == {"given": 6, "used": 3, "duplicates": 1, "also_labelled": 1, "dropped_eval_test": 1}
    assert report["synthetic"] == {"given": 2, "used": 1, "duplicates": 0, "also_labelled": 0, "dropped_eval_test": 1}
    assert report["train_examples"] == 5  # 4 labelled + 1 synthetic
    # The teacher soft-labelled every training row once: 5 labelled + 3 transfer.
    cache_dir = tmp_path / "student" / "training" / "teacher_cache"
    (key,) = [p.name for p in cache_dir.iterdir() if not p.name.startswith(".")]
    manifest = json.loads((cache_dir / key / "manifest.json").read_text())
    assert manifest["rows"] == 8
    # 2 epochs over (5 labelled x 2 repeats + 3 transfer) = 13 rows in batches of 4: 2 x 4 optimizer steps.
    assert report["training"]["steps"] == 8


def test_distill_unlabeled_through_the_cli(tmp_path, minilm_dir):
    teacher = _teacher(tmp_path, minilm_dir)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in TRAIN))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in EVAL))
    (tmp_path / "notes.txt").write_text("\n".join(UNLABELED) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "mlx_distill", "distill", "--teacher", str(teacher), "--train", str(tmp_path / "train.jsonl"),
         "--eval", str(tmp_path / "eval.jsonl"), "--unlabeled", str(tmp_path / "notes.txt"), "--out",
         str(tmp_path / "student"), "--student-preset", "tiny", "--max-length", "16", "--epochs", "1",
         "--batch-size", "4"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ("transfer: 3 of 6 unlabelled texts used (1 duplicates, 1 already in the labelled data, 1 found in "
            "eval/test data dropped)") in done.stderr
    report = json.loads((tmp_path / "student" / "training" / "report.json").read_text())
    assert report["transfer"]["used"] == 3 and np.isfinite(report["eval"]["accuracy"])


def test_distill_unlabeled_needs_no_network(tmp_path, minilm_dir):
    """The transfer-set distillation runs with every non-loopback connection impossible."""
    from tests.helpers.offline import run_offline

    probe = run_offline([sys.executable, "-c", "import socket; socket.create_connection(('1.1.1.1', 443), timeout=3)"],
                        capture_output=True, text=True)
    assert probe.returncode != 0, "the namespace must really forbid outside connections"
    teacher = _teacher(tmp_path, minilm_dir)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in TRAIN))
    (tmp_path / "notes.txt").write_text("\n".join(UNLABELED) + "\n")
    done = run_offline([sys.executable, "-m", "mlx_distill", "distill", "--teacher", teacher, "--train",
                        tmp_path / "train.jsonl", "--eval", tmp_path / "train.jsonl", "--unlabeled",
                        tmp_path / "notes.txt", "--out", tmp_path / "student", "--student-preset", "tiny",
                        "--max-length", "16", "--epochs", "1", "--batch-size", "4"],
                       capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "student" / "model.safetensors").exists()
