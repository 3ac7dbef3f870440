"""``python -m export.check PATH [--model DIR] [--json]``: every check but the MLX parity.

Exit status 0 only when every check that ran passed; 1 otherwise; 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.check", description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path, help="folder written by `python -m mlx_distill export`")
    parser.add_argument("--model", type=Path, help="the Hugging Face folder it was exported from "
                                                   "(default: source_model_dir from the manifest)")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    parser.add_argument("--out", type=Path, help="where to write check.json (default: inside the export folder)")
    args = parser.parse_args(argv)

    from export.check import run_checks

    try:
        report = run_checks(args.export_dir, model_dir=args.model, output_path=args.out)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report.summary())
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
