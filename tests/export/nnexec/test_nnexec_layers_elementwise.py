"""Element-wise layers against PyTorch / NumPy formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tests.helpers.nnexec_helpers import rand, run_single

X = rand(2, 3, 4, 5, seed=7, low=-3, high=3)
T = torch.from_numpy(X)

ACTIVATIONS = [
    ("RELU", {}, F.relu(T)),
    ("LEAKYRELU", {"params": [0.1]}, F.leaky_relu(T, 0.1)),
    ("TANH", {}, torch.tanh(T)),
    ("SIGMOID", {}, torch.sigmoid(T)),
    ("SOFTPLUS", {}, F.softplus(T)),
    ("SIGMOID_HARD", {"params": [1 / 6, 0.5]}, F.hardsigmoid(T)),
    ("LINEAR", {"params": [2.0, -1.0]}, 2 * T - 1),
    ("THRESHOLDEDRELU", {"params": 0.5}, torch.where(T >= 0.5, T, torch.zeros_like(T))),
]


@pytest.mark.parametrize("name,kwargs,ref", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_matches_torch(name, kwargs, ref):
    out = run_single({"x": X}, lambda nb: nb.add_activation("act", name, "x", "out", **kwargs))["out"]
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-6)


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


@pytest.mark.parametrize("method,fn", [
    ("add_add_broadcastable", np.add),
    ("add_multiply_broadcastable", np.multiply),
])
def test_broadcastable_binary_layers(method, fn):
    a = rand(2, 1, 4, seed=1, low=0.5, high=3)
    b = rand(3, 1, seed=2, low=0.5, high=3)
    out = run_single({"a": a, "b": b}, lambda nb: getattr(nb, method)("op", ["a", "b"], "out"))["out"]
    assert out.shape == (2, 3, 4)
    np.testing.assert_allclose(out, fn(a, b), rtol=1e-5)


