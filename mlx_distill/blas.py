"""Load an optimised BLAS before MLX on Linux, and report which BLAS actually serves matmuls.

Why: the Linux ``mlx[cpu]`` wheel links netlib's reference BLAS (``mlx_cpu.libs/libblas-*.so``),
which runs a 1024x1024 fp32 matmul at ~5 GFLOP/s on a 2-core x86 machine. MLX resolves
``cblas_sgemm`` -> ``sgemm_`` through the dynamic linker, so a library exporting ``sgemm_`` that is
loaded *first* with ``RTLD_GLOBAL`` wins symbol resolution and gives 150-300 GFLOP/s. This must happen
before ``mlx.core`` is imported for the first time; ``mlx_distill/__init__.py`` calls
:func:`ensure_fast_blas` for that reason.

Candidates, in order: the path in ``MLX_DISTILL_BLAS`` (if it is a path), the system OpenBLAS,
the MKL that PyTorch's ``libtorch_cpu.so`` exports (found via the package spec, *without importing
torch*), and pip's ``mkl`` runtime. ``MLX_DISTILL_BLAS=off`` disables the whole thing.

macOS needs none of this: MLX uses Accelerate / Metal there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "MLX_DISTILL_BLAS"
_DISABLED_VALUES = {"0", "off", "false", "no", "none", "reference"}
# MLX calls ``cblas_sgemm``; the reference CBLAS wrapper it ships forwards to the Fortran ``sgemm_``
# through the global symbol scope. A preloaded library therefore only has to export ``sgemm_``
# (PyTorch's MKL exports ``sgemm_`` but not ``cblas_sgemm``; OpenBLAS exports both).
_REQUIRED_SYMBOL = "sgemm_"


@dataclass(frozen=True)
class BlasStatus:
    """What happened when we tried to load a fast BLAS; reported by ``info``, reports and benchmarks."""

    preloaded: str | None  # path of the library we loaded, or None
    reason: str  # why (or why not)

    def describe(self) -> str:
        serving = sgemm_provider()
        return f"{serving or 'unknown'} ({self.reason})"


def _candidate_paths() -> list[tuple[str, str]]:
    """(path, label) pairs to try, best first. Only existing files are returned."""
    found: list[tuple[str, str]] = []

    for name in ("libopenblas.so.0", "libopenblas.so"):
        found.append((name, "system OpenBLAS"))  # resolved by the dynamic linker's search path
    lib = ctypes.util.find_library("openblas")
    if lib:
        found.append((lib, "system OpenBLAS"))

    spec = importlib.util.find_spec("torch")  # locates the package without executing it
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            path = Path(location) / "lib" / "libtorch_cpu.so"
            if path.exists():
                found.append((str(path), "MKL exported by PyTorch's libtorch_cpu.so"))

    for prefix in {sys.prefix, sys.base_prefix}:
        path = Path(prefix) / "lib" / "libmkl_rt.so.2"
        if path.exists():
            found.append((str(path), "Intel MKL runtime (pip mkl)"))
    return found


def _exports_sgemm(handle: ctypes.CDLL) -> bool:
    try:
        getattr(handle, _REQUIRED_SYMBOL)
    except AttributeError:
        return False
    return True


def ensure_fast_blas(environ: dict[str, str] | None = None) -> BlasStatus:
    """Preload the best available BLAS with RTLD_GLOBAL, once, before mlx is imported.

    Safe to call repeatedly and safe when no library exists: the worst case is the reference BLAS.
    Returns what was done so callers can report it.
    """
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return BlasStatus(None, f"not needed on {sys.platform}")
    setting = env.get(ENV_VAR, "").strip()
    if setting.lower() in _DISABLED_VALUES:
        return BlasStatus(None, f"disabled by {ENV_VAR}={setting}")
    if "mlx.core" in sys.modules:
        return BlasStatus(None, "mlx.core was imported before mlx_distill; import mlx_distill first")

    candidates = _candidate_paths()
    notes: list[str] = []
    if setting:
        try:
            handle = ctypes.CDLL(setting, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            notes.append(f"{ENV_VAR}={setting} could not be loaded ({exc})")
        else:
            if _exports_sgemm(handle):
                return BlasStatus(setting, f"preloaded {setting} from {ENV_VAR}")
            notes.append(f"{ENV_VAR}={setting} does not export {_REQUIRED_SYMBOL}")
    for path, label in candidates:
        try:
            handle = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue  # not on this machine: the normal case for most candidates
        if _exports_sgemm(handle):
            return BlasStatus(path, "; ".join([*notes, f"preloaded {label}"]))
        notes.append(f"{path} does not export {_REQUIRED_SYMBOL}")
    return BlasStatus(None, "; ".join([*notes, "reference BLAS: no OpenBLAS/MKL found"]))


#: Usable cores up to which one MKL thread was measured faster for MLX than MKL's default (one per core).
SMALL_CPU_CORES = 2


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, which a container or ``taskset`` narrows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def choose_threads(environ: dict[str, str] | None = None) -> str | None:
    """On a Linux CPU with at most two usable cores, run MKL with one thread unless the user chose.

    Why: on a 2-core x86 machine (idle, 2026-12, README "Threads") MLX's training steps ran faster
    with one MKL thread than with MKL's default two: MobileBERT-4L student 2,756 vs 1,826 tok/s,
    MiniLM-L6 teacher 530-756 vs 450-563; and a distillation beside 4-6 busy processes kept 122-130
    tok/s where two threads fell to 21-79. MLX's own work and MKL's second OpenMP thread fight for
    the same two cores. Only the command line calls this (importing the library changes nothing),
    before MLX's first matmul, when MKL reads the variable. A user's ``MKL_NUM_THREADS`` or
    ``OMP_NUM_THREADS`` always wins. Returns what was done, or None when nothing was."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux") or any(name in env for name in ("MKL_NUM_THREADS", "OMP_NUM_THREADS")):
        return None
    cores = usable_cores()
    provider = os.path.basename(sgemm_provider() or "")
    if cores > SMALL_CPU_CORES or not ("mkl" in provider.lower() or provider == "libtorch_cpu.so"):
        return None
    env["MKL_NUM_THREADS"] = "1"
    return f"MKL_NUM_THREADS=1 set by mlx_distill ({cores} usable cores, MKL serves sgemm, no thread variable given)"


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def sgemm_provider() -> str | None:
    """The library file whose ``sgemm_`` MLX's matmuls end up in.

    A preloaded (``RTLD_GLOBAL``) BLAS is visible to ``dlsym(RTLD_DEFAULT)`` and wins; otherwise
    MLX's own bundled reference BLAS serves, which we find in the process's memory map. This is the
    honest answer to "which BLAS is in use", independent of what we tried to load.
    """
    if sys.platform == "darwin":
        return "Accelerate"
    if not sys.platform.startswith("linux"):
        return None
    process = ctypes.CDLL(None)
    try:
        address = ctypes.cast(getattr(process, _REQUIRED_SYMBOL), ctypes.c_void_p).value
    except AttributeError:
        return _bundled_reference_blas()
    info = _DlInfo()
    process.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    if not process.dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.path.realpath(info.dli_fname.decode())


def _bundled_reference_blas() -> str | None:
    """Path of a loaded ``libblas*.so`` (MLX's bundled netlib BLAS), or None if none is mapped."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.split()[-1] if line.split() else ""
        if "/libblas" in path and ".so" in path:
            return f"{path} (reference BLAS)"
    return None
