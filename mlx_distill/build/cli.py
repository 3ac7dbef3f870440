"""``python -m mlx_distill build CONFIG.toml [--out RUN_DIR] [--dry-run] [--restart] [--processes N | --hostfile FILE]``.

Exit codes (through ``mlx_distill.cli.main``): 0 built and every check passed, 1 a failed check,
bad input (one ``error:`` line naming file, line and key) or a failed rank of a data-parallel stage
(one line naming the stage and the rank), 130 interrupted (rerun to resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from mlx_distill.build.config import BuildConfig, check_run_folder, load_build_config


def default_run_dir(config_path: Path) -> Path:
    """``runs/<file stem>`` in the current folder: ``build.toml`` of the demo -> ``runs/demo``."""
    stem = config_path.stem
    return Path("runs") / (config_path.parent.name if stem == "build" else stem)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("build", help="run every stage of a build file (resumable), with a report",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, metavar="CONFIG.toml", help="the build file (see the README's reference)")
    parser.add_argument("--out", type=Path, metavar="RUN_DIR",
                        help="run folder (default runs/<name of the build file>)")
    parser.add_argument("--dry-run", action="store_true", help="print which stages would run or be reused, and why")
    parser.add_argument("--restart", action="store_true", help="run every stage again from scratch")
    from mlx_distill.build.stages import STAGES

    parser.add_argument("--until", metavar="STAGE", choices=[s.name for s in STAGES],
                        help="stop after this stage (" + ", ".join(s.name for s in STAGES) + "), e.g. --until distill "
                             "while tuning the student; a later run without it reuses what is done")
    from mlx_distill import distributed

    # The build launches its data-parallel stages itself (run.py): the values go to parallel_*,
    # where mlx_distill.cli's relaunch of the whole command does not look.
    distributed.add_flags(parser, dest_prefix=_PARALLEL)
    parser.set_defaults(run=run, check_paths=check_paths)
    return parser


_PARALLEL = "parallel_"


def _config(args: argparse.Namespace) -> BuildConfig:
    if getattr(args, "build_config", None) is None:
        config = load_build_config(args.config)
        config.parallel = _parallel(config, args)
        args.build_config = config
        if args.out is None:
            args.out = default_run_dir(args.config)
    return args.build_config


def _parallel(config: BuildConfig, args: argparse.Namespace):
    """The build file's [parallel] table with the flags given on top: ``--processes`` or
    ``--hostfile`` replaces the whole table (where and how the ranks run), ``--backend`` alone
    only its backend."""
    from mlx_distill.build.settings import given_values
    from mlx_distill.distributed import ParallelSettings

    given = given_values(args, ParallelSettings, _PARALLEL)
    if not given:
        return config.parallel
    values = dataclasses.asdict(config.parallel)
    if "processes" in given or "hostfile" in given:
        values = dataclasses.asdict(ParallelSettings())
    return ParallelSettings(**{**values, **given})


def check_paths(args: argparse.Namespace) -> None:
    """Before any work: the build file is valid, the run folder holds no input (and is in none) and
    ``--until`` names a stage this build has."""
    from mlx_distill.build.stages import stages_until

    config = _config(args)
    check_run_folder(config, args.out if args.out is not None else default_run_dir(args.config))
    stages_until(config, args.until)


def run(args: argparse.Namespace) -> int:
    from mlx_distill.build.run import RanksFailed, plan, run_build
    from mlx_distill.runtime import select_device

    config = _config(args)
    device = select_device()
    where = f"{device}{_ranks(config)}"
    if args.dry_run:
        decisions = plan(config, args.out, device, restart=args.restart, until=args.until)
        width = max(len(d.stage) for d in decisions)
        print(f"build {config.path} -> {args.out} ({where})")
        for d in decisions:
            print(f"  {d.stage:<{width}}  {'run   ' if d.run else 'reuse '}  {d.reason}")
        return 0
    print(f"build {config.path} -> {args.out} ({where})", file=sys.stderr)
    try:
        summaries = run_build(config, args.out, device, restart=args.restart, until=args.until)
    except RanksFailed as exc:  # the launcher printed the line naming the stage and the rank
        return exc.code
    return _print_summary(summaries, args.out)


def _print_summary(summaries: dict[str, dict], out: Path) -> int:
    """The build's result in a few lines: whatever stages ran (all of them without --until)."""
    teacher, student, check = (summaries.get(name) for name in ("teacher", "distill", "check"))
    split = "test" if (student or teacher or {}).get("test") else "eval"
    if teacher:
        print(f"teacher: {split} accuracy {teacher[split]['accuracy']:.3f}")
    if student:
        print(f"student: {split} accuracy {student[split]['accuracy']:.3f}  agreement with teacher "
              f"{student[split]['teacher_agreement']:.3f} ({student['params']:,} parameters, {student['preset']})")
    if check:
        print(f"check: {'passed' if check['passed'] else 'FAILED: ' + '; '.join(check['failed'])}")
    if "report" in summaries:
        print(f"report: {out / 'report.md'} (and report.json); student: {out / 'distill'}; Core ML: {out / 'export'}")
    else:
        print(f"stopped after {list(summaries)[-1]} (--until); run again without --until to finish: {out}")
    return 0 if check is None or check["passed"] else 1


def _ranks(config: BuildConfig) -> str:
    p = config.parallel
    if not p.several:
        return ""
    return f"; teacher and distill on {p.processes} processes" if p.hostfile is None else \
        f"; teacher and distill on the hosts of {p.hostfile}"


def stage_main(argv: list[str]) -> int:
    """One rank of a data-parallel stage: ``build-stage CONFIG --out RUN_DIR --stage NAME [--fresh]``,
    started by the build (run.py) through ``python -m mlx_distill.distributed --rank``. It runs the
    stage's own function, as one process would; rank 0 writes, the build records the stage."""
    parser = argparse.ArgumentParser(prog="build-stage")
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stage", required=True)
    parser.add_argument("--fresh", action="store_true", help="start the stage over (no resume)")
    args = parser.parse_args(argv)
    try:
        from mlx_distill.build.stages import STAGES, Context
        from mlx_distill.runtime import select_device

        config = load_build_config(args.config, torch_side=False)
        stage = next(s for s in STAGES if s.name == args.stage)
        stage.run(Context(config, args.out, select_device(), {}, {}), not args.fresh)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
