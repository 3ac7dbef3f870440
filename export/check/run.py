"""``run_checks``: every check on one export folder, one report, ``check.json`` written atomically."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from export.check.config import CheckConfig
from export.check.context import CheckContext, describe_exception
from export.check.extreme_inputs import check_extremes
from export.check.fp16 import check_fp16
from export.check.updatable_lint import check_lint
from export.check.parity import check_parity, check_reference_parity
from export.check.report import CheckReport, CheckResult
from export.check.shape import check_shape
from export.check.simulated_update import check_update

CHECK_JSON = "check.json"
Reference = Callable[[np.ndarray, np.ndarray], np.ndarray]

_CHECKS = (
    ("shape", check_shape),
    ("parity", check_parity),
    ("parity-reference", check_reference_parity),
    ("extreme-inputs", check_extremes),
    ("updatable-lint", check_lint),
    ("simulated-update", check_update),
    ("fp16", check_fp16),
)


def run_checks(export_dir: Union[str, Path], model_dir: Optional[Union[str, Path]] = None,
               reference: Optional[Reference] = None, reference_name: str = "mlx",
               config: Optional[CheckConfig] = None, output_path: Optional[Union[str, Path]] = None) -> CheckReport:
    """Check an export folder; write ``check.json`` (into it, or to ``output_path``); return the report.

    ``model_dir`` is the Hugging Face folder the export came from (default: the manifest's
    ``source_model_dir`` when it still exists); without it the PyTorch shell is unavailable (every
    shipped file still runs, in Core ML or the NumPy runtimes) and the checks that need it say so. ``reference`` maps
    int32 ``(N, L)`` ids and mask to ``(N, C)`` probabilities (the CLI passes the MLX model's
    ``TextClassifier.probabilities_for_ids``) and should raise ``ValueError`` for ids outside the
    vocabulary. A check that cannot run is reported as skipped; ``report.passed`` is True when every
    check that ran passed.
    """
    config = config or CheckConfig()
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise FileNotFoundError(f"{export_dir} is not a folder; pass a folder written by `python -m mlx_distill export`")
    started = time.perf_counter()
    ctx = CheckContext(export_dir, Path(model_dir) if model_dir is not None else None, reference, reference_name, config)
    checks = []
    for name, check in _CHECKS:
        if not config.wants(name):
            continue
        try:
            result = check(ctx)
        except Exception as exc:  # a bug in a check must not hide the others' results
            result = CheckResult(name, False, f"the check itself crashed: {describe_exception(exc)}",
                                 {"crash": describe_exception(exc)})
        checks.append(result)
    notes = []
    if ctx.model_dir is None:
        notes.append(ctx.model_dir_note)
    report = CheckReport(
        export_dir=ctx.export_dir,
        checks=checks,
        model_dir=ctx.model_dir,
        reference_name=reference_name if reference is not None else None,
        platform=f"{platform.system()} {platform.machine()}, python {sys.version.split()[0]}, "
                 + ("Core ML runtime" if ctx.coreml else "no Core ML runtime: NumPy executor (export.runtime.neuralnetwork)"),
        notes=notes,
    )
    report.seconds = time.perf_counter() - started
    if config.write_json:
        target = Path(output_path) if output_path is not None else ctx.export_dir / CHECK_JSON
        try:
            _write(report, target)
        except OSError as exc:
            report.notes.append(f"could not write {target}: {exc}")
    return report


def _write(report: CheckReport, target: Path) -> None:
    from mlx_distill.fileio import atomic_write_text

    target = target.absolute()
    report.json_path = target
    atomic_write_text(target, report.to_json() + "\n")
