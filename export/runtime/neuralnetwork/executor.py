"""Run a Core ML NeuralNetwork spec with NumPy, layer by layer, like ``MLModel.predict``.

Why it exists: coremltools predicts only on macOS, yet every export must be checked for parity
(and MobileBERT for fp16 overflow) on Linux CI. The executor reads the spec itself, so what it
checks is the exact file that ships, not the PyTorch module it came from.

One example per call, as Core ML predicts: inputs are a dict name -> array of exactly the declared
shape. ``precision="fp16"`` emulates a half-precision device: weights and the output of every
arithmetic layer are rounded to float16 (values beyond 65504 become inf), while the arithmetic
itself runs in float32 - the usual fp16 kernel behaviour (fp32 accumulation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from export.runtime.neuralnetwork.classifier import ClassifierInfo, classifier_info
from export.runtime.neuralnetwork.context import LayerCall, ParamStore
from export.runtime.neuralnetwork.errors import (
    InputError,
    LayerExecutionError,
    NnexecError,
    UnsupportedLayerError,
    UnsupportedModelError,
)
from export.runtime.neuralnetwork.features import prepare_array_input, shape_output
from export.runtime.neuralnetwork.registry import DATA_MOVEMENT, HANDLERS
from export.runtime.neuralnetwork.spec_io import ModelLike, load_spec, model_type, network_of
from export.runtime.neuralnetwork.weights import FP16_MAX, round_to_fp16

PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class LayerRecord:
    """What one layer produced: shapes and the statistics the fp16 report needs.

    ``max_abs`` is the largest finite |value| before any fp16 rounding; ``fp16_overflow`` is true
    when some value exceeds 65504 (so a half-precision device would hold inf there).
    """

    index: int
    name: str
    kind: str
    outputs: tuple
    shapes: tuple
    max_abs: float
    has_nan: bool
    has_inf: bool
    fp16_overflow: bool


@dataclass(frozen=True)
class ExecutionTrace:
    """Outputs (as ``predict`` returns them), every blob when asked for, and per-layer records."""

    outputs: dict
    blobs: dict
    layers: tuple
    precision: str


@dataclass(frozen=True)
class _Step:
    layer: Any
    kind: str


def _stats(values: np.ndarray) -> tuple[float, bool, bool, bool]:
    finite = np.isfinite(values)
    max_abs = float(np.max(np.abs(values[finite]))) if finite.any() else 0.0
    has_nan = bool(np.isnan(values).any())
    has_inf = bool(np.isinf(values).any())
    return max_abs, has_nan, has_inf, bool(has_inf or max_abs > FP16_MAX)


class NeuralNetworkExecutor:
    """Executor for one neuralNetwork / neuralNetworkClassifier / neuralNetworkRegressor spec.

    Construction checks everything that does not depend on inputs (model type, preprocessing,
    layer types, unique names), so an unsupported model fails before any input is prepared.
    """

    def __init__(self, model: ModelLike, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.spec = load_spec(model)
        self.kind = model_type(self.spec)
        self.network = network_of(self.spec)
        self.precision = precision
        if len(self.network.preprocessing):
            names = [p.featureName for p in self.network.preprocessing]
            raise UnsupportedModelError(
                f"image preprocessing on {names} is not simulated (the executor takes multi-array inputs only)")
        # RANK5_ARRAY_MAPPING (0) is legal whatever the spec version as long as only iOS 12 layers are used
        # (NeuralNetworkValidator.cpp); a builder-made head that make_updatable raised to v4 keeps it.
        self.rank5 = self.network.arrayInputShapeMapping == 0
        self.store = ParamStore(precision)
        self.steps = tuple(self._check_layers(self.network.layers))
        produced = {out for step in self.steps for out in step.layer.output}
        self.classifier: Optional[ClassifierInfo] = (
            classifier_info(self.spec, self.network, produced) if self.kind == "neuralNetworkClassifier" else None)

    @staticmethod
    def _check_layers(layers: Iterable[Any]) -> list[_Step]:
        steps, seen = [], set()
        for layer in layers:
            kind = layer.WhichOneof("layer") or "<unset>"
            if kind not in HANDLERS:
                raise UnsupportedLayerError(layer.name, kind, "not a layer kind export writes")
            if layer.name in seen:
                raise UnsupportedModelError(f"two layers are named {layer.name!r}; layer names must be unique")
            seen.add(layer.name)
            steps.append(_Step(layer, kind))
        return steps

    # -- inputs / outputs ------------------------------------------------------------------------

    def prepare_inputs(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Validated float32 blobs for the model's declared inputs (extra keys are ignored)."""
        blobs = {}
        for feature in self.spec.description.input:
            if feature.name not in inputs:
                if feature.type.isOptional:
                    continue
                raise InputError(f"missing input {feature.name!r}; the model needs "
                                 f"{[f.name for f in self.spec.description.input]}")
            blobs[feature.name] = prepare_array_input(feature, inputs[feature.name], self.rank5)
        return blobs

    def _outputs(self, blobs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        extra = set()
        if self.classifier is not None:
            result.update(self.classifier.outputs(blobs[self.classifier.probability_blob]))
            extra = {self.classifier.label_output, self.classifier.probabilities_output}
        for feature in self.spec.description.output:
            if feature.name in extra:
                continue
            if feature.name not in blobs:
                raise UnsupportedModelError(f"output {feature.name!r} is not produced by any layer")
            if feature.type.WhichOneof("Type") == "multiArrayType":
                result[feature.name] = shape_output(feature, blobs[feature.name], self.rank5)
            else:
                result[feature.name] = blobs[feature.name]
        return result

    def _needed_outputs(self) -> set:
        names = {f.name for f in self.spec.description.output}
        if self.classifier is not None:
            names.add(self.classifier.probability_blob)
        return names

    # -- execution -------------------------------------------------------------------------------

    def run(self, inputs: Mapping[str, Any], keep_blobs: bool = False) -> ExecutionTrace:
        """Run every layer; return outputs, per-layer records and (``keep_blobs``) every blob."""
        blobs = self.prepare_inputs(inputs)
        last_use = {}
        for i, step in enumerate(self.steps):
            for name in step.layer.input:
                last_use[name] = i
        keep = self._needed_outputs()
        records = []
        fp16 = self.precision == "fp16"
        for i, step in enumerate(self.steps):
            layer = step.layer
            missing = [n for n in layer.input if n not in blobs]
            if missing:
                raise LayerExecutionError(layer.name, step.kind, f"input blobs {missing} are not produced earlier")
            call = LayerCall(layer, step.kind, getattr(layer, step.kind), self.store, self.rank5)
            args = [blobs[n] for n in layer.input]
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    outs = HANDLERS[step.kind](call, args)
            except NnexecError:
                raise
            except (ValueError, IndexError, TypeError, FloatingPointError) as exc:
                raise LayerExecutionError(layer.name, step.kind, f"{type(exc).__name__}: {exc}") from exc
            if len(outs) != len(layer.output):
                raise LayerExecutionError(layer.name, step.kind,
                                          f"produced {len(outs)} outputs for {len(layer.output)} names")
            stats = []
            for name, value in zip(layer.output, outs):
                value = np.asarray(value, dtype=np.float32)
                stats.append(_stats(value))
                if fp16 and step.kind not in DATA_MOVEMENT:
                    value = round_to_fp16(value)
                blobs[name] = value
            records.append(LayerRecord(
                index=i, name=layer.name, kind=step.kind, outputs=tuple(layer.output),
                shapes=tuple(blobs[n].shape for n in layer.output),
                max_abs=max(s[0] for s in stats), has_nan=any(s[1] for s in stats),
                has_inf=any(s[2] for s in stats), fp16_overflow=any(s[3] for s in stats)))
            if not keep_blobs:
                for name in layer.input:
                    if last_use.get(name) == i and name not in keep:
                        blobs.pop(name, None)
        return ExecutionTrace(self._outputs(blobs), dict(blobs) if keep_blobs else {}, tuple(records),
                              self.precision)

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Outputs for one example, shaped and typed like ``MLModel.predict``'s."""
        return self.run(inputs).outputs

    def intermediates(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Every blob (inputs included) of one run, by name - for debugging a parity gap."""
        return self.run(inputs, keep_blobs=True).blobs
