"""Data-parallel runs with ``mx.distributed``: who we are (rank, size), the few collectives the
stages need, and the launcher behind ``--processes N`` / ``--hostfile FILE``.

Why MLX's own launcher (``mlx.launch``) and backends (ring over TCP, MPI, JACCL over Thunderbolt)
instead of our own: they are what MLX users already set up on their Macs. Two facts about
``mlx.launch`` 0.32 shape this module (see FACTS.md): it needs the interpreter named
(``--python``), and it exits 0 even when a rank fails, only printing ``[WARN] Node with rank N
exited with code X``. So :func:`relaunch` checks every rank's exit itself — from the launcher's
warnings and, on this machine, from a status file each rank writes as it ends — and fails with one
clear line and a non-zero exit.

A rank is started as ``python -m mlx_distill.distributed --rank -- COMMAND ARGS...``: it runs the
ordinary command (``mlx_distill.cli.main``; ``build-stage``: one stage of a build), silences its
stdout unless it is rank 0 (so results are printed once), and records its exit code.

Nothing here is global state: :func:`world` reads the launcher's environment each time (MLX caches
the group itself, so repeated calls are cheap and return the same group).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from mlx_distill.build.settings import setting

#: What ``--backend`` accepts: ``mlx.launch``'s backends.
BACKENDS = ("ring", "mpi", "jaccl", "jaccl-ring", "nccl")

#: Environment a rank receives from us (through ``mlx.launch --env``).
_BACKEND_ENV = "MLX_DISTILL_BACKEND"
_STATUS_ENV = "MLX_DISTILL_STATUS_DIR"

#: Environment variables that mean "this process is a rank started by a launcher".
_RANK_ENVS = ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")

#: The exit code of a rank whose peer went away (killed, crashed): a consequence, not a cause.
PEER_LOST = 75

_WARN = re.compile(r"\[WARN\] Node with rank (\d+) (?:exited with code (-?\d+)|was killed)")


# ---- who we are ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel run; ``group`` is None for a single process."""

    rank: int = 0
    size: int = 1
    group: object | None = None

    @property
    def is_root(self) -> bool:
        """Rank 0: the only rank that writes checkpoints, outputs and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched() -> bool:
    """Whether a launcher (mlx.launch, mpirun) started this process as one rank of several."""
    return any(name in os.environ for name in _RANK_ENVS)


def world() -> World:
    """The current run's :class:`World`. A process nobody launched is a world of one and never
    touches a communication backend (so plain runs and tests do not depend on one)."""
    if not launched():
        return World()
    import mlx.core as mx

    backend = os.environ.get(_BACKEND_ENV, "any")
    try:
        group = mx.distributed.init(strict=True, backend=backend)
    except RuntimeError as exc:
        raise RuntimeError(f"the {backend} backend of mx.distributed could not start this rank: {exc}") from None
    return World(group.rank(), group.size(), group if group.size() > 1 else None)


# ---- collectives ----------------------------------------------------------------------------------
def all_sum(x, world: World):
    """``x`` summed over every rank (``x`` itself in a world of one)."""
    if not world.distributed:
        return x
    import mlx.core as mx

    return mx.distributed.all_sum(x, group=world.group)


def average_gradients(grads, world: World):
    """The mean of ``grads`` over the ranks, with ``mlx.nn.average_gradients`` (which batches small
    arrays into few all-reduces). Callers pre-weight each rank's gradient so that the mean is the
    gradient of one large batch."""
    if not world.distributed:
        return grads
    import mlx.nn as nn

    return nn.average_gradients(grads, group=world.group)


def broadcast_json(value, world: World):
    """Rank 0's ``value`` (anything JSON can hold) on every rank. mx.distributed has no broadcast:
    rank 0 contributes its bytes, the others zeros, and an all-sum does the rest."""
    if not world.distributed:
        return value
    import mlx.core as mx
    import numpy as np

    data = json.dumps(value).encode() if world.is_root else b""
    length = int(all_sum(mx.array([len(data)], mx.int32), world).item())
    raw = np.frombuffer(data, dtype=np.uint8) if world.is_root else np.zeros(length, np.uint8)
    summed = all_sum(mx.array(raw.astype(np.int32)), world)
    return json.loads(bytes(np.array(summed).astype(np.uint8).tolist()).decode())


def broadcast_arrays(arrays: dict | None, world: World) -> dict:
    """Rank 0's named arrays (weights, optimizer state) on every rank; the others pass None. Used
    so that every replica starts from exactly rank 0's state — whatever each rank's own
    initialisation or disk holds (on several machines only rank 0 has the checkpoint)."""
    if not world.distributed:
        return arrays or {}
    import mlx.core as mx

    layout = broadcast_json(
        [[k, list(v.shape), str(v.dtype).split(".")[-1]] for k, v in arrays.items()] if world.is_root else None, world
    )
    out = {}
    for name, shape, dtype in layout:
        mine = arrays[name] if world.is_root else mx.zeros(shape, getattr(mx, dtype))
        out[name] = all_sum(mine, world)
    mx.eval(list(out.values()))
    return out


def barrier(world: World) -> None:
    """Wait until every rank gets here (e.g. until rank 0 has written what the others read)."""
    if world.distributed:
        import mlx.core as mx

        mx.eval(all_sum(mx.array(1.0), world))


def shard(rows, world: World):
    """This rank's part of a global batch: contiguous, sizes differing by at most one row, in rank
    order — so concatenating every rank's part gives the global batch back."""
    import numpy as np

    if not world.distributed:
        return rows
    return np.array_split(rows, world.size)[world.rank]


# ---- the launcher ----------------------------------------------------------------------------------
@dataclass
class ParallelSettings:
    """How many ranks run a data-parallel command, and where: the ``--processes``, ``--hostfile`` and
    ``--backend`` flags of ``teacher``, ``distill`` and ``build``, and the ``[parallel]`` table of a
    build file (defaults and help live here once, see :func:`mlx_distill.build.settings.setting`)."""

    processes: int = setting(1, "run N ranks on this machine through `mlx.launch --backend ring`")
    hostfile: Path | None = setting(None, "run one rank per host of this mlx.launch host file (several Macs; "
                                          "excludes processes > 1)")
    backend: str | None = setting(None, "mx.distributed backend with a host file (default: the host file's, "
                                        "else ring)", choices=BACKENDS)

    def __post_init__(self) -> None:
        if isinstance(self.hostfile, str):  # a build file's value
            self.hostfile = Path(self.hostfile) if self.hostfile else None
        check_flags(self.processes, self.hostfile, self.backend)

    @property
    def several(self) -> bool:
        """Whether this runs more than one process (mlx.launch), not the command in this process."""
        return self.processes > 1 or self.hostfile is not None


def add_flags(parser: argparse.ArgumentParser, dest_prefix: str = "") -> None:
    """``--processes``, ``--hostfile`` and ``--backend`` for a command that can run data-parallel
    (``dest_prefix`` keeps them out of :func:`relaunch`'s sight: ``build`` launches its stages itself)."""
    from mlx_distill.build.settings import add_flags as add_setting_flags

    group = parser.add_argument_group("data-parallel (mx.distributed)")
    add_setting_flags(group, ParallelSettings, ParallelSettings(), dest_prefix=dest_prefix)


@dataclass(frozen=True)
class LaunchPlan:
    """What :func:`relaunch` runs: ``mlx.launch``'s command line and how many ranks to expect."""

    command: list[str]
    ranks: int
    local: bool  # every rank on this machine: their status files can be read here
    status_dir: Path


def _flag_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_flags(parser)
    return parser


def split_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(our three flags, the rest of ``argv`` in order): a rank runs the rest, as one process."""
    return _flag_parser().parse_known_args(argv)


def _hostfile_ranks(path: Path) -> tuple[int, bool, str]:
    """(hosts, all on this machine, backend named in the file) of an ``mlx.launch`` host file."""
    where = f"--hostfile {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file; write the mlx.launch host file (JSON) there") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: not an mlx.launch host file (JSON): {exc}") from None
    hosts = data.get("hosts", []) if isinstance(data, dict) else data
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, dict) and "ssh" in h for h in hosts):
        raise ValueError(f"{where}: expected a JSON list of hosts like "
                         '[{"ssh": "mac1.local", "ips": ["192.168.1.10"]}, ...] (or {"hosts": [...]})')
    local = all(h["ssh"] in ("127.0.0.1", "localhost") for h in hosts)
    backend = data.get("backend", "") if isinstance(data, dict) else ""
    return len(hosts), local, backend


def _free_ports(count: int) -> int:
    """A first port of ``count`` consecutive free loopback ports (the ring backend listens on
    starting_port + rank): mlx.launch's fixed default would collide with a second run."""
    for _ in range(200):
        start = random.randint(20000, 60000 - count)
        try:
            sockets = []
            for port in range(start, start + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise OSError(f"no {count} consecutive free ports on 127.0.0.1 for the ring backend")


class ParallelFlagError(ValueError):
    """A refused combination; ``key`` is the setting it names first (``processes``, ``backend``), so
    a build file can point at its line without parsing the message."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def check_flags(processes: int, hostfile: Path | None, backend: str | None) -> None:
    """Refuse a combination that cannot run, with one line naming the flag."""
    if processes < 1:
        raise ParallelFlagError("processes", f"--processes must be >= 1 (got {processes})")
    if hostfile is not None and processes != 1:
        raise ParallelFlagError("processes", "--processes and --hostfile exclude each other: the host file lists "
                                "one rank per host (repeat a host to run several ranks on it)")
    if backend is not None and hostfile is None and backend != "ring":
        raise ParallelFlagError("backend", f"--backend {backend} needs --hostfile; --processes N runs the ring "
                                "backend on this machine")


def launch_plan(flags: argparse.Namespace, rest: list[str], status_dir: Path) -> LaunchPlan | None:
    """The ``mlx.launch`` command for ``flags`` (None: run in this process). Bad combinations are
    refused with one line naming the flag."""
    processes, hostfile = 1 if flags.processes is None else flags.processes, flags.hostfile
    check_flags(processes, hostfile, flags.backend)
    if hostfile is None and processes == 1:
        return None
    launcher = [sys.executable, "-c", "import sys\nfrom importlib.metadata import entry_points\n"
                "sys.argv[0] = 'mlx.launch'\nsys.exit(entry_points(group='console_scripts', name='mlx.launch').__iter__().__next__().load()())"]
    if hostfile is not None:
        ranks, local, file_backend = _hostfile_ranks(hostfile)
        backend = flags.backend or file_backend or "ring"
        where = ["--hostfile", str(hostfile)]
    else:
        ranks, local, backend = processes, True, "ring"
        where = ["--hosts", "127.0.0.1", "-n", str(processes)]
    options = [*where, "--backend", backend, "--python", sys.executable,
               "--env", f"{_BACKEND_ENV}={backend}", "--env", f"{_STATUS_ENV}={status_dir}"]
    if backend == "ring":
        options += ["--starting-port", str(_free_ports(ranks) if local else 32323)]
    command = [*launcher, *options, "--", "-m", "mlx_distill.distributed", "--rank", "--", *rest]
    return LaunchPlan(command, ranks, local, status_dir)


def relaunch(args: argparse.Namespace, argv: list[str]) -> int | None:
    """Run ``argv`` (a whole command line, e.g. ``["distill", ...]``) under ``mlx.launch`` when
    ``args`` asks for several processes or a host file, and return the exit code after checking
    every rank; None when the command should run in this process (one process asked for, or this
    process already is a rank)."""
    if launched() or not hasattr(args, "processes"):
        # Only commands given the data-parallel flags (add_flags) can run as ranks; another command's
        # own --backend (augment's mlx|openai) is not mx.distributed's.
        return None
    flags = argparse.Namespace(processes=1 if args.processes is None else args.processes,
                               hostfile=getattr(args, "hostfile", None), backend=getattr(args, "backend", None))
    _, rest = split_flags(argv)
    with tempfile.TemporaryDirectory(prefix="mlx_distill-ranks-") as status:
        plan = launch_plan(flags, rest, Path(status))
        if plan is None:
            return None
        return run_plan(plan)


def run_ranks(argv: list[str], parallel: ParallelSettings, what: str = "") -> int:
    """Run the mlx_distill command line ``argv`` as the ranks ``parallel`` asks for (several
    processes or a host file) and return its exit code after checking every rank, as
    :func:`relaunch` does; ``build`` runs its data-parallel stages this way."""
    with tempfile.TemporaryDirectory(prefix="mlx_distill-ranks-") as status:
        plan = launch_plan(parallel, argv, Path(status))
        if plan is None:
            raise ValueError("run_ranks needs several processes or a host file")
        return run_plan(plan, what)


@dataclass
class RankOutcome:
    """How the ranks ended, from the launcher's warnings and the ranks' status files."""

    codes: dict[int, int]  # rank -> exit code (negative: killed by that signal)
    missing: list[int]  # ranks that never reported (killed before they could)
    printed_error: bool  # a rank already printed its own `error:` line
    network: str = ""  # the backend's last complaint (e.g. "[ring] Socket 3 was closed by the peer")

    @property
    def ok(self) -> bool:
        return not self.missing and all(code == 0 for code in self.codes.values())

    def exit_code(self) -> int:
        failed = [code for code in self.codes.values() if code != 0]
        if failed and all(code == 130 for code in failed) and not self.missing:
            return 130
        positive = [code for code in failed if code > 0 and code not in (130, PEER_LOST)]
        return positive[0] if positive else 1

    def cause(self) -> tuple[int, int | None] | None:
        """(rank, code) of the rank that failed first in kind: killed (by anything but the
        launcher's SIGTERM, which stops the other ranks once one fails) or vanished, before one
        that reported an error, before one stopped by the launcher, interrupted, or that only lost
        its peers; None when every rank succeeded."""
        stopped = -signal.SIGTERM
        killed = sorted([r for r, c in self.codes.items() if c < 0 and c != stopped] + self.missing)
        if killed:
            return killed[0], self.codes.get(killed[0])
        for wanted in (lambda c: c > 0 and c not in (130, PEER_LOST), lambda c: c == stopped, lambda c: c == 130,
                       lambda c: c == PEER_LOST):
            ranks = sorted(r for r, c in self.codes.items() if wanted(c))
            if ranks:
                return ranks[0], self.codes[ranks[0]]
        return None

    def message(self, ranks: int) -> str:
        """One line naming the rank that failed and how (the others only lost their connection)."""
        rank, code = self.cause() or (0, 1)
        if code is None:
            how = "ended without reporting its exit (killed?)"
        elif code < 0:
            name = signal.Signals(-code).name if -code in {s.value for s in signal.Signals} else "?"
            how = f"was killed by signal {-code} ({name})"
        elif code == PEER_LOST:
            return (f"error: the {ranks} ranks lost their connection to each other ({self.network or 'no detail'}); "
                    "check the network between the hosts, then run the same command again to resume")
        else:
            how = f"exited with code {code}"
        return (f"error: rank {rank} of {ranks} {how}; the other ranks were stopped. Run the same command again to "
                "resume from the last checkpoint")


def _forward(stream, sink, seen: set[str], warnings: dict[int, int | None], lock: threading.Lock,
             network: list[str]) -> None:
    """Copy the launcher's output line by line: its ``[WARN] Node ...`` lines and the ring
    backend's socket complaints are recorded (our own line replaces them) and a line every rank
    prints (a warning, an error) is shown once."""
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        found = _WARN.search(line)
        if found:
            with lock:
                warnings[int(found.group(1))] = int(found.group(2)) if found.group(2) is not None else None
            continue
        if line.startswith("[ring]"):
            network.append(line.strip())
            continue
        key = line.rstrip("\n")
        with lock:
            if key.strip() and key in seen:
                continue
            seen.add(key)
        sink.write(line)
        sink.flush()


def run_plan(plan: LaunchPlan, what: str = "") -> int:
    """Run ``mlx.launch`` and turn what happened to its ranks into our exit code (and one line,
    ``what`` put after its ``error:``: the build names the stage whose ranks failed)."""
    plan.status_dir.mkdir(parents=True, exist_ok=True)
    # stdin is a pipe we never write to: mlx.launch polls its stdin, and /dev/null would make that
    # poll return at once, forever (a busy loop on a machine that has few cores to spare).
    process = subprocess.Popen(plan.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: set[str] = set()
    warnings: dict[int, int | None] = {}
    lock = threading.Lock()
    network: list[str] = []
    threads = [threading.Thread(target=_forward, args=(stream, sink, seen, warnings, lock, network), daemon=True)
               for stream, sink in ((process.stdout, sys.stdout), (process.stderr, sys.stderr))]
    for t in threads:
        t.start()
    try:
        process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)  # the ranks got the terminal's Ctrl-C too; let them save
        try:
            process.wait(timeout=60)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            process.kill()
            process.wait()
    for t in threads:
        t.join(timeout=10)
    outcome = collect(plan, warnings, seen)
    outcome.network = network[-1] if network else ""
    if outcome.ok and process.returncode == 0:
        return 0
    if outcome.ok:  # every rank succeeded, the launcher itself did not (bad launch line...)
        print(f"error: {what}mlx.launch failed with exit code {process.returncode}", file=sys.stderr)
        return 1
    cause = outcome.cause()
    own_error = cause is not None and cause[1] is not None and cause[1] > 0 and cause[1] != PEER_LOST
    if outcome.exit_code() != 130 and not (own_error and outcome.printed_error):
        print(outcome.message(plan.ranks).replace("error: ", f"error: {what}", 1), file=sys.stderr)
    return outcome.exit_code()


def collect(plan: LaunchPlan, warnings: dict[int, int | None], seen: set[str]) -> RankOutcome:
    codes: dict[int, int] = {}
    missing: list[int] = []
    for rank in range(plan.ranks):
        path = plan.status_dir / f"rank-{rank}.exit"
        if plan.local and path.exists():
            codes[rank] = int(path.read_text().strip() or 1)
        elif rank in warnings:
            code = warnings[rank]
            codes[rank] = code if code is not None else -signal.SIGTERM
        elif plan.local:
            missing.append(rank)
        else:
            codes[rank] = 0  # a remote rank mlx.launch did not warn about ended well
    for rank, code in warnings.items():  # the launcher saw what a status file could not say (killed)
        if code is not None and code != 0 and codes.get(rank, 0) == 0:
            codes[rank] = code
    printed = any(line.startswith("error:") for line in seen)
    return RankOutcome(codes, missing, printed)


# ---- one rank --------------------------------------------------------------------------------------
def _run_rank(argv: list[str]) -> int:
    """Run the command as one rank: stdout only on rank 0 (results print once), the exit code
    recorded for the launching process."""
    rank = next((os.environ[name] for name in _RANK_ENVS if name in os.environ), "0")
    if rank != "0":
        sys.stdout = open(os.devnull, "w")
    code = 1
    try:
        if argv[:1] == ["build-stage"]:  # one stage of a build (mlx_distill.build.run launches it)
            from mlx_distill.build.cli import stage_main

            code = stage_main(argv[1:])
        else:
            from mlx_distill.cli import main

            code = main(argv)
    except RuntimeError as exc:
        if "[ring]" not in str(exc) and "peer" not in str(exc):
            raise
        # Another rank went away (killed, crashed): this rank's traceback would only bury the
        # cause, which the launching process reports in one line.
        code = PEER_LOST
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    finally:
        status = os.environ.get(_STATUS_ENV)
        if status and Path(status).is_dir():  # only on the launching machine
            target = Path(status) / f"rank-{rank}.exit"
            tmp = target.with_suffix(".tmp")
            tmp.write_text(str(code))
            os.replace(tmp, target)
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m mlx_distill.distributed COMMAND ARGS... [--processes N | --hostfile F [--backend B]]``
    runs an mlx_distill command data-parallel (until ``mlx_distill.cli`` has these flags itself);
    ``--rank -- COMMAND ARGS...`` is how the launcher starts each rank."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["--rank", "--"]:
        return _run_rank(argv[2:])
    flags, rest = split_flags(argv)
    if not rest:
        print("usage: python -m mlx_distill.distributed COMMAND ARGS... --processes N | --hostfile FILE",
              file=sys.stderr)
        return 2
    try:
        code = relaunch(flags, argv)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if code is not None:
        return code
    from mlx_distill.cli import main as cli_main

    return cli_main(rest)


if __name__ == "__main__":
    sys.exit(main())
