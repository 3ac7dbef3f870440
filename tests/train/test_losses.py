"""Each distillation loss: known values, finite gradients, masks respected."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mlx.core as mx
from mlx_distill.train import losses


def _np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_kd_loss_matches_closed_form_and_scales_with_t_squared():
    s = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], np.float32)
    t = np.array([[2.0, 1.0, 0.0], [0.5, 0.5, 2.0]], np.float32)
    for temperature in (1.0, 2.0, 4.0):
        pt, ps = _np_softmax(t / temperature), _np_softmax(s / temperature)
        expected = (pt * (np.log(pt) - np.log(ps))).sum(-1).mean() * temperature**2
        got = losses.kd_loss(mx.array(s), mx.array(t), temperature).item()
        assert got == pytest.approx(expected, rel=1e-5)
    assert losses.kd_loss(mx.array(t), mx.array(t), 2.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_gradient_is_finite_and_points_to_teacher():
    t = mx.array([[4.0, 0.0, 0.0]])
    grad = mx.grad(lambda s: losses.kd_loss(s, t, 2.0))(mx.array([[0.0, 0.0, 0.0]]))
    g = np.array(grad)
    assert np.isfinite(g).all()
    assert g[0, 0] < 0 < g[0, 1]  # descending raises the teacher's favourite class


def test_cross_entropy_known_value():
    logits = mx.array([[0.0, math.log(3.0)]])
    assert losses.cross_entropy(logits, mx.array([1])).item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_hidden_mse_ignores_padding():
    s = mx.zeros((1, 3, 2))
    t = mx.array([[[1.0, 1.0], [3.0, 3.0], [100.0, -100.0]]])
    mask = mx.array([[1, 1, 0]])
    assert losses.hidden_mse(s, t, mask).item() == pytest.approx((1 + 1 + 9 + 9) / 4)
    grad = np.array(mx.grad(lambda x: losses.hidden_mse(x, t, mask))(s))
    assert np.isfinite(grad).all() and (grad[0, 2] == 0).all()


def _attention(rng, heads, length, mask):
    scores = rng.standard_normal((1, heads, length, length)).astype(np.float32)
    scores = np.where(mask[None, None, None, :] > 0, scores, -1e9)
    return _np_softmax(scores)


def test_attention_kl_known_value_and_mask():
    rng = np.random.default_rng(0)
    mask = np.array([1, 1, 1, 0])
    t, s = _attention(rng, 2, 4, mask), _attention(rng, 2, 4, mask)
    kl = (t * (np.log(t + 1e-8) - np.log(s + 1e-8))).sum(-1)  # (1, heads, L)
    expected = kl[:, :, :3].mean()
    got = losses.attention_kl(mx.array(s), mx.array(t), mx.array(mask[None]))
    assert got.item() == pytest.approx(expected, rel=1e-4)
    # Changing a padded query row changes nothing.
    s2 = s.copy()
    s2[0, :, 3] = _np_softmax(rng.standard_normal((2, 4)).astype(np.float32))
    assert losses.attention_kl(mx.array(s2), mx.array(t), mx.array(mask[None])).item() == pytest.approx(got.item())
    assert losses.attention_kl(mx.array(t), mx.array(t), mx.array(mask[None])).item() == pytest.approx(0.0, abs=1e-6)
    grad = np.array(mx.grad(lambda x: losses.attention_kl(x, mx.array(t), mx.array(mask[None])))(mx.array(s)))
    assert np.isfinite(grad).all()


def test_attention_head_mismatch_needs_averaging():
    rng = np.random.default_rng(1)
    mask = np.ones(4, int)
    t, s = _attention(rng, 12, 4, mask), _attention(rng, 4, 4, mask)
    with pytest.raises(ValueError, match="head-average"):
        losses.attention_kl(mx.array(s), mx.array(t), mx.array(mask[None]))
    averaged = losses.attention_kl(losses.head_average(mx.array(s)), losses.head_average(mx.array(t)), mx.array(mask[None]))
    assert np.isfinite(averaged.item()) and averaged.item() > 0


def test_uniform_layer_map():
    assert losses.uniform_layer_map(4, 12) == {1: 3, 2: 6, 3: 9, 4: 12}
    assert losses.uniform_layer_map(4, 6) == {1: 2, 2: 3, 3: 4, 4: 6}
    assert losses.uniform_layer_map(2, 2) == {1: 1, 2: 2}
    assert losses.uniform_layer_map(4, 2) == {1: 1, 2: 1, 3: 2, 4: 2}  # deeper student than teacher


def test_cross_entropy_ignores_rows_without_a_label():
    logits = np.array([[2.0, 0.0], [0.0, 3.0], [5.0, -5.0]], np.float32)
    labels = np.array([0, -1, 1], np.int32)  # the transfer row (-1) carries no hard label
    log_p = np.log(_np_softmax(logits))
    expected = -(log_p[0, 0] + log_p[2, 1]) / 2
    assert losses.cross_entropy(mx.array(logits), mx.array(labels)).item() == pytest.approx(expected, rel=1e-5)
    none = losses.cross_entropy(mx.array(logits), mx.array(np.full(3, -1, np.int32)))
    assert none.item() == 0.0
