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
