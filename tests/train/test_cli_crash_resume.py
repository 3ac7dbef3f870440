"""A crashed `distill` run (SIGKILL mid-training) resumes from its checkpoint when the same command
runs again, reuses the teacher cache, and ends with the same student as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

import mlx_distill
from tests.helpers.hf_models import save_real_vocab_bert

DEMO = os.path.join(os.path.dirname(mlx_distill.__file__), "demo", "data", "train.jsonl")


@pytest.fixture()
def setup(tmp_path, minilm_dir):
    rows = [json.loads(line) for line in open(DEMO, encoding="utf-8")][:48]
    labels = sorted({r["label"] for r in rows})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    save_real_vocab_bert(tmp_path / "teacher", labels, minilm_dir)
    return tmp_path


def _command(root, out):
    return [sys.executable, "-m", "mlx_distill", "distill", "--teacher", str(root / "teacher"),
            "--train", str(root / "train.jsonl"), "--eval", str(root / "train.jsonl"), "--out", str(out),
            "--student-preset", "tiny", "--max-length", "24", "--epochs", "20", "--batch-size", "8",
            "--checkpoint-every", "10", "--eval-every", "25", "--lr", "1e-3"]


def _checkpoint_step(training) -> int:
    """Step of the newest complete checkpoint (a kill may land between the two renames of a save)."""
    for folder in (training / "checkpoint", *training.glob(".checkpoint.old-*")):
        try:
            return json.loads((folder / "trainer.json").read_text())["step"]
        except (FileNotFoundError, json.JSONDecodeError):
            continue
    return -1


@pytest.mark.slow
def test_sigkill_then_rerun_matches_uninterrupted(setup):
    root = setup
    full = subprocess.run(_command(root, root / "full"), capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr

    crashing = subprocess.Popen(_command(root, root / "crash"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    training = root / "crash" / "training"
    deadline = time.time() + 300
    while time.time() < deadline and _checkpoint_step(training) < 60:
        time.sleep(0.05)
    crashing.send_signal(signal.SIGKILL)
    crashing.wait()
    assert crashing.returncode == -signal.SIGKILL
    killed_at = _checkpoint_step(training)
    assert 60 <= killed_at < 120, killed_at  # it really died mid-run (120 steps in all)
    assert not (root / "crash" / "model.safetensors").exists()

    resumed = subprocess.run(_command(root, root / "crash"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((root / "crash" / "training" / "report.json").read_text())
    assert report["cache"]["reused"] is True
    a, b = load_file(root / "full" / "model.safetensors"), load_file(root / "crash" / "model.safetensors")
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
