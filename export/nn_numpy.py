"""A tiny NumPy executor for the NeuralNetwork layers our updatable head uses.

coremltools cannot run predictions off macOS. Executing the *saved* spec's layers with NumPy
checks, on any machine, that the weights, layer wiring and softmax in the ``.mlmodel`` compute
what the PyTorch head computes. Only the layer types we emit are supported (innerProduct,
1x1 convolution, softmax over channels, ReLU/tanh/sigmoid/linear activations, flatten); anything
else raises, so a silent wrong answer is impossible.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from coremltools.proto import Model_pb2


class UnsupportedLayerError(NotImplementedError):
    pass


def _weights(params, shape: tuple[int, ...]) -> np.ndarray:
    if len(params.floatValue) == 0:
        raise UnsupportedLayerError("only float32 weights are supported")
    return np.asarray(params.floatValue, dtype=np.float64).reshape(shape)


def _network(spec: Model_pb2.Model):
    kind = spec.WhichOneof("Type")
    if kind not in ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor"):
        raise UnsupportedLayerError(f"model type {kind} is not a NeuralNetwork")
    return getattr(spec, kind)


def run_network(spec: Model_pb2.Model, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute the layers on rank-1 (C,) inputs (rank-5 mapping: C is the channel axis)."""
    blobs: dict[str, np.ndarray] = {name: np.asarray(value, dtype=np.float64).reshape(-1) for name, value in inputs.items()}
    for layer in _network(spec).layers:
        kind = layer.WhichOneof("layer")
        x = blobs[layer.input[0]]
        if kind == "innerProduct":
            p = layer.innerProduct
            y = _weights(p.weights, (p.outputChannels, p.inputChannels)) @ x
            if p.hasBias:
                y = y + _weights(p.bias, (p.outputChannels,))
        elif kind == "convolution":
            p = layer.convolution
            if list(p.kernelSize) not in ([1, 1], []) or p.nGroups not in (0, 1):
                raise UnsupportedLayerError(f"layer '{layer.name}': only 1x1 ungrouped convolutions")
            y = _weights(p.weights, (p.outputChannels, p.kernelChannels)) @ x
            if p.hasBias:
                y = y + _weights(p.bias, (p.outputChannels,))
        elif kind == "softmax":
            z = np.exp(x - x.max())
            y = z / z.sum()
        elif kind == "activation":
            act = layer.activation.WhichOneof("NonlinearityType")
            functions = {"ReLU": lambda v: np.maximum(v, 0.0), "tanh": np.tanh,
                         "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
                         "linear": lambda v: layer.activation.linear.alpha * v + layer.activation.linear.beta}
            if act not in functions:
                raise UnsupportedLayerError(f"layer '{layer.name}': activation {act}")
            y = functions[act](x)
        elif kind == "flatten":
            y = x
        else:
            raise UnsupportedLayerError(f"layer '{layer.name}' of type {kind}")
        blobs[layer.output[0]] = y
    return blobs


def predict_classifier(spec: Model_pb2.Model, inputs: Mapping[str, np.ndarray]) -> tuple[str, dict[str, float]]:
    """(label, {label: probability}) as Core ML's NeuralNetworkClassifier would return them."""
    nn = _network(spec)
    blobs = run_network(spec, inputs)
    probs = blobs[nn.labelProbabilityLayerName]
    labels = list(nn.stringClassLabels.vector) or [str(v) for v in nn.int64ClassLabels.vector]
    table = {label: float(p) for label, p in zip(labels, probs)}
    return labels[int(np.argmax(probs))], table
