"""Which device and libraries this process computes with — stated in every report (DESIGN.md).

MLX picks Metal on Apple silicon, CUDA where ``mlx[cuda]`` is installed, else the CPU.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import mlx.core as mx

import mlx_distill
from mlx_distill.blas import sgemm_provider, usable_cores


def best_device() -> str:
    """The best device MLX has here: 'gpu (metal)', 'gpu (cuda)' or 'cpu' (changes nothing)."""
    if mx.metal.is_available():
        return "gpu (metal)"
    cuda = getattr(mx, "cuda", None)
    if cuda is not None and cuda.is_available():
        return "gpu (cuda)"
    return "cpu"


def select_device() -> str:
    """Make the best available device the default and return its name."""
    device = best_device()
    mx.set_default_device(mx.cpu if device == "cpu" else mx.gpu)
    return device


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


#: Thread settings a user can give (before the command starts: the BLAS reads them once).
THREAD_VARIABLES = ("MKL_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")


def thread_info() -> dict[str, object]:
    """Cores this process may use, the 1-minute load and the thread variables as set (after the
    command line's own choice, ``blas.choose_threads``). Why in ``info``: on a shared CPU the load
    decides how fast training can be (benchmarks/bench_contention.py)."""
    info: dict[str, object] = {"cores": usable_cores(), "load_1min": round(os.getloadavg()[0], 2)}
    for name in THREAD_VARIABLES:
        info[name] = os.environ.get(name, "unset")
    return info


def runtime_info() -> dict[str, object]:
    """Versions, device and BLAS, as plain data for ``info`` and reports."""
    device = best_device()
    info: dict[str, object] = {
        "mlx_distill": mlx_distill.__version__,
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "device": device,
        "blas": sgemm_provider() if device == "cpu" else "n/a (GPU)",
        "blas_preload": mlx_distill.BLAS_STATUS.reason,
        **thread_info(),
    }
    for dist in ("mlx", "mlx-lm", "numpy", "tokenizers", "safetensors", "torch", "coremltools", "transformers"):
        info[dist] = _version(dist)
    return info
