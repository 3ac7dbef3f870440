"""Command line: ``python -m mlx_distill <command>``.

Only this layer composes the MLX side with the torch side (``export/``), and it imports each side
lazily inside its command, so ``predict`` never pays for torch and ``export`` never for mlx.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from mlx_distill.paths import PathArg, refuse_overlap, require_file, require_folder, require_output_folder

_DATA = "a .jsonl or .csv file with text,label"
_TEXTS = "a .txt (one text per line), .jsonl or .csv file with a text field"
_MODEL = "a Hugging Face model folder with config.json"


def _cmd_info(args: argparse.Namespace) -> int:
    from mlx_distill.runtime import runtime_info

    info = runtime_info()
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


def _add_training_args(parser: argparse.ArgumentParser, epochs: float, lr: float) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--train", type=Path, required=True, help="labelled .jsonl/.csv (text, label)")
    group.add_argument("--eval", type=Path,
                       help="labelled file that picks the best checkpoint (default: hold out 15%% of --train)")
    group.add_argument("--test", type=Path, help="labelled file that is only reported (never used to choose)")
    group.add_argument("--out", type=Path, required=True, help="output Hugging Face folder (training state in OUT/training)")
    group.add_argument("--epochs", type=float, default=epochs)
    group.add_argument("--lr", type=float, default=lr, help="peak learning rate (AdamW)")
    group.add_argument("--batch-size", type=int, default=16)
    group.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    group.add_argument("--max-length", type=int, default=128, help="tokens per text")
    group.add_argument("--decay", choices=["linear", "cosine", "constant"], default="linear")
    group.add_argument("--warmup", type=float, default=0.1, help="warm-up fraction of the steps")
    group.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (default: each epoch)")
    group.add_argument("--patience", type=int, default=0, help="early stopping after N evaluations without gain")
    group.add_argument("--checkpoint-every", type=int, default=50, help="steps between resumable checkpoints")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--no-compile", action="store_true", help="run the step without mx.compile")
    group.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT/training")


def _train_config(args: argparse.Namespace):
    from mlx_distill.train.trainer import TrainConfig

    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, warmup_ratio=args.warmup,
        decay=args.decay, grad_accum_steps=args.grad_accum, eval_every=args.eval_every,
        early_stopping_patience=args.patience, checkpoint_every=args.checkpoint_every, seed=args.seed,
        compile=not args.no_compile,
    )


def _read_splits(args: argparse.Namespace):
    """(train, evaluation, test) examples from --train / --eval / --test, checked together:
    conflicting labels are an error, duplicates, leakage and odd labels are reported."""
    from mlx_distill.data import check_labelled, read_examples, stratified_split

    train = read_examples(args.train)
    test = read_examples(args.test) if args.test else None
    evaluation = read_examples(args.eval) if args.eval else None
    checked = check_labelled(train, evaluation, test)
    for warning in checked.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    train, evaluation, test = checked.train, checked.evaluation, checked.test
    if evaluation is not None:
        return train, evaluation, test
    train, held_out = stratified_split(train, 0.15, seed=args.seed)
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
    train, evaluation, test = _read_splits(args)
    config = TeacherConfig(max_length=args.max_length, freeze_encoder=args.freeze_encoder, train=_train_config(args))
    report = fine_tune_teacher(args.model, train, evaluation, args.out, config, resume=not args.restart, test=test)
    _print_eval(f"teacher -> {args.out}", report)
    return 0


def _parse_layer_map(text: str | None) -> dict[int, int] | None:
    if not text:
        return None
    try:
        return {int(s): int(t) for s, t in (pair.split(":") for pair in text.split(","))}
    except ValueError:
        raise ValueError(f"--layer-map {text!r}: write student:teacher pairs, e.g. 1:2,2:4,3:6") from None


def _cmd_distill(args: argparse.Namespace) -> int:
    from mlx_distill.runtime import select_device
    from mlx_distill.train.distill import DistillConfig, distill
    from mlx_distill.train.student_init import StudentSpec

    from mlx_distill.data import read_examples, read_unlabeled

    select_device()
    train, evaluation, test = _read_splits(args)
    unlabeled = [row for path in args.unlabeled or [] for row in read_unlabeled(path)]
    synthetic = [row for path in args.synthetic or [] for row in read_examples(path)]
    init = args.init or ("pretrained" if args.student else "teacher")
    student = StudentSpec(
        init=init, preset=args.student_preset, config_file=args.student_config,
        pretrained_dir=str(args.student) if args.student else None, seed=args.seed,
    )
    config = DistillConfig(
        max_length=args.max_length, temperature=args.temperature, kd_weight=args.kd_weight, ce_weight=args.ce_weight,
        hidden_weight=args.hidden_weight, attention_weight=args.attention_weight,
        embedding_weight=args.embedding_weight, layer_map=_parse_layer_map(args.layer_map),
        cache_dir=str(args.cache_dir) if args.cache_dir else None, labelled_repeats=args.labelled_repeats,
        train=_train_config(args),
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


def _quiet_coremltools() -> None:
    """coremltools logs import-time warnings that do not apply to us on Linux (no Core ML runtime
    proxies, an untested-but-verified torch version, sklearn) and draws tqdm bars per conversion
    pass; our commands report what matters themselves. Must run before coremltools is imported."""
    import logging
    import os
    import warnings

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"coremltools\.")
    os.environ.setdefault("TQDM_DISABLE", "1")


def _cmd_export(args: argparse.Namespace) -> int:
    # The torch / coremltools side; imported here only, so no other command pays for it.
    _quiet_coremltools()
    from export.pipeline import ExportConfig, export_folder

    config = ExportConfig(
        max_length=args.max_length, precision=args.precision, optimizer=args.optimizer,
        learning_rate=args.learning_rate, batch_size=args.update_batch_size, epochs=args.update_epochs,
        momentum=args.momentum, build_updatable_pipeline=not args.no_pipeline,
    )
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
    _quiet_coremltools()
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


def _cmd_demo(args: argparse.Namespace) -> int:
    from mlx_distill import demo
    from mlx_distill.data import read_examples, read_unlabeled, stratified_split
    from mlx_distill.predict import TextClassifier
    from mlx_distill.runtime import select_device
    from mlx_distill.train.distill import DistillConfig, distill
    from mlx_distill.train.student_init import StudentSpec
    from mlx_distill.train.teacher import TeacherConfig, fine_tune_teacher
    from mlx_distill.train.trainer import TrainConfig

    device = select_device()
    # Checkpoints are chosen on a validation split of the training notes; the 120 test notes are
    # only reported, so the accuracy printed is an unbiased estimate.
    train, validation = stratified_split(read_examples(demo.TRAIN_FILE), 0.15, seed=0)
    test = read_examples(demo.TEST_FILE)
    out = args.out
    print(f"[1/5] teacher: fine-tuning all-MiniLM-L6-v2 on {len(train)} notes ({device})", file=sys.stderr)
    teacher_cfg = TeacherConfig(max_length=48, train=TrainConfig(epochs=5, learning_rate=1e-4))
    resume = not args.restart
    teacher = fine_tune_teacher(demo.minilm_dir(), train, validation, out / "teacher", teacher_cfg, resume, test=test)
    _print_eval("teacher", teacher)
    # A GPU trains the real 4-layer MobileBERT quickly; on a CPU the demo uses the tiny preset.
    preset = "tiny" if device == "cpu" else "mobilebert-4l"
    print(f"[2/5] distil: MobileBERT student ({preset}), embeddings initialised from the teacher, "
          f"{len(train)} labelled notes + unlabelled notes soft-labelled by the teacher", file=sys.stderr)
    distill_cfg = DistillConfig(max_length=48, train=TrainConfig(epochs=8, learning_rate=1e-3))
    unlabeled = read_unlabeled(demo.UNLABELED_FILE)
    student = distill(out / "teacher", train, validation, out / "student", StudentSpec(init="teacher", preset=preset),
                      distill_cfg, resume, test=test, unlabeled=unlabeled)
    _print_eval(f"student ({student['student_parameters']:,} parameters)", student)
    print("[3/5] export: Core ML classifier, encoder and updatable head (+ manifest)", file=sys.stderr)
    _quiet_coremltools()
    from export.pipeline import ExportConfig, export_folder  # torch side, only now

    exported = export_folder(out / "student", out / "coreml", ExportConfig(max_length=48))
    for kind, path in exported.files.items():
        print(f"  {kind:<20} {path}")
    print("[4/5] check: shapes, parity, extreme inputs, updatable rules, simulated update, fp16", file=sys.stderr)
    from export.check import run_checks

    classifier = TextClassifier(out / "student", max_length=48)
    report = run_checks(out / "coreml", model_dir=out / "student", reference=classifier.probabilities_for_ids)
    print(report.summary())
    print("[5/5] predict with the student:", file=sys.stderr)
    for prediction in classifier.predict(demo.SAMPLE_NOTES):
        print(f"  {prediction.label:<9} {prediction.probs[prediction.label]:.2f}  {prediction.text}")
    print(f"student folder (Hugging Face format): {out / 'student'}; Core ML files: {out / 'coreml'}")
    return 0 if report.passed else 1


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
        cache = PathArg("--cache-dir", args.cache_dir)
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
    require_output_folder(PathArg("--out", args.out))


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
        self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            print(INTERRUPTED, file=sys.stderr, flush=True)
            os._exit(130)
        self.requested = True
        raise KeyboardInterrupt

    def restore(self) -> None:
        signal.signal(signal.SIGINT, self.previous)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlx_distill", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    export = sub.add_parser("export", help="Core ML inference + updatable models and manifest from a classifier folder")
    export.add_argument("student_dir", type=Path, help="Hugging Face-format classifier folder (e.g. from `distill`)")
    export.add_argument("--out", type=Path, required=True, help="output folder")
    export.add_argument("--max-length", type=int, default=128, help="fixed input length of the Core ML models")
    export.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                        help="compute precision (fp16 is checked first and falls back to fp32 when unsafe)")
    export.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="on-device update optimizer")
    export.add_argument("--learning-rate", type=float, default=0.01, help="on-device update learning rate")
    export.add_argument("--update-batch-size", type=int, default=8, help="on-device update mini-batch size")
    export.add_argument("--update-epochs", type=int, default=10, help="on-device update epochs")
    export.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    export.add_argument("--no-pipeline", action="store_true", help="skip the single-file updatable pipeline")
    export.set_defaults(run=_cmd_export, check_paths=_paths_export)

    check = sub.add_parser("check", help="check an export folder without a Mac (writes check.json)")
    check.add_argument("export_dir", type=Path, help="folder written by `export`")
    check.add_argument("--model", type=Path, help="the student folder it was exported from (default: from the manifest)")
    check.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    check.set_defaults(run=_cmd_check, check_paths=_paths_check)

    demo = sub.add_parser("demo", help="teacher -> distil -> export -> check -> predict on the bundled to-do notes")
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
    teacher.add_argument("--freeze-encoder", action="store_true", help="train only the classification head")
    _add_training_args(teacher, epochs=4, lr=5e-5)
    teacher.set_defaults(run=_cmd_teacher, check_paths=_paths_training)

    from mlx_distill.train.student_init import STUDENT_PRESETS

    distill = sub.add_parser("distill", help="distil a teacher classifier into a MobileBERT student")
    distill.add_argument("--teacher", required=True, help="teacher classifier folder (e.g. from `teacher`)")
    distill.add_argument("--student", type=Path, help="pre-trained MobileBERT folder to start from")
    distill.add_argument("--init", choices=["teacher", "random", "pretrained"],
                         help="student start: pretrained (--student), teacher (embeddings from the teacher, default "
                              "without --student) or random")
    distill.add_argument("--student-preset", choices=sorted(STUDENT_PRESETS), default="mobilebert-4l")
    distill.add_argument("--student-config", help="MobileBERT config.json for the student (overrides the preset)")
    distill.add_argument("--temperature", type=float, default=2.0)
    distill.add_argument("--kd-weight", type=float, default=1.0, help="soft-logit KD weight")
    distill.add_argument("--ce-weight", type=float, default=0.5, help="hard-label cross-entropy weight")
    distill.add_argument("--hidden-weight", type=float, default=1.0, help="hidden-state MSE weight (0 = off)")
    distill.add_argument("--attention-weight", type=float, default=1.0, help="attention KL weight (0 = off)")
    distill.add_argument("--embedding-weight", type=float, default=0.0, help="embedding-output MSE weight")
    distill.add_argument("--layer-map", help="student:teacher layer pairs, e.g. 1:2,2:4 (default: uniform)")
    distill.add_argument("--cache-dir", type=Path, help="teacher cache folder (default OUT/training/teacher_cache)")
    distill.add_argument("--unlabeled", type=Path, action="append", metavar="FILE",
                         help="unlabelled texts the teacher soft-labels (transfer set; .txt one per line, .jsonl or "
                              ".csv with a text field); repeatable")
    distill.add_argument("--synthetic", type=Path, action="append", metavar="FILE",
                         help="extra labelled rows (e.g. `augment` output kept by `clean`): trained on, never held out "
                              "for evaluation; repeatable")
    distill.add_argument("--labelled-repeats", type=int, default=1,
                         help="times each labelled row is seen per epoch for each transfer row")
    _add_training_args(distill, epochs=10, lr=3e-4)
    distill.set_defaults(run=_cmd_distill, check_paths=_paths_training)

    from mlx_distill import clean as clean_stage  # imports neither mlx nor torch until it runs

    clean_stage.add_parser(sub)
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
    from mlx_distill.fileio import DiskFullError

    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv or ["demo"])  # no arguments: the bundled demo (DESIGN.md)
        if extra:
            # argparse stops filling `predict`'s texts at the first option; texts after options are still texts.
            if args.command == "predict" and not any(e.startswith("-") for e in extra):
                args.texts = [*args.texts, *extra]
            else:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.check_paths(args)
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
