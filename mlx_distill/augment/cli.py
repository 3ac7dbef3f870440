"""``augment`` on the command line: flags generated from :class:`AugmentConfig`.

``add_parser(subparsers)`` registers the subcommand for ``python -m mlx_distill``;
``python -m mlx_distill.augment`` runs the same parser on its own.
"""

from __future__ import annotations

import argparse
import sys

from mlx_distill.augment.config import add_config_arguments, config_from_args

DESCRIPTION = ("An LLM writes labelled examples for your labels from few-shot prompts of your own rows; "
               "rows are parsed, de-duplicated, checked against eval/test data and appended with provenance.")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("augment", help="an LLM writes labelled synthetic rows (local mlx-lm by default)",
                                   description=DESCRIPTION)
    add_config_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlx_distill.augment.run import run_augment, summary_lines

    result = run_augment(config_from_args(args))
    for line in summary_lines(result):
        print(line, file=sys.stderr if line.startswith("warning:") else sys.stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlx_distill.augment")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["augment", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: rows so far are saved; rerun the same command to continue", file=sys.stderr)
        return 130
