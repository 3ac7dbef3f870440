"""Simulated on-device update: train an updatable Core ML model the way ``MLUpdateTask`` would.

Why: Core ML trains only on Apple devices, and a model that "saves fine" can still fail to learn
(wrong layer marked, a reshape between the dense layer and the loss, a label typed Int64 where
the classes are strings, a (768,) array where (1, 768) is declared). This module reads the
training setup from the model itself (``update_config``), feeds the batch exactly as an app would
(same feature names, shapes and label types), runs the frozen part with the NumPy executor and
back-propagates through the updatable layers, then writes the trained weights back into a copy
of the spec and saves it atomically.

Semantics (NeuralNetwork.proto and Apple's documentation of ``MLUpdateTask``):

- the batch is split into mini-batches of ``miniBatchSize`` examples in order (the last one may be
  smaller), reshuffled every epoch when ``shuffle`` is on - with NumPy's generator seeded by the
  model's ``seed``: Core ML's own shuffle order cannot be reproduced, only its distribution;
- a mini-batch's loss is the mean of its examples' losses, so its gradient is the mean gradient;
- one optimizer step per mini-batch (``optimizers`` documents SGD-momentum and Adam);
- an epoch's reported loss is the mean loss of its examples as they were seen during that epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from export.runtime.neuralnetwork.backprop import backward, check_backprop
from export.runtime.neuralnetwork.context import LayerCall
from export.runtime.neuralnetwork.errors import InputError, UpdateConfigError
from export.runtime.neuralnetwork.executor import NeuralNetworkExecutor
from export.runtime.neuralnetwork.losses import LossValue, cross_entropy, mean_squared_error
from export.runtime.neuralnetwork.optimizers import optimizer_state
from export.runtime.neuralnetwork.pipelines import load_executor
from export.runtime.neuralnetwork.spec_io import (
    PIPELINE_TYPES,
    ModelLike,
    load_spec,
    model_type,
    pipeline_models,
    save_spec_atomic,
)
from export.runtime.neuralnetwork.training_config import (
    TrainingFeature,
    UpdateConfig,
    read_update_config,
    training_feature,
    with_overrides,
)
from export.runtime.neuralnetwork.weights import encode_fp32

Batch = Union[Sequence[Mapping[str, Any]], Mapping[str, Sequence[Any]]]


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    loss: float
    batch_losses: tuple


@dataclass(frozen=True)
class UpdateResult:
    """What the simulated update did; ``spec`` holds the trained weights, ``path`` where it was saved.

    ``trained`` says which model learned: "model", or "pipeline stage N" for an updatable pipeline.
    """

    config: UpdateConfig
    epochs: tuple
    initial_loss: float
    final_loss: float
    weight_change: dict
    examples: int
    spec: Any
    path: Optional[Path]
    trained: str = "model"
    #: mean loss on the ``held_out`` examples before training and after each epoch (empty without them)
    held_out_losses: tuple = ()

    @property
    def epoch_losses(self) -> list:
        return [e.loss for e in self.epochs]

    def as_dict(self) -> dict:
        opt = self.config.optimizer
        return {
            "loss": self.config.loss.kind,
            "optimizer": type(opt).__name__.replace("Config", "").lower(),
            "optimizer_params": dict(opt.__dict__),
            "epochs": self.config.epochs,
            "shuffle": self.config.shuffle,
            "examples": self.examples,
            "trained": self.trained,
            "updatable_layers": list(self.config.updatable_layers),
            "epoch_losses": self.epoch_losses,
            "initial_loss": self.initial_loss,
            "final_loss": self.final_loss,
            "weight_change": dict(self.weight_change),
            "held_out_losses": list(self.held_out_losses),
            "path": str(self.path) if self.path else None,
        }


@dataclass(frozen=True)
class _Example:
    features: dict
    target: Any  # class index (int) for cross-entropy, float array for MSE


@dataclass(frozen=True)
class _TrainingPath:
    """The layers between the updatable ones and the loss, and where the loss gradient enters."""

    steps: tuple
    start_blob: str
    softmax_output: Optional[str]


# -- batch -----------------------------------------------------------------------------------------

def _examples_of(batch: Batch) -> list:
    if isinstance(batch, Mapping):
        lengths = {name: len(values) for name, values in batch.items()}
        if len(set(lengths.values())) != 1:
            raise InputError(f"every training feature needs one value per example, got lengths {lengths}")
        n = next(iter(lengths.values()))
        return [{name: values[i] for name, values in batch.items()} for i in range(n)]
    return [dict(example) for example in batch]


def _check_value(feature: TrainingFeature, value: Any, index: int) -> Any:
    where = f"example {index}, feature {feature.name!r}"
    if feature.kind == "string":
        if not isinstance(value, str):
            raise InputError(f"{where}: the model's class labels are strings; got {type(value).__name__} {value!r}")
        return value
    if feature.kind == "int64":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise InputError(f"{where}: the model's class labels are Int64; got {type(value).__name__} {value!r}")
        return int(value)
    if feature.kind == "double":
        return float(value)
    array = np.asarray(value)
    if feature.shape and tuple(array.shape) != feature.shape:
        raise InputError(f"{where}: shape {tuple(array.shape)} but the model declares {feature.shape}; an iOS "
                         "update with a differently shaped MLMultiArray fails (often returning nil)")
    if array.dtype.kind not in "biuf":
        raise InputError(f"{where}: numeric array expected, got dtype {array.dtype}")
    return array


def _prepare(raw: list, config: UpdateConfig, executor: NeuralNetworkExecutor) -> list:
    model_inputs = {f.name for f in executor.spec.description.input}
    prepared = []
    for i, example in enumerate(raw):
        missing = [f.name for f in config.training_inputs if f.name not in example]
        if missing:
            raise InputError(f"example {i} lacks training inputs {missing}")
        values = {f.name: _check_value(f, example[f.name], i) for f in config.training_inputs}
        features = {k: v for k, v in values.items() if k in model_inputs}
        target = values[config.target_feature]
        if config.target_is_class_label:
            try:
                target = executor.classifier.index_of(target)
            except KeyError as exc:
                raise InputError(f"example {i}: {exc.args[0]}") from None
        elif config.loss.kind == "categorical_cross_entropy":
            flat = np.asarray(target).ravel()
            if flat.size != 1 or flat[0] != np.rint(flat[0]):
                raise InputError(f"example {i}: {config.target_feature!r} must hold one integer class index")
            target = int(flat[0])
        else:
            target = np.asarray(target, dtype=np.float64)
        prepared.append(_Example(features, target))
    return prepared


# -- graph -----------------------------------------------------------------------------------------

def _training_path(executor: NeuralNetworkExecutor, config: UpdateConfig) -> _TrainingPath:
    steps = executor.steps
    producer = {out: i for i, s in enumerate(steps) for out in s.layer.output}
    loss_input = config.loss.input
    if loss_input not in producer:
        raise UpdateConfigError(f"loss input {loss_input!r} is not produced by any layer")
    softmax_output = None
    start = loss_input
    if config.loss.kind == "categorical_cross_entropy":
        step = steps[producer[loss_input]]
        if step.kind != "softmax":
            raise UpdateConfigError(
                f"the cross-entropy input {loss_input!r} comes from layer {step.layer.name!r} ({step.kind}); Core ML "
                "requires a plain 'softmax' layer there (ct.convert emits 'softmaxND', which is rejected)")
        softmax_output, start = loss_input, step.layer.input[0]
    ancestors, frontier = set(), [start]
    while frontier:
        blob = frontier.pop()
        if blob in producer and producer[blob] not in ancestors:
            ancestors.add(producer[blob])
            frontier.extend(steps[producer[blob]].layer.input)
    updatable = [i for i, s in enumerate(steps) if s.layer.name in config.updatable_layers]
    for i in updatable:
        if i not in ancestors:
            raise UpdateConfigError(f"updatable layer {steps[i].layer.name!r} does not feed the loss input {loss_input!r}")
    descendants = set(updatable)
    for i, s in enumerate(steps):
        if any(b in producer and producer[b] in descendants for b in s.layer.input):
            descendants.add(i)
    path = sorted(ancestors & descendants)
    for i in path:
        check_backprop(_call(executor, steps[i]))
    return _TrainingPath(tuple(steps[i] for i in path), start, softmax_output)


def _call(executor: NeuralNetworkExecutor, step: Any) -> LayerCall:
    return LayerCall(step.layer, step.kind, getattr(step.layer, step.kind), executor.store, executor.rank5)


# -- one example -----------------------------------------------------------------------------------

def _loss(config: UpdateConfig, path: _TrainingPath, blobs: Mapping[str, np.ndarray], target: Any) -> LossValue:
    if path.softmax_output is not None:
        logits_shape = blobs[path.start_blob].shape
        probs = blobs[path.softmax_output]
        if probs.ndim < 3 or probs.shape[-3] != probs.size:
            raise UpdateConfigError(f"cross-entropy input {path.softmax_output!r} of shape {probs.shape} is not a "
                                    "single probability vector along the softmax axis")
        return cross_entropy(probs, target, logits_shape)
    return mean_squared_error(blobs[path.start_blob], target)


def _example_grads(executor: NeuralNetworkExecutor, config: UpdateConfig, path: _TrainingPath,
                   example: _Example) -> tuple[float, dict]:
    blobs = executor.run(example.features, keep_blobs=True).blobs
    value = _loss(config, path, blobs, example.target)
    produced = {out for step in path.steps for out in step.layer.output}
    grads = {path.start_blob: value.grad}
    params = {}
    for step in reversed(path.steps):
        out = step.layer.output[0]
        if out not in grads:
            continue
        result = backward(_call(executor, step), [blobs[n] for n in step.layer.input], blobs[out], grads.pop(out))
        if step.layer.isUpdatable:
            for field, g in result.params.items():
                params[(step.layer.name, field)] = g
        for name, g in zip(step.layer.input, result.inputs):
            if g is not None and name in produced:
                grads[name] = grads[name] + g if name in grads else g
    return value.loss, params


def _mean_loss(executor: NeuralNetworkExecutor, config: UpdateConfig, path: _TrainingPath, examples: list) -> float:
    losses = [_loss(config, path, executor.run(e.features, keep_blobs=True).blobs, e.target).loss for e in examples]
    return float(np.mean(losses))


# -- public ----------------------------------------------------------------------------------------

def _train(spec: Any, raw: list, parameters: Optional[Mapping[str, Any]], held_raw: Sequence = ()) -> UpdateResult:
    """Train the NeuralNetwork ``spec`` in place on validated-by-name raw examples (the caller fills
    in which model was trained, the whole trained spec and where it was saved)."""
    config = read_update_config(spec)
    if parameters:
        config = with_overrides(config, spec, parameters)
    executor = NeuralNetworkExecutor(spec, "fp32")
    examples = _prepare(raw, config, executor)
    path = _training_path(executor, config)
    state = optimizer_state(config.optimizer)
    layers = {step.layer.name: step.layer for step in path.steps}
    keys = [(s.layer.name, f) for s in path.steps if s.layer.isUpdatable
            for f in (("weights", "bias") if getattr(s.layer, s.kind).hasBias else ("weights",))]
    start = {key: executor.store.get(layers[key[0]], key[1]).astype(np.float64) for key in keys}
    weights = dict(start)
    initial = _mean_loss(executor, config, path, examples)
    held = _prepare(list(held_raw), config, executor) if held_raw else []
    held_losses = [_mean_loss(executor, config, path, held)] if held else []
    rng = np.random.default_rng(config.seed)
    size = config.mini_batch_size
    reports = []
    for epoch in range(config.epochs):
        order = rng.permutation(len(examples)) if config.shuffle else np.arange(len(examples))
        batch_losses, counts = [], []
        for begin in range(0, len(examples), size):
            chunk = [examples[i] for i in order[begin:begin + size]]
            total = {key: np.zeros_like(w) for key, w in weights.items()}
            losses = []
            for example in chunk:
                loss, grads = _example_grads(executor, config, path, example)
                losses.append(loss)
                for key, g in grads.items():
                    total[key] += g
            for key in keys:
                weights[key] = state.step(key, weights[key], total[key] / len(chunk))
                executor.store.override(key[0], key[1], weights[key])
            batch_losses.append(float(np.mean(losses)))
            counts.append(len(chunk))
        reports.append(EpochReport(epoch + 1, float(np.average(batch_losses, weights=counts)), tuple(batch_losses)))
        if held:
            held_losses.append(_mean_loss(executor, config, path, held))
    final = _mean_loss(executor, config, path, examples)
    for name, field in keys:
        layer = layers[name]
        encode_fp32(getattr(getattr(layer, layer.WhichOneof("layer")), field), executor.store.get(layer, field))
    change = {f"{n}.{f}": float(np.max(np.abs(weights[(n, f)] - start[(n, f)]))) for (n, f) in keys}
    return UpdateResult(config, tuple(reports), initial, final, change, len(examples), spec=None, path=None,
                        held_out_losses=tuple(held_losses))


def _pipeline_examples(spec: Any, raw: list) -> tuple[Any, list, str]:
    """(updatable last stage, its raw examples, its description) for an updatable pipeline.

    The pipeline's own training inputs are checked first (names, shapes, label types), then the
    frozen stages run forward so the last stage sees exactly the features Core ML would hand it.
    """
    if not spec.isUpdatable:
        raise UpdateConfigError("the pipeline is not marked isUpdatable")
    stages = pipeline_models(spec)
    if not stages:
        raise UpdateConfigError("the pipeline has no models")
    frozen_updatable = [i for i, stage in enumerate(stages[:-1]) if stage.isUpdatable]
    if frozen_updatable:
        raise UpdateConfigError(f"pipeline stages {frozen_updatable} are updatable; only the last model may be")
    features = [training_feature(f) for f in spec.description.trainingInput]
    frozen = [load_executor(stage) for stage in stages[:-1]]
    head_raw = []
    for i, example in enumerate(raw):
        missing = [f.name for f in features if f.name not in example]
        if missing:
            raise InputError(f"example {i} lacks the pipeline's training inputs {missing}")
        values = {f.name: _check_value(f, example[f.name], i) for f in features}
        for executor in frozen:
            values.update(executor.predict(values))
        head_raw.append(values)
    return stages[-1], head_raw, f"pipeline stage {len(stages) - 1}"


def simulate_update(model: ModelLike, batch: Batch, parameters: Optional[Mapping[str, Any]] = None,
                    output_path: Optional[Union[str, Path]] = None, held_out: Optional[Batch] = None) -> UpdateResult:
    """Train a copy of ``model`` on ``batch`` as ``MLUpdateTask`` would; optionally save it.

    ``model`` is an updatable NeuralNetwork(-Classifier/-Regressor), or an updatable pipeline whose
    last model is one (the earlier stages run frozen). ``batch`` is a list of examples (feature
    name -> value, like an ``MLArrayBatchProvider``) or a mapping feature name -> sequence of
    per-example values. Arrays must have exactly the declared training-input shape; class labels
    must be ``str`` or ``int`` like the model's labels. ``parameters`` overrides update parameters
    by name (``epochs``, ``learning_rate``, ``mini_batch_size``, ``momentum``, ``beta1``, ``beta2``,
    ``eps``, ``shuffle``, ``seed``) within the ranges the model allows. ``output_path`` (a
    ``.mlmodel``) receives the whole trained model, written atomically. ``held_out`` (same form as
    ``batch``, never trained on) is scored before training and after every epoch
    (``UpdateResult.held_out_losses``): how the export chooses the on-device learning rate.
    """
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.CopyFrom(load_spec(model))
    raw = _examples_of(batch)
    if not raw:
        raise InputError("the training batch is empty")
    held = _examples_of(held_out) if held_out is not None else []
    if model_type(spec) in PIPELINE_TYPES:
        target, raw, trained = _pipeline_examples(spec, raw)
        if held:
            held = _pipeline_examples(spec, held)[1]
    else:
        target, trained = spec, "model"
    done = _train(target, raw, parameters, held)
    saved = save_spec_atomic(spec, output_path) if output_path is not None else None
    return replace(done, spec=spec, path=saved, trained=trained)
