"""The launcher behind --processes / --hostfile: flags, the mlx.launch line, refusals, and how a
failed rank becomes one line and a non-zero exit (mlx.launch itself exits 0)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.dp_helpers import ENV
from mlx_distill.distributed import PEER_LOST, RankOutcome, add_flags, launch_plan, split_flags


def flags(processes=1, hostfile=None, backend=None):
    return argparse.Namespace(processes=processes, hostfile=hostfile, backend=backend)


def test_split_flags_keeps_the_command_in_order():
    known, rest = split_flags(["distill", "--teacher", "t", "--processes", "2", "--lr", "1e-3", "--backend=ring"])
    assert (known.processes, known.backend, known.hostfile) == (2, "ring", None)
    assert rest == ["distill", "--teacher", "t", "--lr", "1e-3"]
    # no abbreviations: `--proc` must not be taken for --processes
    assert split_flags(["distill", "--proc", "2"])[1] == ["distill", "--proc", "2"]


def test_add_flags_on_a_subparser():
    parser = argparse.ArgumentParser()
    add_flags(parser.add_subparsers(dest="command").add_parser("distill"))
    args = parser.parse_args(["distill", "--processes", "3", "--hostfile", "hosts.json", "--backend", "mpi"])
    assert (args.processes, args.hostfile, args.backend) == (3, Path("hosts.json"), "mpi")


def test_one_process_runs_in_process_and_two_go_through_mlx_launch(tmp_path):
    assert launch_plan(flags(1), ["distill"], tmp_path) is None
    plan = launch_plan(flags(2), ["distill", "--out", "o"], tmp_path)
    line = plan.command
    assert plan.ranks == 2 and plan.local
    assert line[line.index("--backend") + 1] == "ring" and line[line.index("-n") + 1] == "2"
    assert line[line.index("--python") + 1] == sys.executable  # mlx.launch 0.32 fails without it
    assert 20000 <= int(line[line.index("--starting-port") + 1]) < 60000  # not the fixed default: runs may overlap
    assert line[-6:] == ["mlx_distill.distributed", "--rank", "--", "distill", "--out", "o"]


@pytest.mark.parametrize("given, message", [
    (flags(0), r"--processes must be >= 1 \(got 0\)"),
    (flags(2, hostfile=Path("h.json")), "--processes and --hostfile exclude each other"),
    (flags(2, backend="mpi"), "--backend mpi needs --hostfile"),
])
def test_bad_combinations_are_refused_naming_the_flag(tmp_path, given, message):
    with pytest.raises(ValueError, match=message):
        launch_plan(given, ["distill"], tmp_path)


def test_hostfile_is_read_and_checked(tmp_path):
    hosts = tmp_path / "hosts.json"
    with pytest.raises(ValueError, match=rf"--hostfile {hosts}: no such file"):
        launch_plan(flags(hostfile=hosts), ["distill"], tmp_path)
    hosts.write_text("{not json")
    with pytest.raises(ValueError, match=rf"--hostfile {hosts}: not an mlx.launch host file"):
        launch_plan(flags(hostfile=hosts), ["distill"], tmp_path)
    hosts.write_text(json.dumps({"backend": "jaccl", "hosts": [{"ssh": "mac1.local", "ips": ["10.0.0.1"]},
                                                              {"ssh": "mac2.local", "ips": ["10.0.0.2"]}]}))
    plan = launch_plan(flags(hostfile=hosts), ["distill"], tmp_path)
    assert plan.ranks == 2 and not plan.local
    assert plan.command[plan.command.index("--backend") + 1] == "jaccl"  # the file's backend...
    plan = launch_plan(flags(hostfile=hosts, backend="ring"), ["distill"], tmp_path)
    assert plan.command[plan.command.index("--backend") + 1] == "ring"  # ...unless --backend says otherwise


def test_the_killed_rank_is_named_not_the_ranks_that_lost_it(tmp_path):
    outcome = RankOutcome({0: PEER_LOST, 1: -9, 2: PEER_LOST}, [], printed_error=False)
    assert outcome.cause() == (1, -9) and outcome.exit_code() == 1
    assert outcome.message(3).startswith("error: rank 1 of 3 was killed by signal 9 (SIGKILL)")
    vanished = RankOutcome({0: PEER_LOST}, [1], printed_error=False)
    assert "rank 1 of 2 ended without reporting" in vanished.message(2)
    network = RankOutcome({0: PEER_LOST, 1: PEER_LOST}, [], False, "[ring] Socket 3 was closed by the peer")
    assert "lost their connection to each other ([ring] Socket 3" in network.message(2)
    # mlx.launch stops the surviving ranks with SIGTERM once one fails: the failed one is the cause
    assert RankOutcome({0: 1, 1: -15}, [], printed_error=True).cause() == (0, 1)
    assert RankOutcome({0: 130, 1: 130}, [], False).exit_code() == 130
    assert RankOutcome({0: 0, 1: 0}, [], False).ok


def _distributed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlx_distill.distributed", *args], capture_output=True, text=True,
                          timeout=120, env=ENV)


def test_two_ranks_print_results_once(tmp_path):
    """Through the real mlx.launch: only rank 0's stdout is shown."""
    done = _distributed("info", "--json", "--processes", "2")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)  # one JSON document, not two
    assert "[WARN]" not in done.stderr


def test_a_failing_command_fails_once_with_its_own_line(tmp_path):
    """Every rank refuses the missing folder: one `error:` line (not one per rank, no mlx.launch
    warning), and exit 1 although mlx.launch itself exits 0."""
    done = _distributed("predict", str(tmp_path / "missing"), "some text", "--processes", "2")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing" in lines[0], done.stderr
