"""Element-wise layers: activations, gelu, unary maths, arithmetic, comparisons, logic, fills, where.

Formulas are the ones written in NeuralNetwork.proto; where the proto leaves a default implicit
(``unary.scale`` 0 means 1, ``epsilon`` 0 means 1e-6) we apply the default it documents.
Comparisons and logic return 1.0 / 0.0 floats, as Core ML does.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Callable, Sequence

import numpy as np

from export.runtime.neuralnetwork.context import LayerCall

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """Exact erf (math.erf per element): NumPy has none, and an approximation would eat into parity."""
    return _erf(np.asarray(x, dtype=np.float64)).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


#: the activation kinds our NeuralNetwork encoders contain (tests/export/test_emitted_ops.py)
ACTIVATIONS = {
    "linear": lambda p, x: p.linear.alpha * x + p.linear.beta,  # what the converter makes of a cast
    "ReLU": lambda p, x: np.maximum(x, 0),
    "leakyReLU": lambda p, x: np.where(x >= 0, x, p.leakyReLU.alpha * x),
    "thresholdedReLU": lambda p, x: np.where(x >= p.thresholdedReLU.alpha, x, 0),
    "tanh": lambda p, x: np.tanh(x),
    "sigmoid": lambda p, x: _sigmoid(x),
    "sigmoidHard": lambda p, x: np.clip(p.sigmoidHard.alpha * x + p.sigmoidHard.beta, 0, 1),
    "softplus": lambda p, x: np.logaddexp(0, x),
}


def activation(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    kind = call.params.WhichOneof("NonlinearityType")
    if kind not in ACTIVATIONS:
        raise call.unsupported(f"activation {kind!r}")
    with np.errstate(over="ignore", invalid="ignore"):
        return [np.asarray(ACTIVATIONS[kind](call.params, inputs[0]), dtype=np.float32)]


def gelu(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    mode = call.params.mode
    if mode == call.params.EXACT:
        y = 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    elif mode == call.params.TANH_APPROXIMATION:
        y = 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    else:
        y = x * _sigmoid(1.702 * x)
    return [np.asarray(y, dtype=np.float32)]


def clip(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [np.minimum(np.maximum(inputs[0], call.params.minVal), call.params.maxVal)]


def _variadic(op: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """Legacy add/multiply/max/min: inputs are folded with ``op``; a single input meets the scalar
    ``alpha`` (add and multiply only - max/min have no alpha and need two inputs)."""

    def run(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
        if len(inputs) == 1:
            if not hasattr(call.params, "alpha"):
                raise call.fail("needs at least two inputs")
            return [op(inputs[0], np.float32(call.params.alpha))]
        try:
            return [reduce(op, inputs)]
        except ValueError as exc:
            raise call.fail(f"inputs {[a.shape for a in inputs]} do not broadcast: {exc}") from None

    return run


def _binary(op: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def run(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
        if len(inputs) != 2:
            raise call.fail(f"needs 2 inputs, got {len(inputs)}")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            try:
                return [np.asarray(op(inputs[0], inputs[1]), dtype=np.float32)]
            except ValueError as exc:
                raise call.fail(f"inputs {inputs[0].shape} and {inputs[1].shape} do not broadcast: {exc}") from None

    return run


HANDLERS = {
    "activation": activation,
    "gelu": gelu,
    "clip": clip,
    "add": _variadic(np.add),
    "multiply": _variadic(np.multiply),
    "addBroadcastable": _binary(np.add),
    "multiplyBroadcastable": _binary(np.multiply),
}
