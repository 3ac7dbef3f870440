"""Updatable head construction, update parameters and the Core ML rule linter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import coremltools as ct
from coremltools.models import datatypes
from coremltools.models.neural_network import NeuralNetworkBuilder, SgdParams
from coremltools.proto import Model_pb2

from export.runtime.neuralnetwork.pipelines import load_executor
from export.updatable.params import UpdateParams, UpdateParamsError
from export.updatable.head import HeadNames, build_updatable_head
from export.updatable.rules import RULES, UpdatableRuleError, check_spec, lint_spec

LABELS = ["negative", "positive", "neutral"]
E = 12



def _predict(spec, inputs):
    """(label, {label: probability}) from the saved spec, run by the NumPy NeuralNetwork runtime."""
    outputs = load_executor(spec).predict(inputs)
    return outputs[spec.description.predictedFeatureName], outputs[spec.description.predictedProbabilitiesName]

def _head(params: UpdateParams = UpdateParams(), seed: int = 0):
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(len(LABELS), E)).astype(np.float32)
    bias = rng.normal(size=len(LABELS)).astype(np.float32)
    return build_updatable_head(weight, bias, LABELS, params), weight, bias


def _nn(spec: Model_pb2.Model):
    return spec.neuralNetworkClassifier


def _rules(spec) -> list[str]:
    return [v.rule for v in lint_spec(spec)]


# --- the head we build ---------------------------------------------------------------------------


def test_head_spec_is_updatable_and_wired_for_cross_entropy():
    spec, _, _ = _head()
    nn = _nn(spec)
    assert spec.specificationVersion >= 4 and spec.isUpdatable
    layers = {layer.name: layer for layer in nn.layers}
    assert [layer.WhichOneof("layer") for layer in nn.layers] == ["innerProduct", "softmax"]
    classifier = layers["classifier"]
    assert classifier.isUpdatable
    assert classifier.innerProduct.weights.isUpdatable and classifier.innerProduct.bias.isUpdatable
    assert not layers["softmax"].isUpdatable
    (loss,) = nn.updateParams.lossLayers
    assert loss.categoricalCrossEntropyLossLayer.input == "label_probs" == layers["softmax"].output[0]
    assert list(nn.stringClassLabels.vector) == LABELS
    assert spec.description.predictedFeatureName == "label"
    training = {f.name: f.type for f in spec.description.trainingInput}
    assert set(training) == {"pooled_embedding", "label"}
    assert training["label"].WhichOneof("Type") == "stringType"
    assert list(training["pooled_embedding"].multiArrayType.shape) == [E]
    assert spec.description.input[0].type.multiArrayType.dataType == Model_pb2.ArrayFeatureType.FLOAT32
    assert training["pooled_embedding"].multiArrayType.dataType == Model_pb2.ArrayFeatureType.FLOAT32
    assert lint_spec(spec) == []


def test_head_sgd_parameters_defaults_ranges_and_sets():
    spec, _, _ = _head(UpdateParams(learning_rate=0.003, batch_size=6, epochs=7, momentum=0.5))
    update = _nn(spec).updateParams
    sgd = update.optimizer.sgdOptimizer
    assert sgd.learningRate.defaultValue == pytest.approx(0.003)
    assert (sgd.learningRate.range.minValue, sgd.learningRate.range.maxValue) == (1e-6, 1.0)
    assert sgd.miniBatchSize.defaultValue == 6
    assert list(sgd.miniBatchSize.set.values) == [1, 2, 4, 6, 8, 16, 32, 64]
    assert sgd.momentum.defaultValue == 0.5
    assert update.epochs.defaultValue == 7 and 7 in update.epochs.set.values
    assert update.shuffle.defaultValue is True


def test_head_adam_parameters():
    spec, _, _ = _head(UpdateParams(optimizer="adam", learning_rate=0.001, beta1=0.8))
    adam = _nn(spec).updateParams.optimizer.adamOptimizer
    assert adam.learningRate.defaultValue == pytest.approx(0.001)
    assert adam.beta1.defaultValue == pytest.approx(0.8)
    assert adam.beta2.defaultValue == pytest.approx(0.999)
    assert adam.eps.defaultValue == pytest.approx(1e-8)
    assert lint_spec(spec) == []


def test_head_weights_and_prediction_match_torch():
    spec, weight, bias = _head(seed=3)
    ip = _nn(spec).layers[0].innerProduct
    assert np.array_equal(np.asarray(ip.weights.floatValue, dtype=np.float32).reshape(weight.shape), weight)
    assert np.array_equal(np.asarray(ip.bias.floatValue, dtype=np.float32), bias)
    pooled = np.random.default_rng(4).normal(size=E).astype(np.float32)
    expected = torch.softmax(torch.from_numpy(weight) @ torch.from_numpy(pooled) + torch.from_numpy(bias), dim=0)
    label, probs = _predict(spec, {"pooled_embedding": pooled})
    assert max(abs(probs[name] - float(expected[i])) for i, name in enumerate(LABELS)) < 1e-6
    assert label == LABELS[int(expected.argmax())]


def test_head_survives_save_and_reload(tmp_path):
    spec, _, _ = _head()
    path = tmp_path / "head.mlmodel"
    ct.models.MLModel(spec, skip_model_load=True).save(str(path))
    reloaded = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    assert reloaded.isUpdatable and lint_spec(reloaded) == []
    assert reloaded.SerializeToString() == spec.SerializeToString()


def test_head_rejects_label_count_mismatch():
    with pytest.raises(ValueError, match="labels"):
        build_updatable_head(np.zeros((2, E), np.float32), np.zeros(2, np.float32), LABELS, UpdateParams())


# --- update parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, field", [
    (dict(learning_rate=2.0), "learning_rate"),
    (dict(learning_rate=0.0, learning_rate_range=(1e-6, 1.0)), "learning_rate"),
    (dict(batch_size=0), "batch_size"),
    (dict(epochs=0), "epochs"),
    (dict(momentum=1.5), "momentum"),
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(learning_rate_range=(0.5, 0.1)), "learning_rate_range"),
])
def test_update_params_reject_values_the_device_would(kwargs, field):
    with pytest.raises(UpdateParamsError, match=field):
        UpdateParams(**kwargs)


def test_update_params_always_allow_the_default():
    params = UpdateParams(batch_size=12, epochs=3)
    assert 12 in params.allowed_batch_sizes and 3 in params.allowed_epochs


# --- rules that must fail ------------------------------------------------------------------------


def _builder_head(with_reshape: bool = False) -> Model_pb2.Model:
    """innerProduct [-> reshape] -> softmax -> CE loss, made with the plain coremltools builder."""
    builder = NeuralNetworkBuilder([("x", datatypes.Array(E))], [("probs", datatypes.Array(3))],
                                   mode="classifier")
    rng = np.random.default_rng(0)
    builder.add_inner_product("dense", rng.normal(size=(3, E)).astype(np.float32), np.zeros(3, np.float32),
                              E, 3, True, "x", "logits")
    source = "logits"
    if with_reshape:
        builder.add_reshape("reshape", "logits", "reshaped", (3, 1, 1), 0)
        source = "reshaped"
    builder.add_softmax("softmax", source, "probs")
    builder.set_class_labels(LABELS, predicted_feature_name="label", prediction_blob="probs")
    builder.make_updatable(["dense"])
    builder.set_categorical_cross_entropy_loss("loss", input="probs")
    builder.set_sgd_optimizer(SgdParams(lr=0.01, batch=4))
    builder.set_epochs(2)
    return builder.spec


def test_builder_head_without_tricks_passes():
    assert lint_spec(_builder_head()) == []


def test_softmax_nd_before_the_loss_names_the_rule():
    spec = _builder_head()
    softmax = spec.neuralNetworkClassifier.layers[1]
    softmax.softmaxND.axis = -1  # what ct.convert(convert_to="neuralnetwork") emits
    assert softmax.WhichOneof("layer") == "softmaxND"
    with pytest.raises(UpdatableRuleError) as info:
        check_spec(spec)
    # Core ML stops at the loss check; softmaxND is also not back-propagatable, so both are named.
    assert info.value.rules == ["ce-input-from-softmax", "backpropagation-path"]
    assert "ce-input-from-softmax" in str(info.value) and "softmaxND" in str(info.value)


def test_reshape_between_updatable_layer_and_loss_names_the_rule():
    spec = _builder_head(with_reshape=True)  # coremltools' Python side accepts this
    with pytest.raises(UpdatableRuleError) as info:
        check_spec(spec)
    assert info.value.rules == ["backpropagation-path"]
    assert "'reshape' (reshape)" in str(info.value) and "'dense'" in str(info.value)


def test_learning_rate_default_outside_its_range_names_the_rule():
    spec = _builder_head()
    spec.neuralNetworkClassifier.updateParams.optimizer.sgdOptimizer.learningRate.defaultValue = 2.0
    with pytest.raises(UpdatableRuleError) as info:
        check_spec(spec)
    assert info.value.rules == ["optimizer-default-in-range"]
    assert "learningRate default 2.0 is outside its range [0.0, 1.0]" in str(info.value)


@pytest.mark.parametrize("mutate, rule", [
    (lambda s: setattr(s, "specificationVersion", 3), "spec-version"),
    (lambda s: s.neuralNetworkClassifier.updateParams.optimizer.sgdOptimizer.miniBatchSize.__setattr__("defaultValue", 0),
     "mini-batch-size"),
    (lambda s: s.neuralNetworkClassifier.updateParams.optimizer.sgdOptimizer.miniBatchSize.__setattr__("defaultValue", 5),
     "mini-batch-size"),
    (lambda s: s.neuralNetworkClassifier.updateParams.ClearField("epochs"), "epochs"),
    (lambda s: s.neuralNetworkClassifier.updateParams.epochs.__setattr__("defaultValue", 3), "epochs"),
    (lambda s: s.neuralNetworkClassifier.updateParams.optimizer.ClearField("sgdOptimizer"), "optimizer"),
    (lambda s: s.neuralNetworkClassifier.layers[0].innerProduct.bias.__setattr__("isUpdatable", False),
     "updatable-weights-and-bias"),
    (lambda s: s.neuralNetworkClassifier.layers[1].__setattr__("isUpdatable", True), "updatable-layer-type"),
    (lambda s: s.neuralNetworkClassifier.layers[0].__setattr__("isUpdatable", False), "updatable-layer-present"),
    (lambda s: s.description.trainingInput.pop(), "training-inputs"),
    (lambda s: s.description.trainingInput[1].type.int64Type.SetInParent(), "training-target"),
    (lambda s: s.neuralNetworkClassifier.updateParams.lossLayers.add().CopyFrom(
        s.neuralNetworkClassifier.updateParams.lossLayers[0]), "single-loss-layer"),
    (lambda s: s.neuralNetworkClassifier.layers[1].__setattr__("name", "dense"), "unique-layer-names"),
])
def test_each_rule_is_reported_by_name(mutate, rule):
    spec = _builder_head()
    mutate(spec)
    assert rule in RULES
    assert rule in _rules(spec)


def test_fp16_weights_in_updatable_layer_are_rejected():
    spec = _builder_head()
    weights = spec.neuralNetworkClassifier.layers[0].innerProduct.weights
    values = np.asarray(weights.floatValue, dtype=np.float16)
    weights.ClearField("floatValue")
    weights.float16Value = values.tobytes()
    assert "updatable-weights-fp32" in _rules(spec)


def test_updatable_ml_program_is_rejected():
    program = Model_pb2.Model(specificationVersion=6, isUpdatable=True)
    program.mlProgram.version = 1
    assert _rules(program) == ["updatable-model-type"]


def test_pipeline_with_updatable_first_model_is_rejected():
    head = _builder_head()
    pipeline = Model_pb2.Model(specificationVersion=4, isUpdatable=True)
    pipeline.pipelineClassifier.pipeline.models.add().CopyFrom(head)
    frozen = pipeline.pipelineClassifier.pipeline.models.add()
    frozen.CopyFrom(head)
    frozen.isUpdatable = False
    assert "pipeline-updatable-last-model" in _rules(pipeline)


def test_head_names_are_the_manifest_contract():
    names = HeadNames()
    assert (names.input, names.label, names.probabilities) == ("pooled_embedding", "label", "label_probs")


def test_command_line_checks_saved_files(tmp_path, capsys):
    from export.updatable.rules import main

    good = tmp_path / "good.mlmodel"
    ct.models.MLModel(_head()[0], skip_model_load=True).save(str(good))
    bad_spec = _builder_head(with_reshape=True)
    bad = tmp_path / "bad.mlmodel"
    ct.models.MLModel(bad_spec, skip_model_load=True).save(str(bad))
    assert main([str(good)]) == 0
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"ok   {good}" in out and f"FAIL {bad}" in out and "[backpropagation-path]" in out


def test_rank_two_head_input_breaks_the_input_rank_rule():
    spec, _, _ = _head()
    assert "input-rank" not in _rules(spec)
    feature = spec.description.input[0]
    feature.type.multiArrayType.shape[:] = [1, E]  # the "(1, 768) vs (768)" trap
    assert "input-rank" in _rules(spec)
