"""The classifier's extra outputs: predicted label and the label -> probability dictionary.

A NeuralNetworkClassifier's layers end in a probability blob; Core ML then adds the
``predictedFeatureName`` output (the arg-max label, String or Int64 like the class labels) and the
``predictedProbabilitiesName`` dictionary. Which blob holds the probabilities: the
``labelProbabilityLayerName`` when set, else a blob named like the probabilities output, else the
last layer's output (what coremltools' builder assumes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from export.runtime.neuralnetwork.errors import UnsupportedModelError

Label = Union[str, int]


@dataclass(frozen=True)
class ClassifierInfo:
    labels: tuple
    probability_blob: str
    label_output: str
    probabilities_output: str

    def outputs(self, probabilities: np.ndarray) -> dict[str, Any]:
        probs = np.asarray(probabilities, dtype=np.float64).ravel()
        if probs.size != len(self.labels):
            raise UnsupportedModelError(
                f"probability blob {self.probability_blob!r} holds {probs.size} values for {len(self.labels)} labels")
        result: dict[str, Any] = {}
        if self.label_output:
            result[self.label_output] = self.labels[int(np.argmax(probs))]
        if self.probabilities_output:
            result[self.probabilities_output] = {label: float(p) for label, p in zip(self.labels, probs)}
        return result

    def index_of(self, label: Label) -> int:
        """Class index of a label as iOS would pass it (str for String labels, int for Int64)."""
        for i, known in enumerate(self.labels):
            if known == label:
                return i
        raise KeyError(f"label {label!r} is not one of the model's class labels {list(self.labels)}")


def class_labels(network: Any) -> tuple:
    kind = network.WhichOneof("ClassLabels")
    if kind == "stringClassLabels":
        return tuple(str(v) for v in network.stringClassLabels.vector)
    if kind == "int64ClassLabels":
        return tuple(int(v) for v in network.int64ClassLabels.vector)
    raise UnsupportedModelError("classifier has no class labels")


def classifier_info(spec: Any, network: Any, produced_blobs: set) -> ClassifierInfo:
    desc = spec.description
    blob = network.labelProbabilityLayerName
    if not blob:
        if desc.predictedProbabilitiesName in produced_blobs:
            blob = desc.predictedProbabilitiesName
        elif len(network.layers):
            blob = network.layers[-1].output[0]
    if blob not in produced_blobs:
        raise UnsupportedModelError(f"classifier probability blob {blob!r} is not produced by any layer")
    return ClassifierInfo(class_labels(network), blob, desc.predictedFeatureName, desc.predictedProbabilitiesName)
