"""Helpers of the data-parallel tests (tests/distributed, tests/build_command/test_build_parallel.py):
the thread-limited environment, the ``python -m mlx_distill.distributed`` runs and killing one rank."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: Two threads per rank would oversubscribe the 2-core machine the suite runs on.
ENV = {**os.environ, "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def distill_args(root: Path, out: Path, *extra: str) -> list[str]:
    """A small distillation with every loss term on (KD, CE, hidden MSE through projections,
    attention KL): 50 rows in batches of 7 split 4 + 3 over two ranks, and a last batch of one
    row that leaves rank 1 a step without rows, so exactness is tested where it is hardest.
    (Accumulation uses the same weighting: test_exact_combination.py.)"""
    return ["distill", "--teacher", str(root / "teacher"), "--train", str(root / "train.jsonl"),
            "--eval", str(root / "eval.jsonl"), "--unlabeled", str(root / "notes.txt"), "--out", str(out),
            "--student-config", str(root / "student.json"), "--init", "random", "--max-length", "24",
            "--epochs", "3", "--batch-size", "7", "--checkpoint-every", "2",
            "--eval-every", "100", "--lr", "2e-3", *extra]


def run_distributed(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlx_distill.distributed", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def rank_pid(rank: int, *markers: bytes) -> int | None:
    """The pid of one rank of our own launch: a process whose command line holds every marker and
    whose environment has ``MLX_RANK=rank``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(m in cmdline for m in markers) and f"MLX_RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def kill_rank_once_saved(running: subprocess.Popen, saved: Path, rank: int, *markers: bytes,
                         wait: float = 300) -> tuple[int, str]:
    """Wait until ``saved`` exists (a checkpoint), SIGKILL that rank of ``running``'s launch and
    return the command's (exit code, stderr)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and running.poll() is None and not saved.exists():
        time.sleep(0.05)
    pid = rank_pid(rank, *markers)
    assert pid is not None, f"rank {rank} not found"
    os.kill(pid, signal.SIGKILL)
    _, stderr = running.communicate(timeout=120)
    return running.returncode, stderr
