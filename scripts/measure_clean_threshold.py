"""Measure ``clean``'s ``--min-confidence`` on label noise whose truth we know.

Why: the default P must come from data, not taste. The demo's 120 held-out notes were never seen
by the demo teacher; flipping a known fraction of their labels to another label simulates an
LLM's off-category rows ("travel" asked, a shopping list written). For each P we count the rows
``clean`` would keep/drop, split by whether the label was correct or flipped, using the stage's
own ``decide`` on the teacher's probabilities.

    python -m mlx_distill                                  # once: writes runs/demo/teacher
    python scripts/measure_clean_threshold.py [--teacher runs/demo/teacher] [--flip 0.3] [--seeds 5]

Prints the table and writes ``runs/clean_threshold.json``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import mlx_distill  # noqa: F401  (BLAS preload before mlx.core)
from mlx_distill import demo
from mlx_distill.clean import decide
from mlx_distill.data import read_examples
from mlx_distill.fileio import atomic_write_json
from mlx_distill.predict import TextClassifier
from mlx_distill.runtime import select_device

THRESHOLDS = [0.0, 0.15, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, default=Path("runs/demo/teacher"))
    parser.add_argument("--data", type=Path, default=demo.TEST_FILE, help="held-out labelled notes")
    parser.add_argument("--flip", type=float, default=0.3, help="fraction of labels made wrong")
    parser.add_argument("--seeds", type=int, default=5, help="flip draws averaged (same notes, other flips)")
    parser.add_argument("--max-length", type=int, default=48, help="the demo teacher's length")
    parser.add_argument("--out", type=Path, default=Path("runs/clean_threshold.json"))
    args = parser.parse_args()

    select_device()
    examples = read_examples(args.data)
    classifier = TextClassifier(args.teacher, max_length=args.max_length)
    labels = list(classifier.labels)
    encoded = classifier.tokenizer.encode([e.text for e in examples])
    probs = classifier.probabilities_for_ids(encoded.input_ids, encoded.attention_mask)
    teacher_accuracy = sum(labels[int(p.argmax())] == e.label for p, e in zip(probs, examples)) / len(examples)

    rows = []
    for threshold in THRESHOLDS:
        totals = {"kept_correct": 0, "dropped_correct": 0, "dropped_wrong": 0, "kept_wrong": 0}
        for seed in range(args.seeds):
            rng = random.Random(seed)
            flipped = set(rng.sample(range(len(examples)), round(args.flip * len(examples))))
            for i, (example, p) in enumerate(zip(examples, probs)):
                wrong = i in flipped
                asked = rng.choice([x for x in labels if x != example.label]) if wrong else example.label
                kept = decide(asked, p, labels, threshold).kept
                key = ("kept_" if kept else "dropped_") + ("wrong" if wrong else "correct")
                totals[key] += 1
        correct = totals["kept_correct"] + totals["dropped_correct"]
        wrong = totals["kept_wrong"] + totals["dropped_wrong"]
        rows.append({"min_confidence": threshold, **totals,
                     "kept_correct_rate": totals["kept_correct"] / correct,
                     "dropped_wrong_rate": totals["dropped_wrong"] / wrong,
                     "kept_precision": totals["kept_correct"] / max(1, totals["kept_correct"] + totals["kept_wrong"])})

    print(f"teacher {args.teacher} on {len(examples)} held-out notes: accuracy {teacher_accuracy:.3f}; "
          f"{args.flip:.0%} of labels flipped, {args.seeds} draws")
    print(f"{'P':>5}  {'kept-correct':>14}  {'dropped-wrong':>14}  {'kept-wrong':>10}  {'precision of kept':>17}")
    for r in rows:
        correct = r["kept_correct"] + r["dropped_correct"]
        wrong = r["kept_wrong"] + r["dropped_wrong"]
        print(f"{r['min_confidence']:>5.2f}  {r['kept_correct']:>5}/{correct:<4} {r['kept_correct_rate']:5.1%}"
              f"  {r['dropped_wrong']:>5}/{wrong:<4} {r['dropped_wrong_rate']:5.1%}  {r['kept_wrong']:>10}"
              f"  {r['kept_precision']:>17.3f}")
    p_label = sorted(float(p[labels.index(e.label)]) for p, e in zip(probs, examples))
    print("teacher probability of the true label, quantiles 0/5/10/25/50%: "
          + " ".join(f"{p_label[int(q * (len(p_label) - 1))]:.3f}" for q in (0, 0.05, 0.1, 0.25, 0.5)))
    atomic_write_json(args.out, {"teacher": str(args.teacher), "data": str(args.data), "flip": args.flip,
                                 "seeds": args.seeds, "teacher_accuracy": teacher_accuracy, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
