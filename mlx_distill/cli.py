"""Command line: ``python -m mlx_distill <command>``.

Only this layer composes the MLX side with the torch side (``export/``), and it imports each side
lazily inside its command, so ``predict`` never pays for torch and ``export`` never for mlx.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from mlx_distill.torch_side import quiet_coremltools
from mlx_distill.paths import PathArg, refuse_overlap, require_file, require_folder, require_output_folder

_DATA = "a .jsonl or .csv file with text,label"
_TEXTS = "a .txt (one text per line), .jsonl or .csv file with a text field"
_MODEL = "a Hugging Face model folder with config.json"


def _cmd_info(args: argparse.Namespace) -> int:
    from mlx_distill.runtime import runtime_info

    info = runtime_info()
    info["threads"] = getattr(args, "threads_note", None) or "as the environment sets them"
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from mlx_distill.data import read_texts
    from mlx_distill.predict import TextClassifier
    from mlx_distill.runtime import select_device

    texts = list(args.texts)
    if args.file:
        texts += read_texts(args.file)
    if not texts:
        print("error: give texts as arguments or with --file", file=sys.stderr)
        return 2
    for number, text in enumerate(texts, 1):
        if not text.strip():
            print(f"warning: text {number} is empty; its label only reflects the model's bias", file=sys.stderr)
    select_device()
    classifier = TextClassifier(args.model_dir, max_length=args.max_length, batch_size=args.batch_size)
    for prediction in classifier.predict(texts):
        if args.json:
            print(json.dumps(prediction.to_json(), ensure_ascii=False))
        else:
            ranked = sorted(prediction.probs.items(), key=lambda kv: -kv[1])
            shown = "  ".join(f"{name} {p:.3f}" for name, p in ranked[:3])
            print(f"{prediction.label:<16} [{shown}]  {prediction.text}")
    return 0


def _add_training_args(parser: argparse.ArgumentParser, defaults) -> None:
    """The data/output flags of a training command, and one flag per ``TrainConfig`` field whose
    shown default is the stage's own (``defaults``: ``TeacherConfig().train`` / ``DistillConfig().train``)."""
    from mlx_distill.build.settings import add_flags
    from mlx_distill.train.trainer import TrainConfig

    group = parser.add_argument_group("training")
    group.add_argument("--train", type=Path, required=True, help="labelled .jsonl/.csv (text, label)")
    group.add_argument("--eval", type=Path,
                       help="labelled file that picks the best checkpoint (default: hold out 15%% of --train)")
    group.add_argument("--test", type=Path, help="labelled file that is only reported (never used to choose)")
    group.add_argument("--out", type=Path, required=True, help="output Hugging Face folder (training state in OUT/training)")
    group.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT/training")
    add_flags(group, TrainConfig, defaults)


def _stage_config(args: argparse.Namespace, cls, defaults):
    """``defaults`` (the stage's own default config) with the flags the user gave, nested ``train`` included."""
    import dataclasses

    from mlx_distill.build.settings import given_values
    from mlx_distill.train.trainer import TrainConfig

    train = dataclasses.replace(defaults.train, **given_values(args, TrainConfig))
    return dataclasses.replace(defaults, **given_values(args, cls), train=train)


def _read_splits(args: argparse.Namespace, seed: int):
    """(train, evaluation, test) examples from --train / --eval / --test, checked together:
    conflicting labels are an error, duplicates, leakage and odd labels are reported."""
    from mlx_distill.data import read_labelled, stratified_split

    checked = read_labelled(args.train, args.eval, args.test)
    for warning in checked.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    train, evaluation, test = checked.train, checked.evaluation, checked.test
    if evaluation is not None:
        return train, evaluation, test
    train, held_out = stratified_split(train, 0.15, seed=seed)
    print(f"no --eval file: holding out {len(held_out)} of {len(train) + len(held_out)} examples", file=sys.stderr)
    return train, held_out, test


def _print_eval(name: str, report: dict) -> None:
    """The test metrics when there is a test set (unbiased), else the evaluation metrics."""
    split = "test" if "test" in report else "eval"
    metrics = report[split]
    extra = ""
    if "teacher_agreement" in metrics:
        extra = f"  agreement with teacher {metrics['teacher_agreement']:.3f}  KL {metrics['teacher_kl']:.4f}"
    size = report.get(f"{split}_examples", "?")
    print(f"{name}: {split} accuracy {metrics['accuracy']:.3f}  macro-F1 {metrics['macro_f1']:.3f}{extra} "
          f"({size} texts)")


def _cmd_teacher(args: argparse.Namespace) -> int:
    from mlx_distill.runtime import select_device
    from mlx_distill.train.teacher import TeacherConfig, fine_tune_teacher

    select_device()
    config = _stage_config(args, TeacherConfig, TeacherConfig())
    train, evaluation, test = _read_splits(args, config.train.seed)
    report = fine_tune_teacher(args.model, train, evaluation, args.out, config, resume=not args.restart, test=test)
    _print_eval(f"teacher -> {args.out}", report)
    return 0


def _cmd_distill(args: argparse.Namespace) -> int:
    from mlx_distill.build.config import StudentSettings
    from mlx_distill.build.settings import given_values
    from mlx_distill.build.stages import student_preset
    from mlx_distill.data import read_examples, read_unlabeled
    from mlx_distill.runtime import select_device
    from mlx_distill.train.distill import DistillConfig, distill
    from mlx_distill.train.student_init import StudentSpec

    device = select_device()
    config = _stage_config(args, DistillConfig, DistillConfig())
    train, evaluation, test = _read_splits(args, config.train.seed)
    unlabeled = [row for path in args.unlabeled or [] for row in read_unlabeled(path)]
    synthetic = [row for path in args.synthetic or [] for row in read_examples(path)]
    settings = StudentSettings(**given_values(args, StudentSettings))
    student = StudentSpec(
        init=settings.resolved_init(), preset=student_preset(settings.student_preset, device),
        config_file=settings.student_config, pretrained_dir=settings.student, seed=config.train.seed,
    )
    report = distill(args.teacher, train, evaluation, args.out, student, config, resume=not args.restart, test=test,
                     unlabeled=unlabeled, synthetic=synthetic)
    for key, name in (("synthetic", "synthetic rows"), ("transfer", "unlabelled texts")):
        if report[key]["given"]:
            c = report[key]
            print(f"{key}: {c['used']} of {c['given']} {name} used ({c['duplicates']} duplicates, "
                  f"{c['also_labelled']} already in the labelled data, {c['dropped_eval_test']} found in eval/test "
                  "data dropped)", file=sys.stderr)
    split = "test" if "test" in report else "eval"
    print(f"teacher {split} accuracy {report['teacher_' + split]['accuracy']:.3f}; "
          f"student ({report['student_parameters']:,} parameters):")
    _print_eval(f"student -> {args.out}", report)
    return 0


def _export_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``ExportConfig`` field that carries a flag; imports the torch side, so it is
    called only when the command is ``export``."""
    import dataclasses

    quiet_coremltools()
    from export import ExportConfig

    from mlx_distill.build.config import EXPORT_HELP
    from mlx_distill.build.settings import add_flags

    unflagged = tuple(f.name for f in dataclasses.fields(ExportConfig) if "flag" not in f.metadata)
    add_flags(parser, ExportConfig, ExportConfig(), skip=unflagged, helps=EXPORT_HELP)
    parser.add_argument("--no-pipeline", action="store_true", help="skip the single-file updatable pipeline")


def _cmd_export(args: argparse.Namespace) -> int:
    # The torch / coremltools side; imported here only, so no other command pays for it.
    quiet_coremltools()
    from export import ExportConfig, export_folder

    from mlx_distill.build.settings import given_values

    values = given_values(args, ExportConfig)
    if args.no_pipeline:
        values["build_updatable_pipeline"] = False
    config = ExportConfig(**values)
    result = export_folder(args.student_dir, args.out, config)
    for kind, path in result.files.items():
        print(f"{kind:<20} {path}")
    for decision in result.decisions:
        print(f"decision: {decision}")
    for kind, why in result.skipped.items():
        print(f"skipped {kind}: {why}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"manifest             {result.manifest_path}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    """Shape, parity (Core ML vs PyTorch shell vs MLX), extreme inputs, updatable rules, a simulated
    on-device update and fp16 range, for an export folder. Exit 0 only when every check passes."""
    quiet_coremltools()
    from export.check import run_checks  # torch side

    from mlx_distill.predict import TextClassifier

    manifest_path = args.export_dir / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path} is missing; pass a folder written by `python -m mlx_distill export`")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    recorded = manifest.get("source_model_dir")  # relative to the export folder's real location
    model_dir = args.model or ((args.export_dir.resolve() / recorded).resolve() if recorded else None)
    if model_dir is not None and not Path(model_dir).is_dir():
        model_dir = None  # the check then says which checks need --model
    reference = None
    if model_dir is not None and Path(model_dir).exists():
        reference = TextClassifier(model_dir, max_length=int(manifest["max_length"])).probabilities_for_ids
    report = run_checks(args.export_dir, model_dir=model_dir, reference=reference, reference_name="mlx")
    print(report.to_json() if args.json else report.summary())
    return 0 if report.passed else 1


def _demo_args(args: argparse.Namespace) -> argparse.Namespace:
    """The demo is the build of the file that ships with the package (``mlx_distill/demo/build.toml``)."""
    from mlx_distill import demo

    if getattr(args, "config", None) is None:
        args.config, args.dry_run, args.until = demo.BUILD_FILE, False, None
    return args


def _cmd_demo(args: argparse.Namespace) -> int:
    from mlx_distill.build import cli as build_cli

    code = build_cli.run(_demo_args(args))
    report = json.loads((args.out / "report.json").read_text(encoding="utf-8"))
    if report.get("predictions"):
        print("the student on new notes:")
        for p in report["predictions"]:
            print(f"  {p['label']:<9} {p['p']:.2f}  {p['text']}")
    return code


# ---- path checks, before any work -----------------------------------------------------------------
def _data_args(args: argparse.Namespace) -> list[PathArg]:
    """The labelled (and unlabelled) data files a training command reads, each checked as a file."""
    labelled = [PathArg(flag, path) for flag, path in (("--train", args.train), ("--eval", args.eval),
                                                       ("--test", args.test)) if path is not None]
    labelled += [PathArg("--synthetic", path) for path in getattr(args, "synthetic", None) or []]
    texts = [PathArg("--unlabeled", path) for path in getattr(args, "unlabeled", None) or []]
    for arg in labelled:
        require_file(arg, _DATA)
    for arg in texts:
        require_file(arg, _TEXTS)
    return labelled + texts


def _model_arg(flag: str, value: str | Path) -> PathArg:
    """A model given as a folder or as a cached Hugging Face repo id, as the folder it names."""
    from mlx_distill.models.hub import resolve_model_dir

    path = Path(value).expanduser()
    if path.exists():
        require_folder(PathArg(flag, path), _MODEL, marker="config.json")
        return PathArg(flag, path)
    return PathArg(flag, resolve_model_dir(value))  # a repo id in the cache, or one clear error


def _paths_training(args: argparse.Namespace) -> None:
    inputs = _data_args(args)
    if args.command == "teacher":
        inputs.append(_model_arg("--model", args.model))
    else:
        inputs.append(_model_arg("--teacher", args.teacher))
        if args.student is not None:
            inputs.append(_model_arg("--student", args.student))
        if args.student_config:
            config = PathArg("--student-config", Path(args.student_config))
            require_file(config, "a MobileBERT config.json")
            inputs.append(config)
    out = PathArg("--out", args.out)
    require_output_folder(out)
    refuse_overlap(out, inputs)
    if getattr(args, "cache_dir", None) is not None:
        cache = PathArg("--cache-dir", Path(args.cache_dir))
        require_output_folder(cache)
        refuse_overlap(cache, [a for a in inputs if a.real.is_dir()])


def _paths_export(args: argparse.Namespace) -> None:
    source = PathArg("STUDENT_DIR", args.student_dir)
    require_folder(source, "the classifier folder written by `distill` (with config.json)", marker="config.json")
    out = PathArg("--out", args.out)
    require_output_folder(out)
    refuse_overlap(out, [source])


def _paths_check(args: argparse.Namespace) -> None:
    require_folder(PathArg("EXPORT_DIR", args.export_dir), "a folder written by `export`", marker="manifest.json")
    if args.model is not None:
        require_folder(PathArg("--model", args.model), "the student folder it was exported from", marker="config.json")


def _paths_predict(args: argparse.Namespace) -> None:
    require_folder(PathArg("MODEL_DIR", args.model_dir), "a classifier folder (from `teacher` or `distill`)",
                   marker="config.json")
    if args.file is not None:
        require_file(PathArg("--file", args.file), _TEXTS)


def _paths_demo(args: argparse.Namespace) -> None:
    from mlx_distill.build import cli as build_cli

    build_cli.check_paths(_demo_args(args))


def _paths_none(args: argparse.Namespace) -> None:
    pass


# ---- Ctrl-C ---------------------------------------------------------------------------------------
INTERRUPTED = "interrupted; run the same command again to resume"


class _InterruptGuard:
    """SIGINT raises KeyboardInterrupt as usual, but is also remembered: some libraries swallow
    KeyboardInterrupt while they import (and a torch import cut short fails later with an unrelated
    error), so the command's outcome is "interrupted" whatever happened after the signal. A second
    Ctrl-C ends the process at once. Every write is atomic, so nothing half-written is ever taken
    as finished."""

    def __init__(self) -> None:
        self.requested = False
        self.deferring = False
        self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            print(INTERRUPTED, file=sys.stderr, flush=True)
            os._exit(130)
        self.requested = True
        if not self.deferring:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        """Hold a Ctrl-C until the block ends. For importing torch and coremltools: an import cut
        short is swallowed by their own try/excepts (the work then went on, ignoring Ctrl-C) or
        leaves torch half-registered, and the next import aborts the process in C++."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.requested:
            raise KeyboardInterrupt

    def restore(self) -> None:
        signal.signal(signal.SIGINT, self.previous)


#: Commands that run the torch side (export/); they import it under ``_InterruptGuard.deferred``.
_TORCH_COMMANDS = {"export", "check", "build", "demo"}


def _import_torch_side(guard: "_InterruptGuard") -> None:
    quiet_coremltools()
    with guard.deferred():
        import export.check  # noqa: F401 - imported here, whole, so Ctrl-C cannot cut it short
        import export.folder  # noqa: F401


def build_parser(argv: list[str] | None = None, export_flags: bool | None = None) -> argparse.ArgumentParser:
    """Every command. Flags of the stage settings are generated from the typed configs (field
    metadata: default, help, flag). ``export``'s come from ``ExportConfig`` on the torch side, so
    they are added only when asked (``export_flags``; by default for ``export --help``): ``main``
    checks an export's paths first, then imports torch for its flags — a wrong path is found in a
    second, and no other command pays for torch."""
    from mlx_distill.build.config import StudentSettings
    from mlx_distill.build.settings import add_flags
    from mlx_distill.train.distill import DistillConfig
    from mlx_distill.train.teacher import TeacherConfig

    parser = argparse.ArgumentParser(prog="python -m mlx_distill", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from mlx_distill.build import cli as build_cli

    build_cli.add_parser(sub)

    export = sub.add_parser("export", help="Core ML inference + updatable models and manifest from a classifier folder")
    export.add_argument("student_dir", type=Path, help="Hugging Face-format classifier folder (e.g. from `distill`)")
    export.add_argument("--out", type=Path, required=True, help="output folder")
    if export_flags or (export_flags is None and argv and argv[0] == "export" and {"-h", "--help"} & set(argv)):
        _export_flags(export)
    export.set_defaults(run=_cmd_export, check_paths=_paths_export)

    check = sub.add_parser("check", help="check an export folder without a Mac (writes check.json)")
    check.add_argument("export_dir", type=Path, help="folder written by `export`")
    check.add_argument("--model", type=Path, help="the student folder it was exported from (default: from the manifest)")
    check.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    check.set_defaults(run=_cmd_check, check_paths=_paths_check)

    demo = sub.add_parser("demo", help="the build of mlx_distill/demo/build.toml: teacher -> distil -> export -> "
                                       "check -> report on the bundled to-do notes")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)")
    demo.add_argument("--restart", action="store_true", help="retrain every stage instead of reusing finished ones")
    demo.set_defaults(run=_cmd_demo, check_paths=_paths_demo)

    info = sub.add_parser("info", help="versions, device and BLAS in use")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_cmd_info, check_paths=_paths_none)

    predict = sub.add_parser("predict", help="classify texts with a classifier folder")
    predict.add_argument("model_dir", type=Path, help="Hugging Face-format classifier folder")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--file", type=Path, help="texts from a .jsonl/.csv (text field) or a plain file, one per line")
    predict.add_argument("--json", action="store_true", help='one JSON object per text: {"text", "label", "probs"}')
    predict.add_argument("--max-length", type=int, default=128, help="tokens per text (default 128)")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.set_defaults(run=_cmd_predict, check_paths=_paths_predict)

    teacher = sub.add_parser("teacher", help="fine-tune a BERT-family model into a classifier for your labels")
    teacher.add_argument("--model", required=True, help="teacher folder or Hugging Face repo id (BERT family)")
    teacher_defaults = TeacherConfig()
    add_flags(teacher, TeacherConfig, teacher_defaults)
    _add_training_args(teacher, teacher_defaults.train)
    teacher.set_defaults(run=_cmd_teacher, check_paths=_paths_training)

    distill = sub.add_parser("distill", help="distil a teacher classifier into a MobileBERT student")
    distill.add_argument("--teacher", required=True, help="teacher classifier folder (e.g. from `teacher`)")
    add_flags(distill, StudentSettings, StudentSettings())
    distill_defaults = DistillConfig()
    add_flags(distill, DistillConfig, distill_defaults)
    distill.add_argument("--unlabeled", type=Path, action="append", metavar="FILE",
                         help="unlabelled texts the teacher soft-labels (transfer set; .txt one per line, .jsonl or "
                              ".csv with a text field); repeatable")
    distill.add_argument("--synthetic", type=Path, action="append", metavar="FILE",
                         help="extra labelled rows (e.g. `augment` output kept by `clean`): trained on, never held out "
                              "for evaluation; repeatable")
    _add_training_args(distill, distill_defaults.train)
    distill.set_defaults(run=_cmd_distill, check_paths=_paths_training)
    from mlx_distill import distributed

    for command in (teacher, distill):
        distributed.add_flags(command)  # --processes N / --hostfile FILE / --backend

    from mlx_distill import clean as clean_stage  # imports neither mlx nor torch until it runs

    clean_stage.add_parser(sub)

    from mlx_distill.augment.cli import add_parser as add_augment_parser
    from mlx_distill.augment.config import config_from_args as augment_config

    add_augment_parser(sub)
    sub.choices["augment"].set_defaults(check_paths=lambda args: augment_config(args).validate())
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    guard = _InterruptGuard()
    try:
        return _run(argv, guard)
    finally:
        guard.restore()


def _run(argv: list[str], guard: _InterruptGuard) -> int:
    """Exit codes: 0 done, 1 bad input / failed check / full disk (one line on stderr), 130 Ctrl-C."""
    from mlx_distill.blas import choose_threads
    from mlx_distill.fileio import DiskFullError

    threads_note = choose_threads()  # first: MKL reads the variable at its first call, in MLX or in torch
    try:
        argv = argv or ["demo"]  # no arguments: the bundled demo (DESIGN.md)
        parser = build_parser(argv)
        args, extra = parser.parse_known_args(argv)
        if args.command == "export":
            args.check_paths(args)  # before torch is imported for the generated flags
            _import_torch_side(guard)
            parser = build_parser(argv, export_flags=True)
            args, extra = parser.parse_known_args(argv)
        if extra:
            # argparse stops filling `predict`'s texts at the first option; texts after options are still texts.
            if args.command == "predict" and not any(e.startswith("-") for e in extra):
                args.texts = [*args.texts, *extra]
            else:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.check_paths(args)
        args.threads_note = threads_note
        if args.command in _TORCH_COMMANDS:
            _import_torch_side(guard)
        from mlx_distill.distributed import relaunch

        launched = relaunch(args, argv)  # --processes N / --hostfile FILE: the same command under mlx.launch
        if launched is not None:
            return launched
        code = args.run(args)
    except KeyboardInterrupt:
        code = 130
    except (ValueError, OSError) as exc:  # bad input, a full disk, a missing file: one line
        if not guard.requested:
            print(f"error: {exc.strerror if isinstance(exc, DiskFullError) else exc}", file=sys.stderr)
            return 1
        code = 130
    except SystemExit:
        raise
    except BaseException:
        if not guard.requested:
            raise
        code = 130  # what failed after Ctrl-C failed because of it
    if guard.requested or code == 130:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return code
