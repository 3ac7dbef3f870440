"""What the executor refuses, and that the messages name the culprit."""

from __future__ import annotations

import numpy as np
import pytest

from export.runtime.neuralnetwork.errors import InputError, UnsupportedLayerError, UnsupportedModelError
from export.runtime.neuralnetwork.pipelines import PipelineExecutor, load_executor
from export.runtime.neuralnetwork.registry import supported_layer_types
from tests.helpers.nnexec_helpers import make_builder, rand


def test_unknown_layer_type_names_layer_and_type():
    nb = make_builder([("x", (3,))])
    nb.add_activation("act", "RELU", "x", "out")
    nb.spec.neuralNetwork.layers[0].ClearField("activation")  # a layer whose oneof is unset
    with pytest.raises(UnsupportedLayerError, match=r"layer 'act' of type '<unset>'"):
        load_executor(nb.spec)


def test_a_layer_kind_export_never_writes_is_refused_naming_it():
    nb = make_builder([("x", (1, 3))])
    nb.add_random_normal_like("noise", "x", "out")
    with pytest.raises(UnsupportedLayerError, match=r"'noise' of type 'randomNormalLike'.*not a layer kind export writes"):
        load_executor(nb.spec)


def test_input_of_the_wrong_shape_is_refused_like_on_device():
    nb = make_builder([("x", (1, 3))])
    nb.add_activation("act", "RELU", "x", "out")
    ex = load_executor(nb.spec)
    with pytest.raises(InputError, match=r"'x' has shape \(3,\) but the model declares \(1, 3\)"):
        ex.predict({"x": rand(3)})
    with pytest.raises(InputError, match="missing input 'x'"):
        ex.predict({"y": rand(1, 3)})


def test_preprocessing_is_rejected_clearly():
    nb = make_builder([("x", (3,))])
    nb.add_activation("act", "RELU", "x", "out")
    pre = nb.spec.neuralNetwork.preprocessing.add()
    pre.featureName = "x"
    pre.scaler.channelScale = 2.0
    with pytest.raises(UnsupportedModelError, match="preprocessing on \\['x'\\]"):
        load_executor(nb.spec)


def test_ml_program_is_not_a_neural_network():
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.mlProgram.SetInParent()
    with pytest.raises(UnsupportedModelError, match="'mlProgram' is not a NeuralNetwork"):
        load_executor(spec)


def test_supported_types_cover_what_bert_conversions_emit():
    emitted = {"expandDims", "activation", "loadConstantND", "add", "multiply", "embeddingND", "reshapeStatic", "mvn",
               "scale", "innerProduct", "transpose", "batchedMatmul", "addBroadcastable", "softmaxND", "gelu",
               "sliceStatic", "slice", "padding", "concatND", "multiplyBroadcastable"}
    assert emitted <= set(supported_layer_types())


def test_pipeline_feeds_each_stage_the_features_so_far(tmp_path):
    from coremltools.models.pipeline import Pipeline
    from coremltools.models import datatypes

    first = make_builder([("x", (2, 3))], outputs=("h",))
    first.add_activation("double", "LINEAR", "x", "h", params=[2.0, 0.0])
    second = make_builder([("h", (2, 3))], outputs=("y",))
    second.add_elementwise("sq", ["h", "h"], "y", mode="MULTIPLY")
    first.spec.description.output[0].type.multiArrayType.shape.extend([2, 3])
    pipe = Pipeline([("x", datatypes.Array(2, 3))], [("y", datatypes.Array(2, 3))])
    pipe.add_model(first.spec)
    pipe.add_model(second.spec)
    ex = load_executor(pipe.spec)
    assert isinstance(ex, PipelineExecutor)
    x = rand(2, 3)
    np.testing.assert_allclose(ex.predict({"x": x})["y"], (2 * x) ** 2, rtol=1e-6)
    assert set(ex.intermediates({"x": x})) >= {"0/x", "0/h", "1/h", "1/y"}
