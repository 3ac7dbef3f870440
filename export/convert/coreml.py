"""Trace the shell and convert it to Core ML: Classifier and Encoder ML Programs, NN encoder.

Inputs are ``input_ids`` and ``attention_mask``, int32, shape (1, max_length): what a tokenizer
padded to max_length produces, with batch 1 as an app classifies one text at a time. ML Programs
honour the requested compute precision (fp32 or fp16); ``minimum_deployment_target`` is iOS 15, the
first with ML Programs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import torch
import coremltools as ct
from coremltools.proto import Model_pb2

from export.shell.common import FP16_MASK_VALUE, ClassifierProbabilities, PooledEncoder

Precision = Literal["fp32", "fp16"]

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
POOLED = "pooled_embedding"
LABEL = "label"
#: coremltools names an ML Program classifier's probability output ``<predicted_feature>_probs``.
PROBABILITIES = "label_probs"


@dataclass(frozen=True)
class ModelMetadata:
    """What Xcode shows in the model's General / Metadata tabs; values of ``user_defined`` are strings."""

    short_description: str
    version: str = "1.0"
    author: str = ""
    license: str = ""
    user_defined: dict[str, str] = field(default_factory=dict)
    feature_descriptions: dict[str, str] = field(default_factory=dict)


def apply_metadata(model: ct.models.MLModel, meta: ModelMetadata) -> None:
    model.short_description = meta.short_description
    model.version = meta.version
    if meta.author:
        model.author = meta.author
    if meta.license:
        model.license = meta.license
    for key, value in meta.user_defined.items():
        model.user_defined_metadata[key] = str(value)
    inputs = {f.name for f in model.get_spec().description.input}
    outputs = {f.name for f in model.get_spec().description.output}
    for name, text in meta.feature_descriptions.items():
        if name in inputs:
            model.input_description[name] = text
        elif name in outputs:
            model.output_description[name] = text


def trace(module: torch.nn.Module, max_length: int) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` with int32 (1, L) example inputs (the dtype the Core ML inputs use)."""
    ids = torch.zeros((1, max_length), dtype=torch.int32)
    mask = torch.ones((1, max_length), dtype=torch.int32)
    with torch.no_grad():
        return torch.jit.trace(module.eval(), (ids, mask), check_trace=False)


def token_inputs(max_length: int, dtype=np.int32) -> list[ct.TensorType]:
    return [
        ct.TensorType(name=INPUT_IDS, shape=(1, max_length), dtype=dtype),
        ct.TensorType(name=ATTENTION_MASK, shape=(1, max_length), dtype=dtype),
    ]


def shell_for_precision(shell: torch.nn.Module, precision: Precision) -> torch.nn.Module:
    """fp16 graphs get a finite fp16 mask value (fp32's min becomes -inf, and 0 * -inf = NaN)."""
    if precision == "fp32":
        return shell
    copy_ = copy.deepcopy(shell)
    copy_.set_mask_value(FP16_MASK_VALUE)
    return copy_


def _precision(precision: Precision):
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
    return ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16


def convert_classifier(shell: torch.nn.Module, labels: Sequence[str], max_length: int,
                       precision: Precision) -> ct.models.MLModel:
    """tokens -> ``label`` (String) + ``label_probs`` (dictionary label -> probability)."""
    traced = trace(ClassifierProbabilities(shell_for_precision(shell, precision)), max_length)
    return ct.convert(
        traced,
        inputs=token_inputs(max_length),
        classifier_config=ct.ClassifierConfig([str(label) for label in labels], predicted_feature_name=LABEL),
        convert_to="mlprogram",
        compute_precision=_precision(precision),
        minimum_deployment_target=ct.target.iOS15,
    )


def convert_encoder(shell: torch.nn.Module, max_length: int, precision: Precision) -> ct.models.MLModel:
    """tokens -> ``pooled_embedding`` float32 (E,), the updatable head's input."""
    traced = trace(PooledEncoder(shell_for_precision(shell, precision)), max_length)
    return ct.convert(
        traced,
        inputs=token_inputs(max_length),
        outputs=[ct.TensorType(name=POOLED, dtype=np.float32)],
        convert_to="mlprogram",
        compute_precision=_precision(precision),
        minimum_deployment_target=ct.target.iOS15,
    )


def convert_encoder_neuralnetwork(shell: torch.nn.Module, max_length: int, embedding_size: int,
                                  fp16_safe: bool) -> Model_pb2.Model:
    """The encoder as a NeuralNetwork spec (fp32 weights), for the updatable pipeline.

    NeuralNetwork models take Float32 multi-arrays: coremltools turns the int32 token inputs into
    Float32 (ids up to 2^24 are exact). The output's shape is left empty by the converter; it is set
    to (E,) so the pipeline's type check matches it with the head's input.

    A NeuralNetwork has no compute-precision setting: on GPU/ANE it runs in fp16. If the fp16 check
    passed (``fp16_safe``) the graph gets the fp16-safe mask value so it works on every compute unit;
    otherwise it keeps float32's minimum (exact masking) and must run ``cpuOnly`` (the manifest says so).
    """
    traced = trace(PooledEncoder(shell_for_precision(shell, "fp16" if fp16_safe else "fp32")), max_length)
    model = ct.convert(
        traced,
        inputs=token_inputs(max_length),
        outputs=[ct.TensorType(name=POOLED)],
        convert_to="neuralnetwork",
    )
    spec = model.get_spec()
    for output in spec.description.output:
        if output.name == POOLED:
            output.type.multiArrayType.ClearField("shape")
            output.type.multiArrayType.shape.append(embedding_size)
            output.type.multiArrayType.dataType = Model_pb2.ArrayFeatureType.FLOAT32
    return spec
