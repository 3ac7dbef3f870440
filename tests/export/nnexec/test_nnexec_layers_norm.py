"""Normalisation and affine layers against PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from nnexec_helpers import rand, run_single


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


def test_layer_normalization_layer():
    x = rand(3, 4, 6, seed=1)
    gamma, beta = rand(4, 6, seed=2), rand(4, 6, seed=3)
    out = run_single({"x": x}, lambda nb: nb.add_layer_normalization("ln", "x", "out", [4, 6], gamma, beta,
                                                                       eps=1e-5))["out"]
    ref = F.layer_norm(torch.from_numpy(x), (4, 6), torch.from_numpy(gamma), torch.from_numpy(beta), eps=1e-5)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)


def test_batchnorm_inference_and_instance_norm():
    x = rand(2, 3, 4, 5, seed=1)
    gamma, beta, mean, var = rand(3, seed=2), rand(3, seed=3), rand(3, seed=4), rand(3, seed=5, low=0.5, high=2)
    out = run_single({"x": x}, lambda nb: nb.add_batchnorm("bn", 3, gamma, beta, mean, var, "x", "out",
                                                             epsilon=1e-3))["out"]
    ref = F.batch_norm(torch.from_numpy(x), torch.from_numpy(mean), torch.from_numpy(var), torch.from_numpy(gamma),
                       torch.from_numpy(beta), training=False, eps=1e-3)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)
    out = run_single({"x": x}, lambda nb: nb.add_batchnorm("bn", 3, gamma, beta, None, None, "x", "out",
                                                             compute_mean_var=True, instance_normalization=True,
                                                             epsilon=1e-3))["out"]
    ref = F.instance_norm(torch.from_numpy(x), weight=torch.from_numpy(gamma), bias=torch.from_numpy(beta), eps=1e-3)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)


def test_l2_normalize_over_chw():
    x = rand(2, 3, 2, 2, seed=1)
    out = run_single({"x": x}, lambda nb: nb.add_l2_normalize("l2", "x", "out", epsilon=1e-6))["out"]
    norm = np.sqrt((x ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, x / norm, atol=1e-6)


def test_scale_and_bias_shapes_broadcast_against_chw():
    x = rand(2, 3, 4, 5, seed=1)
    s = rand(3, seed=2)
    out = run_single({"x": x}, lambda nb: nb.add_scale("s", s, None, False, "x", "out", shape_scale=[3]))["out"]
    np.testing.assert_allclose(out, x * s.reshape(3, 1, 1), atol=1e-6)
    b = rand(1, 4, 5, seed=3)
    out = run_single({"x": x}, lambda nb: nb.add_bias("b", b, "x", "out", shape_bias=[1, 4, 5]))["out"]
    np.testing.assert_allclose(out, x + b, atol=1e-6)
