"""Mistakes real users make, met through the CLI as they would meet them (real folders, real
subprocesses, a real full disk): nothing is lost, every answer is one clear line, exit codes hold."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import mlx_distill
from tests.helpers.hf_models import copy_tokenizer, save_hf_classifier, save_real_vocab_bert

DEMO = Path(mlx_distill.__file__).parent / "demo" / "data" / "train.jsonl"
INTERRUPTED = "interrupted; run the same command again to resume"


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlx_distill", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _errors(done: subprocess.CompletedProcess) -> list[str]:
    """stderr without warnings and notes: what the command said went wrong."""
    return [line for line in done.stderr.splitlines() if line and not line.startswith(("warning:", "note:"))]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def work(tmp_path_factory, minilm_dir):
    """48 demo notes, a tiny real-vocabulary BERT base model and a tiny MobileBERT classifier."""
    root = tmp_path_factory.mktemp("hardening")
    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines()][:48]
    labels = sorted({r["label"] for r in rows})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    save_real_vocab_bert(root / "base", ["other", "labels"], minilm_dir)  # a base model: `teacher` trains a head
    save_hf_classifier(
        "mobilebert", root / "classifier", labels, vocab_size=30522, hidden_size=32, embedding_size=16,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=24, intra_bottleneck_size=16,
        num_feedforward_networks=1,
    )
    copy_tokenizer(minilm_dir, root / "classifier")
    return root


def _teacher(work: Path, out: Path, *extra: str) -> list[str]:
    return ["teacher", "--model", work / "base", "--train", work / "train.jsonl", "--eval", work / "train.jsonl",
            "--out", out, "--max-length", "24", "--batch-size", "8", *extra]


def _distill(work: Path, teacher: Path, out: Path, *extra: str) -> list[str]:
    return ["distill", "--teacher", teacher, "--train", work / "train.jsonl", "--eval", work / "train.jsonl",
            "--out", out, "--student-preset", "tiny", "--max-length", "24", "--batch-size", "8", *extra]


# ---- 1. an output folder that is an input folder ----------------------------------------------------
def test_output_that_is_an_input_is_refused_before_any_work(work, tmp_path):
    clf = work / "classifier"
    before = _digest(clf)
    link = tmp_path / "link"
    link.symlink_to(clf)
    cases = [
        (_distill(work, clf, clf), "is also the input --teacher"),
        (_distill(work, clf, clf, "--restart"), "is also the input --teacher"),  # following the old advice
        (_distill(work, clf, link), "is also the input --teacher"),  # the same folder through a symlink
        (_distill(work, clf, clf / "student"), "lies inside the input folder --teacher"),
        (_distill(work, clf, work), "contains the input"),
        (_teacher(work, work / "base"), "is also the input --model"),
        (["export", clf, "--out", clf], "is also the input STUDENT_DIR"),
        (["export", clf, "--out", clf / "coreml"], "lies inside the input folder STUDENT_DIR"),
    ]
    for args, expected in cases:
        done = _run(*args)
        assert done.returncode == 1, (args, done.stderr)
        errors = _errors(done)
        assert len(errors) == 1 and expected in errors[0], (args, errors)
    assert _digest(clf) == before, "an input folder changed"
    assert not (clf / "student").exists() and not (clf / "training").exists()


# ---- 2. hyperparameters and diverged runs -----------------------------------------------------------
def test_learning_rate_is_validated_up_front(work, tmp_path):
    for lr in ("-1", "0", "nan"):
        done = _run(*_teacher(work, tmp_path / "t", "--lr", lr))
        assert done.returncode == 1 and _errors(done) == [f"error: --lr must be a number > 0, e.g. 5e-5 (got {float(lr)})"]
    assert not (tmp_path / "t").exists()


def test_a_diverged_run_is_not_saved_and_nan_weights_are_refused(work, tmp_path):
    out = tmp_path / "student"
    done = _run(*_distill(work, work / "classifier", out, "--lr", "10", "--epochs", "3", "--checkpoint-every", "1"))
    assert done.returncode == 1, done.stderr
    (error,) = _errors(done)
    assert "training diverged at step" in error and "lower learning rate" in error and "--restart" in error
    assert not (out / "model.safetensors").exists() and not (out / "config.json").exists()
    # Whatever checkpoint stayed holds finite weights.
    for path in (out / "training").rglob("model.safetensors"):
        assert all(np.isfinite(v).all() for v in load_file(path).values())

    # A folder holding NaN weights (made by other tools, or by an older version) is refused.
    broken = tmp_path / "broken"
    shutil.copytree(work / "classifier", broken)
    weights = load_file(broken / "model.safetensors")
    name = sorted(weights)[3]
    weights[name] = np.full_like(weights[name], np.nan)
    save_file(weights, broken / "model.safetensors")
    done = _run("predict", broken, "buy milk")
    assert done.returncode == 1 and "NaN or inf" in done.stderr and name in done.stderr and "diverged" in done.stderr
    assert len(_errors(done)) == 1


# ---- 3. a full disk ---------------------------------------------------------------------------------
def _mount_tmpfs(mount: Path, size: int) -> None:
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); needs root")


def test_full_disk_is_one_line_and_leaves_no_temporary_files(work, tmp_path):
    teacher = work / "classifier"
    extra = ("--epochs", "4", "--checkpoint-every", "1", "--hidden-weight", "0", "--attention-weight", "0",
             "--cache-dir", tmp_path / "cache")
    probe = tmp_path / "probe"  # how big one checkpoint is, measured on the real disk
    assert _run(*_distill(work, teacher, probe, "--epochs", "0.1", *extra[2:])).returncode == 0
    checkpoint = sum(p.stat().st_size for p in (probe / "training" / "checkpoint").iterdir())
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, int(checkpoint * 1.6))  # room for one checkpoint, not for the next beside it
    try:
        out = disk / "student"
        done = _run(*_distill(work, teacher, out, *extra))
        assert done.returncode == 1, done.stderr
        (error,) = _errors(done)
        assert error.startswith(f"error: {out / 'training'}: the disk is full") and "run the same command again" in error
        assert "Traceback" not in done.stderr
        training = out / "training"
        assert not list(training.glob(".checkpoint*")) and not list(training.glob(".*.safetensors"))
        state = json.loads((training / "checkpoint" / "trainer.json").read_text())  # the previous one, intact
        assert state["step"] >= 1
        assert all(np.isfinite(v).all() for v in load_file(training / "checkpoint" / "model.safetensors").values())
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# ---- 4. Ctrl-C --------------------------------------------------------------------------------------
def test_ctrl_c_is_one_line_exit_130_and_the_rerun_resumes(work, tmp_path):
    out = tmp_path / "teacher"
    args = _teacher(work, out, "--epochs", "12", "--checkpoint-every", "5", "--lr", "1e-4")
    process = subprocess.Popen([sys.executable, "-m", "mlx_distill", *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "training" / "checkpoint" / "trainer.json").exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in stderr
    assert not (out / "model.safetensors").exists(), "an interrupted run must not look finished"

    done = _run(*args)
    assert done.returncode == 0, done.stderr
    assert "teacher: resuming from the checkpoint at step" in done.stderr
    assert (out / "model.safetensors").exists()


def test_ctrl_c_while_export_imports_torch(work, tmp_path):
    """The first seconds of `export` are spent importing torch and coremltools; Ctrl-C there used to
    be swallowed (or to end in an unrelated torch error)."""
    process = subprocess.Popen([sys.executable, "-m", "mlx_distill", "export", str(work / "classifier"), "--out",
                                str(tmp_path / "coreml"), "--max-length", "16"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in stderr
    assert not (tmp_path / "coreml" / "manifest.json").exists()


# ---- 5. paths of the wrong kind, found before any work ------------------------------------------------
def test_paths_of_the_wrong_kind_are_named_before_any_work(work, tmp_path):
    a_file = tmp_path / "out.txt"
    a_file.write_text("keep me")
    cases = [
        (["teacher", "--model", work / "base", "--train", tmp_path, "--out", tmp_path / "t"],
         f"--train {tmp_path}: is a folder"),
        (_teacher(work, a_file), f"--out {a_file}: is an existing file"),
        (_distill(work, work / "classifier", tmp_path / "s", "--unlabeled", tmp_path / "nope.txt"),
         f"--unlabeled {tmp_path / 'nope.txt'}: no such file"),
        (_distill(work, work / "train.jsonl", tmp_path / "s"), "is a file"),
        (["export", work / "train.jsonl", "--out", tmp_path / "c"], "STUDENT_DIR"),
        (["check", tmp_path], "has no manifest.json"),
        (["predict", work / "classifier", "--file", tmp_path], "--file"),
    ]
    for args, expected in cases:
        start = time.perf_counter()
        done = _run(*args)
        assert done.returncode == 1, (args, done.stderr)
        errors = _errors(done)
        assert len(errors) == 1 and expected in errors[0], (args, errors)
        assert "step" not in done.stderr and time.perf_counter() - start < 30
    assert a_file.read_text() == "keep me"


# ---- 6. messages that name the real cause ------------------------------------------------------------
def test_empty_texts_and_foreign_tokenizers_are_named(work, tmp_path):
    done = _run("predict", work / "classifier", "buy milk", "  ")
    assert done.returncode == 0 and "warning: text 2 is empty" in done.stderr

    foreign = tmp_path / "foreign"
    shutil.copytree(work / "classifier", foreign)
    (foreign / "tokenizer.json").unlink()
    vocab = (foreign / "vocab.txt").read_text(encoding="utf-8").splitlines()[:2000]
    (foreign / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    done = _run("predict", foreign, "buy milk")
    assert done.returncode == 1
    (error,) = _errors(done)
    assert "2,000 tokens" in error and "30,522" in error and "belong to another model" in error
