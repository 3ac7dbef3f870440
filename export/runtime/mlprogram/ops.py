"""NumPy implementations of the MIL ops our exporter emits (and only those).

Each op gets its bound arguments (``Args``) and returns its outputs; the interpreter rounds every
output to the dtype the program declares for it, so an fp16 program stores fp16 between ops as
the device does. Inside an op the arithmetic runs in float64, so each output is the
exact result rounded once to the stored precision (for fp16, the wide-accumulator behaviour
``export.runtime.neuralnetwork``'s fp16 emulation also assumes).

The table covers every op ``tests/export/test_emitted_ops.py`` finds in every export variant
(every BERT/MobileBERT switch and activation, fp32 and fp16; emitted ⊆ supported, tested); an op
outside it is an error naming the op, raised when the package is loaded, never skipped.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import torch


def _erf(x: np.ndarray) -> np.ndarray:
    """Gauss error function (torch's kernel; NumPy has none and SciPy is not a dependency)."""
    return torch.erf(torch.from_numpy(np.ascontiguousarray(x))).numpy()


class Args:
    """The arguments bound to one op: ``one(name)``, ``many(name)``, ``get(name, default)``."""

    def __init__(self, values: Mapping[str, list]) -> None:
        self._values = values

    def many(self, name: str) -> list:
        return self._values[name]

    def one(self, name: str) -> Any:
        return self._values[name][0]

    def get(self, name: str, default: Any = None) -> Any:
        values = self._values.get(name)
        return default if not values else values[0]

    def scalar(self, name: str, default: Any = None) -> Any:
        value = self.get(name, default)
        return value.item() if isinstance(value, np.ndarray) else value


def _f(x: Any) -> np.ndarray:
    """Float inputs computed in float64; the interpreter rounds each result to the declared dtype.

    So every op's output is its exact value correctly rounded to fp32 (or fp16): the interpreter
    adds no error of its own beyond the program's storage precision.
    """
    x = np.asarray(x)
    return x.astype(np.float64) if x.dtype in (np.float16, np.float32) else x


def _binary(fn: Callable) -> Callable:
    return lambda a: [fn(_f(a.one("x")), _f(a.one("y")))]


def _unary(fn: Callable) -> Callable:
    return lambda a: [fn(_f(a.one("x")))]


def _gelu(a: Args) -> list:
    x = _f(a.one("x"))
    mode = a.scalar("mode", "EXACT")
    if mode == "EXACT":
        return [0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))]
    if mode == "TANH_APPROXIMATION":
        return [0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))]
    if mode == "SIGMOID_APPROXIMATION":
        return [x / (1.0 + np.exp(-1.702 * x))]
    raise ValueError(f"gelu mode {mode!r} is not supported")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _cast(a: Args) -> list:
    dtype = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int32": np.int32, "int64": np.int64,
             "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}[a.scalar("dtype")]
    x = np.asarray(a.one("x"))
    if np.issubdtype(dtype, np.integer) and np.issubdtype(x.dtype, np.floating):
        x = np.trunc(x)
    return [x.astype(dtype)]


def _layer_norm(a: Args) -> list:
    x = _f(a.one("x"))
    axes = tuple(int(i) for i in np.atleast_1d(a.get("axes")))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(var + float(a.scalar("epsilon", 1e-5)))
    gamma, beta = a.get("gamma"), a.get("beta")
    if gamma is not None:
        out = out * _f(gamma)
    if beta is not None:
        out = out + _f(beta)
    return [out]


def _linear(a: Args) -> list:
    out = _f(a.one("x")) @ _f(a.one("weight")).T
    bias = a.get("bias")
    return [out + _f(bias) if bias is not None else out]


def _matmul(a: Args) -> list:
    x, y = _f(a.one("x")), _f(a.one("y"))
    if a.scalar("transpose_x", False):
        x = np.swapaxes(x, -1, -2)
    if a.scalar("transpose_y", False):
        y = np.swapaxes(y, -1, -2)
    return [np.matmul(x, y)]


def _softmax(a: Args) -> list:
    x = _f(a.one("x"))
    axis = int(a.scalar("axis", -1))
    with np.errstate(invalid="ignore"):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        e = np.exp(shifted)
        return [e / np.sum(e, axis=axis, keepdims=True)]


def _reshape(a: Args) -> list:
    x = np.asarray(a.one("x"))
    shape = [int(d) for d in np.atleast_1d(a.one("shape"))]
    shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return [x.reshape(shape)]


def _transpose(a: Args) -> list:
    return [np.transpose(np.asarray(a.one("x")), [int(p) for p in a.one("perm")])]


def _gather(a: Args) -> list:
    x, indices = np.asarray(a.one("x")), np.asarray(a.one("indices")).astype(np.int64)
    axis = int(a.scalar("axis", 0))
    size = x.shape[axis]
    bad = (indices < -size) | (indices >= size)
    if bad.any():
        raise IndexError(f"gather: index {int(indices[bad].flat[0])} is outside 0..{size - 1} "
                         f"(an id beyond the embedding table)")
    return [np.take(x, indices, axis=axis)]


def _slice_by_index(a: Args) -> list:
    x = np.asarray(a.one("x"))
    rank = x.ndim
    begin = [int(v) for v in a.one("begin")]
    end = [int(v) for v in a.one("end")]
    stride = [int(v) for v in a.get("stride", np.ones(rank, np.int32))]
    begin_mask = [bool(v) for v in a.get("begin_mask", np.zeros(rank, bool))]
    end_mask = [bool(v) for v in a.get("end_mask", np.zeros(rank, bool))]
    squeeze = [bool(v) for v in a.get("squeeze_mask", np.zeros(rank, bool))]
    index = []
    for i in range(rank):
        if squeeze[i]:
            index.append(begin[i])
            continue
        index.append(slice(None if begin_mask[i] else begin[i], None if end_mask[i] else end[i], stride[i]))
    return [x[tuple(index)]]


def _pad(a: Args) -> list:
    x = _f(a.one("x"))
    pad = [int(v) for v in a.one("pad")]
    n = len(pad) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    mode = a.scalar("mode", "constant")
    if mode == "constant":
        return [np.pad(x, widths, mode="constant", constant_values=float(a.scalar("constant_val", 0.0)))]
    return [np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge"}[mode])]


def _concat(a: Args) -> list:
    values = [_f(v) for v in a.many("values")]
    axis = int(a.scalar("axis"))
    if a.scalar("interleave", False):
        raise ValueError("concat with interleave=True is not supported")
    return [np.concatenate(values, axis=axis)]


def _clip(a: Args) -> list:
    return [np.clip(_f(a.one("x")), float(a.scalar("alpha")), float(a.scalar("beta")))]


def _leaky_relu(a: Args) -> list:
    x = _f(a.one("x"))
    return [np.where(x >= 0, x, float(a.scalar("alpha", 0.01)) * x)]


def _sigmoid_hard(a: Args) -> list:
    x = _f(a.one("x"))
    return [np.clip(float(a.scalar("alpha", 0.2)) * x + float(a.scalar("beta", 0.5)), 0.0, 1.0)]


def _thresholded_relu(a: Args) -> list:
    x = _f(a.one("x"))
    return [np.where(x > float(a.scalar("alpha", 1.0)), x, 0.0)]


def _classify(a: Args) -> list:
    """``classify``: the label of the largest probability and the label -> probability table."""
    probs = np.asarray(a.one("probabilities"), np.float64).reshape(-1)
    classes = a.one("classes")
    labels = [c.item() if isinstance(c, np.ndarray) else c for c in (classes if isinstance(classes, list) else list(classes))]
    if len(labels) != probs.size:
        raise ValueError(f"classify: {len(labels)} classes for {probs.size} probabilities")
    table = {label: float(p) for label, p in zip(labels, probs)}
    return [labels[int(np.argmax(probs))], table]


OpFn = Callable[[Args], list]

OPS: Mapping[str, OpFn] = MappingProxyType({
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "cast": _cast,
    "classify": _classify,
    "clip": _clip,
    "concat": _concat,
    "gather": _gather,
    "gelu": _gelu,
    "layer_norm": _layer_norm,
    "leaky_relu": _leaky_relu,
    "linear": _linear,
    "matmul": _matmul,
    "pad": _pad,
    "relu": _unary(lambda x: np.maximum(x, 0)),
    "reshape": _reshape,
    "sigmoid": _unary(_sigmoid),
    "sigmoid_hard": _sigmoid_hard,
    "silu": _unary(lambda x: x * _sigmoid(x)),
    "slice_by_index": _slice_by_index,
    "softmax": _softmax,
    "softplus": _unary(_softplus),
    "tanh": _unary(np.tanh),
    "thresholded_relu": _thresholded_relu,
    "transpose": _transpose,
})


def supported_ops() -> list[str]:
    """Every MIL op the interpreter executes (``const`` included), sorted."""
    return sorted([*OPS, "const"])
