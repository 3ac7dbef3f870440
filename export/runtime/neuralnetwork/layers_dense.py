"""Layers that carry weight matrices: innerProduct, batchedMatmul, embeddingND, loadConstantND.

Shapes follow NeuralNetwork.proto exactly, including its rank rules (an innerProduct on a rank-4
blob flattens the last three axes and returns (x1, C_out, 1, 1)); those rules are why a converted
BERT mixes rank-3 and rank-4 blobs and still lines up.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from export.runtime.neuralnetwork.context import LayerCall


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


def load_constant_nd(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    shape = tuple(int(v) for v in call.params.shape)
    data = call.weight("data", int(np.prod(shape)))
    return [data.reshape(shape)]


HANDLERS = {
    "innerProduct": inner_product,
    "batchedMatmul": batched_matmul,
    "embeddingND": embedding_nd,
    "loadConstantND": load_constant_nd,
}
