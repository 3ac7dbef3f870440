"""Read an updatable model's own training configuration from its spec, checking it like a device.

Everything the simulated update does comes from here - loss layer, optimizer, epochs, shuffle,
seed, which layers train and what the training inputs look like - so the simulation exercises
the file that ships, not the settings we meant to write. The checks are the rules of Core ML's
``UpdatableNeuralNetworkValidator`` / ``ParameterValidator`` that Python's coremltools does not
run (a learning rate outside its range, a batch of 0, missing epochs all "save fine" and fail on
the phone).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Union

from export.runtime.neuralnetwork.errors import UpdateConfigError
from export.runtime.neuralnetwork.spec_io import NN_TYPES, model_type

TRAINABLE_LAYERS = ("innerProduct",)  # our head; Core ML also trains convolution, which we never write


@dataclass(frozen=True)
class SgdConfig:
    learning_rate: float
    mini_batch_size: int
    momentum: float = 0.0


@dataclass(frozen=True)
class AdamConfig:
    learning_rate: float
    mini_batch_size: int
    beta1: float
    beta2: float
    eps: float


Optimizer = Union[SgdConfig, AdamConfig]


@dataclass(frozen=True)
class LossConfig:
    name: str
    kind: str  # "categorical_cross_entropy" | "mean_squared_error"
    input: str
    target: str


@dataclass(frozen=True)
class TrainingFeature:
    """One training input: its name, what it holds and (for arrays) its declared shape."""

    name: str
    kind: str  # "array" | "string" | "int64" | "double"
    shape: tuple
    dtype: str


@dataclass(frozen=True)
class UpdateConfig:
    loss: LossConfig
    optimizer: Optimizer
    epochs: int
    shuffle: bool
    seed: Optional[int]
    updatable_layers: tuple
    training_inputs: tuple
    target_feature: str
    target_is_class_label: bool

    @property
    def mini_batch_size(self) -> int:
        return self.optimizer.mini_batch_size


def _double(name: str, param: Any) -> float:
    value = float(param.defaultValue)
    if param.HasField("range"):
        lo, hi = param.range.minValue, param.range.maxValue
        if not lo <= value <= hi:
            raise UpdateConfigError(f"{name} default {value} is outside its allowed range [{lo}, {hi}]")
    return value


def _int64(name: str, param: Any, positive: bool = True) -> int:
    value = int(param.defaultValue)
    if positive and value <= 0:
        raise UpdateConfigError(f"{name} default {value} must be positive")
    if param.HasField("set"):
        allowed = [int(v) for v in param.set.values]
        if value not in allowed:
            raise UpdateConfigError(f"{name} default {value} is not in its allowed set {allowed}")
    elif param.HasField("range"):
        lo, hi = param.range.minValue, param.range.maxValue
        if not lo <= value <= hi:
            raise UpdateConfigError(f"{name} default {value} is outside its allowed range [{lo}, {hi}]")
    return value


def _optimizer(params: Any) -> Optimizer:
    kind = params.optimizer.WhichOneof("OptimizerType")
    if kind == "sgdOptimizer":
        sgd = params.optimizer.sgdOptimizer
        for field in ("learningRate", "miniBatchSize"):
            if not sgd.HasField(field):
                raise UpdateConfigError(f"SGD optimizer has no {field}")
        momentum = _double("momentum", sgd.momentum) if sgd.HasField("momentum") else 0.0
        return SgdConfig(_double("learningRate", sgd.learningRate), _int64("miniBatchSize", sgd.miniBatchSize), momentum)
    if kind == "adamOptimizer":
        adam = params.optimizer.adamOptimizer
        for field in ("learningRate", "miniBatchSize", "beta1", "beta2", "eps"):
            if not adam.HasField(field):
                raise UpdateConfigError(f"Adam optimizer has no {field}")
        return AdamConfig(_double("learningRate", adam.learningRate), _int64("miniBatchSize", adam.miniBatchSize),
                          _double("beta1", adam.beta1), _double("beta2", adam.beta2), _double("eps", adam.eps))
    raise UpdateConfigError("the model declares no optimizer (SGD or Adam)")


def _loss(params: Any) -> LossConfig:
    if len(params.lossLayers) != 1:
        raise UpdateConfigError(f"exactly one loss layer is supported, the model has {len(params.lossLayers)}")
    layer = params.lossLayers[0]
    kind = layer.WhichOneof("LossLayerType")
    if kind == "categoricalCrossEntropyLossLayer":
        body = layer.categoricalCrossEntropyLossLayer
        return LossConfig(layer.name, "categorical_cross_entropy", body.input, body.target)
    if kind == "meanSquaredErrorLossLayer":
        body = layer.meanSquaredErrorLossLayer
        return LossConfig(layer.name, "mean_squared_error", body.input, body.target)
    raise UpdateConfigError(f"loss layer {layer.name!r} has no known loss type")


def training_feature(desc: Any) -> TrainingFeature:
    """A ``trainingInput`` feature description as a ``TrainingFeature``."""
    kind = desc.type.WhichOneof("Type")
    if kind == "multiArrayType":
        t = desc.type.multiArrayType
        return TrainingFeature(desc.name, "array", tuple(int(v) for v in t.shape), t.ArrayDataType.Name(t.dataType))
    if kind == "stringType":
        return TrainingFeature(desc.name, "string", (), "STRING")
    if kind == "int64Type":
        return TrainingFeature(desc.name, "int64", (), "INT64")
    if kind == "doubleType":
        return TrainingFeature(desc.name, "double", (), "DOUBLE")
    raise UpdateConfigError(f"training input {desc.name!r} of type {kind!r} is not simulated")


def _check_updatable_layer(layer: Any) -> None:
    kind = layer.WhichOneof("layer")
    if kind not in TRAINABLE_LAYERS:
        raise UpdateConfigError(f"layer {layer.name!r} ({kind}) is marked updatable; only "
                                f"innerProduct (and convolution) layers can be trained by Core ML, and the "
                                f"simulator trains innerProduct, the only one export writes")
    params = getattr(layer, kind)
    fields = ["weights"] + (["bias"] if params.hasBias else [])
    for field in fields:
        weights = getattr(params, field)
        if not weights.isUpdatable:
            raise UpdateConfigError(f"layer {layer.name!r} is updatable but its {field} are not flagged isUpdatable")
        if not len(weights.floatValue):
            raise UpdateConfigError(f"layer {layer.name!r}: updatable {field} must be stored as fp32 floatValue "
                                    "(Core ML rejects fp16 or quantized weights in updatable layers)")


def read_update_config(spec: Any) -> UpdateConfig:
    """The training configuration the device would use; ``UpdateConfigError`` if it would be rejected."""
    kind = model_type(spec)
    if kind not in NN_TYPES:
        raise UpdateConfigError(f"model type {kind!r} cannot be updated by this simulation "
                                "(pipelines: simulate the updatable last stage on its own)")
    if not spec.isUpdatable:
        raise UpdateConfigError("the model is not marked isUpdatable")
    if spec.specificationVersion < 4:
        raise UpdateConfigError(f"specificationVersion {spec.specificationVersion} < 4: updatable models need 4+")
    network = getattr(spec, kind)
    params = network.updateParams
    loss = _loss(params)
    optimizer = _optimizer(params)
    if not params.HasField("epochs"):
        raise UpdateConfigError("update parameters have no epochs")
    epochs = _int64("epochs", params.epochs)
    seed = _int64("seed", params.seed, positive=False) if params.HasField("seed") else None
    shuffle = bool(params.shuffle.defaultValue) if params.HasField("shuffle") else False
    updatable = []
    for layer in network.layers:
        if layer.isUpdatable:
            _check_updatable_layer(layer)
            updatable.append(layer.name)
    if not updatable:
        raise UpdateConfigError("no layer is marked isUpdatable")
    desc = spec.description
    features = tuple(training_feature(f) for f in desc.trainingInput)
    if len(features) < 2:
        raise UpdateConfigError("an updatable model needs at least two training inputs (the input and the target)")
    names = {f.name for f in features}
    if loss.target in names:
        target, is_label = loss.target, False
    elif kind == "neuralNetworkClassifier" and desc.predictedFeatureName in names:
        target, is_label = desc.predictedFeatureName, True
    else:
        raise UpdateConfigError(f"the training inputs {sorted(names)} hold neither the loss target "
                                f"{loss.target!r} nor the classifier's {desc.predictedFeatureName!r}")
    if is_label and loss.kind != "categorical_cross_entropy":
        raise UpdateConfigError("a class-label target needs a categorical cross-entropy loss")
    return UpdateConfig(loss, optimizer, epochs, shuffle, seed, tuple(updatable), features, target, is_label)


_OVERRIDABLE = {"epochs", "learning_rate", "mini_batch_size", "momentum", "beta1", "beta2", "eps", "shuffle", "seed"}


def with_overrides(config: UpdateConfig, spec: Any, overrides: Mapping[str, Any]) -> UpdateConfig:
    """Apply run-time parameters (what ``MLUpdateTask``'s ``parameters`` dictionary sets).

    Each value must fit the allowed range / set declared in the spec, as on device.
    """
    unknown = set(overrides) - _OVERRIDABLE
    if unknown:
        raise UpdateConfigError(f"unknown update parameters {sorted(unknown)}; allowed: {sorted(_OVERRIDABLE)}")
    params = getattr(spec, model_type(spec)).updateParams
    opt_kind = params.optimizer.WhichOneof("OptimizerType")
    opt_msg = getattr(params.optimizer, opt_kind)
    proto_names = {"learning_rate": "learningRate", "mini_batch_size": "miniBatchSize", "momentum": "momentum",
                   "beta1": "beta1", "beta2": "beta2", "eps": "eps"}
    optimizer, epochs, shuffle, seed = config.optimizer, config.epochs, config.shuffle, config.seed
    for key, value in overrides.items():
        if key == "epochs":
            epochs = _check_override("epochs", params.epochs, int(value))
        elif key == "shuffle":
            shuffle = bool(value)
        elif key == "seed":
            seed = int(value)
        else:
            field = proto_names[key]
            if not hasattr(opt_msg, field):
                raise UpdateConfigError(f"{key} does not apply to the {opt_kind}")
            checked = _check_override(field, getattr(opt_msg, field), int(value) if key == "mini_batch_size" else float(value))
            optimizer = replace(optimizer, **{key: checked})
    return replace(config, optimizer=optimizer, epochs=epochs, shuffle=shuffle, seed=seed)


def _check_override(name: str, param: Any, value: Union[int, float]) -> Union[int, float]:
    if hasattr(param, "set") and param.HasField("set") and value not in [int(v) for v in param.set.values]:
        raise UpdateConfigError(f"{name}={value} is not in the model's allowed set {list(param.set.values)}")
    if param.HasField("range") and not param.range.minValue <= value <= param.range.maxValue:
        raise UpdateConfigError(f"{name}={value} is outside the model's allowed range "
                                f"[{param.range.minValue}, {param.range.maxValue}]")
    if isinstance(value, int) and value <= 0 and name in ("epochs", "miniBatchSize"):
        raise UpdateConfigError(f"{name} must be positive, got {value}")
    return value
