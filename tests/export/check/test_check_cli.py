"""Entry points: `python -m export.check` (exit status, no mlx) and scripts/check_update.py (with MLX)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import coremltools as ct

ROOT = Path(__file__).resolve().parents[3]


def test_python_m_export_check_exits_1_on_a_broken_export_and_never_imports_mlx(bert_export, copy_export):
    folder = copy_export(bert_export)
    path = folder / "UpdatableHead.mlmodel"
    spec = ct.models.utils.load_spec(str(path))
    spec.neuralNetworkClassifier.updateParams.epochs.defaultValue = 0  # "saves fine", fails on device
    ct.models.utils.save_spec(spec, str(path))
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "export.check", str(folder), "--json"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 1, result.stderr[-2000:]
    report = json.loads(result.stdout[result.stdout.index("{"):])
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["updatable-lint"] == "FAIL" and statuses["parity"] == "PASS"
    lint = next(c for c in report["checks"] if c["name"] == "updatable-lint")
    assert "UpdatableHead.mlmodel: [epochs] epochs default 0 must be > 0" in lint["message"]
    assert json.loads((folder / "check.json").read_text())["passed"] is False
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "export.check" in imported and "torch" in imported
    shared = {"mlx_distill", "mlx_distill.blas", "mlx_distill.fileio"}  # the mlx-free file writing only
    assert not [m for m in imported if (m == "mlx" or m.startswith(("mlx.", "mlx_"))) and m not in shared]


def test_check_update_script_runs_the_full_check_with_mlx(bert_export, copy_export, capsys):
    folder = copy_export(bert_export)
    spec = importlib.util.spec_from_file_location("check_update", ROOT / "scripts" / "check_update.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert "PASS parity-reference  mlx: max |Δp|" in out
    assert "OK: every check that ran passed (7 passed, 0 failed, 0 skipped" in out
    report = json.loads((folder / "check.json").read_text())
    assert report["reference"] == "mlx" and report["passed"] is True
