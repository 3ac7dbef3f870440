"""Check 4, "is it really updatable": Core ML's load-time rules for updatable models.

Runs ``export.updatable.rules.lint_spec`` on every model the manifest lists as updatable, every
``updatable_*`` role, and any other ``.mlmodel`` in the folder whose spec says it is updatable.
Each violation is listed with its rule name (``ce-input-from-softmax``, ``backpropagation-path``...).
"""

from __future__ import annotations

from typing import Any

from export.check.context import CheckContext, Unavailable
from export.check.report import CheckResult
from export.updatable.rules import lint_spec

NAME = "updatable-lint"


def updatable_roles(ctx: CheckContext) -> list[str]:
    models = ctx.need_manifest()["models"]
    return [role for role, entry in models.items() if role.startswith("updatable") or entry.get("is_updatable")]


def check_lint(ctx: CheckContext) -> CheckResult:
    try:
        roles = updatable_roles(ctx)
    except Unavailable as exc:
        return CheckResult(NAME, None, str(exc))
    files: dict[str, Any] = {}
    failures = []
    for role in roles:
        name = ctx.file_name(role)
        try:
            violations = lint_spec(ctx.spec(role))
        except Exception as exc:
            files[name] = {"error": str(exc), "violations": []}
            failures.append(str(exc) if name in str(exc) else f"{name}: {exc}")
            continue
        files[name] = {"violations": [{"rule": v.rule, "message": v.message} for v in violations]}
        failures.extend(f"{name}: [{v.rule}] {v.message}" for v in violations)
    listed = {ctx.file_name(role) for role in roles} | {e.get("file") for e in ctx.need_manifest()["models"].values()}
    for path in sorted(ctx.export_dir.glob("*.mlmodel")):
        if path.name in listed:
            continue
        try:
            import coremltools as ct

            spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
        except Exception:
            continue  # not a model the manifest knows about; the shape check covers listed files
        if spec.isUpdatable:
            violations = lint_spec(spec)
            files[path.name] = {"violations": [{"rule": v.rule, "message": v.message} for v in violations],
                                "not_in_manifest": True}
            failures.extend(f"{path.name}: [{v.rule}] {v.message}" for v in violations)
    details = {"files": files, "rules": sorted({v["rule"] for f in files.values() for v in f["violations"]})}
    if not files:
        return CheckResult(NAME, None, "this export has no updatable model", details)
    if failures:
        return CheckResult(NAME, False, "; ".join(failures), details)
    return CheckResult(NAME, True, f"{len(files)} updatable model(s) meet every Core ML load-time rule: "
                       f"{', '.join(files)}", details)
