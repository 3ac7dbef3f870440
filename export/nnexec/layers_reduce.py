"""Reductions and index-producing layers: legacy reduce, reduce*ND, argMax/argMin, topK, argSort, cumSum.

Index outputs are float32, as every Core ML NeuralNetwork blob is.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from export.nnexec.context import LayerCall, axis_index


def _at_least_1d(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    return y.reshape(1) if y.ndim == 0 else y


def reduce_legacy(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    p = call.params
    axes = {p.CHW: (-3, -2, -1), p.HW: (-2, -1), p.C: (-3,), p.H: (-2,), p.W: (-1,)}[p.axis]
    if x.ndim < len(axes) or x.ndim < -min(axes):
        raise call.fail(f"axis {p.ReduceAxis.Name(p.axis)} needs rank >= {-min(axes)}, got {x.shape}")
    eps = p.epsilon if p.epsilon != 0 else 1e-6
    mode = p.ReduceOperation.Name(p.mode)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ops: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "SUM": lambda v: np.sum(v, axis=axes, keepdims=True),
            "AVG": lambda v: np.mean(v, axis=axes, keepdims=True),
            "PROD": lambda v: np.prod(v, axis=axes, keepdims=True),
            "LOGSUM": lambda v: np.sum(np.log(v + eps), axis=axes, keepdims=True),
            "SUMSQUARE": lambda v: np.sum(np.square(v), axis=axes, keepdims=True),
            "L1": lambda v: np.sum(np.abs(v), axis=axes, keepdims=True),
            "L2": lambda v: np.sqrt(np.sum(np.square(v), axis=axes, keepdims=True)),
            "MAX": lambda v: np.max(v, axis=axes, keepdims=True),
            "MIN": lambda v: np.min(v, axis=axes, keepdims=True),
        }
        if mode == "ARGMAX":
            if len(axes) != 1:
                raise call.fail("ARGMAX reduces a single axis (C, H or W)")
            return [np.expand_dims(np.argmax(x, axis=axes[0]), axes[0]).astype(np.float32)]
        return [ops[mode](x).astype(np.float32)]


def _reduce_nd(fn: Callable[..., np.ndarray]):
    def run(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
        x = inputs[0]
        p = call.params
        axes = tuple(range(x.ndim)) if p.reduceAll or not len(p.axes) else tuple(
            sorted(axis_index(call, a, x.ndim) for a in p.axes))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = fn(x, axis=axes, keepdims=bool(p.keepDims) and not p.reduceAll)
        return [_at_least_1d(y)]

    return run


def _logsumexp(x: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    y = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return y if keepdims else np.squeeze(y, axis=axis)


def _arg(fn: Callable[..., np.ndarray]):
    def run(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
        x = inputs[0]
        axis = axis_index(call, call.params.axis, x.ndim)
        y = fn(x, axis=axis)
        if not call.params.removeDim or x.ndim == 1:
            y = np.expand_dims(y, axis)
        return [_at_least_1d(y)]

    return run


def top_k(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    p = call.params
    axis = axis_index(call, p.axis, x.ndim)
    k = int(np.asarray(inputs[1]).ravel()[0]) if len(inputs) > 1 else int(p.K)
    order = np.argsort(x if p.useBottomK else -x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, idx, axis=axis).astype(np.float32), idx.astype(np.float32)]


def arg_sort(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    axis = axis_index(call, call.params.axis, x.ndim)
    order = np.argsort(-x if call.params.descending else x, axis=axis, kind="stable")
    return [order.astype(np.float32)]


def cum_sum(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    p = call.params
    axis = axis_index(call, int(np.asarray(inputs[1]).ravel()[0]) if len(inputs) > 1 else p.axis, x.ndim)
    v = np.flip(x, axis) if p.reverse else x
    y = np.cumsum(v, axis=axis)
    if p.excludeFinalSum:
        y = y - v
    return [(np.flip(y, axis) if p.reverse else y).astype(np.float32)]


HANDLERS = {
    "reduce": reduce_legacy,
    "reduceSum": _reduce_nd(np.sum),
    "reduceMean": _reduce_nd(np.mean),
    "reduceProd": _reduce_nd(np.prod),
    "reduceMax": _reduce_nd(np.max),
    "reduceMin": _reduce_nd(np.min),
    "reduceL1": _reduce_nd(lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims)),
    "reduceL2": _reduce_nd(lambda x, axis, keepdims: np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims))),
    "reduceSumSquare": _reduce_nd(lambda x, axis, keepdims: np.sum(np.square(x), axis=axis, keepdims=keepdims)),
    "reduceLogSum": _reduce_nd(lambda x, axis, keepdims: np.log(np.sum(x, axis=axis, keepdims=keepdims))),
    "reduceLogSumExp": _reduce_nd(_logsumexp),
    "argMax": _arg(np.argmax),
    "argMin": _arg(np.argmin),
    "topK": top_k,
    "argSort": arg_sort,
    "cumSum": cum_sum,
}
