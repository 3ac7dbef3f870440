"""Check 6, fp16: would these models overflow or go NaN in half precision?

Each model is run in fp32 and in half precision on the check texts, and the first overflowing /
NaN op or layer is named. ML Programs (Classifier.mlpackage, Encoder.mlpackage) run in the NumPy
ML Program interpreter from their own package: an fp16 program as stored, an fp32 one with every
value held in fp16 (``export.runtime.mlprogram.fp16_emulation``). NeuralNetworks (UpdatablePipeline.mlmodel,
UpdatableHead.mlmodel) run in ``export.runtime.neuralnetwork.fp16_emulation`` as saved (a NeuralNetwork may run in fp16 on
GPU/ANE).

The check fails only where the manifest says fp16 is used - ``precision.used == "fp16"`` for the
ML Programs and the head, ``recommended_compute_units == "all"`` for the pipeline - and the
emulation finds a real problem. One overflow is not a problem: attention logits plus the finite
fp16 mask value (-65504) exceed 65504 at padded positions and saturate to -inf, which a softmax maps
to exactly 0. An overflow is excused only when all its overflowing values are negative and every
consumer of that value is a softmax, and only if nothing produces NaN and the outputs stay finite
and within ``fp16_tolerance`` of fp32; everything else counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.check.context import CheckContext, Unavailable, describe_exception
from export.check.report import CheckResult
from export.check.runners import feed
from export.runtime.neuralnetwork.weights import FP16_MAX

NAME = "fp16"
_SOFTMAX = {"softmax", "softmaxND"}


def _network_graph(spec) -> tuple[dict, dict]:
    """(layer name -> its output blobs, blob -> kinds of the layers reading it) of a NeuralNetwork
    or of every stage of a pipeline (names prefixed "<stage>/", as the pipeline runtime does)."""
    from export.runtime.neuralnetwork.spec_io import PIPELINE_TYPES, model_type, network_of, pipeline_models

    stages = ([(f"{i}/", network_of(stage)) for i, stage in enumerate(pipeline_models(spec))]
              if model_type(spec) in PIPELINE_TYPES else [("", network_of(spec))])
    outputs, consumers = {}, {}
    for prefix, network in stages:
        for layer in network.layers:
            outputs[prefix + layer.name] = [prefix + out for out in layer.output]
            for blob in layer.input:
                consumers.setdefault(prefix + blob, set()).add(layer.WhichOneof("layer"))
    return outputs, consumers


def _excused(layer_names: list[str], outputs: dict, consumers: dict, positive_overflow: set) -> dict[str, bool]:
    """For each overflowing layer: are its overflows only negative values feeding softmax layers?"""
    verdict = {}
    for name in layer_names:
        blobs = outputs[name.split(" ")[0]]
        verdict[name] = all(consumers.get(out) and consumers[out] <= _SOFTMAX and out not in positive_overflow
                            for out in blobs)
    return verdict


def _judge(ctx: CheckContext, role: str, model, samples: list, tolerance: float) -> dict[str, Any]:
    """``model``: a NeuralNetwork spec, or a package path (ML Program, run by export.runtime.mlprogram).
    Every sample runs once in fp32 and once in half precision."""
    positive_overflow: set = set()  # blobs where some fp16 value overflowed upwards

    def watch(trace) -> None:
        positive_overflow.update(name for name, value in trace.blobs.items()
                                 if np.issubdtype(np.asarray(value).dtype, np.number)
                                 and (np.asarray(value, np.float32) > FP16_MAX).any())

    if isinstance(model, Path):
        from export.runtime.mlprogram.fp16_emulation import fp16_report

        stored = ctx.program(role)
        half = stored if stored.computes_in_fp16() else ctx.program(role, "fp16")
        report = fp16_report(model, samples, tolerance, full=ctx.program(role, "fp32"), half=half, on_half_trace=watch)
        outputs = {op.outputs[0].name: [v.name for v in op.outputs] for op in half.program.operations}
        consumers = half.consumers()
    else:
        from export.runtime.neuralnetwork.fp16_emulation import fp16_report

        report = fp16_report(model, samples, max_output_diff=tolerance, on_half_trace=watch)
        outputs, consumers = _network_graph(model)
    excused = {}
    if report.overflow_layers and not report.nan_layers and report.outputs_finite:
        excused = _excused(list(report.overflow_layers), outputs, consumers, positive_overflow)
    problems = [f"overflow at {name}" for name in report.overflow_layers if not excused.get(name)]
    problems += [f"NaN at {name}" for name in report.nan_layers[:1]]
    problems += [f"mean square entering {name} exceeds {FP16_MAX:g}" for name in report.internal_risk_layers[:1]]
    problems += [f"weights beyond fp16 range in {name}" for name in report.overflowing_weights[:1]]
    if not report.outputs_finite:
        problems.append("fp16 outputs are not finite")
    elif report.output_max_abs_diff > tolerance:
        problems.append(f"fp16 outputs differ from fp32 by {report.output_max_abs_diff:.3g} > {tolerance:g}")
    return {
        "safe": not problems,
        "problems": problems,
        "report_safe": report.safe,
        "report_reason": report.reason,
        "first_overflow_layer": report.first_overflow_layer,
        "first_nan_layer": report.first_nan_layer,
        "overflow_layers": list(report.overflow_layers),
        "saturating_overflows_excused": [name for name, ok in excused.items() if ok],
        "nan_layers": list(report.nan_layers),
        "max_abs_activation": report.max_abs_activation,
        "max_abs_layer": report.max_abs_layer,
        "output_max_abs_diff": report.output_max_abs_diff,
        "outputs_finite": report.outputs_finite,
        "labels_agree": report.labels_agree,
        "samples": report.samples,
    }


def _target(ctx: CheckContext, role: str) -> tuple[str, Any, list, bool, str]:
    """(display name, spec or package path, samples, fp16 claimed, why) for one role's file."""
    tokens = ctx.tokens()
    used = ctx.precision_used == "fp16"
    entry = ctx.entry(role)
    if role == "updatable_head":
        pooled = ctx.head_encoder().pooled(tokens.input_ids, tokens.attention_mask)
        feature = entry["inputs"][0]
        samples = [feed([feature], {feature["name"]: row}, entry["file"]) for row in pooled]
    else:
        samples = [feed(entry["inputs"], {"input_ids": i, "attention_mask": m}, entry["file"])
                   for i, m in zip(tokens.input_ids, tokens.attention_mask)]
    if role in ("classifier", "encoder"):
        how = "fp16 as stored" if ctx.program(role).computes_in_fp16() else "fp32 program, fp16 emulated"
        return (f"{entry['file']} (ML Program, {how})", ctx.export_dir / entry["file"], samples, used,
                f"precision.used = {ctx.precision_used}")
    if role == "updatable_pipeline":
        units = entry.get("recommended_compute_units", "cpuOnly")
        return entry["file"], ctx.spec(role), samples, units == "all" or used, f"recommended_compute_units = {units}"
    return entry["file"], ctx.spec(role), samples, used, f"precision.used = {ctx.precision_used}"


def check_fp16(ctx: CheckContext) -> CheckResult:
    try:
        ctx.need_manifest()
        ctx.tokens()
    except Unavailable as exc:
        return CheckResult(NAME, None, str(exc))
    except Exception as exc:
        return CheckResult(NAME, False, f"cannot tokenise the check texts: {describe_exception(exc)}")
    details: dict[str, Any] = {"tolerance": ctx.config.fp16_tolerance, "models": {}, "skipped": {}}
    failures, lines = [], []
    manifest = ctx.manifest
    roles = [r for r in ("classifier", "encoder", "updatable_pipeline", "updatable_head") if r in manifest["models"]]
    for role in roles:
        try:
            name, spec, samples, claimed, why = _target(ctx, role)
        except Unavailable as exc:
            details["skipped"][role] = str(exc)
            continue
        except Exception as exc:  # an unreadable file fails the shape/lint/update checks; nothing to emulate here
            details["skipped"][role] = f"cannot emulate: {describe_exception(exc)}"
            if role in ("classifier", "encoder"):  # the interpreter is the only runtime here: never silent
                failures.append(f"cannot execute {ctx.file_name(role)}: {exc}")
            continue
        try:
            verdict = _judge(ctx, role, spec, samples, ctx.config.fp16_tolerance)
        except Exception as exc:
            details["models"][name] = {"error": describe_exception(exc), "fp16_claimed": claimed}
            if claimed:
                failures.append(f"{name}: fp16 emulation failed: {describe_exception(exc)}")
            continue
        verdict.update(fp16_claimed=claimed, claimed_because=why)
        details["models"][name] = verdict
        if verdict["safe"]:
            extra = (f" ({len(verdict['saturating_overflows_excused'])} mask-saturation overflow(s) into softmax excused)"
                     if verdict["saturating_overflows_excused"] else "")
            lines.append(f"{name}: fp16 safe, drift {verdict['output_max_abs_diff']:.2g}{extra}")
        elif claimed:
            failures.append(f"{name}: manifest says fp16 is used ({why}) but the emulation finds "
                            + "; ".join(verdict["problems"]))
        else:
            lines.append(f"{name}: fp16 would be unsafe ({'; '.join(verdict['problems'])}); fp16 not used ({why})")
    if failures:
        return CheckResult(NAME, False, "; ".join(failures), details)
    if not details["models"]:
        return CheckResult(NAME, None, "; ".join(f"{k}: {v}" for k, v in details["skipped"].items())
                           or "no model to emulate", details)
    return CheckResult(NAME, True, f"precision used {ctx.precision_used}; " + "; ".join(lines), details)
