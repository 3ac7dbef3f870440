"""Single-file updatable model: frozen NeuralNetwork encoder + updatable head, as a pipeline.

Core ML allows an updatable pipeline when only its *last* model is updatable, and every model
in it must be a NeuralNetwork (an ML Program cannot sit in an updatable pipeline's training path).
The encoder's layers (batchedMatMul, softmaxND, layer norm, ...) are not back-propagatable, but
they need not be: back-propagation stops at the head, which is a separate model. So the pipeline
meets the same rules as the standalone head; :func:`build_updatable_pipeline` lints it to prove it.

Trade-offs recorded in the manifest: inputs are Float32 token ids (NeuralNetwork has no int32
arrays), weights are fp32 (the file duplicates the encoder), and a NeuralNetwork may run in fp16
on GPU/ANE - so for a model whose fp16 check failed, load it with ``computeUnits = .cpuOnly``.
"""

from __future__ import annotations

from typing import Sequence

import coremltools as ct
from coremltools.models import datatypes
from coremltools.models.pipeline import PipelineClassifier
from coremltools.proto import Model_pb2

from export.convert.coreml import ATTENTION_MASK, INPUT_IDS
from export.updatable.head import HeadNames
from export.updatable.rules import check_spec


def build_updatable_pipeline(encoder_nn: Model_pb2.Model, head: Model_pb2.Model, labels: Sequence[str],
                             max_length: int, names: HeadNames = HeadNames()) -> Model_pb2.Model:
    """Chain the NN encoder and the updatable head; lint; return the spec."""
    if encoder_nn.WhichOneof("Type") not in ("neuralNetwork", "neuralNetworkRegressor"):
        raise ValueError("the pipeline encoder must be a NeuralNetwork spec (convert_to='neuralnetwork')")
    token = datatypes.Array(1, max_length)
    inputs = [(INPUT_IDS, token), (ATTENTION_MASK, token)]
    pipeline = PipelineClassifier(
        inputs,
        [str(label) for label in labels],
        output_features=[names.label, names.probabilities],
        training_features=inputs + [(names.label, datatypes.String())],
    )
    pipeline.add_model(encoder_nn)
    pipeline.add_model(head)
    pipeline.make_updatable()
    spec = pipeline.spec
    spec.specificationVersion = max(encoder_nn.specificationVersion, head.specificationVersion, 4)
    ct.utils.convert_double_to_float_multiarray_type(spec)
    check_spec(spec, what="pipeline")
    return spec
