"""``build`` with ``[parallel] processes = 2`` (the real mlx.launch and ring backend on 127.0.0.1):
the teacher fine-tune, the teacher cache and the distillation run as two ranks, everything else once
in the build's own process; the teacher and the student equal a one-process build's, and so do the
evaluation numbers the two ranks compute together. A killed rank fails the build with one line
naming the stage and the rank, and the same build resumes the stage.

A tiny BERT teacher (real vocabulary) and a tiny student, both without dropout: dropout masks are
drawn per shard and cannot match across shardings. Batches of 7 split 4 + 3 over the two ranks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import mlx_distill
from mlx_distill.build.config import load_build_config
from mlx_distill.build.run import run_build
from tests.helpers.dp_helpers import ENV, kill_rank_once_saved
from tests.helpers.hf_models import copy_tokenizer, save_hf_classifier

pytestmark = pytest.mark.slow  # about 45 s in all on the shared 2-core CPU (each launch of a stage costs ~5 s)

DEMO = Path(mlx_distill.__file__).parent / "demo" / "data"
#: Softmax ignores a shift shared by every key, so these biases' true gradient is exactly 0: they
#: move by rounding noise only, which Adam scales up (see tests/distributed/test_distill_two_processes.py).
ZERO_GRADIENT = "attention.self.key.bias"

BUILD = """\
[data]
train = "train.jsonl"
unlabeled = ["notes.txt"]
holdout = 0.25

[teacher]
model = "teacher"
max_length = 24

[teacher.train]
epochs = 2
batch_size = 7
learning_rate = 1e-3

[distill]
student_config = "student.json"
init = "random"
max_length = 24

[distill.train]
epochs = 2
batch_size = 7
learning_rate = 2e-3
checkpoint_every = 2
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory, minilm_dir) -> Path:
    root = tmp_path_factory.mktemp("parallel_build")
    rows = [json.loads(line) for line in (DEMO / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:40]), encoding="utf-8")
    (root / "notes.txt").write_text("".join(r["text"] + "\n" for r in rows[40:60]), encoding="utf-8")
    # Other labels than the data's: the build puts a fresh head on it and fine-tunes it.
    save_hf_classifier("bert", root / "teacher", ["x", "y"], vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=48, max_position_embeddings=64,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    copy_tokenizer(minilm_dir, root / "teacher")
    (root / "student.json").write_text(json.dumps({
        "model_type": "mobilebert", "num_hidden_layers": 2, "hidden_size": 32, "embedding_size": 16,
        "intra_bottleneck_size": 16, "intermediate_size": 32, "num_attention_heads": 2,
        "num_feedforward_networks": 1, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    }))
    (root / "build.toml").write_text(BUILD, encoding="utf-8")
    (root / "two.toml").write_text(BUILD + "\n[parallel]\nprocesses = 2\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def runs(folder):
    """The same build with one process and with two, up to the student (export does not depend on how
    the student was trained)."""
    os.environ.update({k: ENV[k] for k in ("MKL_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    one = run_build(load_build_config(folder / "build.toml"), folder / "one", "cpu", until="distill")
    two = run_build(load_build_config(folder / "two.toml"), folder / "two", "cpu", until="distill")
    return one, two


def _differences(a: Path, b: Path) -> dict[str, float]:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert set(wa) == set(wb)
    return {name: float(np.abs(wa[name] - wb[name]).max()) for name in wa if ZERO_GRADIENT not in name}


def test_two_processes_build_the_one_process_teacher_and_student(folder, runs):
    one, two = runs
    for stage in ("teacher", "distill"):
        diffs = _differences(folder / "one" / stage, folder / "two" / stage)
        assert max(diffs.values()) <= 1e-5, (stage, sorted(diffs.items(), key=lambda kv: -kv[1])[:3])
        reports = [json.loads((folder / n / stage / "training" / "report.json").read_text()) for n in ("one", "two")]
        assert [r["processes"] for r in reports] == [1, 2]
    assert one["teacher"]["fine_tuned"] is True and two["teacher"]["fine_tuned"] is True
    # the evaluation the two ranks share gives the one-process numbers
    for stage, split in (("teacher", "eval"), ("distill", "eval"), ("distill", "teacher_eval")):
        a, b = one[stage][split], two[stage][split]
        for key in ("accuracy", "macro_f1", "teacher_agreement", "teacher_kl"):
            if key in a:
                assert b[key] == pytest.approx(a[key], abs=1e-6), (stage, split, key)
    assert two["distill"]["params"] == one["distill"]["params"]


def test_a_killed_rank_fails_the_build_clearly_and_the_build_resumes(folder, runs, capfd):
    crash = folder / "crash"
    shutil.copytree(folder / "one", crash)  # data and teacher done; distill as if never run
    shutil.rmtree(crash / "distill")
    (crash / "stages" / "distill.json").unlink()
    command = [sys.executable, "-m", "mlx_distill", "build", str(folder / "build.toml"), "--out", str(crash),
               "--processes", "2"]
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    code, stderr = kill_rank_once_saved(running, crash / "distill" / "training" / "checkpoint" / "trainer.json", 1,
                                        b"build-stage", str(crash.resolve()).encode())
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1, stderr
    assert lines[-1].startswith("error: distill stage: rank 1 of 2 was killed by signal 9 (SIGKILL)"), stderr
    assert "Traceback" not in stderr and "[WARN]" not in stderr and "[ring]" not in stderr, stderr
    assert "[3/6] distill:" in stderr and "2 processes" in stderr
    assert json.loads((crash / "stages" / "distill.json").read_text())["status"] == "started"
    assert not (crash / "distill" / "model.safetensors").exists()

    capfd.readouterr()
    run_build(load_build_config(folder / "two.toml"), crash, "cpu", until="distill")
    err = capfd.readouterr().err
    assert "distill: distil into the MobileBERT student (resumes its interrupted run" in err, err
    assert "distill: resuming from the checkpoint at step" in err, err
    assert "teacher: reused" in err
    # the same teacher as the one-process build: the resumed student is its student
    diffs = _differences(folder / "one" / "distill", crash / "distill")
    assert max(diffs.values()) <= 1e-5, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]
