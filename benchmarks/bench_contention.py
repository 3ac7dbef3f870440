"""A busy machine: how the student training step degrades when other processes want the cores.

For 0, 1 and 2 competing busy processes (pure-Python spin loops, one core each, like a test run
beside you), runs ``bench_train.py --rows student-4l`` (MLX compiled and eager, PyTorch) under each
thread setting a user can choose:

- ``default``: nothing set (MKL and OpenMP use every core, waiting threads spin);
- ``passive``: every core, but ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep instead of spinning);
- ``1 thread``: ``MKL_NUM_THREADS=1 OMP_NUM_THREADS=1``.

    python benchmarks/bench_contention.py [--competitors 0 1 2] [--rounds 3] [--row student-4l] [--repeat 1] [--json PATH]

Run it on an otherwise idle machine: the competitors are the only load it should see. Prints a
markdown table of median real tokens/s and writes ``benchmarks/results/contention.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "contention.json"
SETTINGS = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread": {"MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
}
THREAD_VARS = ("MKL_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT")


def _bench(setting: dict[str, str], rounds: int, row: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS} | setting
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "train.json"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--rows", row,
                        "--rounds", str(rounds), "--steps", "2", "--json", str(out)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--competitors", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--row", default="student-4l", help="the bench_train.py row to run (e.g. teacher-minilm)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell, interleaved over the settings")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    cells = []
    for n in args.competitors:
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
        try:
            time.sleep(1.0 if n else 0.0)
            for repeat, (name, setting) in [(r, item) for r in range(args.repeat) for item in SETTINGS.items()]:
                result = _bench(setting, args.rounds, args.row)
                row = result["rows"][0]
                cells.append({"competitors": n, "setting": name, "env": setting, "repeat": repeat, "row": args.row,
                              "mlx_tokens_per_s": row["mlx"]["tokens_per_s"],
                              "torch_tokens_per_s": row["torch"]["tokens_per_s"], "ratio": row["ratio"],
                              "mlx_eager_tokens_per_s": row.get("mlx_eager", {}).get("tokens_per_s")})
                print(f"competitors {n}, {name}: MLX {cells[-1]['mlx_tokens_per_s']:,.0f} tok/s, "
                      f"PyTorch {cells[-1]['torch_tokens_per_s']:,.0f} tok/s", file=sys.stderr, flush=True)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
    print("\n| competing busy processes | setting | MLX tok/s | PyTorch tok/s | MLX / PyTorch |\n|---|---|---|---|---|")
    for c in cells:
        print(f"| {c['competitors']} | {c['setting']} | {c['mlx_tokens_per_s']:,.0f} | {c['torch_tokens_per_s']:,.0f} | "
              f"{c['ratio']:.2f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"work": f"{args.row} (bench_train.py)", "cells": cells,
                                     "cores": os.cpu_count()}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
