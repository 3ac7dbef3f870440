"""Check results and the report: one line per check for humans, ``check.json`` for machines."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

STATUS = {True: "PASS", False: "FAIL", None: "SKIP"}


@dataclass
class CheckResult:
    """One check. ``passed`` is None when the check was skipped (``message`` says why)."""

    name: str
    passed: Optional[bool]
    message: str
    details: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return STATUS[self.passed]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "passed": self.passed, "message": self.message,
                "details": _jsonable(self.details)}


@dataclass
class CheckReport:
    """All checks of one export folder; ``passed`` when every check that ran passed."""

    export_dir: Path
    checks: list[CheckResult]
    model_dir: Optional[Path] = None
    reference_name: Optional[str] = None
    platform: str = ""
    notes: list[str] = field(default_factory=list)
    json_path: Optional[Path] = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Every check ran and passed. Only the MLX reference comparison may be skipped (``python -m
        export.check`` runs without MLX); any other skip means something went unchecked."""
        ran = [c for c in self.checks if c.passed is not None]
        unchecked = [c for c in self.checks if c.passed is None and c.name != "parity-reference"]
        return bool(ran) and all(c.passed for c in ran) and not unchecked

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.passed is False]

    def get(self, name: str) -> CheckResult:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check named {name!r}; have {[c.name for c in self.checks]}")

    def as_dict(self) -> dict[str, Any]:
        return {
            # Relative to the export folder (check.json lives there and may ship in an app bundle).
            "export_dir": ".",
            "model_dir": _relative(self.model_dir, self.export_dir) if self.model_dir else None,
            "reference": self.reference_name,
            "platform": self.platform,
            "passed": self.passed,
            "counts": {status: sum(c.status == status for c in self.checks) for status in ("PASS", "FAIL", "SKIP")},
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
            "checks": [c.as_dict() for c in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False, allow_nan=False)

    def summary(self) -> str:
        """Human-readable: a header, one line per check (PASS/FAIL/SKIP + the key number), a verdict."""
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"check {self.export_dir}" + (f" (model {self.model_dir})" if self.model_dir else "")]
        for check in self.checks:
            lines.append(f"{check.status} {check.name:<{width}}  {check.message}")
        lines.extend(f"note: {note}" for note in self.notes)
        counts = self.as_dict()["counts"]
        verdict = "OK: every check that ran passed" if self.passed else "NOT OK"
        lines.append(f"{verdict} ({counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped"
                     f"{', report ' + str(self.json_path) if self.json_path else ''})")
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """Plain JSON types; NaN/inf become strings so the file stays strict JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int)):
        return value
    return str(value)


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(path).resolve(), Path(start).resolve())
