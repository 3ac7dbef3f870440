"""fp16 emulation report: find the layer where a half-precision device would overflow or go NaN.

MobileBERT's NoNorm blocks let activations grow past fp16's 65504 and Core ML then returns NaN
(huggingface/exporters#80). Running the shipped spec twice - fp32, and fp16-emulated (weights and
every arithmetic layer's output rounded to half, |x| > 65504 -> inf) - names the first layer that
overflows, the first that produces NaN, and how far the fp16 outputs drift from fp32.

A normalisation layer (mvn, layerNormalization, l2normalize) squares its input internally; when the
mean square of a row exceeds 65504 a backend that keeps that sum in fp16 overflows even though no
layer *output* does. Those layers are reported as ``internal_risk_layers`` and make the verdict unsafe,
a conservative choice since some backends accumulate in fp32.

This is a simulation of rounding, not of Apple's kernels: it catches range problems (the common
failure), not every accuracy difference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from export.runtime.neuralnetwork.pipelines import NeuralNetworkExecutor, load_executor
from export.runtime.neuralnetwork.spec_io import ModelLike, load_spec
from export.runtime.neuralnetwork.weights import FP16_MAX

_SQUARING_LAYERS = {"mvn": None, "layerNormalization": None, "l2normalize": (-3, -2, -1)}


@dataclass(frozen=True)
class LayerActivity:
    """Per layer, over all samples: largest |activation| in fp32 and fp16, and fp16 failures."""

    index: int
    name: str
    kind: str
    max_abs_fp32: float
    max_abs_fp16: float
    fp16_overflow: bool
    fp16_nan: bool


@dataclass(frozen=True)
class Fp16Report:
    safe: bool
    reason: str
    first_overflow_layer: Optional[str]
    first_nan_layer: Optional[str]
    overflow_layers: tuple
    nan_layers: tuple
    internal_risk_layers: tuple
    overflowing_weights: tuple
    max_abs_activation: float
    max_abs_layer: str
    output_max_abs_diff: float
    outputs_finite: bool
    labels_agree: bool
    samples: int
    layers: tuple
    limit: float = FP16_MAX

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "fp16 looks safe" if self.safe else f"fp16 is NOT safe: {self.reason}"
        return (f"{verdict}; largest fp32 activation {self.max_abs_activation:.4g} at {self.max_abs_layer!r}; "
                f"fp16 vs fp32 output max diff {self.output_max_abs_diff:.3g} over {self.samples} sample(s)")


def _numeric(outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    result = {}
    for name, value in outputs.items():
        if isinstance(value, dict):
            result[name] = np.asarray([value[k] for k in sorted(value, key=str)], dtype=np.float64)
        elif isinstance(value, np.ndarray):
            result[name] = value.astype(np.float64)
    return result


def _labels(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in outputs.items() if isinstance(v, (str, int, np.integer))}


def _mean_square_risk(executor: Any, blobs: Mapping[str, np.ndarray], prefix: str = "") -> dict[str, float]:
    """Largest per-row mean square entering each squaring normalisation layer, from the blobs of
    an fp32 run. A pipeline's layer (and blob) names are prefixed "<stage>/" as in ``PipelineExecutor.run``."""
    if not isinstance(executor, NeuralNetworkExecutor):
        risk = {}
        for i, stage in enumerate(executor.stages):
            risk.update(_mean_square_risk(stage, blobs, f"{prefix}{i}/"))
        return risk
    risk = {}
    for step in executor.steps:
        if step.kind not in _SQUARING_LAYERS:
            continue
        x = blobs[prefix + step.layer.input[0]].astype(np.float64)
        if step.kind == "mvn":
            axes = (-3, -2, -1) if step.layer.mvn.acrossChannels else (-2, -1)
        elif step.kind == "layerNormalization":
            axes = tuple(range(-len(step.layer.layerNormalization.normalizedShape), 0))
        else:
            axes = _SQUARING_LAYERS[step.kind]
        centred = x - x.mean(axis=axes, keepdims=True)
        risk[prefix + step.layer.name] = float(np.max(np.mean(centred ** 2, axis=axes)))
    return risk


def fp16_report(model: ModelLike, samples: Sequence[Mapping[str, Any]], max_output_diff: float = 1e-2,
                on_half_trace: Optional[Callable[[Any], None]] = None) -> Fp16Report:
    """Run ``samples`` through the spec in fp32 and emulated fp16 and compare layer by layer.

    ``max_output_diff`` bounds the fp16-vs-fp32 difference of numeric outputs (probabilities, arrays)
    for the verdict to be "safe". ``on_half_trace`` sees each sample's fp16 trace, blobs kept.
    """
    spec = load_spec(model)
    full, half = load_executor(spec, "fp32"), load_executor(spec, "fp16")
    return compare_runs(full, half, samples, max_output_diff, lambda blobs: _mean_square_risk(full, blobs),
                        lambda: tuple(_overflowing_weights(half)), on_half_trace)


def compare_runs(full: Any, half: Any, samples: Sequence[Mapping[str, Any]], max_output_diff: float,
                 mean_square_risk: Callable[[Mapping[str, Any]], Mapping[str, float]],
                 overflowing_weights: Callable[[], tuple] = tuple,
                 on_half_trace: Optional[Callable[[Any], None]] = None) -> Fp16Report:
    """The report from two executors of one model (fp32, half) whose ``run`` yields per-layer records.

    Shared by the NeuralNetwork runtime and the ML Program interpreter (``export.runtime.mlprogram.fp16_emulation``).
    Each sample runs once per precision: ``mean_square_risk`` reads the fp32 run's blobs, and
    ``on_half_trace`` (if given) the half run's. ``overflowing_weights`` is asked after the runs
    (weights are decoded lazily while running).
    """
    if not samples:
        raise ValueError("fp16_report needs at least one sample")
    act32: dict[int, float] = {}
    act16: dict[int, float] = {}
    overflow: dict[int, bool] = {}
    nan: dict[int, bool] = {}
    names: dict[int, tuple[str, str]] = {}
    risk: dict[str, float] = {}
    diff, finite, agree = 0.0, True, True
    for sample in samples:
        t32, t16 = full.run(sample, keep_blobs=True), half.run(sample, keep_blobs=on_half_trace is not None)
        if on_half_trace is not None:
            on_half_trace(t16)
        for r32, r16 in zip(t32.layers, t16.layers):
            names[r32.index] = (r32.name, r32.kind)
            act32[r32.index] = max(act32.get(r32.index, 0.0), r32.max_abs)
            act16[r32.index] = max(act16.get(r32.index, 0.0), r16.max_abs)
            overflow[r32.index] = overflow.get(r32.index, False) or r16.fp16_overflow
            nan[r32.index] = nan.get(r32.index, False) or r16.has_nan
        n32, n16 = _numeric(t32.outputs), _numeric(t16.outputs)
        for key in n32:
            finite = finite and bool(np.isfinite(n16[key]).all())
            with np.errstate(invalid="ignore"):
                gap = np.abs(n16[key] - n32[key])
            diff = max(diff, float(np.max(gap)) if np.isfinite(gap).all() else float("inf"))
        agree = agree and _labels(t32.outputs) == _labels(t16.outputs)
        for name, value in mean_square_risk(t32.blobs).items():
            risk[name] = max(risk.get(name, 0.0), value)
    order = sorted(names)
    layers = tuple(LayerActivity(i, names[i][0], names[i][1], act32[i], act16[i], overflow[i], nan[i]) for i in order)
    overflow_layers = tuple(f"{names[i][0]} ({names[i][1]})" for i in order if overflow[i])
    nan_layers = tuple(f"{names[i][0]} ({names[i][1]})" for i in order if nan[i])
    risky = tuple(name for name, value in risk.items() if value > FP16_MAX)
    weights = tuple(overflowing_weights())
    top = max(order, key=lambda i: act32[i]) if order else None
    problems = []
    if overflow_layers:
        problems.append(f"first overflow at {overflow_layers[0]}")
    if nan_layers:
        problems.append(f"first NaN at {nan_layers[0]}")
    if risky:
        problems.append(f"mean square entering {risky[0]} exceeds {FP16_MAX:g}")
    if weights:
        problems.append(f"weights beyond fp16 range in {weights[0]}")
    if not finite:
        problems.append("fp16 outputs are not finite")
    elif diff > max_output_diff:
        problems.append(f"fp16 outputs differ from fp32 by {diff:.3g} > {max_output_diff:g}")
    return Fp16Report(
        safe=not problems, reason="; ".join(problems) or "no overflow, no NaN, outputs within tolerance",
        first_overflow_layer=overflow_layers[0] if overflow_layers else None,
        first_nan_layer=nan_layers[0] if nan_layers else None,
        overflow_layers=overflow_layers, nan_layers=nan_layers, internal_risk_layers=risky,
        overflowing_weights=weights,
        max_abs_activation=act32[top] if top is not None else 0.0,
        max_abs_layer=names[top][0] if top is not None else "",
        output_max_abs_diff=diff, outputs_finite=finite, labels_agree=agree, samples=len(samples), layers=layers)


def _overflowing_weights(executor: Any) -> list[str]:
    """Weights that became inf when rounded to fp16 (in pipelines, every stage's)."""
    if hasattr(executor, "stages"):
        return [name for stage in executor.stages for name in _overflowing_weights(stage)]
    return [f"{layer}.{path}" for (layer, path), values in executor.store.decoded().items()
            if values is not None and np.isinf(values).any()]
