"""Pipelines of NeuralNetworks, and ``load_executor`` which picks the right executor for a model.

A pipeline feeds each stage every feature produced so far (its inputs plus earlier stages'
outputs), exactly as Core ML does; the strict input-shape check of each stage therefore also
checks that the stages were glued with matching shapes.
"""

from __future__ import annotations

from typing import Any, Mapping, Union

from export.runtime.neuralnetwork.errors import InputError
from export.runtime.neuralnetwork.executor import ExecutionTrace, LayerRecord, NeuralNetworkExecutor
from export.runtime.neuralnetwork.spec_io import PIPELINE_TYPES, ModelLike, load_spec, model_type, pipeline_models


class PipelineExecutor:
    """Runs pipeline / pipelineClassifier / pipelineRegressor specs whose stages are NeuralNetworks."""

    def __init__(self, model: ModelLike, precision: str = "fp32") -> None:
        self.spec = load_spec(model)
        self.kind = model_type(self.spec)
        self.precision = precision
        self.stages = [load_executor(sub, precision) for sub in pipeline_models(self.spec)]

    def run(self, inputs: Mapping[str, Any], keep_blobs: bool = False) -> ExecutionTrace:
        """Stage by stage; blob names and layer names are prefixed ``"<stage>/"``."""
        features = dict(inputs)
        blobs, records = {}, []
        for i, stage in enumerate(self.stages):
            trace = stage.run(features, keep_blobs=keep_blobs)
            features.update(trace.outputs)
            blobs.update({f"{i}/{name}": value for name, value in trace.blobs.items()})
            records.extend(LayerRecord(index=len(records) + r.index, name=f"{i}/{r.name}", kind=r.kind,
                                       outputs=r.outputs, shapes=r.shapes, max_abs=r.max_abs, has_nan=r.has_nan,
                                       has_inf=r.has_inf, fp16_overflow=r.fp16_overflow) for r in trace.layers)
        outputs = {}
        for feature in self.spec.description.output:
            if feature.name not in features:
                raise InputError(f"pipeline output {feature.name!r} is produced by no stage")
            outputs[feature.name] = features[feature.name]
        return ExecutionTrace(outputs, blobs, tuple(records), self.precision)

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return self.run(inputs).outputs

    def intermediates(self, inputs: Mapping[str, Any]) -> dict:
        return self.run(inputs, keep_blobs=True).blobs


Executor = Union[NeuralNetworkExecutor, PipelineExecutor]


def load_executor(model: ModelLike, precision: str = "fp32") -> Executor:
    """The executor for a NeuralNetwork(-Classifier/-Regressor) or a pipeline of them."""
    spec = load_spec(model)
    if model_type(spec) in PIPELINE_TYPES:
        return PipelineExecutor(spec, precision)
    return NeuralNetworkExecutor(spec, precision)
