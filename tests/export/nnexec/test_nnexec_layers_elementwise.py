"""Element-wise layers against PyTorch / NumPy formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from nnexec_helpers import rand, run_single

X = rand(2, 3, 4, 5, seed=7, low=-3, high=3)
T = torch.from_numpy(X)

ACTIVATIONS = [
    ("RELU", {}, F.relu(T)),
    ("LEAKYRELU", {"params": [0.1]}, F.leaky_relu(T, 0.1)),
    ("TANH", {}, torch.tanh(T)),
    ("SIGMOID", {}, torch.sigmoid(T)),
    ("ELU", {"params": 0.7}, F.elu(T, 0.7)),
    ("SOFTPLUS", {}, F.softplus(T)),
    ("SOFTSIGN", {}, F.softsign(T)),
    ("SIGMOID_HARD", {"params": [1 / 6, 0.5]}, F.hardsigmoid(T)),
    ("LINEAR", {"params": [2.0, -1.0]}, 2 * T - 1),
    ("SCALED_TANH", {"params": [1.7, 0.5]}, 1.7 * torch.tanh(0.5 * T)),
    ("THRESHOLDEDRELU", {"params": 0.5}, torch.where(T >= 0.5, T, torch.zeros_like(T))),
]


@pytest.mark.parametrize("name,kwargs,ref", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_matches_torch(name, kwargs, ref):
    out = run_single({"x": X}, lambda nb: nb.add_activation("act", name, "x", "out", **kwargs))["out"]
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-6)


def test_prelu_uses_one_slope_per_channel_on_axis_minus_3():
    alpha = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    out = run_single({"x": X}, lambda nb: nb.add_activation("act", "PRELU", "x", "out", params=alpha))["out"]
    np.testing.assert_allclose(out, F.prelu(T, torch.from_numpy(alpha)).numpy(), atol=1e-6)


@pytest.mark.parametrize("mode,ref", [
    ("EXACT", F.gelu(T)),
    ("TANH_APPROXIMATION", F.gelu(T, approximate="tanh")),
    ("SIGMOID_APPROXIMATION", T * torch.sigmoid(1.702 * T)),
])
def test_gelu_modes(mode, ref):
    out = run_single({"x": X}, lambda nb: nb.add_gelu("gelu", "x", "out", mode=mode))["out"]
    np.testing.assert_allclose(out, ref.numpy(), atol=2e-6)


def test_gelu_exact_and_tanh_really_differ():
    exact = run_single({"x": X}, lambda nb: nb.add_gelu("g", "x", "out", mode="EXACT"))["out"]
    approx = run_single({"x": X}, lambda nb: nb.add_gelu("g", "x", "out", mode="TANH_APPROXIMATION"))["out"]
    assert np.abs(exact - approx).max() > 1e-4


POS = rand(3, 4, seed=3, low=0.5, high=4)


@pytest.mark.parametrize("mode,alpha,ref", [
    ("sqrt", 1.0, np.sqrt(POS)),
    ("rsqrt", 1.0, 1 / np.sqrt(POS + 1e-2)),
    ("inverse", 1.0, 1 / (POS + 1e-2)),
    ("power", 3.0, POS ** 3),
    ("exp", 1.0, np.exp(POS)),
    ("log", 1.0, np.log(POS)),
    ("abs", 1.0, np.abs(POS - 2)),
    ("threshold", 2.0, np.maximum(POS, 2.0)),
])
def test_unary_operations(mode, alpha, ref):
    x = POS - 2 if mode == "abs" else POS
    out = run_single({"x": x}, lambda nb: nb.add_unary("u", "x", "out", mode=mode, alpha=alpha, epsilon=1e-2))["out"]
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_unary_applies_scale_and_shift_first():
    out = run_single({"x": POS}, lambda nb: nb.add_unary("u", "x", "out", mode="sqrt", shift=1.0, scale=2.0))["out"]
    np.testing.assert_allclose(out, np.sqrt(2 * POS + 1), rtol=1e-6)


@pytest.mark.parametrize("method,fn", [
    ("add_add_broadcastable", np.add),
    ("add_subtract_broadcastable", np.subtract),
    ("add_multiply_broadcastable", np.multiply),
    ("add_divide_broadcastable", np.divide),
    ("add_max_broadcastable", np.maximum),
    ("add_min_broadcastable", np.minimum),
    ("add_pow_broadcastable", np.power),
    ("add_mod_broadcastable", np.mod),
    ("add_floor_div_broadcastable", np.floor_divide),
])
def test_broadcastable_binary_layers(method, fn):
    a = rand(2, 1, 4, seed=1, low=0.5, high=3)
    b = rand(3, 1, seed=2, low=0.5, high=3)
    out = run_single({"a": a, "b": b}, lambda nb: getattr(nb, method)("op", ["a", "b"], "out"))["out"]
    assert out.shape == (2, 3, 4)
    np.testing.assert_allclose(out, fn(a, b), rtol=1e-5)


def test_legacy_add_and_multiply_with_one_input_use_alpha_and_broadcast_with_two():
    x = rand(1, 1, 8, seed=1)
    c = np.array([2.0], dtype=np.float32)
    out = run_single({"x": x}, lambda nb: nb.add_elementwise("m", ["x"], "out", mode="MULTIPLY", alpha=-3.0))["out"]
    np.testing.assert_allclose(out, -3 * x, atol=1e-6)
    out = run_single({"x": x, "c": c}, lambda nb: nb.add_elementwise("a", ["x", "c"], "out", mode="ADD"))["out"]
    np.testing.assert_allclose(out, x + 2, atol=1e-6)
    y = rand(1, 1, 8, seed=2)
    out = run_single({"x": x, "y": y}, lambda nb: nb.add_elementwise("avg", ["x", "y"], "out", mode="AVE"))["out"]
    np.testing.assert_allclose(out, (x + y) / 2, atol=1e-6)


def test_comparisons_and_logic_return_float_masks():
    a = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    b = np.array([[2.0], [1.0]], dtype=np.float32)
    gt = run_single({"a": a, "b": b}, lambda nb: nb.add_greater_than("gt", ["a", "b"], "out"))["out"]
    np.testing.assert_array_equal(gt, (a > b).astype(np.float32))
    le = run_single({"a": a}, lambda nb: nb.add_less_than("le", ["a"], "out", use_less_than_equal=True, alpha=2.0))["out"]
    np.testing.assert_array_equal(le, [[1.0, 1.0, 0.0]])
    eq = run_single({"a": a, "b": b}, lambda nb: nb.add_equal("eq", ["a", "b"], "out"))["out"]
    np.testing.assert_array_equal(eq, (a == b).astype(np.float32))
    xor = run_single({"a": a - 2, "b": b - 1}, lambda nb: nb.add_logical("x", ["a", "b"], "out", mode="XOR"))["out"]
    np.testing.assert_array_equal(xor, np.logical_xor(a - 2 != 0, b - 1 != 0).astype(np.float32))
    neg = run_single({"a": a - 2}, lambda nb: nb.add_logical("n", ["a"], "out", mode="NOT"))["out"]
    np.testing.assert_array_equal(neg, [[0.0, 1.0, 0.0]])


def test_where_broadcastable_and_where_nonzero():
    cond = np.array([[1.0, 0.0, 2.0]], dtype=np.float32)
    a, b = rand(2, 3, seed=1), rand(1, 3, seed=2)
    out = run_single({"c": cond, "a": a, "b": b}, lambda nb: nb.add_where_broadcastable("w", ["c", "a", "b"], "out"))["out"]
    np.testing.assert_array_equal(out, np.where(cond != 0, a, b))
    m = np.array([[1.0, 2.0, 1.0], [0.0, 2.0, 2.0], [2.0, 1.0, 0.0]], dtype=np.float32)
    nz = run_single({"m": m}, lambda nb: nb.add_where_nonzero("nz", "m", "out"))["out"]
    np.testing.assert_array_equal(nz, [[0, 0], [0, 1], [0, 2], [1, 1], [1, 2], [2, 0], [2, 1]])


def test_clip_round_sign_erf_and_fill():
    x = np.array([[-2.5, -0.4, 0.5, 1.5, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(
        run_single({"x": x}, lambda nb: nb.add_clip("c", "x", "out", min_value=-1, max_value=2))["out"], np.clip(x, -1, 2))
    np.testing.assert_array_equal(run_single({"x": x}, lambda nb: nb.add_round("r", "x", "out"))["out"],
                                  [[-3.0, -0.0, 1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(run_single({"x": x}, lambda nb: nb.add_sign("s", "x", "out"))["out"], np.sign(x))
    np.testing.assert_allclose(run_single({"x": x}, lambda nb: nb.add_erf("e", "x", "out"))["out"],
                               [[math.erf(v) for v in x[0]]], atol=1e-7)
    filled = run_single({"x": x}, lambda nb: nb.add_fill_like("f", "x", "out", value=4.5))["out"]
    np.testing.assert_array_equal(filled, np.full_like(x, 4.5))


def test_range_static_and_lower_triangular():
    out = run_single({"x": rand(1)}, lambda nb: (nb.add_range_static("r", "out", end=5, start=1, step=1.5)))["out"]
    np.testing.assert_allclose(out, np.arange(1, 5, 1.5))
    m = rand(3, 4, seed=1)
    out = run_single({"m": m}, lambda nb: nb.add_lower_triangular("t", "m", "out", k=1))["out"]
    np.testing.assert_array_equal(out, np.tril(m, 1))
