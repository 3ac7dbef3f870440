"""`distill --processes 2` on 127.0.0.1 through the real mlx.launch and ring backend: the student
equals a one-process run with the same global batch and seed; a killed rank fails the command
with one line; the same command resumes; another process count is refused.

Dropout is 0 (the student config), because dropout masks are drawn per shard and cannot match
across shardings. Every loss term is on (KD, CE on the labelled rows only, hidden-state MSE through
projections, attention KL), shards of unequal size and a step that leaves one rank no rows: the
trainer makes all of them exact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.helpers.dp_helpers import ENV, distill_args, kill_rank_once_saved, run_distributed

pytestmark = pytest.mark.slow

#: Softmax ignores a shift shared by every key, so these biases' true gradient is exactly 0: they
#: move only by rounding noise that Adam scales up to lr-sized steps, under any change of
#: summation order (one process with accumulation vs one large batch too).
ZERO_GRADIENT = "attention.self.key.bias"


def _weights(folder: Path) -> dict[str, np.ndarray]:
    return load_file(folder / "model.safetensors")


@pytest.fixture(scope="module")
def runs(dp_inputs, tmp_path_factory):
    """One uninterrupted 2-process run and one 1-process run of the same command."""
    out = tmp_path_factory.mktemp("dp_runs")
    two = run_distributed([*distill_args(dp_inputs, out / "two"), "--processes", "2"])
    assert two.returncode == 0, two.stderr
    one = subprocess.run([sys.executable, "-m", "mlx_distill", *distill_args(dp_inputs, out / "one")],
                         capture_output=True, text=True, timeout=300, env=ENV)
    assert one.returncode == 0, one.stderr
    return out, two


def test_two_processes_give_the_one_process_student(runs):
    out, two = runs
    one_w, two_w = _weights(out / "one"), _weights(out / "two")
    assert set(one_w) == set(two_w)
    diffs = {name: float(np.abs(one_w[name] - two_w[name]).max()) for name in one_w}
    exact = {name: d for name, d in diffs.items() if ZERO_GRADIENT not in name}
    assert len(exact) >= len(diffs) - 2  # only the two layers' key biases are set aside
    assert max(exact.values()) <= 1e-5, sorted(exact.items(), key=lambda kv: -kv[1])[:3]
    reports = [json.loads((out / n / "training" / "report.json").read_text()) for n in ("one", "two")]
    assert reports[1]["processes"] == 2 and reports[0]["processes"] == 1
    assert reports[0]["training"]["steps"] == reports[1]["training"]["steps"] == 24
    # results printed once (rank 1's stdout is silenced), no mlx.launch warning
    assert two.stdout.count("student ->") == 1 and "[WARN]" not in two.stderr
    # the teacher cache computed by two ranks is the one a single process computes
    caches = [next((out / n / "training" / "teacher_cache").glob("*/shard-00000.safetensors")) for n in ("one", "two")]
    a, b = load_file(caches[0]), load_file(caches[1])
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_killed_rank_fails_clearly_and_the_same_command_resumes(runs, dp_inputs):
    out, _ = runs
    crash = out / "crash"
    command = [sys.executable, "-m", "mlx_distill.distributed", *distill_args(dp_inputs, crash), "--processes", "2"]
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    code, stderr = kill_rank_once_saved(running, crash / "training" / "checkpoint" / "trainer.json", 1, b"--rank",
                                        str(crash).encode(), wait=240)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1, stderr
    assert lines[-1].startswith("error: rank 1 of 2 was killed by signal 9 (SIGKILL)"), stderr
    assert "Traceback" not in stderr and "[WARN]" not in stderr and "[ring]" not in stderr, stderr
    assert not (crash / "model.safetensors").exists()  # it really died mid-run

    # A different number of processes cannot resume this checkpoint.
    single = subprocess.run([sys.executable, "-m", "mlx_distill", *distill_args(dp_inputs, crash)],
                            capture_output=True, text=True, timeout=300, env=ENV)
    assert single.returncode == 1
    assert "made by a run with 2 process(es), this run has 1; rerun with --processes 2" in single.stderr

    resumed = run_distributed([*distill_args(dp_inputs, crash), "--processes", "2"])
    assert resumed.returncode == 0, resumed.stderr
    assert "distill: resuming from the checkpoint at step" in resumed.stderr
    full, again = _weights(out / "two"), _weights(crash)
    for name in full:
        np.testing.assert_array_equal(full[name], again[name], err_msg=name)
