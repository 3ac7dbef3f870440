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
from export.updatable.params import OPTIMIZER_FIELDS, PROTO_NAMES, SpecUpdateParams, read_update_params

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


def _optimizer(read: SpecUpdateParams) -> Optimizer:
    values = {name: value.default for name, value in read.values.items()}
    if read.optimizer == "sgd":
        return SgdConfig(values["learning_rate"], values["mini_batch_size"], values.get("momentum", 0.0))
    return AdamConfig(values["learning_rate"], values["mini_batch_size"], values["beta1"], values["beta2"], values["eps"])


_LOSS_KINDS = {"categoricalCrossEntropyLossLayer": "categorical_cross_entropy",
               "meanSquaredErrorLossLayer": "mean_squared_error"}


def _loss(read: SpecUpdateParams) -> LossConfig:
    if len(read.losses) != 1:
        raise UpdateConfigError(f"exactly one loss layer is supported, the model has {len(read.losses)}")
    loss = read.losses[0]
    if loss.kind not in _LOSS_KINDS:
        raise UpdateConfigError(f"loss layer {loss.name!r} has no known loss type")
    return LossConfig(loss.name, _LOSS_KINDS[loss.kind], loss.input, loss.target)


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
    read = read_update_params(network)
    loss = _loss(read)
    problems = read.problems()  # optimizer, batch size, epochs, seed: the first one the device refuses
    if problems:
        raise UpdateConfigError(problems[0][1])
    for layer in network.layers:
        if layer.isUpdatable:
            _check_updatable_layer(layer)
    if not read.updatable_layers:
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
    seed = read.values["seed"].default if "seed" in read.values else None
    return UpdateConfig(loss, _optimizer(read), read.values["epochs"].default, read.shuffle, seed,
                        read.updatable_layers, features, target, is_label)


_OVERRIDABLE = {"epochs", "learning_rate", "mini_batch_size", "momentum", "beta1", "beta2", "eps", "shuffle", "seed"}


def with_overrides(config: UpdateConfig, spec: Any, overrides: Mapping[str, Any]) -> UpdateConfig:
    """Apply run-time parameters (what ``MLUpdateTask``'s ``parameters`` dictionary sets).

    Each value must fit the allowed range / set declared in the spec, as on device.
    """
    unknown = set(overrides) - _OVERRIDABLE
    if unknown:
        raise UpdateConfigError(f"unknown update parameters {sorted(unknown)}; allowed: {sorted(_OVERRIDABLE)}")
    read = read_update_params(getattr(spec, model_type(spec)))
    optimizer, epochs, shuffle, seed = config.optimizer, config.epochs, config.shuffle, config.seed
    for key, value in overrides.items():
        if key == "shuffle":
            shuffle = bool(value)
        elif key == "seed":
            seed = int(value)
        elif key == "epochs":
            epochs = _check_override(read, "epochs", int(value))
        elif key not in OPTIMIZER_FIELDS[read.optimizer]:
            raise UpdateConfigError(f"{key} does not apply to the {read.optimizer}Optimizer")
        else:
            checked = _check_override(read, key, int(value) if key == "mini_batch_size" else float(value))
            optimizer = replace(optimizer, **{key: checked})
    return replace(config, optimizer=optimizer, epochs=epochs, shuffle=shuffle, seed=seed)


def _check_override(read, key: str, value: Union[int, float]) -> Union[int, float]:
    stored = read.values.get(key)
    problem = stored.override_problem(PROTO_NAMES[key], value) if stored is not None else None
    if problem:
        raise UpdateConfigError(problem)
    return value
