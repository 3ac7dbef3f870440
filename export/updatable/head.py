"""The updatable classifier head: pooled embedding + label -> SGD/Adam update on device.

Core ML trains only NeuralNetwork models, so the head is built directly with
``NeuralNetworkBuilder`` (no torch conversion, which would emit ``softmaxND`` and rename outputs):

    pooled_embedding (E,) float32 -> innerProduct "classifier" (E -> C) -> softmax -> label_probs
                                                           classifier outputs: label (String), label_probs

This is FACTS.md recipe "innerProduct + plain softmax". The input is rank 1 (E,) under the classic
rank-5 mapping, the shape Core ML's own updatable examples use, and exactly the Encoder's output
shape, so the iOS side passes the encoder output through unchanged. The loss is categorical
cross-entropy on the softmax output; its target is the ``label`` input typed String like the class
labels. Weights come from the distilled student's ``classifier.weight`` / ``classifier.bias``.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import coremltools as ct
from coremltools.models import datatypes
from coremltools.models.neural_network import AdamParams, NeuralNetworkBuilder, SgdParams
from coremltools.proto import Model_pb2

from export.updatable.params import UpdateParams
from export.updatable.rules import check_spec


@dataclass(frozen=True)
class HeadNames:
    """Feature and layer names; the manifest repeats them for the iOS side."""

    input: str = "pooled_embedding"
    label: str = "label"
    probabilities: str = "label_probs"
    logits: str = "logits"
    layer: str = "classifier"
    softmax: str = "softmax"
    loss: str = "loss"


def build_updatable_head(weight: np.ndarray, bias: np.ndarray, labels: Sequence[str], params: UpdateParams,
                         names: HeadNames = HeadNames()) -> Model_pb2.Model:
    """A linted, updatable NeuralNetworkClassifier spec (raises ``UpdatableRuleError`` if not loadable)."""
    weight = np.ascontiguousarray(weight, dtype=np.float32)
    bias = np.ascontiguousarray(bias, dtype=np.float32)
    labels = [str(label) for label in labels]
    num_classes, embedding = weight.shape
    if bias.shape != (num_classes,):
        raise ValueError(f"classifier.bias shape {bias.shape} does not match classifier.weight {weight.shape}")
    if len(labels) != num_classes:
        raise ValueError(f"{len(labels)} labels in config.json id2label but classifier.weight has {num_classes} rows")
    if len(set(labels)) != len(labels):
        raise ValueError(f"class labels must be unique, got {labels}")

    builder = NeuralNetworkBuilder(
        [(names.input, datatypes.Array(embedding))],
        [(names.probabilities, datatypes.Array(num_classes))],
        mode="classifier",
    )
    builder.add_inner_product(names.layer, weight, bias, embedding, num_classes, True, names.input, names.logits)
    builder.add_softmax(names.softmax, names.logits, names.probabilities)
    builder.set_class_labels(labels, predicted_feature_name=names.label, prediction_blob=names.probabilities)
    builder.make_updatable([names.layer])
    with contextlib.redirect_stdout(io.StringIO()):  # the builder prints the target it adds
        builder.set_categorical_cross_entropy_loss(names.loss, input=names.probabilities)
    _set_optimizer(builder, params)
    builder.set_epochs(params.epochs, list(params.allowed_epochs))
    builder.set_shuffle(params.seed)
    if not params.shuffle:
        builder.spec.neuralNetworkClassifier.updateParams.shuffle.defaultValue = False
    spec = builder.spec
    # Builder-made features are DOUBLE; the encoder emits Float32 and iOS code builds Float32 arrays.
    ct.utils.convert_double_to_float_multiarray_type(spec)
    check_spec(spec, what="head")
    return spec


def _set_optimizer(builder: NeuralNetworkBuilder, params: UpdateParams) -> None:
    low, high = params.learning_rate_range
    u_low, u_high = params.unit_range
    if params.optimizer == "sgd":
        sgd = SgdParams(lr=params.learning_rate, batch=params.batch_size, momentum=params.momentum)
        sgd.set_lr(params.learning_rate, low, high)
        sgd.set_batch(params.batch_size, list(params.allowed_batch_sizes))
        sgd.set_momentum(params.momentum, u_low, u_high)
        builder.set_sgd_optimizer(sgd)
    else:
        adam = AdamParams(lr=params.learning_rate, batch=params.batch_size, beta1=params.beta1,
                          beta2=params.beta2, eps=params.eps)
        adam.set_lr(params.learning_rate, low, high)
        adam.set_batch(params.batch_size, list(params.allowed_batch_sizes))
        adam.set_beta1(params.beta1, u_low, u_high)
        adam.set_beta2(params.beta2, u_low, u_high)
        adam.set_eps(params.eps, u_low, u_high)
        builder.set_adam_optimizer(adam)
