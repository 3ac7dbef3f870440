"""Helpers of the data-parallel tests (tests/distributed): the thread-limited environment and the
``python -m mlx_distill.distributed`` runs."""

from __future__ import annotations

import os
import subprocess
import sys
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
