"""Data-movement layers: reshapes, transposes, slices, gathers, concatenation, splits, padding.

None of these change a value, only where it sits, which is why the fp16 emulation does not
re-round their outputs (see ``DATA_MOVEMENT``). The legacy (rank-5 era) variants keep their
documented axis conventions: "channel" is -3, ``permute`` keeps the batch axis fixed, ``flatten``
leaves two trailing 1s.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from export.nnexec.context import LayerCall, axis_index


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _reshape(call: LayerCall, x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    try:
        return x.reshape(tuple(shape))
    except ValueError:
        raise call.fail(f"cannot reshape {x.shape} ({x.size} values) to {list(shape)}") from None


def reshape_static(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [_reshape(call, inputs[0], _ints(call.params.targetShape))]


def reshape_like(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [_reshape(call, inputs[0], inputs[1].shape)]


def reshape_dynamic(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [_reshape(call, inputs[0], _ints(np.asarray(inputs[1]).ravel()))]


def rank_preserving_reshape(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    target = _ints(call.params.targetShape)
    if len(target) != x.ndim:
        raise call.fail(f"targetShape {list(target)} must have the input's rank {x.ndim}")
    shape = [x.shape[i] if t == 0 else t for i, t in enumerate(target)]
    return [_reshape(call, x, shape)]


def reshape_legacy(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    """Rank-5 reshape: each (Seq, Batch) item's C*H*W values take the target [C, H, W] shape."""
    x = inputs[0]
    target = _ints(call.params.targetShape)
    if x.ndim != 5:
        raise call.fail(f"legacy reshape needs a rank-5 blob, got {x.shape}")
    s, b = x.shape[:2]
    if len(target) == 4:
        if b != 1:
            raise call.fail("a 4-value targetShape with batch > 1 is not simulated")
        s, target = target[0], target[1:]
    elif len(target) != 3:
        raise call.fail(f"targetShape must have 3 or 4 values, got {list(target)}")
    if call.params.mode == call.params.CHANNEL_LAST:
        c_out, h_out, w_out = target
        hwc = np.transpose(x, (0, 1, 3, 4, 2))
        y = _reshape(call, hwc, (s, b, h_out, w_out, c_out))
        return [np.transpose(y, (0, 1, 4, 2, 3))]
    return [_reshape(call, x, (s, b) + tuple(target))]


def flatten(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    if x.ndim < 3:
        raise call.fail(f"needs rank >= 3, got {x.shape}")
    if call.params.mode == call.params.CHANNEL_LAST:
        x = np.moveaxis(x, -3, -1)
    lead = x.shape[:-3]
    return [x.reshape(lead + (-1, 1, 1))]


def flatten_to_2d(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    axis = call.params.axis
    idx = axis + x.ndim if axis < 0 else axis
    if not 0 <= idx <= x.ndim:
        raise call.fail(f"axis {axis} out of range for rank {x.ndim}")
    return [x.reshape(int(np.prod(x.shape[:idx])), int(np.prod(x.shape[idx:])))]


def transpose(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    axes = _ints(call.params.axes)
    if sorted(axes) != list(range(inputs[0].ndim)):
        raise call.fail(f"axes {list(axes)} are not a permutation for rank {inputs[0].ndim}")
    return [np.transpose(inputs[0], axes)]


def permute(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    """Legacy permute over (Seq, C, H, W) of a rank-5 blob; the batch axis stays in place."""
    x = inputs[0]
    axis = _ints(call.params.axis) or (0, 1, 2, 3)
    if x.ndim != 5 or sorted(axis) != [0, 1, 2, 3]:
        raise call.fail(f"needs a rank-5 blob and a permutation of [0,1,2,3]; got {x.shape}, {list(axis)}")
    dims = (0, 2, 3, 4)
    return [np.transpose(x, (dims[axis[0]], 1, dims[axis[1]], dims[axis[2]], dims[axis[3]]))]


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


def concat_legacy(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    axis = -5 if call.params.sequenceConcat else -3
    if any(a.ndim < -axis for a in inputs):
        raise call.fail(f"inputs need rank >= {-axis}: {[a.shape for a in inputs]}")
    return [np.concatenate(inputs, axis=axis)]


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


def split_legacy(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    n = int(call.params.nOutputs) or len(call.layer.output)
    if x.shape[-3] % n:
        raise call.fail(f"axis -3 of {x.shape} does not split into {n} equal parts")
    return list(np.split(x, n, axis=-3))


def split_nd(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    p = call.params
    axis = axis_index(call, p.axis, x.ndim)
    if len(p.splitSizes):
        sizes = _ints(p.splitSizes)
        if sum(sizes) != x.shape[axis]:
            raise call.fail(f"splitSizes {list(sizes)} do not sum to {x.shape[axis]}")
        return list(np.split(x, np.cumsum(sizes)[:-1], axis=axis))
    n = int(p.numSplits) or len(call.layer.output)
    if x.shape[axis] % n:
        raise call.fail(f"axis {axis} of {x.shape} does not split into {n} equal parts")
    return list(np.split(x, n, axis=axis))


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


def slice_dynamic(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    p = call.params

    def pick(i, default, cast):
        return [cast(v) for v in np.asarray(inputs[i]).ravel()] if len(inputs) > i else list(default)

    begin = pick(1, [], int)
    end = pick(2, p.endIds, int)
    strides = pick(3, p.strides, int)
    begin_masks = pick(4, p.beginMasks, bool)
    end_masks = pick(5, p.endMasks, bool)
    squeeze_masks = pick(6, p.squeezeMasks, bool)
    return [_strided_slice(call, inputs[0], begin, end, strides, begin_masks, end_masks, squeeze_masks)]


def slice_by_size(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    axis = axis_index(call, call.params.axis, x.ndim)
    begin = int(np.asarray(inputs[1]).ravel()[0])
    begin = begin + x.shape[axis] if begin < 0 else begin
    size = int(call.params.size)
    end = x.shape[axis] if size < 0 else begin + size
    if end > x.shape[axis]:
        raise call.fail(f"slice [{begin}:{end}] exceeds axis {axis} of size {x.shape[axis]}")
    index = [slice(None)] * x.ndim
    index[axis] = slice(begin, end)
    return [x[tuple(index)]]


def _indices(call: LayerCall, idx: np.ndarray, size: int) -> np.ndarray:
    i = np.rint(idx).astype(np.int64)
    i = np.where(i < 0, i + size, i)
    if i.size and (i.min() < 0 or i.max() >= size):
        raise call.fail(f"index out of range for an axis of size {size}")
    return i


def gather(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    data, idx = inputs
    axis = axis_index(call, call.params.axis, data.ndim)
    return [np.take(data, _indices(call, idx, data.shape[axis]), axis=axis)]


def gather_nd(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    data, idx = inputs
    k = idx.shape[-1]
    if k > data.ndim:
        raise call.fail(f"indices address {k} axes but data has rank {data.ndim}")
    cols = [_indices(call, idx[..., j], data.shape[j]) for j in range(k)]
    return [data[tuple(cols)]]


def gather_along_axis(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    data, idx = inputs
    axis = axis_index(call, call.params.axis, data.ndim)
    return [np.take_along_axis(data, _indices(call, idx, data.shape[axis]), axis=axis)]


def get_shape(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [np.asarray(inputs[0].shape, dtype=np.float32)]


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


def constant_pad(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    p = call.params
    amounts = _ints(np.asarray(inputs[1]).ravel()) if len(inputs) > 1 else _ints(p.padAmounts)
    if len(amounts) != 2 * x.ndim:
        raise call.fail(f"padAmounts needs {2 * x.ndim} values, got {len(amounts)}")
    pad = []
    for i in range(x.ndim):
        before, after = amounts[2 * i], amounts[2 * i + 1]
        if p.padToGivenOutputSizeMode:
            target = max(before, after)
            extra = max(0, target - x.shape[i])
            before, after = (extra, 0) if before else (0, extra)
        pad.append((before, after))
    return [np.pad(x, pad, mode="constant", constant_values=p.value)]


def tile(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    reps = _ints(np.asarray(inputs[1]).ravel()) if len(inputs) > 1 else _ints(call.params.reps)
    if len(reps) > x.ndim:
        raise call.fail(f"reps {list(reps)} longer than the input rank {x.ndim}")
    return [np.tile(x, (1,) * (x.ndim - len(reps)) + tuple(reps))]


def stack(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    axis = axis_index(call, call.params.axis, inputs[0].ndim + 1)
    return [np.stack(inputs, axis=axis)]


def _broadcast(call: LayerCall, x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    try:
        return np.broadcast_to(x, tuple(shape)).copy()
    except ValueError:
        raise call.fail(f"cannot broadcast {x.shape} to {list(shape)}") from None


def broadcast_to_like(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [_broadcast(call, inputs[0], inputs[1].shape)]


def broadcast_to_static(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [_broadcast(call, inputs[0], _ints(call.params.targetShape))]


def broadcast_to_dynamic(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [_broadcast(call, inputs[0], _ints(np.asarray(inputs[1]).ravel()))]


def copy(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    return [np.array(inputs[0], copy=True)]


def reverse(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    dims = list(call.params.reverseDim)
    if len(dims) != x.ndim:
        raise call.fail(f"reverseDim has {len(dims)} values for a rank-{x.ndim} input")
    axes = tuple(i for i, flag in enumerate(dims) if flag)
    return [np.flip(x, axis=axes).copy() if axes else x]


def crop(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    if len(inputs) == 2:
        oh, ow = (_ints(call.params.offset) or (0, 0))
        h, w = inputs[1].shape[-2:]
        return [x[..., oh:oh + h, ow:ow + w]]
    amounts = list(call.params.cropAmounts.borderAmounts)
    top, bottom = (amounts[0].startEdgeSize, amounts[0].endEdgeSize) if amounts else (0, 0)
    left, right = (amounts[1].startEdgeSize, amounts[1].endEdgeSize) if len(amounts) > 1 else (0, 0)
    return [x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]]


HANDLERS = {
    "reshapeStatic": reshape_static,
    "reshapeLike": reshape_like,
    "reshapeDynamic": reshape_dynamic,
    "rankPreservingReshape": rank_preserving_reshape,
    "reshape": reshape_legacy,
    "flatten": flatten,
    "flattenTo2D": flatten_to_2d,
    "transpose": transpose,
    "permute": permute,
    "expandDims": expand_dims,
    "squeeze": squeeze,
    "concat": concat_legacy,
    "concatND": concat_nd,
    "split": split_legacy,
    "splitND": split_nd,
    "slice": slice_legacy,
    "sliceStatic": slice_static,
    "sliceDynamic": slice_dynamic,
    "sliceBySize": slice_by_size,
    "gather": gather,
    "gatherND": gather_nd,
    "gatherAlongAxis": gather_along_axis,
    "getShape": get_shape,
    "padding": padding_legacy,
    "constantPad": constant_pad,
    "tile": tile,
    "stack": stack,
    "broadcastToLike": broadcast_to_like,
    "broadcastToStatic": broadcast_to_static,
    "broadcastToDynamic": broadcast_to_dynamic,
    "copy": copy,
    "reverse": reverse,
    "crop": crop,
}

#: Layers that only move values. fp16 emulation leaves their outputs as they are: rounding cannot
#: change an already-rounded value, and leaving raw integer inputs (token ids) exact is what a
#: device does before an embedding lookup.
DATA_MOVEMENT = frozenset(HANDLERS) - {"getShape"}
