"""Data-movement layers our encoders contain: reshapeStatic, transpose, expandDims, concatND,
slice, sliceStatic, padding.

None of these change a value, only where it sits, which is why the fp16 emulation does not
re-round their outputs (see ``DATA_MOVEMENT``). The legacy ``slice`` / ``padding`` keep their
documented axis conventions ("channel" is -3).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from export.runtime.neuralnetwork.context import LayerCall, axis_index


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _reshape(call: LayerCall, x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    try:
        return x.reshape(tuple(shape))
    except ValueError:
        raise call.fail(f"cannot reshape {x.shape} ({x.size} values) to {list(shape)}") from None


def reshape_static(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [_reshape(call, inputs[0], _ints(call.params.targetShape))]


def transpose(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    axes = _ints(call.params.axes)
    if sorted(axes) != list(range(inputs[0].ndim)):
        raise call.fail(f"axes {list(axes)} are not a permutation for rank {inputs[0].ndim}")
    return [np.transpose(inputs[0], axes)]


def expand_dims(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    out_rank = x.ndim + len(call.params.axes)
    axes = sorted(axis_index(call, a, out_rank) for a in call.params.axes)
    for a in axes:
        x = np.expand_dims(x, a)
    return [x]


def squeeze(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    if call.params.squeezeAll:
        y = np.squeeze(x)
    else:
        axes = tuple(axis_index(call, a, x.ndim) for a in call.params.axes)
        bad = [a for a in axes if x.shape[a] != 1]
        if bad:
            raise call.fail(f"cannot squeeze axes {bad} of shape {x.shape}")
        y = np.squeeze(x, axis=axes)
    return [y.reshape(1) if y.ndim == 0 else y]


def concat_nd(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    rank = inputs[0].ndim
    axis = axis_index(call, call.params.axis, rank)
    try:
        if call.params.interleave:
            stacked = np.stack(inputs, axis=axis + 1)
            shape = list(inputs[0].shape)
            shape[axis] *= len(inputs)
            return [stacked.reshape(shape)]
        return [np.concatenate(inputs, axis=axis)]
    except ValueError as exc:
        raise call.fail(f"inputs {[a.shape for a in inputs]}: {exc}") from None


def slice_legacy(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    p = call.params
    axis = {p.CHANNEL_AXIS: -3, p.HEIGHT_AXIS: -2, p.WIDTH_AXIS: -1}[p.axis]
    if x.ndim < -axis:
        raise call.fail(f"axis {axis} needs rank >= {-axis}, got {x.shape}")
    index = [slice(None)] * x.ndim
    index[axis] = slice(p.startIndex, p.endIndex, int(p.stride) or 1)
    return [x[tuple(index)]]


def _strided_slice(call: LayerCall, x: np.ndarray, begin, end, strides, begin_masks, end_masks, squeeze_masks):
    rank = x.ndim
    if not (len(begin) == len(end) == len(strides) == rank):
        raise call.fail(f"begin/end/strides must each have {rank} values (input {x.shape})")
    begin_masks = list(begin_masks) or [False] * rank
    end_masks = list(end_masks) or [False] * rank
    squeeze_masks = list(squeeze_masks) or [False] * rank
    index, squeezed = [], []
    for i in range(rank):
        if squeeze_masks[i]:
            b = int(begin[i])
            index.append(slice(b, b + 1 if b != -1 else None, 1))
            squeezed.append(i)
            continue
        step = int(strides[i]) or 1
        start = None if begin_masks[i] else int(begin[i])
        stop = None if end_masks[i] else int(end[i])
        index.append(slice(start, stop, step))
    y = x[tuple(index)]
    if squeezed:
        y = np.squeeze(y, axis=tuple(squeezed))
    return y.reshape(1) if y.ndim == 0 else y


def slice_static(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    p = call.params
    return [_strided_slice(call, inputs[0], p.beginIds, p.endIds, p.strides, p.beginMasks, p.endMasks,
                           p.squeezeMasks)]


def padding_legacy(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    """Pad the last two axes (H, W) with a constant, a reflection or a replication of the border."""
    x = inputs[0]
    p = call.params
    if x.ndim < 2:
        raise call.fail(f"needs rank >= 2, got {x.shape}")
    amounts = list(p.paddingAmounts.borderAmounts)
    h = (amounts[0].startEdgeSize, amounts[0].endEdgeSize) if len(amounts) > 0 else (0, 0)
    w = (amounts[1].startEdgeSize, amounts[1].endEdgeSize) if len(amounts) > 1 else (0, 0)
    pad = [(0, 0)] * (x.ndim - 2) + [tuple(int(v) for v in h), tuple(int(v) for v in w)]
    kind = p.WhichOneof("PaddingType") or "constant"
    if kind == "constant":
        return [np.pad(x, pad, mode="constant", constant_values=p.constant.value)]
    return [np.pad(x, pad, mode="reflect" if kind == "reflection" else "edge")]


def stack(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    axis = axis_index(call, call.params.axis, inputs[0].ndim + 1)
    return [np.stack(inputs, axis=axis)]


HANDLERS = {
    "reshapeStatic": reshape_static,
    "transpose": transpose,
    "expandDims": expand_dims,
    "concatND": concat_nd,
    "slice": slice_legacy,
    "sliceStatic": slice_static,
    "padding": padding_legacy,
}

#: Layers that only move values. fp16 emulation leaves their outputs as they are: rounding cannot
#: change an already-rounded value, and leaving raw integer inputs (token ids) exact is what a
#: device does before an embedding lookup.
DATA_MOVEMENT = frozenset(HANDLERS) - {"getShape"}
