"""Stage ``clean``: drop labelled rows that the fine-tuned teacher contradicts or is unsure of.

The teacher scores every row (usually synthetic rows from ``augment``). Why: an LLM asked for
"travel" notes also writes shopping lists, meta text and repeats, and distilling those rows
teaches the student the LLM's mistakes. The fine-tuned teacher is the best judge we have of what
each label means, so a row is dropped when the teacher's top label is not the label asked for, or
when the teacher's probability of the asked label is below ``min_confidence``.
Nothing is dropped silently: every dropped row goes to its own file with the reason and the
scores, and a summary counts kept / dropped per label.

A label the teacher does not know is an error (naming the label and its rows), not a drop: it
means the teacher was trained for other labels, and dropping every row of a label would hide
that mistake behind a small-looking "dropped" count.

    python -m mlx_distill clean --teacher DIR --input FILE --out FILE [--min-confidence P]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlx_distill.data import DataError, Example, read_examples
from mlx_distill.data.rows import csv_rows, jsonl_rows
from mlx_distill.data.sources import read_user_text
from mlx_distill.fileio import atomic_write_json, atomic_write_text
from mlx_distill.paths import PathArg, PathError, refuse_overlap, require_file, require_folder, require_output_folder

# Measured on the demo (scripts/measure_clean_threshold.py): the 120 held-out notes, 30 % of their
# labels flipped, scored by the demo teacher. Agreement alone drops 95.6 % of the flipped rows; any
# P up to 0.6 then keeps every correct row the teacher agrees with (the lowest such confidence on
# the test notes is 0.63), and higher P only drops correct rows (0.7: -2 %, 0.95: -7 % of the 391
# kept at 0.5) for at most one more flipped row caught.
DEFAULT_MIN_CONFIDENCE = 0.5


def _setting(default, help: str, metavar: str):
    """A field with its CLI help text: the one place a setting's default and help live."""
    kwargs = {"default": default} if default is not dataclasses.MISSING else {}
    return field(metadata={"help": help, "metavar": metavar}, **kwargs)


@dataclass
class CleanConfig:
    """Every setting of ``clean``; the CLI flags (``--min-confidence``) are generated from it."""

    teacher: Path = _setting(dataclasses.MISSING, "teacher classifier folder (e.g. runs/demo/teacher)", "DIR")
    input: Path = _setting(dataclasses.MISSING, "labelled .jsonl/.csv to clean (e.g. the output of `augment`)", "FILE")
    out: Path = _setting(dataclasses.MISSING, "kept rows, JSONL (must differ from --input)", "FILE")
    min_confidence: float = _setting(
        DEFAULT_MIN_CONFIDENCE, "drop a row when the teacher's probability of its label is below this", "P")
    dropped: Path | None = _setting(None, "dropped rows with reasons and scores (default: OUT with .dropped.jsonl)", "FILE")
    summary: Path | None = _setting(None, "kept/dropped counts per label, JSON (default: OUT with .summary.json)", "FILE")
    max_length: int = _setting(128, "tokens per text given to the teacher", "N")
    batch_size: int = _setting(32, "texts per teacher forward pass", "N")

    def dropped_path(self) -> Path:
        return self.dropped or _sibling(self.out, ".dropped.jsonl")

    def summary_path(self) -> Path:
        return self.summary or _sibling(self.out, ".summary.json")


def _sibling(path: Path, suffix: str) -> Path:
    """``kept.jsonl`` -> ``kept.dropped.jsonl``: a file that sorts next to the output."""
    path = Path(path)
    return path.with_name(path.stem + suffix) if path.suffix else path.with_name(path.name + suffix)


@dataclass
class Decision:
    """What the teacher made of one row."""

    source: str  # "file:line"
    label: str  # the label the row asks for
    p_label: float  # teacher probability of that label
    top_label: str
    p_top: float
    reason: str | None  # None: kept

    @property
    def kept(self) -> bool:
        return self.reason is None


def decide(label: str, probs: np.ndarray, labels: list[str], min_confidence: float, source: str = "") -> Decision:
    """Keep a row only when the teacher's top label is the asked label with probability ≥ P."""
    p_label = float(probs[labels.index(label)])
    top = int(np.argmax(probs))
    top_label, p_top = labels[top], float(probs[top])
    reason = None
    if top_label != label:
        reason = f"teacher says {top_label} ({p_top:.2f})"
    elif p_label < min_confidence:
        digits = 2  # enough digits that the shown number is below P ("0.499 < 0.5", not "0.50 < 0.5")
        while round(p_label, digits) >= min_confidence and digits < 6:
            digits += 1
        reason = f"confidence {p_label:.{digits}f} < {min_confidence:g}"
    return Decision(source, label, p_label, top_label, p_top, reason)


@dataclass
class CleanResult:
    decisions: list[Decision]
    summary: dict[str, object]


def clean(config: CleanConfig) -> CleanResult:
    """Score every row of ``config.input`` with the teacher; write kept rows, dropped rows (with
    reasons and scores) and a per-label summary, each atomically. The input is only read."""
    from mlx_distill.predict import TextClassifier  # loads mlx: only when a teacher is needed

    check_paths(config)
    rows = read_rows(config.input)
    classifier = TextClassifier(config.teacher, max_length=config.max_length, batch_size=config.batch_size)
    labels = list(classifier.labels)
    _check_labels(config.input, rows, labels)
    examples = [example for example, _ in rows]
    encoded = classifier.tokenizer.encode([e.text for e in examples])
    probs = classifier.probabilities_for_ids(encoded.input_ids, encoded.attention_mask)
    decisions = [decide(e.label, p, labels, config.min_confidence, e.source) for e, p in zip(examples, probs)]

    kept_lines, dropped_lines = [], []
    for (_, fields), decision in zip(rows, decisions):
        if decision.kept:
            kept_lines.append(json.dumps(fields, ensure_ascii=False))
        else:
            scores = {"reason": decision.reason, "source": decision.source, "p_label": round(decision.p_label, 4),
                      "top_label": decision.top_label, "p_top": round(decision.p_top, 4)}
            dropped_lines.append(json.dumps({**fields, "clean": scores}, ensure_ascii=False))
    summary = _summary(config, labels, decisions)
    # The summary goes last, and an old one goes first: when a summary exists, the two row files
    # beside it are from the same run (a run killed in between leaves none, and rerunning redoes it).
    config.summary_path().unlink(missing_ok=True)
    atomic_write_text(config.dropped_path(), "".join(line + "\n" for line in dropped_lines))
    atomic_write_text(config.out, "".join(line + "\n" for line in kept_lines))
    atomic_write_json(config.summary_path(), summary)
    return CleanResult(decisions, summary)


def read_rows(path: Path) -> list[tuple[Example, dict]]:
    """Each validated row with all its fields (augment's provenance included).

    ``read_examples`` validates and reports bad rows but keeps only text and label, so the fields
    come from the data package's own JSONL / CSV row readers: one reader per format.
    """
    path = Path(path)
    examples = read_examples(path)  # raises DataError listing every bad row
    raw = read_user_text(path, "a .jsonl or .csv file with text,label")
    if path.suffix.lower() == ".csv":
        rows, _ = csv_rows(path, raw, ("text", "label"))
    else:
        rows, _ = jsonl_rows(path, raw, "'text' and 'label'")
    by_line = dict(rows)
    return [(example, dict(by_line[int(example.source.rsplit(":", 1)[1])])) for example in examples]


def check_paths(config: CleanConfig) -> None:
    """Before any work: the inputs exist, and no output is an input (inputs are never overwritten)."""
    if not 0.0 <= config.min_confidence <= 1.0:
        raise ValueError(f"--min-confidence {config.min_confidence}: give a probability between 0 and 1")
    if Path(config.out).suffix.lower() != ".jsonl":
        raise ValueError(f"--out {config.out}: clean writes JSONL; give the output a .jsonl name")
    source, teacher = PathArg("--input", Path(config.input)), PathArg("--teacher", Path(config.teacher))
    require_file(source, "a .jsonl or .csv file with text,label")
    require_folder(teacher, "a classifier folder (from `teacher`)", marker="config.json")
    outputs = [PathArg("--out", Path(config.out)), PathArg("--dropped", config.dropped_path()),
               PathArg("--summary", config.summary_path())]
    for out in outputs:
        if out.path.is_dir():
            raise PathError(f"{out}: is a folder; give a file name")
        require_output_folder(PathArg(out.flag, out.path.parent))
        refuse_overlap(out, [source, teacher])
    if len({out.real for out in outputs}) < len(outputs):
        raise PathError(f"{', '.join(map(str, outputs))}: must be three different files")


def _check_labels(path: Path, rows: list[tuple[Example, dict]], labels: list[str]) -> None:
    unknown: dict[str, list[str]] = {}
    for example, _ in rows:
        if example.label not in labels:
            unknown.setdefault(example.label, []).append(example.source.rsplit(":", 1)[1])
    if unknown:
        parts = []
        for label, lines in unknown.items():
            shown = ",".join(lines[:5]) + (f" (+{len(lines) - 5} more)" if len(lines) > 5 else "")
            parts.append(f"'{label}' at {path}:{shown}")
        raise DataError(f"{path}: label(s) the teacher does not know: {'; '.join(parts)}; the teacher knows "
                        f"{', '.join(labels)} — fix the rows or train a teacher with these labels")


def _summary(config: CleanConfig, labels: list[str], decisions: list[Decision]) -> dict[str, object]:
    per_label = {}
    for label in labels:
        mine = [d for d in decisions if d.label == label]
        if not mine:
            continue
        per_label[label] = {
            "rows": len(mine), "kept": sum(d.kept for d in mine),
            "dropped_teacher_disagrees": sum(d.top_label != label for d in mine),
            "dropped_low_confidence": sum(not d.kept and d.top_label == label for d in mine),
        }
    return {
        "stage": "clean", "input": str(config.input), "teacher": str(config.teacher),
        "teacher_labels": labels, "min_confidence": config.min_confidence,
        "out": str(config.out), "dropped": str(config.dropped_path()),
        "rows": len(decisions), "kept": sum(d.kept for d in decisions),
        "dropped_rows": sum(not d.kept for d in decisions), "per_label": per_label,
    }


def format_summary(summary: dict) -> str:
    """The per-label table a user reads after ``clean``."""
    head = ("label", "rows", "kept", "teacher disagrees", "low confidence")
    body = [(label, c["rows"], c["kept"], c["dropped_teacher_disagrees"], c["dropped_low_confidence"])
            for label, c in summary["per_label"].items()]
    body.append(("total", summary["rows"], summary["kept"], sum(r[3] for r in body), sum(r[4] for r in body)))
    width = max(len(head[0]), *(len(str(r[0])) for r in body))
    lines = [f"{head[0]:<{width}}  " + "  ".join(f"{h:>{len(h)}}" for h in head[1:])]
    for row in body:
        lines.append(f"{row[0]:<{width}}  " + "  ".join(f"{v:>{len(h)}}" for v, h in zip(row[1:], head[1:])))
    lines.append(f"kept {summary['kept']} of {summary['rows']} -> {summary['out']}; "
                 f"dropped {summary['dropped_rows']} -> {summary['dropped']} (P = {summary['min_confidence']:g})")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line

def _flag_type(annotation) -> type:
    """``Path | None`` -> Path; the argparse type of a setting."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per CleanConfig field: ``min_confidence`` -> ``--min-confidence``."""
    hints = typing.get_type_hints(CleanConfig)
    for f in dataclasses.fields(CleanConfig):
        required = f.default is dataclasses.MISSING
        default_text = "" if required or f.default is None else f" (default {f.default})"
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_flag_type(hints[f.name]),
                            required=required, default=None if required else f.default,
                            metavar=f.metadata["metavar"], help=f.metadata["help"] + default_text)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``clean`` on the ``python -m mlx_distill`` sub-command parsers."""
    parser = subparsers.add_parser("clean", help="drop labelled rows the teacher disagrees with (or is unsure of)",
                                   description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.set_defaults(run=run, check_paths=lambda args: check_paths(config_from_args(args)))
    return parser


def config_from_args(args: argparse.Namespace) -> CleanConfig:
    return CleanConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(CleanConfig)})


def run(args: argparse.Namespace) -> int:
    from mlx_distill.runtime import select_device

    select_device()
    result = clean(config_from_args(args))
    print(format_summary(result.summary))
    if not result.summary["kept"]:
        print("warning: no row was kept; check the labels the rows ask for, or lower --min-confidence", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m mlx_distill.clean ...``: the same command without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="python -m mlx_distill.clean", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        check_paths(config_from_args(args))
        return run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
