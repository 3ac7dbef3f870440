"""Lint a Core ML spec against every rule Core ML enforces when it loads an updatable model.

coremltools' Python side validates almost nothing (a learning rate outside its range, batch 0,
a softmaxND before the loss all save fine) and it cannot compile models off macOS, so a broken
updatable model is only discovered on the phone ("Model is not updatable", ``MLUpdateTask``
returning nil). This module re-implements the load-time checks of coremltools' C++ validators
(``mlmodel/src/Validation/NeuralNetwork/UpdatableNeuralNetworkValidator.cpp``,
``NeuralNetworkValidatorGraph.hpp``, ``ParameterValidator.cpp``, ``PipelineValidator.cpp``,
``Model.cpp``) plus the Python builder's fp32-weights rule, and names the rule in every error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from coremltools.proto import Model_pb2, NeuralNetwork_pb2

from export.updatable.params import read_update_params

MIN_UPDATABLE_SPEC_VERSION = 4  # iOS 13

#: rule id -> what Core ML requires. Ids appear verbatim in every violation message.
RULES: dict[str, str] = {
    "spec-version": "an updatable model needs specificationVersion >= 4 (iOS 13)",
    "updatable-model-type": "only NeuralNetwork / NeuralNetworkClassifier / NeuralNetworkRegressor, "
                            "KNN classifiers and pipelines can be updatable (an ML Program cannot)",
    "pipeline-updatable-last-model": "in an updatable pipeline exactly the last model is updatable",
    "updatable-layer-present": "an updatable network marks at least one layer updatable",
    "updatable-layer-type": "only innerProduct and convolution layers can be marked updatable",
    "updatable-weights-and-bias": "an updatable layer flags its weights and (if it has one) its bias updatable",
    "updatable-weights-fp32": "updatable layers need float32 weights and bias (no fp16, no quantized/raw values)",
    "unique-layer-names": "layer and loss-layer names are unique",
    "single-loss-layer": "exactly one loss layer",
    "loss-layer-type": "the loss is categorical cross-entropy or mean squared error",
    "ce-input-from-softmax": "the categorical cross-entropy input is the output of a plain `softmax` layer "
                             "(softmaxND is rejected)",
    "loss-target-external": "the loss target is a training input, not produced inside the network",
    "mse-input-internal": "the mean-squared-error input is produced inside the network",
    "backpropagation-path": "between an updatable layer and the loss only convolution, innerProduct, "
                            "uniDirectionalLSTM, flatten, pooling, batchnorm and ReLU/sigmoid/tanh activations "
                            "may appear (a softmax directly feeding a cross-entropy loss is allowed)",
    "training-inputs": "at least two training inputs: one or more prediction inputs plus the target",
    "training-target": "the target is a training input typed like the class labels (classifier) "
                       "or named like the loss target",
    "optimizer": "an SGD or Adam optimizer with all its parameters",
    "optimizer-default-in-range": "every optimizer parameter's default lies inside its allowed range",
    "mini-batch-size": "miniBatchSize default > 0, inside its allowed set/range, and the set/range positive",
    "epochs": "epochs present, default > 0, inside its allowed set/range, and the set/range positive",
    "seed": "a seed, when given, lies inside its allowed set/range",
    "input-rank": "a neural network with the default (rank-5) array mapping takes MLMultiArray inputs of "
                  "rank 1 or 3 only (so [E], not [1, E]: the \"(1, 768) vs (768)\" trap)",
    "pipeline-wiring": "each pipeline stage's inputs are produced, with equal types, by the pipeline inputs or an "
                       "earlier stage, and every pipeline output is produced by some stage",
}

_BACKPROP_LAYERS = {"convolution", "innerProduct", "uniDirectionalLSTM", "flatten", "pooling", "batchnorm"}
_BACKPROP_ACTIVATIONS = {"ReLU", "sigmoid", "tanh"}
_NN_TYPES = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")
_PIPELINE_TYPES = ("pipeline", "pipelineClassifier", "pipelineRegressor")


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message} (rule: {RULES[self.rule]})"


class UpdatableRuleError(ValueError):
    """Raised by :func:`check_spec`; ``violations`` lists every broken rule."""

    def __init__(self, violations: list[Violation], what: str = "model") -> None:
        self.violations = violations
        lines = "\n".join(f"- {v}" for v in violations)
        super().__init__(f"Core ML would refuse to load this updatable {what}:\n{lines}")

    @property
    def rules(self) -> list[str]:
        return [v.rule for v in self.violations]


def check_spec(spec: Model_pb2.Model, what: str = "model") -> None:
    """Raise :class:`UpdatableRuleError` if ``spec`` breaks any rule; return quietly otherwise."""
    violations = lint_spec(spec)
    if violations:
        raise UpdatableRuleError(violations, what)


def lint_spec(spec: Model_pb2.Model) -> list[Violation]:
    """Every rule ``spec`` breaks (empty list = Core ML will accept it as updatable)."""
    out: list[Violation] = []
    if not spec.isUpdatable:
        return [Violation("updatable-model-type", "spec.isUpdatable is false: the model is not marked updatable")]
    if spec.specificationVersion < MIN_UPDATABLE_SPEC_VERSION:
        out.append(Violation("spec-version", f"specificationVersion is {spec.specificationVersion}"))
    kind = spec.WhichOneof("Type")
    if kind in _PIPELINE_TYPES:
        pipeline = spec.pipeline if kind == "pipeline" else getattr(spec, kind).pipeline
        out.extend(_lint_pipeline_wiring(spec, pipeline))
        out.extend(_lint_pipeline(pipeline))
    elif kind in _NN_TYPES:
        out.extend(_lint_network(spec, getattr(spec, kind), is_classifier=kind == "neuralNetworkClassifier"))
    elif kind == "kNearestNeighborsClassifier":
        pass  # KNN updatability has no layer/optimizer rules
    else:
        out.append(Violation("updatable-model-type", f"model type {kind!r} cannot be updatable"))
    return out


# --- pipelines ----------------------------------------------------------------------------------


def _lint_pipeline(pipeline: Model_pb2.Pipeline) -> list[Violation]:
    models = list(pipeline.models)
    if not models:
        return [Violation("pipeline-updatable-last-model", "the pipeline has no models")]
    out = [
        Violation("pipeline-updatable-last-model", f"model at position {i} is updatable but is not the last")
        for i, model in enumerate(models[:-1]) if model.isUpdatable
    ]
    if not models[-1].isUpdatable:
        out.append(Violation("pipeline-updatable-last-model", "the last model is not marked updatable"))
    else:
        out.extend(lint_spec(models[-1]))
    return out


# --- neural networks ----------------------------------------------------------------------------


def _lint_pipeline_wiring(spec: Model_pb2.Model, pipeline: Model_pb2.Pipeline) -> list[Violation]:
    """Core ML's PipelineValidator: every stage input comes, with an equivalent type, from the
    pipeline inputs or an earlier stage; every pipeline output is produced."""
    available = {f.name: f.type for f in spec.description.input}
    out: list[Violation] = []
    for i, model in enumerate(pipeline.models):
        for feature in model.description.input:
            source = available.get(feature.name)
            if source is None:
                out.append(Violation("pipeline-wiring", f"stage {i} input {feature.name!r} is not produced before it"))
            elif source.SerializeToString() != feature.type.SerializeToString() and not _same_array_shape(source, feature.type):
                out.append(Violation("pipeline-wiring", f"stage {i} input {feature.name!r} has another type/shape "
                                                        "than what feeds it"))
        available.update({f.name: f.type for f in model.description.output})
    for feature in spec.description.output:
        if feature.name not in available:
            out.append(Violation("pipeline-wiring", f"pipeline output {feature.name!r} is produced by no stage"))
    return out


def _same_array_shape(a, b) -> bool:
    """Equivalent multi-array types: same shape and data type (other fields may differ)."""
    if a.WhichOneof("Type") != "multiArrayType" or b.WhichOneof("Type") != "multiArrayType":
        return a.WhichOneof("Type") == b.WhichOneof("Type") and a.WhichOneof("Type") != "multiArrayType"
    return list(a.multiArrayType.shape) == list(b.multiArrayType.shape) and a.multiArrayType.dataType == b.multiArrayType.dataType


def _lint_input_ranks(spec: Model_pb2.Model, nn) -> list[Violation]:
    if nn.arrayInputShapeMapping != 0:  # EXACT_ARRAY_MAPPING: any rank is fine
        return []
    return [
        Violation("input-rank", f"input {f.name!r} has shape {list(f.type.multiArrayType.shape)} (rank "
                                f"{len(f.type.multiArrayType.shape)})")
        for f in spec.description.input
        if f.type.WhichOneof("Type") == "multiArrayType" and len(f.type.multiArrayType.shape) not in (1, 3)
    ]


def _lint_network(spec: Model_pb2.Model, nn, is_classifier: bool) -> list[Violation]:
    out: list[Violation] = []
    out.extend(_lint_input_ranks(spec, nn))
    out.extend(_lint_layers(nn))
    out.extend(_lint_names(nn))
    losses = list(nn.updateParams.lossLayers)
    if len(losses) != 1:
        out.append(Violation("single-loss-layer", f"found {len(losses)} loss layers"))
    graph = _Graph(nn)
    for loss in losses:
        out.extend(_lint_loss(loss, graph))
    out.extend(Violation(rule, message) for rule, message in read_update_params(nn).problems())
    if losses:
        out.extend(_lint_backprop(losses, graph))
        out.extend(_lint_training_inputs(spec.description, losses[0], is_classifier))
    return out


def _weights_fields(layer) -> tuple[Optional[NeuralNetwork_pb2.WeightParams], Optional[NeuralNetwork_pb2.WeightParams], bool]:
    kind = layer.WhichOneof("layer")
    params = getattr(layer, kind)
    return params.weights, (params.bias if params.hasBias else None), params.hasBias


def _is_fp32(weights: NeuralNetwork_pb2.WeightParams) -> bool:
    return (
        len(weights.floatValue) > 0
        and len(weights.float16Value) == 0
        and len(weights.rawValue) == 0
        and len(weights.int8RawValue) == 0
        and not weights.HasField("quantization")
    )


def _lint_layers(nn) -> list[Violation]:
    out: list[Violation] = []
    updatable = [layer for layer in nn.layers if layer.isUpdatable]
    if not updatable:
        out.append(Violation("updatable-layer-present", "no layer is marked updatable"))
    for layer in updatable:
        kind = layer.WhichOneof("layer")
        if kind not in ("innerProduct", "convolution"):
            out.append(Violation("updatable-layer-type", f"layer '{layer.name}' of type {kind} is marked updatable"))
            continue
        weights, bias, has_bias = _weights_fields(layer)
        if not weights.isUpdatable or (has_bias and not bias.isUpdatable):
            out.append(Violation(
                "updatable-weights-and-bias",
                f"layer '{layer.name}': weights.isUpdatable={weights.isUpdatable}, "
                f"bias.isUpdatable={bias.isUpdatable if has_bias else 'n/a (no bias)'}",
            ))
        for label, params in (("weights", weights), ("bias", bias)):
            if params is not None and not _is_fp32(params):
                out.append(Violation("updatable-weights-fp32", f"layer '{layer.name}' {label} are not plain float32"))
    return out


def _lint_names(nn) -> list[Violation]:
    seen: set[str] = set()
    out: list[Violation] = []
    for name in [layer.name for layer in nn.layers] + [loss.name for loss in nn.updateParams.lossLayers]:
        if name in seen:
            out.append(Violation("unique-layer-names", f"name '{name}' is used more than once"))
        seen.add(name)
    return out


class _Node:
    def __init__(self, name: str, kind: str, inputs: list[str], outputs: list[str], updatable: bool,
                 backprop: bool, loss_kind: Optional[str] = None) -> None:
        self.name, self.kind, self.inputs, self.outputs = name, kind, inputs, outputs
        self.updatable, self.backprop, self.loss_kind = updatable, backprop, loss_kind
        self.parents: list["_Node"] = []


class _Graph:
    """Port of ``NeuralNetworkValidatorGraph``: a parent is the latest producer of an input blob."""

    def __init__(self, nn) -> None:
        self.nodes: dict[str, _Node] = {}
        self.producer: dict[str, _Node] = {}
        for layer in nn.layers:
            kind = layer.WhichOneof("layer")
            self._insert(_Node(layer.name, kind, list(layer.input), list(layer.output),
                               layer.isUpdatable, _backprop(layer)))
        for loss in nn.updateParams.lossLayers:
            loss_kind = loss.WhichOneof("LossLayerType")
            loss_input = getattr(loss, loss_kind).input if loss_kind else ""
            self._insert(_Node(loss.name, "loss", [loss_input], [], False, False, loss_kind))

    def _insert(self, node: _Node) -> None:
        node.parents = [self.producer[name] for name in node.inputs if name in self.producer]
        for name in node.outputs:
            self.producer[name] = node
        self.nodes[node.name] = node


def _backprop(layer) -> bool:
    kind = layer.WhichOneof("layer")
    if kind in _BACKPROP_LAYERS:
        return True
    if kind == "activation":
        return layer.activation.WhichOneof("NonlinearityType") in _BACKPROP_ACTIVATIONS
    return False


def _lint_loss(loss, graph: _Graph) -> list[Violation]:
    kind = loss.WhichOneof("LossLayerType")
    if kind == "categoricalCrossEntropyLossLayer":
        params = loss.categoricalCrossEntropyLossLayer
        node = graph.nodes.get(loss.name)
        producer = graph.producer.get(params.input)
        softmax_parent = next((p for p in node.parents if p.kind == "softmax"), None) if node else None
        out = []
        if softmax_parent is None or softmax_parent.outputs[0] != params.input:
            made_by = f"a '{producer.kind}' layer ('{producer.name}')" if producer else "no layer (a model input)"
            out.append(Violation(
                "ce-input-from-softmax",
                f"loss '{loss.name}' input '{params.input}' is produced by {made_by}, not by a plain softmax layer",
            ))
        if params.target in graph.producer:
            out.append(Violation("loss-target-external", f"loss '{loss.name}' target '{params.target}' is produced inside the network"))
        return out
    if kind == "meanSquaredErrorLossLayer":
        params = loss.meanSquaredErrorLossLayer
        out = []
        if params.input not in graph.producer:
            out.append(Violation("mse-input-internal", f"loss '{loss.name}' input '{params.input}' is not produced inside the network"))
        if params.target in graph.producer:
            out.append(Violation("loss-target-external", f"loss '{loss.name}' target '{params.target}' is produced inside the network"))
        return out
    return [Violation("loss-layer-type", f"loss '{loss.name}' is of type {kind!r}")]


def _lint_backprop(losses: Iterable, graph: _Graph) -> list[Violation]:
    """Reverse BFS from each loss, exactly as ``isTrainingConfigurationSupported`` walks it."""
    out: list[Violation] = []
    visited: set[str] = set()
    for loss in losses:
        queue = [loss.name]
        blocked_by: Optional[str] = None
        while queue:
            current = graph.nodes.get(queue.pop(0))
            if current is None:
                continue
            for parent in current.parents:
                if parent.name in visited:
                    continue
                visited.add(parent.name)
                queue.append(parent.name)
                if parent.updatable and blocked_by is not None:
                    out.append(Violation(
                        "backpropagation-path",
                        f"layer '{blocked_by} does not support back-propagation and lies between "
                        f"updatable layer '{parent.name}' and loss '{loss.name}'",
                    ))
                if not parent.backprop:
                    if parent.kind == "softmax" and current.loss_kind == "categoricalCrossEntropyLossLayer":
                        continue
                    if blocked_by is None:
                        blocked_by = f"{parent.name}' ({parent.kind})"
    return out


# --- training inputs ----------------------------------------------------------------------------


def _same_feature(a: Model_pb2.FeatureDescription, b: Model_pb2.FeatureDescription) -> bool:
    return a.name == b.name and a.type.SerializeToString(deterministic=True) == b.type.SerializeToString(deterministic=True)


def _lint_training_inputs(description: Model_pb2.ModelDescription, loss, is_classifier: bool) -> list[Violation]:
    training = list(description.trainingInput)
    if len(training) <= 1:
        return [Violation("training-inputs", f"{len(training)} training input(s); need the model input(s) and the target")]
    exclusive = [t for t in training if not any(_same_feature(t, i) for i in description.input)]
    out: list[Violation] = []
    if not exclusive:
        out.append(Violation("training-inputs", "every training input is a prediction input: the target is missing"))
    if len(training) - len(exclusive) <= 0:
        out.append(Violation("training-inputs", "no training input matches a prediction input (name and type)"))
    kind = loss.WhichOneof("LossLayerType")
    target = getattr(loss, kind).target if kind else ""
    ok = False
    for feature in exclusive:
        if is_classifier and feature.name == description.predictedFeatureName:
            output = next((o for o in description.output if o.name == feature.name), None)
            if output is not None:
                if feature.type.SerializeToString(deterministic=True) == output.type.SerializeToString(deterministic=True):
                    ok = True
                else:
                    out.append(Violation(
                        "training-target",
                        f"training input '{feature.name}' is typed {feature.type.WhichOneof('Type')} but the "
                        f"class label output is {output.type.WhichOneof('Type')}",
                    ))
        if feature.name == target:
            ok = True
    if exclusive and not ok and not any(v.rule == "training-target" for v in out):
        wanted = description.predictedFeatureName if is_classifier else target
        out.append(Violation("training-target", f"the training inputs do not include the target '{wanted}'"))
    return out


# --- command line ---------------------------------------------------------------------------------


def lint_path(path) -> dict[str, list[Violation]]:
    """Lint one saved model file, or every ``.mlmodel`` in an export folder."""
    from pathlib import Path

    import coremltools as ct

    path = Path(path)
    files = sorted(path.glob("*.mlmodel")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"{path}: no .mlmodel files to check")
    return {str(f): lint_spec(ct.models.MLModel(str(f), skip_model_load=True).get_spec()) for f in files}


def main(argv=None) -> int:
    """``python -m export.updatable.rules PATH...``: exit 1 if any updatable model breaks a rule."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m export.updatable.rules",
                                     description="Check saved Core ML models against the load-time updatable rules.")
    parser.add_argument("paths", nargs="+", help=".mlmodel files or export folders")
    args = parser.parse_args(argv)
    failed = False
    for path in args.paths:
        try:
            results = lint_path(path)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}")
            failed = True
            continue
        for name, violations in results.items():
            if violations:
                failed = True
                print(f"FAIL {name}")
                for violation in violations:
                    print(f"  - {violation}")
            else:
                print(f"ok   {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
