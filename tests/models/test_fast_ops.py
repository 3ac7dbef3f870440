"""The speed-motivated replacements in models/layers.py compute what they replace.

``gelu`` (rational erf) and ``softmax`` (power-of-two exponential, closed-form VJP) against MLX's own
``nn.gelu`` / ``mx.softmax``, values and gradients, compiled and eager; the fused attention path
against the explicit one. The end-to-end guard is tests/models/test_parity.py (transformers, 1e-4).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_distill.models.layers import _fused_attention_pays, gelu, multi_head_attention, softmax


def _max_diff(a: mx.array, b: mx.array) -> float:
    return float(np.abs(np.array(a, dtype=np.float64) - np.array(b, dtype=np.float64)).max())


def test_gelu_matches_the_erf_form_and_its_gradient():
    x = mx.concatenate([mx.linspace(-12, 12, 20001), mx.array([-300.0, -5.0, 0.0, 5.0, 300.0])])
    assert _max_diff(gelu(x), nn.gelu(x)) <= 2e-6
    assert _max_diff(gelu(x)[-1], mx.array(300.0)) == 0.0 and float(gelu(x)[-5]) == 0.0  # tails exact
    grad_ours = mx.grad(lambda v: gelu(v).sum())(x)
    grad_ref = mx.grad(lambda v: nn.gelu(v).sum())(x)
    assert _max_diff(grad_ours, grad_ref) <= 1e-5


@pytest.mark.parametrize("compiled", [False, True])
def test_softmax_matches_mx_softmax_values_and_gradient(compiled):
    mx.random.seed(0)
    scores = mx.random.normal((2, 3, 8, 8)) * 6
    mask = mx.where(mx.arange(8) < 5, 0.0, mx.finfo(mx.float32).min)  # padded keys, as the models mask
    scores = scores + mask
    weights = mx.random.normal(scores.shape)

    def loss(fn):
        return lambda s: (fn(s) * weights).sum()

    ours, ref = (lambda s: softmax(s)), (lambda s: mx.softmax(s, axis=-1, precise=True))
    if compiled:
        ours = mx.compile(ours)
    assert _max_diff(ours(scores), ref(scores)) <= 1e-6
    assert float(np.array(ours(scores))[..., 5:].max()) == 0.0
    grad = mx.value_and_grad(loss(ours))
    if compiled:
        grad = mx.compile(grad)
    (value, g), (ref_value, ref_g) = grad(scores), mx.value_and_grad(loss(ref))(scores)
    assert abs(value.item() - ref_value.item()) <= 1e-5
    assert _max_diff(g, ref_g) <= 1e-5 and float(mx.abs(ref_g).max()) > 1e-2


def test_fully_masked_row_is_uniform_not_nan():
    row = mx.full((1, 4), mx.finfo(mx.float32).min)
    assert np.allclose(np.array(softmax(row)), 0.25)


def test_fused_attention_path_equals_explicit_path():
    mx.random.seed(1)
    q, k, v = (mx.random.normal((2, 8, 16)) for _ in range(3))
    keep = mx.array([[1] * 8, [1] * 5 + [0] * 3])
    mask = mx.where(keep.astype(mx.bool_)[:, None, None, :], 0.0, mx.finfo(mx.float32).min)
    dropout = nn.Dropout(0.1)
    dropout.eval()
    explicit, probs = multi_head_attention(q, k, v, 4, mask, dropout, need_probs=True, fused=False)
    fused, none = multi_head_attention(q, k, v, 4, mask, dropout, need_probs=False, fused=True)
    assert none is None and probs.shape == (2, 4, 8, 8)
    assert _max_diff(fused, explicit) <= 1e-5


def test_fused_attention_only_when_probabilities_and_dropout_are_not_needed():
    dropout = nn.Dropout(0.1)
    dropout.eval()
    assert not _fused_attention_pays(True, dropout)  # distillation needs the maps
    dropout.train()
    assert not _fused_attention_pays(False, dropout)  # dropout acts on the probabilities
    on_gpu = mx.default_device().type == mx.DeviceType.gpu
    dropout.eval()
    assert _fused_attention_pays(False, dropout) == on_gpu  # the CPU fallback is slower than ours


def test_softmax_keeps_low_precision_inputs_in_their_dtype_and_computes_in_float32():
    scores = (mx.random.normal((2, 4, 16)) * 4).astype(mx.bfloat16)
    out = softmax(scores)
    assert out.dtype == mx.bfloat16
    assert _max_diff(out.astype(mx.float32), mx.softmax(scores, axis=-1, precise=True).astype(mx.float32)) <= 1e-2
