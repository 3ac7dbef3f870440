"""Layers that carry weight matrices: innerProduct, batchedMatmul, embeddings, convolution, constants.

Shapes follow NeuralNetwork.proto exactly, including its rank rules (an innerProduct on a rank-4
blob flattens the last three axes and returns (x1, C_out, 1, 1)); those rules are why a converted
BERT mixes rank-3 and rank-4 blobs and still lines up.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from export.nnexec.context import LayerCall
from export.nnexec.conv_math import ConvGeometry, conv2d


def inner_product_matrix(call: LayerCall) -> tuple[np.ndarray, "np.ndarray | None"]:
    """(W as (C_out, C_in), bias or None) of an innerProduct layer."""
    p = call.params
    if p.int8DynamicQuantize:
        raise call.unsupported("int8DynamicQuantize is not simulated")
    w = call.weight("weights", p.inputChannels * p.outputChannels).reshape(p.outputChannels, p.inputChannels)
    b = call.weight("bias", p.outputChannels) if p.hasBias else None
    return w, b


def inner_product_2d(call: LayerCall, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """The input as the (rows, C_in) matrix the proto describes, and the output shape."""
    c_in, c_out = call.params.inputChannels, call.params.outputChannels
    s = x.shape
    if x.ndim == 1:
        mat, out = x.reshape(1, -1), (c_out,)
    elif x.ndim in (2, 3):
        mat, out = x.reshape(-1, s[-1]), s[:-1] + (c_out,)
    elif x.ndim == 4:
        mat, out = x.reshape(s[0], -1), (s[0], c_out, 1, 1)
    elif x.ndim == 5:
        mat, out = x.reshape(s[0] * s[1], -1), (s[0], s[1], c_out, 1, 1)
    else:
        raise call.fail(f"input rank {x.ndim} is outside 1..5")
    if mat.shape[1] != c_in:
        raise call.fail(f"input {s} gives {mat.shape[1]} features, layer expects inputChannels={c_in}")
    return mat, out


def inner_product(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    w, b = inner_product_matrix(call)
    mat, out_shape = inner_product_2d(call, inputs[0])
    y = mat @ w.T
    if b is not None:
        y = y + b
    return [y.reshape(out_shape)]


def batched_matmul(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    p = call.params
    if p.int8DynamicQuantize:
        raise call.unsupported("int8DynamicQuantize is not simulated")
    a = inputs[0]
    if len(inputs) == 2:
        b = inputs[1]
        if p.transposeA and a.ndim >= 2:
            a = np.swapaxes(a, -1, -2)
        if p.transposeB and b.ndim >= 2:
            b = np.swapaxes(b, -1, -2)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a2.shape[-1] != b2.shape[-2]:
            raise call.fail(f"inner dimensions differ: {a.shape} @ {b.shape}")
        return [np.matmul(a2, b2)]
    x1, x2 = p.weightMatrixFirstDimension, p.weightMatrixSecondDimension
    # Stored column-major: the flat array is W^T in row-major order.
    w = call.weight("weights", x1 * x2).reshape(x2, x1).T
    if a.shape[-1] != x1:
        raise call.fail(f"last input dimension {a.shape[-1]} != weightMatrixFirstDimension {x1}")
    y = a.reshape(-1, x1) @ w
    if p.hasBias:
        y = y + call.weight("bias", x2)
    return [y.reshape(a.shape[:-1] + (x2,))]


def _lookup(call: LayerCall, table: np.ndarray, ids: np.ndarray, vocab: int) -> np.ndarray:
    index = np.rint(ids).astype(np.int64)
    if index.size and (index.min() < 0 or index.max() >= vocab):
        raise call.fail(f"index {int(index.min()) if index.min() < 0 else int(index.max())} outside [0, {vocab - 1}]")
    return table[index]


def embedding_nd(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    p = call.params
    x = inputs[0]
    if x.ndim < 2 or x.shape[-1] != 1:
        raise call.fail(f"input must have rank >= 2 with last dimension 1, got {x.shape}")
    table = call.weight("weights", p.embeddingSize * p.vocabSize).reshape(p.embeddingSize, p.vocabSize).T
    y = _lookup(call, table, x[..., 0], p.vocabSize)
    if p.hasBias:
        y = y + call.weight("bias", p.embeddingSize)
    return [y]


def embedding(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    p = call.params
    x = inputs[0]
    if x.ndim not in (4, 5) or x.shape[-3:] != (1, 1, 1):
        raise call.fail(f"input must be rank 4 or 5 with the last three dimensions 1, got {x.shape}")
    table = call.weight("weights", p.outputChannels * p.inputDim).reshape(p.outputChannels, p.inputDim).T
    lead = x.shape[:-3]
    y = _lookup(call, table, x.reshape(lead), p.inputDim)
    if p.hasBias:
        y = y + call.weight("bias", p.outputChannels)
    return [y.reshape(lead + (p.outputChannels, 1, 1))]


def conv_geometry(call: LayerCall, in_h: int, in_w: int, kh: int, kw: int) -> ConvGeometry:
    """Strides, dilations and the explicit padding the proto's valid/same rules imply."""
    p = call.params
    stride = tuple(int(v) for v in p.stride) or (1, 1)
    dilation = tuple(int(v) for v in p.dilationFactor) or (1, 1)
    groups = int(p.nGroups) or 1
    eff_h, eff_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    kind = p.WhichOneof("ConvolutionPaddingType")
    if kind == "same":
        pads = []
        for size, s, eff in ((in_h, stride[0], eff_h), (in_w, stride[1], eff_w)):
            out = -(-size // s)
            total = max(0, (out - 1) * s + eff - size)
            small = total // 2
            if p.same.asymmetryMode == p.same.TOP_LEFT_HEAVY:
                pads.append((total - small, small))
            else:
                pads.append((small, total - small))
        (top, bottom), (left, right) = pads
    else:
        amounts = list(p.valid.paddingAmounts.borderAmounts) if kind == "valid" else []
        top, bottom = (amounts[0].startEdgeSize, amounts[0].endEdgeSize) if len(amounts) > 0 else (0, 0)
        left, right = (amounts[1].startEdgeSize, amounts[1].endEdgeSize) if len(amounts) > 1 else (0, 0)
    return ConvGeometry(stride, dilation, int(top), int(bottom), int(left), int(right), groups)


def conv_weights(call: LayerCall, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """(C_out, C_in / groups, kH, kW) kernels, from the second input when the layer has one."""
    p = call.params
    if len(inputs) == 2:
        return inputs[1]
    kh, kw = tuple(int(v) for v in p.kernelSize) or (3, 3)
    count = p.outputChannels * p.kernelChannels * kh * kw
    return call.weight("weights", count).reshape(p.outputChannels, p.kernelChannels, kh, kw)


def convolution(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    p = call.params
    if p.isDeconvolution:
        raise call.unsupported("deconvolution (isDeconvolution) is not simulated")
    x = inputs[0]
    if x.ndim < 4:
        raise call.fail(f"input rank must be >= 4, got shape {x.shape}")
    w = conv_weights(call, inputs)
    lead = x.shape[:-3]
    x4 = x.reshape((-1,) + x.shape[-3:])
    groups = int(p.nGroups) or 1
    if x4.shape[1] != w.shape[1] * groups:
        raise call.fail(f"input has {x4.shape[1]} channels, kernels expect {w.shape[1]} x {groups} groups")
    geo = conv_geometry(call, x4.shape[2], x4.shape[3], w.shape[2], w.shape[3])
    y = conv2d(x4, w, geo)
    if p.hasBias:
        y = y + call.weight("bias", w.shape[0]).reshape(1, -1, 1, 1)
    return [y.reshape(lead + y.shape[1:])]


def load_constant(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    shape = tuple(int(v) for v in call.params.shape)
    if len(shape) != 3:
        raise call.fail(f"shape must be [C, H, W], got {list(shape)}")
    data = call.weight("data", int(np.prod(shape)))
    return [data.reshape((1, 1) + shape)]


def load_constant_nd(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    shape = tuple(int(v) for v in call.params.shape)
    data = call.weight("data", int(np.prod(shape)))
    return [data.reshape(shape)]


HANDLERS = {
    "innerProduct": inner_product,
    "batchedMatmul": batched_matmul,
    "embeddingND": embedding_nd,
    "embedding": embedding,
    "convolution": convolution,
    "loadConstant": load_constant,
    "loadConstantND": load_constant_nd,
}
