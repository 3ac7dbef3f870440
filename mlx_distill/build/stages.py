"""The stages of a build, each writing into ``RUN_DIR/<stage>/``.

Each stage says what it reads (``inputs``: content hashes), which settings shape its output
(``settings``), and how to run; the stage functions of the package do the work and write their
outputs atomically already. A stage returns a small ``summary`` (numbers the report shows), kept
in its stage record so a reused stage still reports.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mlx_distill.build.cache import hash_tree
from mlx_distill.build.config import BuildConfig
from mlx_distill.fileio import atomic_write_json, atomic_write_text, sha256_file
from mlx_distill.torch_side import quiet_coremltools


@dataclass
class Context:
    """What every stage sees: the checked build file, the run folder and the device."""

    config: BuildConfig
    run_dir: Path
    device: str
    outputs: dict[str, str]  # stage -> output hash of the stages done so far in this build
    summaries: dict[str, dict]  # stage -> summary of the stages done so far

    def folder(self, stage: str) -> Path:
        return self.run_dir / stage

    def examples(self, split: str):
        from mlx_distill.data import read_examples

        path = self.folder("data") / f"{split}.jsonl"
        return read_examples(path) if path.exists() else None

    def synthetic_files(self) -> list[Path]:
        """The extra labelled rows distill trains on: the data files, then clean's (or augment's) output."""
        files = [Path(p) for p in self.config.data.synthetic]
        if self.config.clean is not None:
            files.append(self.folder("clean") / "kept.jsonl")
        elif self.config.augment is not None:
            files.append(self.folder("augment") / "synthetic.jsonl")
        return files


@dataclass
class Stage:
    name: str
    title: str
    upstream: tuple[str, ...]
    settings: Callable[[Context], Any]
    inputs: Callable[[Context], dict[str, Any]]
    run: Callable[[Context, bool], dict]
    exclude: tuple[str, ...] = ()  # top-level entries of the stage folder that are not its output
    also: tuple[str, ...] = ()  # files beside the stage folder that are outputs too (report.json, report.md)
    # Data-parallel stages (teacher, distill) run as ranks when the build asks for several processes:
    # where rank 0 leaves the stage's report, and the summary made of it (what ``run`` returns).
    report: Callable[[Context], Path] | None = None
    summarize: Callable[[Context, dict], dict] | None = None

    def output_hash(self, ctx: Context) -> str:
        """The hash of what later stages (and the user) read; "" when something is missing."""
        parts = []
        for path in [ctx.folder(self.name), *(ctx.run_dir / name for name in self.also)]:
            if not path.exists():
                return ""
            parts.append(hash_tree(path, self.exclude))
        return ",".join(parts)


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj, default=str))


def _files(paths: list[str]) -> list[str]:
    return [sha256_file(Path(p)) for p in paths]


def _write_jsonl(path: Path, rows) -> None:
    atomic_write_text(path, "".join(json.dumps({"text": e.text, "label": e.label}, ensure_ascii=False) + "\n"
                                    for e in rows))


# ---- data ----------------------------------------------------------------------------------------
def _data_inputs(ctx: Context) -> dict[str, Any]:
    d = ctx.config.data
    return {"train": sha256_file(Path(d.train)), "eval": sha256_file(Path(d.eval)) if d.eval else None,
            "test": sha256_file(Path(d.test)) if d.test else None, "unlabeled": _files(d.unlabeled),
            "synthetic": _files(d.synthetic)}


def _data_run(ctx: Context, resume: bool) -> dict:
    """Read, check (conflicts, duplicates, leakage, odd labels) and split; write the splits every
    later stage reads, so they all train and evaluate on exactly the same rows."""
    from mlx_distill.data import read_examples, read_labelled, read_unlabeled, stratified_split

    d = ctx.config.data
    checked = read_labelled(d.train, d.eval, d.test)
    for warning in checked.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    train, evaluation, test = checked.train, checked.evaluation, checked.test
    held_out = evaluation is None
    if held_out:
        train, evaluation = stratified_split(train, d.holdout, seed=d.seed)
        print(f"  no eval file: holding out {len(evaluation)} of {len(train) + len(evaluation)} examples",
              file=sys.stderr)
    unlabeled = sum(len(read_unlabeled(p)) for p in d.unlabeled)
    synthetic = sum(len(read_examples(p)) for p in d.synthetic)
    folder = ctx.folder("data")
    _write_jsonl(folder / "train.jsonl", train)
    _write_jsonl(folder / "eval.jsonl", evaluation)
    if test is not None:
        _write_jsonl(folder / "test.jsonl", test)
    else:
        (folder / "test.jsonl").unlink(missing_ok=True)
    summary = {"train": len(train), "eval": len(evaluation), "test": len(test) if test else 0, "held_out": held_out,
               "unlabeled": unlabeled, "synthetic_files": synthetic, "checks": checked.to_json()}
    atomic_write_json(folder / "summary.json", summary)
    return summary


# ---- augment -------------------------------------------------------------------------------------
def _augment_config(ctx: Context):
    from mlx_distill.augment.config import AugmentConfig

    data = ctx.folder("data")
    test = data / "test.jsonl"
    return AugmentConfig(**ctx.config.augment, train=str(data / "train.jsonl"), eval=str(data / "eval.jsonl"),
                         test=str(test) if ctx.config.data.test else "", out=str(ctx.folder("augment") / "synthetic.jsonl"),
                         progress=sys.stderr.isatty())


def _augment_run(ctx: Context, resume: bool) -> dict:
    from mlx_distill.augment.run import run_augment, summary_lines

    config = _augment_config(ctx)
    config = dataclasses.replace(config, restart=not resume)
    config.validate()
    result = run_augment(config)
    for line in summary_lines(result):
        print(f"  {line}", file=sys.stderr)
    return {"rows": sum(result.rows_per_label.values()), "rows_per_label": dict(result.rows_per_label),
            "rejected": dict(result.rejected), "short": dict(result.short)}


# ---- teacher -------------------------------------------------------------------------------------
def _teacher_run(ctx: Context, resume: bool) -> dict:
    from mlx_distill.train.teacher import fine_tune_teacher

    report = fine_tune_teacher(ctx.config.teacher_model, ctx.examples("train"), ctx.examples("eval"),
                               ctx.folder("teacher"), ctx.config.teacher, resume=resume, test=ctx.examples("test"))
    return _teacher_summary(ctx, report)


def _teacher_summary(ctx: Context, report: dict) -> dict:
    return {"fine_tuned": report.get("fine_tuned"), "eval": report.get("eval"), "test": report.get("test"),
            "labels": report["labels"]}


# ---- clean ---------------------------------------------------------------------------------------
def _clean_config(ctx: Context):
    from mlx_distill.clean import CleanConfig

    source = ctx.config.clean_input or ctx.folder("augment") / "synthetic.jsonl"
    folder = ctx.folder("clean")
    return CleanConfig(teacher=ctx.folder("teacher"), input=Path(source), out=folder / "kept.jsonl",
                       **ctx.config.clean)


def _clean_run(ctx: Context, resume: bool) -> dict:
    from mlx_distill.clean import clean, format_summary

    result = clean(_clean_config(ctx))
    print(format_summary(result.summary), file=sys.stderr)
    return {"rows": result.summary["rows"], "kept": result.summary["kept"], "dropped": result.summary["dropped_rows"],
            "per_label": result.summary["per_label"]}


# ---- distill -------------------------------------------------------------------------------------
def student_preset(preset: str, device: str) -> str:
    """``auto``: a GPU trains the real 4-layer MobileBERT quickly; a CPU gets the tiny preset."""
    if preset != "auto":
        return preset
    return "tiny" if device == "cpu" else "mobilebert-4l"


def _distill_settings(ctx: Context) -> dict:
    s = ctx.config.student
    return {"distill": _plain(ctx.config.distill), "init": s.resolved_init(),
            "preset": student_preset(s.student_preset, ctx.device)}


def _distill_inputs(ctx: Context) -> dict[str, Any]:
    s = ctx.config.student
    return {"unlabeled": _files(ctx.config.data.unlabeled),
            "synthetic": _files(ctx.config.data.synthetic),  # clean's / augment's rows: their output hashes
            "student": hash_tree(Path(s.student)) if s.student else None,
            "student_config": sha256_file(Path(s.student_config)) if s.student_config else None}


def _distill_run(ctx: Context, resume: bool) -> dict:
    from mlx_distill.data import read_examples, read_unlabeled
    from mlx_distill.train.distill import distill
    from mlx_distill.train.student_init import StudentSpec

    s = ctx.config.student
    spec = StudentSpec(init=s.resolved_init(), preset=student_preset(s.student_preset, ctx.device),
                       config_file=s.student_config, pretrained_dir=s.student, seed=ctx.config.distill.train.seed)
    unlabeled = [row for path in ctx.config.data.unlabeled for row in read_unlabeled(path)]
    synthetic = [row for path in ctx.synthetic_files() for row in read_examples(path)]
    report = distill(ctx.folder("teacher"), ctx.examples("train"), ctx.examples("eval"), ctx.folder("distill"), spec,
                     ctx.config.distill, resume=resume, test=ctx.examples("test"), unlabeled=unlabeled,
                     synthetic=synthetic)
    return _distill_summary(ctx, report)


def _distill_summary(ctx: Context, report: dict) -> dict:
    return {"eval": report.get("eval"), "test": report.get("test"), "teacher_eval": report.get("teacher_eval"),
            "teacher_test": report.get("teacher_test"), "params": report["student_parameters"],
            "transfer": report["transfer"], "synthetic": report["synthetic"],
            "preset": student_preset(ctx.config.student.student_preset, ctx.device), "labels": report["labels"]}


# ---- export and check (the torch side, imported only here) -----------------------------------------
def _export_run(ctx: Context, resume: bool) -> dict:
    quiet_coremltools()
    from export import ExportConfig, export_folder

    # The on-device learning rate is measured on the evaluation split: labelled, never trained on,
    # and never the test split (which only reports).
    texts = [(e.text, e.label) for e in ctx.examples("eval")]
    result = export_folder(ctx.folder("distill"), ctx.folder("export"), ExportConfig(**ctx.config.export), texts=texts)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    manifest = json.loads(Path(result.manifest_path).read_text(encoding="utf-8"))
    files = sorted(str(p.relative_to(ctx.run_dir)) for p in ctx.folder("export").iterdir())
    return {"files": files, "decisions": list(result.decisions), "skipped": dict(result.skipped),
            "precision_used": result.precision_used, "update": manifest.get("update_config"),
            "learning_rate_search": manifest.get("update_learning_rate")}


def _check_run(ctx: Context, resume: bool) -> dict:
    quiet_coremltools()
    from export.check import run_checks

    from mlx_distill.predict import TextClassifier

    manifest = json.loads((ctx.folder("export") / "manifest.json").read_text(encoding="utf-8"))
    reference = TextClassifier(ctx.folder("distill"), max_length=int(manifest["max_length"])).probabilities_for_ids
    report = run_checks(ctx.folder("export"), model_dir=ctx.folder("distill"), reference=reference,
                        output_path=ctx.folder("check") / "check.json")
    print(report.summary(), file=sys.stderr)
    data = report.as_dict()
    return {"passed": report.passed, "counts": data["counts"],
            "failed": [f"{c.name}: {c.message}" for c in report.failed], "platform": data["platform"]}


def _report_run(ctx: Context, resume: bool) -> dict:
    from mlx_distill.build.report import write_report

    return write_report(ctx)


STAGES: list[Stage] = [
    Stage("data", "data checks and split", (), lambda c: {"holdout": c.config.data.holdout, "seed": c.config.data.seed},
          _data_inputs, _data_run),
    Stage("augment", "LLM-written labelled rows", ("data",), lambda c: c.config.augment, lambda c: {}, _augment_run),
    Stage("teacher", "fine-tune the teacher", ("data",), lambda c: _plain(c.config.teacher),
          lambda c: {"model": hash_tree(c.config.teacher_model)}, _teacher_run, exclude=("training",),
          report=lambda c: c.folder("teacher") / "training" / "report.json", summarize=_teacher_summary),
    Stage("clean", "the teacher judges the synthetic rows", ("teacher", "augment"), lambda c: c.config.clean,
          lambda c: {"input": sha256_file(c.config.clean_input) if c.config.clean_input else None}, _clean_run),
    Stage("distill", "distil into the MobileBERT student", ("data", "teacher", "clean", "augment"), _distill_settings,
          _distill_inputs, _distill_run, exclude=("training",),
          report=lambda c: c.folder("distill") / "training" / "report.json", summarize=_distill_summary),
    Stage("export", "Core ML files + manifest", ("distill",), lambda c: c.config.export, lambda c: {}, _export_run),
    Stage("check", "shapes, parity, extremes, updatable rules, simulated update", ("export", "distill"),
          lambda c: {}, lambda c: {}, _check_run),
    Stage("report", "report.json, report.md and plots", ("data", "augment", "teacher", "clean", "distill", "export",
                                                          "check"),
          lambda c: _plain(c.config.report), lambda c: {}, _report_run, also=("report.json", "report.md")),
]


def enabled_stages(config: BuildConfig) -> list[Stage]:
    """The stages this build runs: augment and clean only when their tables are in the file."""
    return [s for s in STAGES if (s.name != "augment" or config.augment is not None)
            and (s.name != "clean" or config.clean is not None)]


def stages_until(config: BuildConfig, until: str | None) -> list[Stage]:
    """The stages to run for ``build --until STAGE``: the enabled ones up to and including it."""
    stages = enabled_stages(config)
    names = [s.name for s in stages]
    if until is None:
        return stages
    if until not in names:
        raise ValueError(f"--until {until}: {config.path} has no [{until}] table, so this build has no {until} "
                         f"stage (it has: {', '.join(names)})")
    return stages[: names.index(until) + 1]
