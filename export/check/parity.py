"""Checks 2a/2b, parity on real texts: Core ML files vs the PyTorch shell vs the reference (MLX).

Texts are tokenised with the exported tokenizer at the manifest's fixed length. Probabilities must
agree within ``tolerance`` (max |difference|, fp32) and pick the same class - except on rows whose
two best classes are closer than ``2 * tolerance`` in the baseline, where either pick is right.
A classifier's own ``label`` output must also be the arg-max of its own probabilities. A file that
computes in fp16 (an fp16 ML Program, or the head fed its embeddings) is held to
``fp16_tolerance`` instead: each comparison records the bound it was held to.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from export.check.context import CheckContext, Unavailable, describe_exception
from export.check.report import CheckResult
from export.check.runners import Outputs
from export.runtime.mlprogram.interpreter import RUNTIME

PROGRAM_NOTE = (f"ML Programs (Classifier.mlpackage, Encoder.mlpackage) are executed from their own packages "
                f"(program and weight file) by {RUNTIME}; Core ML cannot run them off macOS")

NAME = "parity"
REFERENCE_NAME = "parity-reference"


def compare(base: Outputs, other: Outputs, labels: list, tolerance: float) -> dict[str, Any]:
    """max |Δp|, arg-max agreement (ties excused) and label-output consistency of ``other``."""
    a, b = np.asarray(base.probabilities), np.asarray(other.probabilities)
    with np.errstate(invalid="ignore"):
        diff = np.abs(b - a)
    max_diff = float(np.max(diff)) if np.isfinite(diff).all() else float("nan")
    top = np.sort(a, axis=1)
    decisive = (top[:, -1] - top[:, -2]) > 2 * tolerance if a.shape[1] > 1 else np.ones(len(a), bool)
    agree = np.argmax(a, axis=1) == np.argmax(b, axis=1)
    disagree = [int(i) for i in np.where(decisive & ~agree)[0]]
    inconsistent = []
    if other.labels is not None:
        inconsistent = [i for i, label in enumerate(other.labels) if label != labels[int(np.argmax(b[i]))]]
    passed = bool(np.isfinite(max_diff) and max_diff <= tolerance and not disagree and not inconsistent)
    return {"max_abs_diff": max_diff, "argmax_agree": int(agree.sum()), "rows": int(len(a)),
            "argmax_disagree_rows": disagree, "ties_excused": int((~decisive & ~agree).sum()),
            "label_output_inconsistent_rows": inconsistent, "passed": passed}


def _fmt(value: float) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.2g}"


def _sources(ctx: CheckContext, keys) -> tuple[list, dict, dict]:
    """Runners that exist, skip reasons, and load errors (which fail the check)."""
    runners, skipped, errors = [], {}, {}
    for key in keys:
        try:
            runners.append((key, ctx.runner(key)))
        except Unavailable as exc:
            skipped[key] = str(exc)
        except Exception as exc:
            errors[key] = describe_exception(exc)
    return runners, skipped, errors


def _embedding_parity(ctx: CheckContext) -> Optional[dict]:
    """Encoder.mlpackage vs the shell's pooled output, relative to the embedding's scale."""
    try:
        shell, encoder = ctx.runner("shell"), ctx.encoder()
    except Unavailable:
        return None
    except Exception as exc:
        return {"error": describe_exception(exc), "passed": False, "artefact": "encoder"}
    tokens = ctx.tokens()
    try:
        got = encoder.pooled(tokens.input_ids, tokens.attention_mask)
    except Exception as exc:
        return {"error": describe_exception(exc), "passed": False, "artefact": encoder.name}
    want = shell.pooled(tokens.input_ids, tokens.attention_mask)
    if got.shape != want.shape:
        return {"artefact": encoder.name, "via": encoder.via, "passed": False,
                "error": f"pooled embeddings of shape {got.shape[1:]} vs the shell's {want.shape[1:]}"}
    scale = max(1.0, float(np.max(np.abs(want))))
    diff = float(np.max(np.abs(got - want))) if np.isfinite(got).all() else float("nan")
    tol = ctx.tolerance("encoder")
    return {"artefact": encoder.name, "via": encoder.via, "max_abs_diff": diff, "scale": scale, "tolerance": tol,
            "passed": bool(np.isfinite(diff) and diff <= tol * scale)}


def _weights_provenance(ctx: CheckContext) -> dict[str, dict]:
    """For each ML Program: are the source model's tensors in its weight file? (needs the shell)"""
    from export.check.weights import source_tensors_in_package

    try:
        shell = ctx.shell()
        state = shell.state_dict()
    except Exception:
        return {}
    # Tensors a module holds but never reads (e.g. a MobileBERT without trigram input whose embedding
    # width is the hidden width keeps an unused embedding_transformation) cannot be in any package.
    unread = tuple(f"{name}.{part}" if name else part for name, module in shell.named_modules()
                   for part in getattr(module, "unread", ()))
    out = {}
    for role, skip in (("classifier", unread), ("encoder", ("classifier.", *unread))):
        try:
            spec = ctx.spec(role)
        except Exception:
            continue  # absent (skipped at export) or unreadable: reported by the shape check
        if spec.WhichOneof("Type") != "mlProgram":
            continue
        name = ctx.file_name(role)
        try:
            out[name] = source_tensors_in_package(ctx.export_dir / name, spec, state, skip)
        except Exception as exc:
            out[name] = {"passed": False, "error": f"cannot read its weights: {describe_exception(exc)}"}
    return out


def check_parity(ctx: CheckContext) -> CheckResult:
    try:
        tokens = ctx.tokens()
    except Unavailable as exc:
        return CheckResult(NAME, None, str(exc))
    except Exception as exc:
        return CheckResult(NAME, False, f"cannot tokenise the check texts with the exported tokenizer: {describe_exception(exc)}")
    tol = ctx.config.tolerance
    runners, skipped, errors = _sources(ctx, ("shell", "classifier", "updatable_pipeline", "updatable_head"))
    details: dict[str, Any] = {"texts": len(tokens), "truncated_texts": int(sum(tokens.truncated)),
                               "max_length": ctx.max_length, "tolerance": tol, "skipped": skipped,
                               "load_errors": errors, "comparisons": [], "notes": []}
    if not ctx.coreml:
        details["notes"].append(PROGRAM_NOTE)
    if len(runners) < 2 and not errors:
        why = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        return CheckResult(NAME, None, f"fewer than two artefacts can run here ({why})", details)
    failures = [f"{_display(ctx, key)}: {error}" for key, error in errors.items()]
    base_key, base_runner, base = None, None, None
    for key, runner in runners:
        try:
            base = ctx.text_outputs(key)
            base_key, base_runner = key, runner
            break
        except Exception as exc:
            failures.append(f"{runner.name}: {describe_exception(exc)}")
    details["baseline"] = base_runner.describe() if base_runner else None
    if base is not None:
        details["baseline_probabilities"] = np.round(base.probabilities, 6).tolist()
        for key, runner in runners:
            if key == base_key:
                continue
            row_tol = max(ctx.tolerance(key), ctx.tolerance(base_key))
            row: dict[str, Any] = {"artefact": runner.name, "via": runner.via, "tolerance": row_tol}
            try:
                row.update(compare(base, ctx.text_outputs(key), ctx.labels, row_tol))
            except Exception as exc:
                row.update(passed=False, error=describe_exception(exc))
            details["comparisons"].append(row)
            if not row["passed"]:
                failures.append(_failure(runner.name, row, base_runner.name, row_tol))
    embedding = _embedding_parity(ctx)
    if embedding is not None:
        details["encoder"] = embedding
        if not embedding["passed"]:
            failures.append(f"{embedding['artefact']}: " + (embedding.get("error") or
                            f"pooled embedding max |Δ| {_fmt(embedding['max_abs_diff'])} > {embedding['tolerance']:g} x "
                            f"{embedding['scale']:.3g}"))
    details["weights"] = _weights_provenance(ctx)
    for name, found in details["weights"].items():
        if not found["passed"]:
            failures.append(f"{name}: " + (found.get("error") or
                            f"{len(found['missing'])} of {found['expected']} source tensors are not in its weights "
                            f"({', '.join(found['missing'][:3])}{'...' if len(found['missing']) > 3 else ''}); "
                            f"was it exported from {ctx.model_dir}?"))
    numbers = ", ".join(f"{r['artefact']} {_fmt(r['max_abs_diff'])}" for r in details["comparisons"] if "max_abs_diff" in r)
    worst = max((r["max_abs_diff"] for r in details["comparisons"] if "max_abs_diff" in r), default=float("nan"))
    details["max_abs_diff"] = worst
    if failures:
        return CheckResult(NAME, False, "; ".join(failures), details)
    via = f" (ML Programs executed from their packages by {RUNTIME})" if not ctx.coreml else ""
    fp16_rows = [r for r in details["comparisons"] if r.get("tolerance", tol) > tol]
    if embedding is not None:
        numbers += f"; {embedding['artefact']} pooled max |Δ| {_fmt(embedding['max_abs_diff'])}"
    if details["weights"]:
        numbers += "; weights " + ", ".join(f"{name} {w['found']}/{w['expected']} source tensors"
                                            for name, w in details["weights"].items())
    not_checked = [_display(ctx, key) for key in skipped if key != "shell" and key in ctx.manifest["models"]]
    encoder_name = _display(ctx, "encoder")
    fed_by_encoder = any(encoder_name in row.get("via", "") for row in details["comparisons"])
    if embedding is None and "encoder" in ctx.manifest["models"] and not fed_by_encoder:
        not_checked.append(encoder_name)  # neither compared with the shell nor feeding a compared head
    if "shell" in skipped:
        not_checked.append(f"PyTorch shell ({skipped['shell']})")
    if not_checked:
        # A file nobody ran is not a passed file: comparing the pipeline with its own head proves
        # only that both hold the same head weights.
        return CheckResult(NAME, False, f"not checked: {', '.join(not_checked)}; pass --model DIR (the student "
                           f"folder it was exported from) so every file can be compared; compared so far: {numbers}",
                           details)
    bound = f"{tol:g}" + (f" (fp16 files {ctx.config.fp16_tolerance:g})" if fp16_rows else "")
    return CheckResult(NAME, True, f"max |Δp| {_fmt(worst)} <= {bound} vs {base_runner.name} over {len(tokens)} texts"
                       f"{via}: {numbers}", details)


def _display(ctx: CheckContext, key: str) -> str:
    try:
        return ctx.file_name(key)
    except Exception:
        return key


def _failure(name: str, row: dict, base: str, tol: float) -> str:
    if "error" in row:
        return f"{name}: {row['error']}"
    parts = []
    if not (row["max_abs_diff"] <= tol):
        parts.append(f"max |Δp| {_fmt(row['max_abs_diff'])} > {tol:g} vs {base}")
    if row["argmax_disagree_rows"]:
        parts.append(f"picks a different class than {base} on texts {row['argmax_disagree_rows']}")
    if row["label_output_inconsistent_rows"]:
        parts.append(f"its label output is not the arg-max of its probabilities on texts {row['label_output_inconsistent_rows']}")
    return f"{name}: " + "; ".join(parts)


def check_reference_parity(ctx: CheckContext) -> CheckResult:
    """The reference (MLX) vs every artefact that runs here."""
    try:
        reference = ctx.runner("reference")
        tokens = ctx.tokens()
    except Unavailable as exc:
        return CheckResult(REFERENCE_NAME, None, str(exc))
    except Exception as exc:
        return CheckResult(REFERENCE_NAME, False, f"{ctx.reference_name}: {describe_exception(exc)}")
    tol = ctx.config.tolerance
    details: dict[str, Any] = {"reference": ctx.reference_name, "texts": len(tokens), "tolerance": tol, "comparisons": []}
    try:
        ref = ctx.text_outputs("reference")
    except Exception as exc:
        return CheckResult(REFERENCE_NAME, False, f"reference {ctx.reference_name!r} failed on the check texts: "
                           f"{describe_exception(exc)}", details)
    details["reference_probabilities"] = np.round(ref.probabilities, 6).tolist()
    runners, skipped, _ = _sources(ctx, ("shell", "classifier", "updatable_pipeline", "updatable_head"))
    details["skipped"] = skipped
    failures = []
    for key, runner in runners:
        try:
            outputs = ctx.text_outputs(key)
        except Exception:
            continue  # the parity check reports artefacts that fail to run
        row_tol = ctx.tolerance(key)
        row = {"artefact": runner.name, "via": runner.via, "tolerance": row_tol,
               **compare(outputs, ref, ctx.labels, row_tol)}
        details["comparisons"].append(row)
        if not row["passed"]:
            failures.append(_failure(f"reference {ctx.reference_name!r}", row, runner.name, row_tol))
    if not details["comparisons"]:
        return CheckResult(REFERENCE_NAME, None, f"nothing here to compare {ctx.reference_name!r} with "
                           f"({'; '.join(skipped.values())})", details)
    worst = max(r["max_abs_diff"] if np.isfinite(r["max_abs_diff"]) else np.inf for r in details["comparisons"])
    details["max_abs_diff"] = worst
    if failures:
        return CheckResult(REFERENCE_NAME, False, "; ".join(failures), details)
    numbers = ", ".join(f"{r['artefact']} {_fmt(r['max_abs_diff'])}" for r in details["comparisons"])
    return CheckResult(REFERENCE_NAME, True, f"{ctx.reference_name}: max |Δp| {_fmt(worst)} <= {tol:g} over "
                       f"{len(tokens)} texts vs {numbers}", details)
