"""``RUN_DIR/report.json`` (for machines and tests) and ``RUN_DIR/report.md`` with plots (for people).

Built from the stage summaries (kept in the stage records, so a reused stage still reports), the
training logs (``<stage>/training/metrics.jsonl``) and one pass of the student over the test split
for its confusion matrix. Paths are relative to the run folder, so the folder can be moved or shared.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from mlx_distill.build import plots
from mlx_distill.fileio import atomic_write_json, atomic_write_text, read_json_lines


def _metrics_log(path: Path) -> list[dict]:
    return read_json_lines(path)


def _split(summary: dict) -> str:
    return "test" if summary.get("test") else "eval"


def _confusion(ctx, labels: list[str]) -> tuple[np.ndarray, str, list[dict]]:
    """The student's confusion matrix on the test split (else eval), and the report texts' labels."""
    from mlx_distill.predict import TextClassifier

    split = "test" if ctx.examples("test") else "eval"
    rows = ctx.examples(split)
    classifier = TextClassifier(ctx.folder("distill"), max_length=ctx.config.distill.max_length)
    predicted = classifier.predict([e.text for e in rows])
    index = {name: i for i, name in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for example, prediction in zip(rows, predicted):
        matrix[index[example.label], index[prediction.label]] += 1
    samples = [{"text": p.text, "label": p.label, "p": round(p.probs[p.label], 3)}
               for p in classifier.predict(list(ctx.config.report.texts))] if ctx.config.report.texts else []
    return matrix, split, samples


def build_report(ctx) -> dict[str, Any]:
    """The report's data (plots are drawn from it by :func:`write_report`)."""
    from mlx_distill.runtime import runtime_info

    s = ctx.summaries
    data, teacher, student = s["data"], s["teacher"], s["distill"]
    export, check = s["export"], s["check"]
    split = _split(student)
    synthetic = student["synthetic"]
    cleaned = s.get("clean")
    report: dict[str, Any] = {
        "build_file": str(ctx.config.path),
        "data": {
            "train": data["train"], "eval": data["eval"], "test": data["test"], "eval_held_out": data["held_out"],
            "unlabeled": data["unlabeled"], "transfer_used": student["transfer"]["used"],
            "synthetic_kept": synthetic["used"],
            "synthetic_dropped": (synthetic["given"] - synthetic["used"]) + (cleaned["dropped"] if cleaned else 0),
            "warnings": data["checks"]["warnings"],
        },
        "teacher": {
            "dir": "teacher", "fine_tuned": teacher["fine_tuned"],
            "eval_accuracy": teacher["eval"]["accuracy"],
            "test_accuracy": teacher["test"]["accuracy"] if teacher.get("test") else None,
            "eval": teacher["eval"], "test": teacher.get("test"),
        },
        "student": {
            "dir": "distill", "preset": student["preset"], "params": student["params"],
            "eval_accuracy": student["eval"]["accuracy"],
            "test_accuracy": student["test"]["accuracy"] if student.get("test") else None,
            "teacher_agreement": student[split]["teacher_agreement"], "agreement_split": split,
            "eval": student["eval"], "test": student.get("test"),
            "transfer": student["transfer"], "synthetic": synthetic,
        },
        "export": {"dir": "export", "files": export["files"], "precision": export["precision_used"],
                   "decisions": export["decisions"], "skipped": export["skipped"], "update": export["update"]},
        "check": {"passed": check["passed"], "counts": check["counts"], "failed": check["failed"],
                  "file": "check/check.json", "platform": check["platform"]},
        "timing": {name: summary.get("_seconds", 0.0) for name, summary in s.items()},
        "runtime": runtime_info(),
    }
    if export.get("learning_rate_search"):
        report["export"]["learning_rate_search"] = export["learning_rate_search"]
    if "augment" in s:
        report["augment"] = {k: v for k, v in s["augment"].items() if not k.startswith("_")}
    if cleaned:
        report["clean"] = {k: v for k, v in cleaned.items() if not k.startswith("_")}
    return report


def write_report(ctx) -> dict[str, Any]:
    """Write the plots, report.json and report.md; return the report."""
    report = build_report(ctx)
    folder = ctx.folder("report")
    folder.mkdir(parents=True, exist_ok=True)
    labels = ctx.summaries["distill"]["labels"]
    matrix, split, samples = _confusion(ctx, labels)
    teacher_log = _metrics_log(ctx.folder("teacher") / "training" / "metrics.jsonl")
    distill_log = _metrics_log(ctx.folder("distill") / "training" / "metrics.jsonl")
    d = ctx.config.distill
    weights = {"kd": d.kd_weight, "ce": d.ce_weight, "hidden": d.hidden_weight, "attention": d.attention_weight,
               "embedding": d.embedding_weight}
    made = {
        "loss": plots.loss_curves(teacher_log, distill_log, weights, folder / "loss.png"),
        "eval_accuracy": plots.eval_accuracy(teacher_log, distill_log, folder / "eval_accuracy.png"),
        "confusion": plots.confusion(matrix, labels, f"student confusion matrix ({split}, {int(matrix.sum())} texts)",
                                     folder / "confusion.png"),
        "recall": plots.recall_bars((report["teacher"][split] or {}).get("recall", {}),
                                    (report["student"][split] or {}).get("recall", {}), split, folder / "recall.png"),
    }
    search = report["export"].get("learning_rate_search")
    if isinstance(search, dict) and search.get("held_out_loss"):
        try:
            made["update_learning_rate"] = plots.learning_rate_curves(
                search["held_out_loss"], search.get("chosen"), folder / "update_learning_rate.png")
        except (TypeError, ValueError) as exc:  # a manifest shape this report does not know yet
            print(f"warning: on-device learning-rate curves not plotted: {exc}", file=sys.stderr)
    report["student"]["confusion"] = {"split": split, "labels": labels, "matrix": matrix.tolist()}
    report["plots"] = {name: str(path.relative_to(ctx.run_dir)) for name, path in made.items()}
    report["predictions"] = samples
    atomic_write_json(ctx.run_dir / "report.json", report)
    atomic_write_text(ctx.run_dir / "report.md", markdown(report))
    return {"passed": report["check"]["passed"], "plots": report["plots"]}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown(report: dict[str, Any]) -> str:
    """report.md: the same numbers as report.json, in the order a reader asks for them."""
    d, t, s, e, c = report["data"], report["teacher"], report["student"], report["export"], report["check"]
    lines = [
        "# Build report", "",
        f"Build file: `{report['build_file']}`. Every path below is relative to this run folder.", "",
        "## Result", "",
        "| | eval accuracy | test accuracy |", "|---|---|---|",
        f"| teacher (`{t['dir']}/`) | {_pct(t['eval_accuracy'])} | {_pct(t['test_accuracy'])} |",
        f"| student (`{s['dir']}/`, {s['preset']}, {s['params']:,} parameters) | {_pct(s['eval_accuracy'])} | "
        f"{_pct(s['test_accuracy'])} |", "",
        f"The student agrees with the teacher on {s['teacher_agreement']:.1%} of the {s['agreement_split']} texts. "
        f"Checks of the export: **{'passed' if c['passed'] else 'FAILED'}** "
        f"({c['counts'].get('PASS', 0)} passed, {c['counts'].get('FAIL', 0)} failed, "
        f"{c['counts'].get('SKIP', 0)} skipped; `{c['file']}`).", "",
    ]
    if c["failed"]:
        lines += ["Failed checks:", "", *[f"- {f}" for f in c["failed"]], ""]
    lines += [
        "## Data", "",
        f"- {d['train']} labelled training texts, {d['eval']} evaluation texts"
        f"{' (held out of the training file)' if d['eval_held_out'] else ''}, {d['test']} test texts "
        "(only reported, never used to choose).",
        f"- {d['unlabeled']} unlabelled texts given as the transfer set, {d['transfer_used']} used "
        "(duplicates and texts of the labelled, evaluation or test data dropped).",
        f"- synthetic rows: {d['synthetic_kept']} kept, {d['synthetic_dropped']} dropped.",
    ]
    lines += [f"- warning: {w}" for w in d["warnings"]]
    lines += ["", "## Training", "", "![loss curves](report/loss.png)", "",
              "![evaluation accuracy](report/eval_accuracy.png)", "",
              "## The student's errors", "", "![confusion matrix](report/confusion.png)", "",
              "![per-class recall](report/recall.png)", ""]
    split = s["confusion"]["split"]
    recall_t, recall_s = (t[split] or {}).get("recall", {}), (s[split] or {}).get("recall", {})
    if recall_s:
        lines += [f"| label | teacher recall ({split}) | student recall ({split}) |", "|---|---|---|"]
        lines += [f"| {k} | {_pct(recall_t.get(k))} | {_pct(v)} |" for k, v in recall_s.items()]
        lines.append("")
    lines += ["## Export", "", f"Core ML files in `{e['dir']}/` ({e['precision']} compute precision):", ""]
    lines += [f"- `{name}`" for name in e["files"]]
    lines += [f"- decision: {x}" for x in e["decisions"]]
    lines += [f"- skipped {k}: {v}" for k, v in e["skipped"].items()]
    if e.get("update"):
        lines += ["", "On-device update settings written into the updatable models: "
                  + ", ".join(f"{k} = {v}" for k, v in e["update"].items() if not isinstance(v, (dict, list))) + "."]
    search = e.get("learning_rate_search")
    if search and search.get("fixed_by_user"):
        lines += ["", f"On-device learning rate: {search.get('chosen')}, as set in the build file."]
    elif search:
        lines += ["", "### On-device learning rate", "",
                  f"Chosen by a simulated on-device update on held-out embeddings "
                  f"({search.get('train_examples', '?')} to train, {search.get('held_out_examples', '?')} held out) "
                  f"among {', '.join(map(str, search.get('candidates', [])))}: **{search.get('chosen')}**, "
                  "written into the updatable models.", ""]
        losses = search.get("held_out_loss") or {}
        if losses:
            lines += ["| learning rate | held-out loss before | after the update |", "|---|---|---|"]
            lines += [f"| {rate} | {curve[0]:.4f} | {curve[-1]:.4f} |" for rate, curve in losses.items() if curve]
            lines.append("")
        if "update_learning_rate" in report["plots"]:
            lines += ["![on-device learning rate](report/update_learning_rate.png)", ""]
    if report.get("clean"):
        cl = report["clean"]
        lines += ["", "## Clean", "", f"The teacher kept {cl['kept']} of {cl['rows']} synthetic rows "
                  f"(`clean/kept.jsonl`; dropped rows with reasons in `clean/kept.dropped.jsonl`)."]
    if report["predictions"]:
        lines += ["", "## The student on new texts", "", "| label | p | text |", "|---|---|---|"]
        lines += [f"| {p['label']} | {p['p']:.2f} | {p['text']} |" for p in report["predictions"]]
    r = report["runtime"]
    lines += ["", "## Time and machine", "", "| stage | seconds (of the run that made it) |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in report["timing"].items()]
    lines += ["", f"Device {r.get('device')}, BLAS {r.get('blas')}; mlx {r.get('mlx')}, mlx_distill "
              f"{r.get('mlx_distill')}, torch {r.get('torch')}, coremltools {r.get('coremltools')}, "
              f"Python {r.get('python')} on {r.get('platform')}.", ""]
    return "\n".join(lines)
