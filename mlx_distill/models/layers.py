"""Building blocks shared by the MLX BERT and MobileBERT encoders.

Each block reproduces the arithmetic of its transformers counterpart exactly (same formula, same
eps, same mask constant), because our parity tests hold MLX to transformers within 1e-4.
"""

from __future__ import annotations

import math
from typing import Callable

import mlx.core as mx
import mlx.nn as nn


def _gelu_tanh(x: mx.array) -> mx.array:
    return 0.5 * x * (1.0 + mx.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * mx.power(x, 3))))


_ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "gelu": nn.gelu,  # exact erf form, as torch's default GELU
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "quick_gelu": lambda x: x * mx.sigmoid(1.702 * x),
    "relu": nn.relu,
    "silu": nn.silu,
    "swish": nn.silu,
    "tanh": mx.tanh,
}


def activation(name: str) -> Callable[[mx.array], mx.array]:
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"hidden_act {name!r} is not supported; use one of {sorted(_ACTIVATIONS)}") from None


class NoNorm(nn.Module):
    """MobileBERT's replacement for LayerNorm: an element-wise affine map (weight * x + bias)."""

    def __init__(self, dims: int):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.bias = mx.zeros((dims,))

    def __call__(self, x: mx.array) -> mx.array:
        return x * self.weight + self.bias


def additive_mask(attention_mask: mx.array | None, dtype: mx.Dtype) -> mx.array | None:
    """(B, L) 1/0 mask -> (B, 1, 1, L) additive mask using the dtype's lowest finite value.

    transformers uses finfo.min rather than -inf, so a fully padded row stays finite (uniform
    attention) instead of NaN; we do the same for parity and robustness.
    """
    if attention_mask is None:
        return None
    keep = attention_mask.astype(mx.bool_)[:, None, None, :]
    return mx.where(keep, mx.array(0.0, dtype=dtype), mx.array(mx.finfo(dtype).min, dtype=dtype))


def multi_head_attention(
    q: mx.array, k: mx.array, v: mx.array, num_heads: int, mask: mx.array | None, dropout: nn.Dropout
) -> tuple[mx.array, mx.array]:
    """Eager scaled-dot-product attention returning (context (B, L, H*D), probabilities (B, H, L, L))."""
    batch, length, width = q.shape
    head_dim = width // num_heads

    def split(x: mx.array) -> mx.array:
        return x.reshape(batch, -1, num_heads, head_dim).transpose(0, 2, 1, 3)

    q, k, v = split(q), split(k), split(v)
    scores = (q @ k.transpose(0, 1, 3, 2)) * (head_dim**-0.5)
    if mask is not None:
        scores = scores + mask
    probs = mx.softmax(scores, axis=-1, precise=True)
    context = dropout(probs) @ v
    return context.transpose(0, 2, 1, 3).reshape(batch, length, -1), probs
