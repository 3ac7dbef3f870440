"""Normalisation and affine layers against PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from tests.helpers.nnexec_helpers import rand, run_single


def test_softmax_normalises_axis_minus_3():
    x = rand(2, 5, 3, 4, seed=1)
    out = run_single({"x": x}, lambda nb: nb.add_softmax("s", "x", "out"))["out"]
    np.testing.assert_allclose(out, torch.softmax(torch.from_numpy(x), dim=-3).numpy(), atol=1e-6)


def test_softmax_nd_any_axis():
    x = rand(2, 5, 3, seed=1) * 10
    for axis in (-1, 0, 1):
        out = run_single({"x": x}, lambda nb: nb.add_softmax_nd("s", "x", "out", axis=axis))["out"]
        np.testing.assert_allclose(out, torch.softmax(torch.from_numpy(x), dim=axis).numpy(), atol=1e-6)


def test_mvn_then_scale_is_the_converters_layer_norm():
    """ct.convert lowers LayerNorm(H) on (B, L, H) to reshape (B, L, 1, H) -> mvn -> scale [1, 1, H]."""
    x = rand(2, 6, 8, seed=1) * 3
    gamma, beta = rand(8, seed=2), rand(8, seed=3)

    def add(nb):
        nb.add_reshape_static("r", "x", "r_out", [2, 6, 1, 8])
        nb.add_mvn("mvn", "r_out", "m_out", across_channels=False, normalize_variance=True, epsilon=1e-5)
        nb.add_scale("sc", gamma.reshape(1, 1, 8), beta.reshape(1, 1, 8), True, "m_out", "s_out",
                     shape_scale=[1, 1, 8], shape_bias=[1, 1, 8])
        nb.add_reshape_static("back", "s_out", "out", [2, 6, 8])

    out = run_single({"x": x}, add)["out"]
    ref = F.layer_norm(torch.from_numpy(x), (8,), torch.from_numpy(gamma), torch.from_numpy(beta), eps=1e-5)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)


def test_mvn_across_channels_and_mean_only():
    x = rand(2, 3, 4, 5, seed=1)
    out = run_single({"x": x}, lambda nb: nb.add_mvn("m", "x", "out", across_channels=True, normalize_variance=True,
                                                       epsilon=1e-6))["out"]
    ref = F.layer_norm(torch.from_numpy(x), (3, 4, 5), eps=1e-6).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)
    out = run_single({"x": x}, lambda nb: nb.add_mvn("m", "x", "out", across_channels=False,
                                                       normalize_variance=False))["out"]
    np.testing.assert_allclose(out, x - x.mean(axis=(-2, -1), keepdims=True), atol=1e-6)


