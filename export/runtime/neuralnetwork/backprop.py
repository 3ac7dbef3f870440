"""The backward pass of the one layer our updatable head trains: innerProduct.

What we ship trains ``innerProduct`` -> ``softmax`` -> categorical cross-entropy (the softmax is
fused into the loss, in ``losses``), so nothing is back-propagated through any other layer. A layer
on the training path other than the trainable innerProduct is refused naming it; Core ML itself
allows a few more (convolution, flatten, batchnorm, ReLU/sigmoid/tanh - ``export.updatable.rules``
lints those), but no file we write has them, so the simulator does not carry their gradients.

Gradients are returned in the storage layout of the weights (row-major flat arrays), so the
optimizer can update the ``ParamStore`` entry in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from export.runtime.neuralnetwork.context import LayerCall
from export.runtime.neuralnetwork.errors import UpdateConfigError
from export.runtime.neuralnetwork.layers_dense import inner_product_2d, inner_product_matrix

BACKPROP_LAYERS = ("innerProduct",)


@dataclass(frozen=True)
class Gradients:
    """d loss / d (each input blob) - ``None`` where not needed - and d loss / d (each weight field)."""

    inputs: list
    params: dict = field(default_factory=dict)


def check_backprop(call: LayerCall) -> None:
    """Raise ``UpdateConfigError`` naming the layer if the simulator cannot back-propagate through it."""
    if call.kind not in BACKPROP_LAYERS:
        raise UpdateConfigError(
            f"layer {call.name!r} ({call.kind}) sits between an updatable layer and the loss; the simulated "
            f"update back-propagates only through innerProduct (and a softmax right before the loss), "
            f"the only training path export writes")


def backward(call: LayerCall, inputs: Sequence[np.ndarray], output: np.ndarray, dy: np.ndarray) -> Gradients:
    """Gradients of one innerProduct layer given d loss / d output ``dy`` (float64 throughout)."""
    check_backprop(call)
    x = inputs[0].astype(np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    w, b = inner_product_matrix(call)
    mat, _ = inner_product_2d(call, x)
    dy2 = dy.reshape(mat.shape[0], -1)
    params = {"weights": (dy2.T @ mat).ravel()}
    if b is not None:
        params["bias"] = dy2.sum(axis=0)
    return Gradients([(dy2 @ w).reshape(x.shape)], params)
