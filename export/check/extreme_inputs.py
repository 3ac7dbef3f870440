"""Check 3, extreme inputs: all zeros, all padding, [CLS][SEP] only, max length, random ids, and ids
outside the vocabulary (the seed's "does it crash on all zeros / on garbage?").

For every case and every artefact that runs here: no error, finite probabilities summing to 1,
and a label output equal to the arg-max. Out-of-vocabulary ids are different: an embedding lookup
past the table is undefined, so the *reference* API (MLX ``probabilities_for_ids``) must refuse
them with a clear error; what the model files and the shell do (error, or some output) is reported
without failing the check, since the app's tokenizer never produces such ids. A file that computes
in fp16 stores its probabilities in fp16, so its sums are held to ``fp16_tolerance``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from export.check.context import CheckContext, Unavailable, describe_exception
from export.check.inputs import extreme_cases
from export.check.report import CheckResult

NAME = "extreme-inputs"
_KEYS = ("shell", "classifier", "updatable_head", "updatable_pipeline", "reference")


def _judge(outputs, labels: list, sum_tol: float) -> dict[str, Any]:
    probs = np.asarray(outputs.probabilities)
    finite = bool(np.isfinite(probs).all())
    sum_error = float(np.max(np.abs(probs.sum(axis=1) - 1.0))) if finite else float("nan")
    in_range = bool(finite and probs.min() >= -sum_tol and probs.max() <= 1 + sum_tol)
    inconsistent = []
    if outputs.labels is not None and finite:
        inconsistent = [i for i, label in enumerate(outputs.labels) if label != labels[int(np.argmax(probs[i]))]]
    ok = finite and in_range and sum_error <= sum_tol and not inconsistent
    problems = []
    if not finite:
        problems.append("non-finite probabilities")
    elif sum_error > sum_tol:
        problems.append(f"probabilities sum to 1 ± {sum_error:.2g} (> {sum_tol:g})")
    elif not in_range:
        problems.append("probabilities outside [0, 1]")
    if inconsistent:
        problems.append(f"label output is not the arg-max on rows {inconsistent}")
    return {"status": "ok" if ok else "bad output", "finite": finite, "max_sum_error": sum_error,
            "probabilities": np.round(probs, 6).tolist(), "problems": problems, "passed": ok}


def _oov_reference(runner, case) -> dict[str, Any]:
    """Each OOV row on its own: the reference must raise for every one."""
    rows = []
    for i in range(len(case.input_ids)):
        try:
            runner.run(case.input_ids[i:i + 1], case.attention_mask[i:i + 1])
        except Exception as exc:
            rows.append({"row": i, "raised": True, "error": describe_exception(exc)})
        else:
            rows.append({"row": i, "raised": False})
    ok = all(r["raised"] for r in rows)
    return {"status": "raised" if ok else "accepted out-of-vocabulary ids", "rows": rows, "passed": ok}


def _oov_model(runner, case, labels, sum_tol) -> dict[str, Any]:
    """What a model does with each OOV id - recorded, never failing on its own."""
    rows = []
    for i in range(len(case.input_ids)):
        bad = int(case.input_ids[i, 1])
        try:
            outputs = runner.run(case.input_ids[i:i + 1], case.attention_mask[i:i + 1])
        except Exception as exc:
            rows.append({"id": bad, "behaviour": f"refuses it: {describe_exception(exc)}"})
            continue
        judged = _judge(outputs, labels, sum_tol)
        rows.append({"id": bad, "probabilities": judged["probabilities"],
                     "behaviour": "returns finite probabilities (the id is clamped or wrapped somewhere)"
                     if judged["finite"] else "returns non-finite probabilities"})
    return {"status": "recorded", "via": runner.via, "rows": rows, "passed": None,
            "behaviour": "; ".join(f"id {r['id']}: {r['behaviour']}" for r in rows)}


def check_extremes(ctx: CheckContext) -> CheckResult:
    try:
        manifest = ctx.need_manifest()
        cases = extreme_cases(manifest, ctx.config.seed, ctx.config.random_rows)
    except Unavailable as exc:
        return CheckResult(NAME, None, str(exc))
    except Exception as exc:
        return CheckResult(NAME, False, f"cannot build extreme inputs from the manifest: {describe_exception(exc)}")
    runners, skipped, failures = {}, {}, []
    for key in _KEYS:
        try:
            runners[key] = ctx.runner(key)
        except Unavailable as exc:
            skipped[key] = str(exc)
        except Exception as exc:
            failures.append(f"{key}: cannot load ({describe_exception(exc)})")
    labels, sum_tol = ctx.labels, ctx.config.sum_tolerance
    details: dict[str, Any] = {"cases": {}, "skipped": skipped, "sum_tolerance": sum_tol,
                               "sum_tolerance_per_artefact": {r.name: ctx.sum_tolerance(k) for k, r in runners.items()},
                               "artefacts": {k: r.describe() for k, r in runners.items()}}
    if not runners:
        return CheckResult(NAME, None if not failures else False,
                           "; ".join(failures) or "nothing can run here: " + "; ".join(skipped.values()), details)
    problems: dict[str, list] = {}  # one message per distinct problem, with the cases it occurred in
    for case in cases:
        results: dict[str, Any] = {}
        for key, runner in runners.items():
            if case.out_of_vocabulary:
                if key == "reference":
                    results[runner.name] = _oov_reference(runner, case)
                    if not results[runner.name]["passed"]:
                        bad = [r["row"] for r in results[runner.name]["rows"] if not r["raised"]]
                        failures.append(f"out_of_vocabulary: reference {runner.name!r} accepted ids "
                                        f"{[int(case.input_ids[r, 1]) for r in bad]} without an error")
                elif ctx.coreml and key in ("classifier", "updatable_head", "updatable_pipeline"):
                    results[runner.name] = {"status": "not run", "passed": None, "behaviour":
                                            "not fed to the Core ML runtime (an out-of-range index is undefined "
                                            "behaviour there and can take the process down)"}
                else:
                    results[runner.name] = _oov_model(runner, case, labels, ctx.sum_tolerance(key))
                continue
            try:
                outputs = runner.run(case.input_ids, case.attention_mask)
            except Exception as exc:
                results[runner.name] = {"status": "error", "error": describe_exception(exc), "passed": False}
                problems.setdefault(f"{runner.name} raised {describe_exception(exc)}", []).append(case.name)
                continue
            results[runner.name] = _judge(outputs, labels, ctx.sum_tolerance(key))
            if not results[runner.name]["passed"]:
                problems.setdefault(f"{runner.name}: " + "; ".join(results[runner.name]["problems"]), []).append(case.name)
        details["cases"][case.name] = {"description": case.description, "rows": int(len(case.input_ids)),
                                       "results": results}
    failures.extend(f"{problem} (on {', '.join(names)})" for problem, names in problems.items())
    oov = details["cases"].get("out_of_vocabulary", {}).get("results", {})
    details["out_of_vocabulary"] = {name: r.get("behaviour") or r.get("status") for name, r in oov.items()}
    if failures:
        return CheckResult(NAME, False, "; ".join(failures[:4]) + (f" (+{len(failures) - 4} more)" if len(failures) > 4 else ""),
                           details)
    worst = max((r["max_sum_error"] for c in details["cases"].values() for r in c["results"].values()
                 if isinstance(r.get("max_sum_error"), float) and np.isfinite(r["max_sum_error"]) and r.get("passed")),
                default=0.0)
    ref_note = ""
    if "reference" in runners:
        ref_note = f"; {ctx.reference_name} refuses out-of-vocabulary ids"
    return CheckResult(NAME, True, f"{len(cases) - 1} cases x {len(runners)} artefacts finite, sums within "
                       f"{worst:.1g} of 1{ref_note}", details)
