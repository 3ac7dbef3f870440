"""The BLAS preload: it happens, can be switched off, is reported, and changes no result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

PROBE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import mlx_distill
    import mlx.core as mx
    from mlx_distill.blas import sgemm_provider
    rng = np.random.default_rng(0)
    a = rng.standard_normal((257, 129)).astype(np.float32)
    b = rng.standard_normal((129, 65)).astype(np.float32)
    w = rng.standard_normal((65,)).astype(np.float32)
    loss = lambda a, b: ((a @ b) @ mx.array(w)).square().sum()
    grad_a, grad_b = mx.grad(loss, argnums=(0, 1))(mx.array(a), mx.array(b))
    out = {
        "status": mlx_distill.BLAS_STATUS.reason,
        "preloaded": mlx_distill.BLAS_STATUS.preloaded,
        "provider": sgemm_provider(),
        "product": np.array(mx.array(a) @ mx.array(b)).tolist(),
        "grad_a": np.array(grad_a).tolist(),
        "grad_b": np.array(grad_b).tolist(),
    }
    json.dump(out, sys.stdout)
    """
)


def _probe(env_value: str | None) -> dict:
    env = dict(os.environ)
    env.pop("MLX_DISTILL_BLAS", None)
    if env_value is not None:
        env["MLX_DISTILL_BLAS"] = env_value
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the BLAS preload exists only on Linux")
def test_preload_is_used_and_results_match_numpy_and_reference():
    fast, reference = _probe(None), _probe("off")
    assert fast["preloaded"] is not None, fast["status"]
    assert fast["provider"] == os.path.realpath(fast["preloaded"])
    assert "disabled by MLX_DISTILL_BLAS=off" in reference["status"]
    assert "reference BLAS" in reference["provider"]

    rng = np.random.default_rng(0)
    a = rng.standard_normal((257, 129)).astype(np.float32)
    b = rng.standard_normal((129, 65)).astype(np.float32)
    w = rng.standard_normal((65,)).astype(np.float32)
    a64, b64, w64 = a.astype(np.float64), b.astype(np.float64), w.astype(np.float64)
    product = a64 @ b64
    # d/dA sum((A B w)^2) = 2 (A B w) (B w)^T ; d/dB = 2 A^T (A B w) w^T
    r = product @ w64
    grad_a = 2 * np.outer(r, b64 @ w64)
    grad_b = 2 * np.outer(a64.T @ r, w64)
    for run in (fast, reference):
        np.testing.assert_allclose(np.array(run["product"]), product, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.array(run["grad_a"]), grad_a, rtol=1e-3, atol=1e-2)
        np.testing.assert_allclose(np.array(run["grad_b"]), grad_b, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(np.array(fast["product"]), np.array(reference["product"]), rtol=1e-5, atol=1e-4)


def test_missing_library_falls_back_safely():
    run = _probe("/nonexistent/libopenblas.so.0")
    # The explicit path fails and says so; the next candidates are still tried; results stay correct.
    assert "MLX_DISTILL_BLAS=/nonexistent/libopenblas.so.0 could not be loaded" in run["status"]
    rng = np.random.default_rng(0)
    a = rng.standard_normal((257, 129)).astype(np.float32)
    b = rng.standard_normal((129, 65)).astype(np.float32)
    np.testing.assert_allclose(np.array(run["product"]), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the MKL thread choice exists only on Linux")
@pytest.mark.parametrize("cores, given, provider, expected", [
    (2, {}, "/x/torch/lib/libtorch_cpu.so", "1"),
    (1, {}, "/x/libmkl_rt.so.2", "1"),
    (2, {"MKL_NUM_THREADS": "2"}, "/x/torch/lib/libtorch_cpu.so", "2"),  # the user's choice wins
    (2, {"OMP_NUM_THREADS": "2"}, "/x/torch/lib/libtorch_cpu.so", None),
    (8, {}, "/x/torch/lib/libtorch_cpu.so", None),  # not measured there: MKL's own default
    (2, {}, "/usr/lib/libopenblas.so.0", None),  # OpenBLAS reads its own variable, at load time
])
def test_one_mkl_thread_only_on_a_small_cpu_when_the_user_chose_nothing(monkeypatch, cores, given, provider, expected):
    from mlx_distill import blas

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(blas, "sgemm_provider", lambda: provider)
    env = dict(given)
    note = blas.choose_threads(env)
    assert env.get("MKL_NUM_THREADS") == expected
    assert (note is not None) == (expected == "1" and not given), note


def test_info_says_who_set_the_threads():
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_NUM_THREADS", "OMP_NUM_THREADS")}
    for extra, want in (({"MKL_NUM_THREADS": "2"}, "as the environment sets them"), ({}, None)):
        done = subprocess.run([sys.executable, "-m", "mlx_distill", "info", "--json"], env=env | extra,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        info = json.loads(done.stdout)
        if want:
            assert info["threads"] == want and info["MKL_NUM_THREADS"] == "2"
        elif info["cores"] <= 2 and sys.platform.startswith("linux") and "libtorch_cpu" in str(info["blas"]):
            assert info["threads"].startswith("MKL_NUM_THREADS=1 set by mlx_distill") and info["MKL_NUM_THREADS"] == "1"
        else:
            assert info["threads"] == "as the environment sets them"
