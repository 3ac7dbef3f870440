"""MLX on Linux CPU with and without the optimised-BLAS preload, side by side in one run.

The preload is a per-process decision (it must precede ``import mlx.core``), so each measurement
runs in a fresh child process; children with and without the preload are interleaved round by
round so that drift in machine load hits both equally. Run it on an otherwise idle machine.

    python benchmarks/bench_blas.py [--rounds 3] [--sizes 256 512 1024] [--no-train-step]

Prints a table and writes benchmarks/results/blas.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "blas.json"


def child(sizes: list[int], train_step: bool) -> dict:
    import mlx_distill  # noqa: F401 - runs (or skips) the preload
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    from mlx_distill.blas import sgemm_provider
    from mlx_distill.models import MobileBertConfig, build_classifier

    out: dict = {"blas": sgemm_provider(), "status": mlx_distill.BLAS_STATUS.reason, "matmul_gflops": {}}
    for n in sizes:
        a, b = mx.random.normal((n, n)), mx.random.normal((n, n))
        mx.eval(a @ b)
        reps, start = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - start < 1.0:
            mx.eval(a @ b)
            reps += 1
        out["matmul_gflops"][str(n)] = 2 * n**3 * reps / (time.perf_counter() - start) / 1e9
    if train_step:
        # A 4-layer MobileBERT (default widths) classifier training step, batch 16 x 128.
        config = MobileBertConfig(num_hidden_layers=4, id2label={0: "a", 1: "b"})
        model = build_classifier(config, seed=0)
        model.train()
        optimizer = optim.AdamW(1e-4)
        ids = mx.random.randint(0, config.vocab_size, (16, 128))
        labels = mx.random.randint(0, 2, (16,))

        def loss_fn(m):
            return nn.losses.cross_entropy(m(ids).logits, labels).mean()

        step = nn.value_and_grad(model, loss_fn)

        def one_step():
            loss, grads = step(model)
            optimizer.update(model, grads)
            mx.eval(loss, model.parameters(), optimizer.state)

        one_step()  # warm-up
        steps, start = 0, time.perf_counter()
        while steps < 1 or time.perf_counter() - start < 3.0:
            one_step()
            steps += 1
        out["train_tokens_per_s"] = 16 * 128 * steps / (time.perf_counter() - start)
    return out


def run_child(preload: bool, sizes: list[int], train_step: bool) -> dict:
    env = dict(os.environ)
    env["MLX_DISTILL_BLAS"] = env.get("MLX_DISTILL_BLAS", "") if preload else "off"
    if preload and env["MLX_DISTILL_BLAS"].lower() == "off":
        env["MLX_DISTILL_BLAS"] = ""
    cmd = [sys.executable, __file__, "--child", "--sizes", *map(str, sizes)]
    if not train_step:
        cmd.append("--no-train-step")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--no-train-step", dest="train_step", action="store_false")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.sizes, args.train_step)))
        return

    runs: dict[str, list[dict]] = {"preloaded": [], "reference": []}
    for round_no in range(args.rounds):
        for name in ("preloaded", "reference") if round_no % 2 == 0 else ("reference", "preloaded"):
            runs[name].append(run_child(name == "preloaded", args.sizes, args.train_step))
            print(f"round {round_no + 1}/{args.rounds} {name}: done", file=sys.stderr)

    def median(name: str, pick) -> float:
        return statistics.median(pick(r) for r in runs[name])

    rows = [(f"matmul {n}x{n} fp32 (GFLOP/s)", lambda r, n=n: r["matmul_gflops"][str(n)]) for n in args.sizes]
    if args.train_step:
        rows.append(("MobileBERT-4L train step 16x128 (tokens/s)", lambda r: r["train_tokens_per_s"]))
    summary = {
        "blas": {name: runs[name][0]["blas"] for name in runs},
        "rounds": args.rounds,
        "cpu_count": os.cpu_count(),
        "results": {},
    }
    print(f"\nBLAS preloaded: {summary['blas']['preloaded']}\nreference:      {summary['blas']['reference']}\n")
    print(f"{'measurement':<46}{'reference':>12}{'preloaded':>12}{'speed-up':>10}")
    for label, pick in rows:
        ref, fast = median("reference", pick), median("preloaded", pick)
        summary["results"][label] = {"reference": ref, "preloaded": fast, "speedup": fast / ref}
        print(f"{label:<46}{ref:>12.1f}{fast:>12.1f}{fast / ref:>9.1f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**summary, "raw": runs}, indent=2))
    print(f"\nmedians of {args.rounds} interleaved rounds; JSON: {RESULTS}")


if __name__ == "__main__":
    main()
