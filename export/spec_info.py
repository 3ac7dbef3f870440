"""Read the interface of a saved Core ML spec into plain JSON-able dicts.

The manifest is generated *from the saved specs* rather than from what we meant to build, so the
names, shapes and dtypes it tells the iOS developer are the ones Core ML will actually enforce.
"""

from __future__ import annotations

from typing import Any, Optional

from coremltools.proto import FeatureTypes_pb2, MIL_pb2, Model_pb2

_ARRAY_DTYPES = {
    FeatureTypes_pb2.ArrayFeatureType.FLOAT32: "float32",
    FeatureTypes_pb2.ArrayFeatureType.DOUBLE: "float64",
    FeatureTypes_pb2.ArrayFeatureType.INT32: "int32",
    FeatureTypes_pb2.ArrayFeatureType.FLOAT16: "float16",
}


def feature_dict(feature: Model_pb2.FeatureDescription) -> dict[str, Any]:
    """name + Core ML type (+ shape/dtype for multi-arrays, key type for dictionaries)."""
    kind = feature.type.WhichOneof("Type")
    out: dict[str, Any] = {"name": feature.name}
    if feature.shortDescription:
        out["description"] = feature.shortDescription
    if kind == "multiArrayType":
        array = feature.type.multiArrayType
        out.update(type="multiArray", dtype=_ARRAY_DTYPES.get(array.dataType, str(array.dataType)),
                   shape=[int(d) for d in array.shape])
    elif kind == "dictionaryType":
        key = feature.type.dictionaryType.WhichOneof("KeyType")
        out.update(type="dictionary", key_type="string" if key == "stringKeyType" else "int64", value_type="double")
    elif kind == "stringType":
        out.update(type="string")
    elif kind == "int64Type":
        out.update(type="int64")
    elif kind == "doubleType":
        out.update(type="double")
    else:
        out.update(type=str(kind))
    return out


def _network(spec: Model_pb2.Model):
    kind = spec.WhichOneof("Type")
    if kind in ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor"):
        return getattr(spec, kind)
    return None


def model_format(spec: Model_pb2.Model) -> str:
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        return "mlprogram"
    if kind in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        return "pipeline"
    return "neuralnetwork"


def mlprogram_compute_precision(spec: Model_pb2.Model) -> Optional[str]:
    """'fp16' if any op of an ML Program produces fp16 tensors, else 'fp32'; None for other types."""
    if spec.WhichOneof("Type") != "mlProgram":
        return None
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                for output in op.outputs:
                    if output.type.WhichOneof("type") == "tensorType" and \
                            output.type.tensorType.dataType == MIL_pb2.DataType.FLOAT16:
                        return "fp16"
    return "fp32"


def class_labels(spec: Model_pb2.Model) -> Optional[list]:
    """Class labels in index order: NN classifier label vectors, an ML Program's ``classify`` op,
    or a pipeline's last model."""
    kind = spec.WhichOneof("Type")
    if kind in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        models = getattr(spec, kind).pipeline.models
        return class_labels(models[-1]) if models else None
    if kind == "neuralNetworkClassifier":
        nn = spec.neuralNetworkClassifier
        return list(nn.stringClassLabels.vector) or [int(v) for v in nn.int64ClassLabels.vector]
    if kind == "mlProgram":
        for function in spec.mlProgram.functions.values():
            for block in function.block_specializations.values():
                for op in block.operations:
                    if op.type != "classify":
                        continue
                    values = op.inputs["classes"].arguments[0].value.immediateValue.list.values
                    out = []
                    for value in values:
                        tensor = value.immediateValue.tensor
                        out.extend(tensor.strings.values or [int(v) for v in tensor.longInts.values])
                    return out
    return None


def update_params_dict(spec: Model_pb2.Model) -> Optional[dict[str, Any]]:
    """The updatable part of a NeuralNetwork spec (or of a pipeline's last model)."""
    if spec.WhichOneof("Type") in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        models = getattr(spec, spec.WhichOneof("Type")).pipeline.models
        return update_params_dict(models[-1]) if models else None
    nn = _network(spec)
    if nn is None or not spec.isUpdatable:
        return None
    update = nn.updateParams
    optimizer_kind = update.optimizer.WhichOneof("OptimizerType")
    optimizer = getattr(update.optimizer, optimizer_kind)
    out: dict[str, Any] = {
        "optimizer": "sgd" if optimizer_kind == "sgdOptimizer" else "adam",
        "updatable_layers": [layer.name for layer in nn.layers if layer.isUpdatable],
        "epochs": _int64(update.epochs),
        "shuffle": bool(update.shuffle.defaultValue),
    }
    if update.HasField("seed"):
        out["seed"] = int(update.seed.defaultValue)
    for field in ("learningRate", "momentum", "beta1", "beta2", "eps"):
        if field in optimizer.DESCRIPTOR.fields_by_name and optimizer.HasField(field):
            out[_snake(field)] = _double(getattr(optimizer, field))
    out["mini_batch_size"] = _int64(optimizer.miniBatchSize)
    losses = []
    for loss in update.lossLayers:
        kind = loss.WhichOneof("LossLayerType")
        params = getattr(loss, kind)
        losses.append({"name": loss.name, "type": kind, "input": params.input, "target": params.target})
    out["loss"] = losses[0] if len(losses) == 1 else losses
    return out


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _double(param) -> dict[str, Any]:
    out: dict[str, Any] = {"default": float(param.defaultValue)}
    if param.HasField("range"):
        out.update(min=float(param.range.minValue), max=float(param.range.maxValue))
    return out


def _int64(param) -> dict[str, Any]:
    out: dict[str, Any] = {"default": int(param.defaultValue)}
    if param.HasField("set"):
        out["allowed"] = [int(v) for v in param.set.values]
    elif param.HasField("range"):
        out.update(min=int(param.range.minValue), max=int(param.range.maxValue))
    return out


def describe_spec(spec: Model_pb2.Model) -> dict[str, Any]:
    """Interface summary: format, spec version, inputs/outputs/training inputs, classifier names."""
    description = spec.description
    out: dict[str, Any] = {
        "format": model_format(spec),
        "specification_version": int(spec.specificationVersion),
        "is_updatable": bool(spec.isUpdatable),
        "inputs": [feature_dict(f) for f in description.input],
        "outputs": [feature_dict(f) for f in description.output],
    }
    if description.predictedFeatureName:
        out["predicted_feature"] = description.predictedFeatureName
        out["predicted_probabilities"] = description.predictedProbabilitiesName
        out["class_labels"] = class_labels(spec)
    if description.trainingInput:
        out["training_inputs"] = [feature_dict(f) for f in description.trainingInput]
    precision = mlprogram_compute_precision(spec)
    if precision:
        out["compute_precision"] = precision
    update = update_params_dict(spec)
    if update:
        out["update"] = update
    return out
