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

from export.nnexec.context import LayerCall

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """Exact erf (math.erf per element): NumPy has none, and an approximation would eat into parity."""
    return _erf(np.asarray(x, dtype=np.float64)).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _per_channel(call: LayerCall, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A [C] or [1] parameter broadcast along axis -3 (the proto's "channel")."""
    if values.size == 1:
        return values.reshape(())
    if x.ndim < 3 or x.shape[-3] != values.size:
        raise call.fail(f"parameter of length {values.size} does not match channel axis -3 of {x.shape}")
    return values.reshape(-1, 1, 1)


def activation(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    p = call.params
    kind = p.WhichOneof("NonlinearityType")
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "linear":
            y = p.linear.alpha * x + p.linear.beta
        elif kind == "ReLU":
            y = np.maximum(x, 0)
        elif kind == "leakyReLU":
            y = np.where(x >= 0, x, p.leakyReLU.alpha * x)
        elif kind == "thresholdedReLU":
            y = np.where(x >= p.thresholdedReLU.alpha, x, 0)
        elif kind == "PReLU":
            alpha = _per_channel(call, call.weight("PReLU.alpha"), x)
            y = np.where(x >= 0, x, alpha * x)
        elif kind == "tanh":
            y = np.tanh(x)
        elif kind == "scaledTanh":
            y = p.scaledTanh.alpha * np.tanh(p.scaledTanh.beta * x)
        elif kind == "sigmoid":
            y = _sigmoid(x)
        elif kind == "sigmoidHard":
            y = np.clip(p.sigmoidHard.alpha * x + p.sigmoidHard.beta, 0, 1)
        elif kind == "ELU":
            y = np.where(x >= 0, x, p.ELU.alpha * (np.exp(x) - 1))
        elif kind == "softsign":
            y = x / (1 + np.abs(x))
        elif kind == "softplus":
            y = np.logaddexp(0, x)
        elif kind == "parametricSoftplus":
            alpha = _per_channel(call, call.weight("parametricSoftplus.alpha"), x)
            beta = _per_channel(call, call.weight("parametricSoftplus.beta"), x)
            y = alpha * np.logaddexp(0, beta * x)
        else:
            raise call.unsupported(f"activation {kind!r}")
    return [np.asarray(y, dtype=np.float32)]


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


def unary(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    p = call.params
    scale = p.scale if p.scale != 0 else 1.0
    eps = p.epsilon if p.epsilon != 0 else 1e-6
    x = scale * inputs[0] + p.shift
    ops = p.Operation
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        table: dict[int, Callable[[np.ndarray], np.ndarray]] = {
            ops.Value("SQRT"): np.sqrt,
            ops.Value("RSQRT"): lambda v: 1.0 / np.sqrt(v + eps),
            ops.Value("INVERSE"): lambda v: 1.0 / (v + eps),
            ops.Value("POWER"): lambda v: np.power(v, p.alpha),
            ops.Value("EXP"): np.exp,
            ops.Value("LOG"): np.log,
            ops.Value("ABS"): np.abs,
            ops.Value("THRESHOLD"): lambda v: np.maximum(v, p.alpha),
        }
        if p.type not in table:
            raise call.unsupported(f"unary operation {p.type}")
        return [np.asarray(table[p.type](x), dtype=np.float32)]


def _unary_fn(fn: Callable[[np.ndarray], np.ndarray]):
    def run(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return [np.asarray(fn(inputs[0]), dtype=np.float32)]

    return run


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def clip(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [np.minimum(np.maximum(inputs[0], call.params.minVal), call.params.maxVal)]


def clamped_relu(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    p = call.params
    return [np.minimum(p.beta, np.where(x >= 0, x, p.alpha * x)).astype(np.float32)]


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


def average(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [reduce(np.add, inputs) / len(inputs)]


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


def _compare(op: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """Comparison layers: a second input, or the scalar ``alpha`` when there is only one."""

    def run(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
        other = inputs[1] if len(inputs) > 1 else np.float32(call.params.alpha)
        return [op(inputs[0], other).astype(np.float32)]

    return run


def _logical(op: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def run(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
        return [op(inputs[0] != 0, inputs[1] != 0).astype(np.float32)]

    return run


def logical_not(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [(inputs[0] == 0).astype(np.float32)]


def where_broadcastable(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    cond, a, b = inputs
    return [np.where(cond != 0, a, b).astype(np.float32)]


def where_non_zero(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [np.argwhere(inputs[0] != 0).astype(np.float32)]


def fill_like(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [np.full(inputs[0].shape, call.params.value, dtype=np.float32)]


def fill_static(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [np.full(tuple(int(v) for v in call.params.targetShape), call.params.value, dtype=np.float32)]


def fill_dynamic(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    shape = tuple(int(v) for v in np.asarray(inputs[0]).ravel())
    return [np.full(shape, call.params.value, dtype=np.float32)]


def range_static(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    p = call.params
    return [np.arange(p.startValue, p.endValue, p.stepSizeValue, dtype=np.float32)]


def range_dynamic(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    p = call.params
    end = float(np.asarray(inputs[0]).ravel()[0])
    start = float(np.asarray(inputs[1]).ravel()[0]) if len(inputs) > 1 else p.startValue
    step = float(np.asarray(inputs[2]).ravel()[0]) if len(inputs) > 2 else p.stepSizeValue
    return [np.arange(start, end, step, dtype=np.float32)]


def _band(x: np.ndarray, lower: int, upper: int) -> np.ndarray:
    m, n = x.shape[-2:]
    rows = np.arange(m)[:, None]
    cols = np.arange(n)[None, :]
    keep = ((lower < 0) | (rows - cols <= lower)) & ((upper < 0) | (cols - rows <= upper))
    return np.where(keep, x, 0).astype(np.float32)


def matrix_band_part(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [_band(inputs[0], call.params.numLower, call.params.numUpper)]


def lower_triangular(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [np.tril(inputs[0], call.params.k).astype(np.float32)]


def upper_triangular(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [np.triu(inputs[0], call.params.k).astype(np.float32)]


def one_hot(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    p = call.params
    x = np.rint(inputs[0]).astype(np.int64)
    depth = int(np.asarray(inputs[1]).ravel()[0]) if len(inputs) > 1 else int(p.oneHotVectorSize)
    hot = (x[..., None] == np.arange(depth)).astype(np.float32)
    out = np.where(hot > 0, p.onValue, p.offValue).astype(np.float32)
    axis = p.axis if p.axis >= 0 else p.axis + out.ndim
    return [np.moveaxis(out, -1, axis)]


HANDLERS = {
    "activation": activation,
    "gelu": gelu,
    "unary": unary,
    "erf": _unary_fn(erf),
    "sin": _unary_fn(np.sin),
    "cos": _unary_fn(np.cos),
    "tan": _unary_fn(np.tan),
    "asin": _unary_fn(np.arcsin),
    "acos": _unary_fn(np.arccos),
    "atan": _unary_fn(np.arctan),
    "sinh": _unary_fn(np.sinh),
    "cosh": _unary_fn(np.cosh),
    "tanh": _unary_fn(np.tanh),
    "asinh": _unary_fn(np.arcsinh),
    "acosh": _unary_fn(np.arccosh),
    "atanh": _unary_fn(np.arctanh),
    "exp2": _unary_fn(np.exp2),
    "ceil": _unary_fn(np.ceil),
    "floor": _unary_fn(np.floor),
    "round": _unary_fn(_round_half_away),
    "sign": _unary_fn(np.sign),
    "clip": clip,
    "clampedReLU": clamped_relu,
    "add": _variadic(np.add),
    "multiply": _variadic(np.multiply),
    "max": _variadic(np.maximum),
    "min": _variadic(np.minimum),
    "average": average,
    "addBroadcastable": _binary(np.add),
    "subtractBroadcastable": _binary(np.subtract),
    "multiplyBroadcastable": _binary(np.multiply),
    "divideBroadcastable": _binary(np.divide),
    "powBroadcastable": _binary(np.power),
    "maxBroadcastable": _binary(np.maximum),
    "minBroadcastable": _binary(np.minimum),
    "modBroadcastable": _binary(np.mod),
    "floorDivBroadcastable": _binary(np.floor_divide),
    "greaterThan": _compare(np.greater),
    "greaterEqual": _compare(np.greater_equal),
    "lessThan": _compare(np.less),
    "lessEqual": _compare(np.less_equal),
    "equal": _compare(np.equal),
    "notEqual": _compare(np.not_equal),
    "logicalAnd": _logical(np.logical_and),
    "logicalOr": _logical(np.logical_or),
    "logicalXor": _logical(np.logical_xor),
    "logicalNot": logical_not,
    "whereBroadcastable": where_broadcastable,
    "whereNonZero": where_non_zero,
    "fillLike": fill_like,
    "fillStatic": fill_static,
    "fillDynamic": fill_dynamic,
    "rangeStatic": range_static,
    "rangeDynamic": range_dynamic,
    "matrixBandPart": matrix_band_part,
    "lowerTriangular": lower_triangular,
    "upperTriangular": upper_triangular,
    "oneHot": one_hot,
}
