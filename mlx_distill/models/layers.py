"""Building blocks shared by the MLX BERT and MobileBERT encoders.

Each block reproduces the arithmetic of its transformers counterpart exactly (same formula, same
eps, same mask constant), because our parity tests hold MLX to transformers within 1e-4.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import mlx.core as mx
import mlx.nn as nn


def _gelu_tanh(x: mx.array) -> mx.array:
    return 0.5 * x * (1.0 + mx.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * mx.power(x, 3))))


# erf(x) = x * P(x^2) / Q(x^2) on [-4, 4] (erf is +/-1 to float precision outside): the rational
# approximation Eigen and XLA use for float32, max abs error 4e-7 here. Why not ``mx.erf``: on the
# Linux CPU build MLX's transcendental functions run as scalar code, ~20x slower than PyTorch's
# vectorised GELU; multiplies, adds and one divide are cheap, and ``mx.compile`` fuses them into a
# few kernels. Measured with benchmarks/bench_train.py --profile (op class norm+activation).
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)


def _erf_rational(x: mx.array) -> mx.array:
    x = mx.clip(x, -4.0, 4.0)
    x2 = x * x
    p = x2 * _ERF_P[0] + _ERF_P[1]
    for c in _ERF_P[2:]:
        p = p * x2 + c
    q = x2 * _ERF_Q[0] + _ERF_Q[1]
    for c in _ERF_Q[2:]:
        q = q * x2 + c
    return x * p / q


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_LOG2E = 1.0 / math.log(2.0)


@partial(mx.compile, shapeless=True)
def _gelu_forward(x: mx.array) -> mx.array:
    return 0.5 * x * (1.0 + _erf_rational(x * _SQRT_HALF))


@partial(mx.compile, shapeless=True)
def _gelu_backward(x: mx.array, cotangent: mx.array) -> mx.array:
    # d/dx x*Phi(x) = Phi(x) + x*phi(x), with phi(x) = exp(-x^2/2)/sqrt(2 pi) as a power of two (see softmax).
    cdf = 0.5 * (1.0 + _erf_rational(x * _SQRT_HALF))
    pdf = mx.power(2.0, (x * x) * (-0.5 * _LOG2E)) * (1.0 / math.sqrt(2.0 * math.pi))
    return cotangent * (cdf + x * pdf)


@mx.custom_function
def gelu(x: mx.array) -> mx.array:
    """Exact (erf) GELU, as torch's default ``nn.GELU``, within 2e-6 of it (tested), with its
    closed-form gradient: forward + backward 98-110 -> 46-52 ms against differentiating ``nn.gelu``
    (CPU time on the 2-core machine)."""
    return _gelu_forward(x)


@gelu.vjp
def _gelu_vjp(primals, cotangent, output):
    x = primals[0] if isinstance(primals, (list, tuple)) else primals
    return (_gelu_backward(x, cotangent),)


@mx.custom_function
def softmax(x: mx.array) -> mx.array:
    """Softmax over the last axis in float32, with its closed-form gradient.

    Why not ``mx.softmax``: on the Linux CPU build its exponential is slow scalar code; ``2 ** (x
    log2 e)`` goes through the C library's ``powf`` and ran the attention softmax 1.5-2.5x faster
    (within 2e-7 of it). The custom VJP (``y * (g - sum(g * y))``) keeps the backward to three
    element-wise passes instead of differentiating max, power and the division. Low-precision
    inputs are computed in float32, like ``mx.softmax(..., precise=True)``.
    """
    x32 = x.astype(mx.float32)
    shifted = x32 - mx.stop_gradient(x32.max(axis=-1, keepdims=True))
    e = mx.power(2.0, shifted * _LOG2E)
    return (e / e.sum(axis=-1, keepdims=True)).astype(x.dtype)


@softmax.vjp
def _softmax_vjp(primals, cotangent, output):
    return (output * (cotangent - (cotangent * output).sum(axis=-1, keepdims=True)),)


_ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "gelu": gelu,  # exact erf form, as torch's default GELU
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


def _fused_attention_pays(need_probs: bool, dropout: nn.Dropout) -> bool:
    """Use ``mx.fast.scaled_dot_product_attention`` when nobody needs the probabilities, no dropout
    acts on them, and the computation runs on a GPU (Metal/CUDA kernels). On the CPU the fused op is
    MLX's composed fallback with ``mx.softmax``, slower here than our own :func:`softmax`."""
    dropping = dropout.training and getattr(dropout, "_p_1", 1.0) < 1.0
    return not need_probs and not dropping and mx.default_device().type == mx.DeviceType.gpu


def multi_head_attention(
    q: mx.array, k: mx.array, v: mx.array, num_heads: int, mask: mx.array | None, dropout: nn.Dropout,
    need_probs: bool = True, fused: bool | None = None,
) -> tuple[mx.array, mx.array | None]:
    """Scaled-dot-product attention returning (context (B, L, H*D), probabilities (B, H, L, L)).

    The probabilities are None when ``need_probs`` is off and the fused kernel ran (``fused``:
    None = decide by :func:`_fused_attention_pays`, True/False = force, for tests).
    """
    batch, length, width = q.shape
    head_dim = width // num_heads

    def split(x: mx.array) -> mx.array:
        return x.reshape(batch, -1, num_heads, head_dim).transpose(0, 2, 1, 3)

    q, k, v = split(q), split(k), split(v)
    if fused is None:
        fused = _fused_attention_pays(need_probs, dropout)
    if fused:
        context = mx.fast.scaled_dot_product_attention(q, k, v, scale=head_dim**-0.5, mask=mask)
        probs = None
    else:
        scores = (q @ k.transpose(0, 1, 3, 2)) * (head_dim**-0.5)
        if mask is not None:
            scores = scores + mask
        probs = softmax(scores)
        context = dropout(probs) @ v
    return context.transpose(0, 2, 1, 3).reshape(batch, length, -1), probs
