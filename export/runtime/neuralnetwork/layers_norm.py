"""Normalisation layers and the per-channel affine ones: softmax(ND), mvn, layerNormalization,
batchnorm, l2normalize, lrn, scale, bias.

"Channel" in the proto means axis -3 and "spatial" the last two axes, whatever the rank; the
converter relies on that (BERT's LayerNorm becomes reshape to (B, L, 1, H) -> mvn -> scale).
Variances are population variances (divide by N), as in every framework's LayerNorm.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from export.runtime.neuralnetwork.context import LayerCall, axis_index


def softmax_along(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(np.float32)


def softmax(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    if x.ndim < 3:
        raise call.fail(f"softmax normalises axis -3 and needs rank >= 3, got shape {x.shape}")
    return [softmax_along(x, -3)]


def softmax_nd(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    return [softmax_along(x, axis_index(call, call.params.axis, x.ndim))]


def _normalize(x: np.ndarray, axes: tuple[int, ...], eps: float, variance: bool = True) -> np.ndarray:
    centred = x - np.mean(x, axis=axes, keepdims=True)
    if not variance:
        return centred.astype(np.float32)
    var = np.mean(np.square(centred), axis=axes, keepdims=True)
    return (centred / np.sqrt(var + np.float32(eps))).astype(np.float32)


def mvn(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    p = call.params
    axes = (-3, -2, -1) if p.acrossChannels else (-2, -1)
    if x.ndim < len(axes):
        raise call.fail(f"needs rank >= {len(axes)}, got shape {x.shape}")
    eps = p.epsilon if p.epsilon != 0 else 1e-6
    return [_normalize(x, axes, eps, p.normalizeVariance)]


def _chw_param(call: LayerCall, values: np.ndarray, shape: Sequence[int], x: np.ndarray) -> np.ndarray:
    """A scale/bias of shape [1], [C], [1, H, W] or [C, H, W] laid out against the last 3 axes."""
    shape = tuple(int(v) for v in shape) or (1,)
    if len(shape) == 1:
        return values.reshape(()) if shape[0] == 1 else values.reshape(-1, 1, 1)
    if len(shape) != 3:
        raise call.fail(f"parameter shape {list(shape)} must be [1], [C], [1,H,W] or [C,H,W]")
    return values.reshape(shape)


def scale(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    p = call.params
    s = _chw_param(call, call.weight("scale", int(np.prod(list(p.shapeScale) or [1]))), p.shapeScale, x)
    y = x * s
    if p.hasBias:
        y = y + _chw_param(call, call.weight("bias", int(np.prod(list(p.shapeBias) or [1]))), p.shapeBias, x)
    return [y.astype(np.float32)]


HANDLERS = {
    "softmax": softmax,
    "softmaxND": softmax_nd,
    "mvn": mvn,
    "scale": scale,
}
