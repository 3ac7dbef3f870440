"""Throughput of the MLX distillation step, with and without ``mx.compile``, and its model-FLOPs
utilisation (MFU) against the matmul peak measured on this device in the same run.

Students: the published MobileBERT config (24 layers) and a 4-layer one, at batch 16 and 32,
length 128. The teacher side is a BERT-Large-shaped cache (hidden 1024, 16 heads, 24 layers) of
random targets, so the step does exactly the work of a real distillation step (KD + CE + hidden
MSE through projections + head-averaged attention KL) without needing BERT-Large weights.

    python benchmarks/bench_distill.py [--configs mobilebert-4l mobilebert] [--batches 16 32] [--steps 5]

Prints a table and writes benchmarks/results/distill.json. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import mlx_distill  # noqa: F401 - BLAS preload before mlx
import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx_distill.models import build_classifier
from mlx_distill.runtime import runtime_info
from mlx_distill.train import losses
from mlx_distill.train.distill import DistillConfig, DistillModule, make_objective
from mlx_distill.train.student_init import StudentSpec, student_config
from mlx_distill.train.trainer import TrainConfig, Trainer

RESULTS = Path(__file__).parent / "results" / "distill.json"
TEACHER = {"hidden": 1024, "heads": 16, "layers": 24}
LENGTH = 128


def matmul_peak(n: int = 1024, seconds: float = 2.0) -> float:
    a, b = mx.random.normal((n, n)), mx.random.normal((n, n))
    mx.eval(a @ b)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        mx.eval(a @ b)
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start)


def step_flops(module: DistillModule, batch: int, length: int, config) -> float:
    """Matmul FLOPs of one training step: 3x the forward (backward costs two forwards)."""
    tokens = batch * length
    forward = 0.0
    student = module.student.encoder_model
    linears = [m for _, m in student.encoder.named_modules() if isinstance(m, nn.Linear)]
    linears.append(student.embeddings.embedding_transformation)
    linears += list(module.get("projections", []))
    for linear in linears:
        out_dims, in_dims = linear.weight.shape
        forward += 2 * in_dims * out_dims * tokens
    width = config.true_hidden_size
    forward += config.num_hidden_layers * 2 * (2 * length * width * tokens)  # QK^T and PV
    return 3 * forward


def bench_one(preset: str, batch: int, compiled: bool, steps: int, tmp: Path) -> dict:
    labels = ["a", "b", "c", "d"]
    config = student_config(StudentSpec(init="random", preset=preset), 30522, labels, 512)
    model = build_classifier(config, seed=0)
    distill_cfg = DistillConfig()
    layer_map = losses.uniform_layer_map(config.num_hidden_layers, TEACHER["layers"])
    objective, hidden_pairs, attention_pairs = make_objective(distill_cfg, layer_map, TEACHER["heads"], config.num_attention_heads)
    module = DistillModule(model, [s for s, _ in hidden_pairs], config.hidden_size, TEACHER["hidden"])
    rng = np.random.default_rng(0)
    fixed = {
        "input_ids": mx.array(rng.integers(1000, 30000, (batch, LENGTH)).astype(np.int32)),
        "attention_mask": mx.ones((batch, LENGTH), dtype=mx.int32),
        "labels": mx.array(rng.integers(0, 4, batch).astype(np.int32)),
        "teacher_logits": mx.random.normal((batch, 4)),
    }
    for _, t in hidden_pairs:
        fixed[f"teacher_hidden.{t}"] = mx.random.normal((batch, LENGTH, TEACHER["hidden"])).astype(mx.float16)
    for _, t in attention_pairs:
        fixed[f"teacher_attention.{t}"] = mx.softmax(mx.random.normal((batch, 1, LENGTH, LENGTH)), axis=-1).astype(mx.float16)
    train = TrainConfig(epochs=1, batch_size=batch, compile=compiled, checkpoint_every=0)
    trainer = Trainer(module, objective, lambda rows: fixed, batch, train, tmp)
    _, _, fused = trainer.build_step_functions()
    module.train()

    def run() -> None:
        loss, _, norm = fused(fixed)
        mx.eval(loss, norm, module.parameters(), trainer.optimizer.state)

    run()  # warm-up (and compilation)
    mx.reset_peak_memory()
    start = time.perf_counter()
    for _ in range(steps):
        run()
    seconds = (time.perf_counter() - start) / steps
    return {
        "preset": preset, "batch": batch, "compiled": compiled, "seconds_per_step": seconds,
        "tokens_per_s": batch * LENGTH / seconds, "flops_per_step": step_flops(module, batch, LENGTH, config),
        "peak_memory_gb": mx.get_peak_memory() / 2**30,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["mobilebert-4l", "mobilebert"])
    parser.add_argument("--batches", nargs="+", type=int, default=[16, 32])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    import tempfile

    info = runtime_info()
    peak = matmul_peak()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.configs:
            for batch in args.batches:
                for compiled in (True, False):  # interleaved: each pair measured back to back
                    row = bench_one(preset, batch, compiled, args.steps, Path(tmp))
                    row["mfu"] = row["flops_per_step"] / row["seconds_per_step"] / peak
                    rows.append(row)
    print(f"device {info['device']}  BLAS {info['blas']}  matmul peak {peak / 1e9:.0f} GFLOP/s (1024^2 fp32)\n")
    print(f"{'student':<15}{'batch':>6}{'compile':>9}{'s/step':>9}{'tokens/s':>11}{'GFLOP/step':>12}{'MFU':>7}")
    for r in rows:
        print(f"{r['preset']:<15}{r['batch']:>6}{str(r['compiled']):>9}{r['seconds_per_step']:>9.2f}"
              f"{r['tokens_per_s']:>11,.0f}{r['flops_per_step'] / 1e9:>12.1f}{r['mfu']:>7.1%}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"runtime": info, "matmul_peak_flops": peak, "length": LENGTH,
                                   "teacher": TEACHER, "rows": rows}, indent=2))
    print(f"\nJSON: {RESULTS}")


if __name__ == "__main__":
    main()
