#!/usr/bin/env python
"""Check an exported model folder before dragging it into Xcode (the seed's ``check_update.py``).

    python scripts/check_update.py runs/demo/coreml [--model runs/demo/student] [--json]

Runs every check of ``python -m mlx_distill check``: shapes against the manifest, parity of the
Core ML files with the PyTorch shell and the MLX model on real texts, extreme inputs, Core ML's
updatable rules, a simulated on-device update and the fp16 range. Writes ``check.json`` into the
folder; exits 0 only when every check that ran passed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:  # works from a checkout without `pip install -e .`
        sys.path.insert(0, str(root))
    from mlx_distill.cli import main as cli_main

    return cli_main(["check", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
