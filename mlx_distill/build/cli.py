"""``python -m mlx_distill build CONFIG.toml [--out RUN_DIR] [--dry-run] [--restart]``.

Exit codes (through ``mlx_distill.cli.main``): 0 built and every check passed, 1 a failed check or
bad input (one ``error:`` line naming file, line and key), 130 interrupted (rerun to resume).
"""

from __future__ import annotations

import argparse
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
    parser.set_defaults(run=run, check_paths=check_paths)
    return parser


def _config(args: argparse.Namespace) -> BuildConfig:
    if getattr(args, "build_config", None) is None:
        args.build_config = load_build_config(args.config)
        if args.out is None:
            args.out = default_run_dir(args.config)
    return args.build_config


def check_paths(args: argparse.Namespace) -> None:
    """Before any work: the build file is valid and the run folder holds no input (and is in none)."""
    check_run_folder(_config(args), args.out if args.out is not None else default_run_dir(args.config))


def run(args: argparse.Namespace) -> int:
    from mlx_distill.build.run import plan, run_build
    from mlx_distill.runtime import select_device

    config = _config(args)
    device = select_device()
    if args.dry_run:
        decisions = plan(config, args.out, device, restart=args.restart)
        width = max(len(d.stage) for d in decisions)
        print(f"build {config.path} -> {args.out} ({device})")
        for d in decisions:
            print(f"  {d.stage:<{width}}  {'run   ' if d.run else 'reuse '}  {d.reason}")
        return 0
    print(f"build {config.path} -> {args.out} ({device})", file=sys.stderr)
    summaries = run_build(config, args.out, device, restart=args.restart)
    student, teacher, check = summaries["distill"], summaries["teacher"], summaries["check"]
    split = "test" if student.get("test") else "eval"
    print(f"teacher: {split} accuracy {teacher[split]['accuracy']:.3f}")
    print(f"student: {split} accuracy {student[split]['accuracy']:.3f}  agreement with teacher "
          f"{student[split]['teacher_agreement']:.3f} ({student['params']:,} parameters, {student['preset']})")
    print(f"check: {'passed' if check['passed'] else 'FAILED: ' + '; '.join(check['failed'])}")
    print(f"report: {args.out / 'report.md'} (and report.json); student: {args.out / 'distill'}; "
          f"Core ML: {args.out / 'export'}")
    return 0 if check["passed"] else 1
