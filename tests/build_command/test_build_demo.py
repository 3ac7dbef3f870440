"""The demo, as the quick start runs it: ``python -m mlx_distill`` with no arguments is the build of
``mlx_distill/demo/build.toml``, offline (a network namespace holding only loopback)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers.offline import run_offline

pytestmark = pytest.mark.slow  # the real demo: ~9½ minutes on an idle 2-core CPU, far more on a busy one


def test_demo_is_the_build_of_its_toml_and_opens_no_connection(tmp_path):
    done = run_offline([sys.executable, "-m", "mlx_distill"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "demo"
    report = json.loads((run / "report.json").read_text())
    assert Path(report["build_file"]).name == "build.toml" and Path(report["build_file"]).parent.name == "demo"
    # Measured 2026-12 on a 2-core CPU (twice, identical): teacher 0.950, student (4 of the teacher's blocks,
    # init teacher-layers) 0.925, agreement 0.883 on the 120 test notes. Issue 9 asks the student to come
    # within 3 points of its teacher; the bounds sit 2-3 notes under what was measured.
    assert report["teacher"]["test_accuracy"] >= 0.93
    assert report["student"]["test_accuracy"] >= 0.90
    assert report["teacher"]["test_accuracy"] - report["student"]["test_accuracy"] <= 0.03 + 1e-9
    assert report["student"]["teacher_agreement"] >= 0.85
    assert report["data"]["test"] == 120 and report["data"]["unlabeled"] == 2000
    assert report["check"]["passed"] is True
    for name in [*report["export"]["files"], *report["plots"].values(), report["student"]["dir"]]:
        assert (run / name).exists(), name
    assert len(report["predictions"]) == 5 and "the student on new notes:" in done.stdout
