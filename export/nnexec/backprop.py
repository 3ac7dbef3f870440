"""Backward passes for the layers Core ML trains or back-propagates through.

Core ML's validator allows only innerProduct / convolution (trainable) and flatten, batchnorm and
ReLU / sigmoid / tanh activations between an updatable layer and the loss (plus the softmax fused
into the cross-entropy, handled in ``losses``). We implement exactly those; anything else on the
training path raises, which is also what the device would do when it loads the model.

Gradients are returned in the storage layout of the weights (row-major flat arrays), so the
optimizer can update the ``ParamStore`` entry in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from export.nnexec.context import LayerCall
from export.nnexec.conv_math import conv2d_grads
from export.nnexec.errors import UpdateConfigError
from export.nnexec.layers_dense import conv_geometry, conv_weights, inner_product_2d, inner_product_matrix

BACKPROP_LAYERS = ("innerProduct", "convolution", "activation", "flatten", "batchnorm")
_ACTIVATIONS = ("ReLU", "sigmoid", "tanh")


@dataclass(frozen=True)
class Gradients:
    """d loss / d (each input blob) - ``None`` where not needed - and d loss / d (each weight field)."""

    inputs: list
    params: dict = field(default_factory=dict)


def _inner_product(call: LayerCall, x: np.ndarray, dy: np.ndarray) -> Gradients:
    w, b = inner_product_matrix(call)
    mat, _ = inner_product_2d(call, x)
    dy2 = dy.reshape(mat.shape[0], -1)
    params = {"weights": (dy2.T @ mat).ravel()}
    if b is not None:
        params["bias"] = dy2.sum(axis=0)
    return Gradients([(dy2 @ w).reshape(x.shape)], params)


def _convolution(call: LayerCall, x: np.ndarray, dy: np.ndarray) -> Gradients:
    w = conv_weights(call, [x])
    lead = x.shape[:-3]
    x4 = x.reshape((-1,) + x.shape[-3:])
    dy4 = dy.reshape((-1,) + dy.shape[-3:])
    geo = conv_geometry(call, x4.shape[2], x4.shape[3], w.shape[2], w.shape[3])
    dx, dw = conv2d_grads(x4.astype(np.float64), w.astype(np.float64), dy4.astype(np.float64), geo)
    params = {"weights": dw.ravel()}
    if call.params.hasBias:
        params["bias"] = dy4.sum(axis=(0, 2, 3))
    return Gradients([dx.reshape(lead + dx.shape[1:])], params)


def _activation(call: LayerCall, y: np.ndarray, dy: np.ndarray) -> Gradients:
    kind = call.params.WhichOneof("NonlinearityType")
    if kind == "ReLU":
        return Gradients([dy * (y > 0)])
    if kind == "sigmoid":
        return Gradients([dy * y * (1 - y)])
    return Gradients([dy * (1 - y * y)])  # tanh


def _flatten(call: LayerCall, x: np.ndarray, dy: np.ndarray) -> Gradients:
    if call.params.mode == call.params.CHANNEL_LAST:
        moved = np.moveaxis(x, -3, -1).shape
        return Gradients([np.moveaxis(dy.reshape(moved), -1, -3)])
    return Gradients([dy.reshape(x.shape)])


def _batchnorm(call: LayerCall, x: np.ndarray, dy: np.ndarray) -> Gradients:
    p = call.params
    if p.computeMeanVar:
        raise UpdateConfigError(f"layer {call.name!r}: back-propagation through a batchnorm that computes "
                                "its own mean/variance is not simulated")
    eps = p.epsilon if p.epsilon != 0 else 1e-5
    gamma = call.weight("gamma", p.channels).reshape(-1, 1, 1)
    var = call.weight("variance", p.channels).reshape(-1, 1, 1)
    return Gradients([dy * gamma / np.sqrt(var + eps)])


def check_backprop(call: LayerCall) -> None:
    """Raise ``UpdateConfigError`` naming the layer if Core ML cannot back-propagate through it."""
    if call.kind not in BACKPROP_LAYERS:
        raise UpdateConfigError(
            f"layer {call.name!r} ({call.kind}) sits between an updatable layer and the loss; Core ML "
            f"back-propagates only through {', '.join(BACKPROP_LAYERS)} (and a softmax right before the loss)")
    if call.kind == "activation" and call.params.WhichOneof("NonlinearityType") not in _ACTIVATIONS:
        raise UpdateConfigError(f"layer {call.name!r}: Core ML back-propagates only through "
                                f"{'/'.join(_ACTIVATIONS)} activations, not "
                                f"{call.params.WhichOneof('NonlinearityType')!r}")


def backward(call: LayerCall, inputs: Sequence[np.ndarray], output: np.ndarray, dy: np.ndarray) -> Gradients:
    """Gradients of one layer given d loss / d output ``dy`` (float64 throughout)."""
    check_backprop(call)
    x = inputs[0].astype(np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    if call.kind == "innerProduct":
        return _inner_product(call, x, dy)
    if call.kind == "convolution":
        if len(inputs) != 1:
            raise UpdateConfigError(f"layer {call.name!r}: convolution with weights as an input cannot be trained")
        return _convolution(call, x, dy)
    if call.kind == "activation":
        return _activation(call, output.astype(np.float64), dy)
    if call.kind == "flatten":
        return _flatten(call, x, dy)
    return _batchnorm(call, x, dy)
