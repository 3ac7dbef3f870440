"""``export_folder``: a Hugging Face student folder -> Core ML files + manifest, in one call.

This is the API behind ``python -m mlx_distill export STUDENT_DIR --out DIR``. One function per step:

1. ``_read_input``: validate the folder (config, labels, weights with a classifier head, tokenizer)
   and load the PyTorch shell strictly, each weight file read once;
2. ``_write_tokenizer``: the vocabulary and tokenizer files, into the staging folder;
3. ``_choose_precision``: the fp16 range check on random token rows and real texts (fp32 if unsafe);
4. ``_choose_learning_rate``: the on-device learning rate, measured by a simulated update;
5. ``_write_ml_programs``: Classifier.mlpackage and Encoder.mlpackage;
6. ``_write_updatable_models``: UpdatableHead.mlmodel and, if possible, UpdatablePipeline.mlmodel,
   both linted against Core ML's load-time rules (a failing head aborts the export);
7. ``_write_manifest``: manifest.json from the saved specs;
8. the staging folder is swapped into ``out_dir`` atomically (``mlx_distill.fileio.staged_directory``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import coremltools as ct
import numpy
import torch

from mlx_distill.fileio import atomic_write_json, staged_directory
from export.convert.coreml import (
    ATTENTION_MASK,
    INPUT_IDS,
    LABEL,
    POOLED,
    PROBABILITIES,
    ModelMetadata,
    apply_metadata,
    convert_classifier,
    convert_encoder,
    convert_encoder_neuralnetwork,
)
from export.convert.fp16_safety import Fp16Check, check_fp16, sample_inputs
from export.convert.input_folder import ExportInputError, ModelFolder, load_checked_shell, read_model_folder
from export.convert.tokenizer import write_vocab
from export.manifest import MANIFEST_NAME, build_manifest
from export.updatable.head import HeadNames, build_updatable_head
from export.updatable.learning_rate import DEFAULT_CANDIDATES, LearningRateChoice, choose, resolve_rows
from export.updatable.params import UpdateParams, UpdateParamsError, read_update_params
from export.updatable.pipeline import build_updatable_pipeline
from export.updatable.rules import UpdatableRuleError, check_spec

CLASSIFIER_FILE = "Classifier.mlpackage"
ENCODER_FILE = "Encoder.mlpackage"
HEAD_FILE = "UpdatableHead.mlmodel"
PIPELINE_FILE = "UpdatablePipeline.mlmodel"
VOCAB_FILE = "vocab.txt"
_TOKENIZER_COPIES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _flag(flag: str, default: Any) -> Any:
    """A config field that the ``export`` command sets with ``flag`` (named in error messages)."""
    return field(default=default, metadata={"flag": flag})


@dataclass(frozen=True)
class ExportConfig:
    """Everything ``export_folder`` can be told; every field has a default.

    Fields the ``export`` command exposes carry their flag (``flag_for``), and validation errors
    name the flag: the person reading them typed ``--max-length 0``, not ``ExportConfig.max_length``.
    """

    max_length: int = _flag("--max-length", 128)
    precision: Literal["fp32", "fp16"] = _flag("--precision", "fp32")
    optimizer: Literal["sgd", "adam"] = _flag("--optimizer", "sgd")
    #: None: chosen at export by measurement among ``learning_rate_candidates`` (export.updatable.learning_rate)
    learning_rate: Optional[float] = _flag("--learning-rate", None)
    learning_rate_candidates: tuple[float, ...] = DEFAULT_CANDIDATES
    #: texts (.txt/.jsonl/.csv) for that measurement and the fp16 check; None: export_folder's ``texts``, else check's samples
    learning_rate_texts: Optional[str] = _flag("--learning-rate-texts", None)
    learning_rate_range: tuple[float, float] = (1e-6, 1.0)
    batch_size: int = _flag("--update-batch-size", 8)
    epochs: int = _flag("--update-epochs", 10)
    momentum: float = _flag("--momentum", 0.0)
    build_classifier: bool = True
    build_encoder: bool = True
    build_updatable_head: bool = True
    build_updatable_pipeline: bool = True
    fp16_check: bool = True
    fp16_check_samples: int = 8
    fp16_prob_tolerance: float = 0.05
    version: str = "1.0"
    author: str = ""
    license: str = ""
    description: str = ""
    #: replace ``out_dir`` if it holds a previous export (a manifest.json); other folders are never replaced.
    overwrite: bool = True

    @classmethod
    def flag_for(cls, name: str) -> str:
        """``--max-length`` for ``max_length``; fields without a flag are named ``ExportConfig.<name>``."""
        for item in fields(cls):
            if item.name == name:
                return item.metadata.get("flag", f"ExportConfig.{name}")
        return f"ExportConfig.{name}"

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16"):
            raise ValueError(f"{self.flag_for('precision')} must be fp32 or fp16 (got {self.precision!r})")
        if self.max_length < 2:
            raise ValueError(f"{self.flag_for('max_length')} must be at least 2 (got {self.max_length}): "
                             "every input holds [CLS] and [SEP]")
        if self.fp16_check_samples < 1:
            raise ValueError(f"{self.flag_for('fp16_check_samples')} must be at least 1 (got {self.fp16_check_samples})")
        if not (self.build_classifier or self.build_encoder or self.build_updatable_head or self.build_updatable_pipeline):
            raise ValueError("ExportConfig: nothing to build (all build_* flags are False)")
        if not self.learning_rate_candidates:
            raise ValueError("ExportConfig.learning_rate_candidates is empty")
        try:
            self.update_params()
            for rate in self.learning_rate_candidates if self.learning_rate is None else ():
                self.update_params(rate)
        except UpdateParamsError as exc:
            if exc.field is None:
                raise ValueError(f"ExportConfig: {exc}") from exc
            raise ValueError(f"{self.flag_for(exc.field)} {exc.problem}") from exc

    def update_params(self, learning_rate: Optional[float] = None) -> UpdateParams:
        """The head's update parameters with ``learning_rate`` (default: the configured one, or 0.01
        while it is still to be measured)."""
        rate = learning_rate if learning_rate is not None else self.learning_rate
        return UpdateParams(
            optimizer=self.optimizer,
            learning_rate=UpdateParams.learning_rate if rate is None else rate,
            learning_rate_range=tuple(self.learning_rate_range),
            batch_size=self.batch_size,
            epochs=self.epochs,
            momentum=self.momentum,
        )


@dataclass
class ExportResult:
    """Paths written and decisions taken (also recorded in the manifest)."""

    out_dir: Path
    manifest_path: Path
    files: dict[str, Path]
    precision_requested: str
    precision_used: str
    fp16_check: Optional[Fp16Check]
    decisions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def export_folder(model_dir: Union[str, Path], out_dir: Union[str, Path],
                  config: Optional[ExportConfig] = None, texts: Optional[Sequence[Any]] = None) -> ExportResult:
    """Export a Hugging Face BERT/MobileBERT sequence-classifier folder to Core ML (the module
    docstring lists the steps).

    ``texts`` (strings or ``(text, label)`` pairs) are what the on-device learning rate is measured
    on when ``config.learning_rate`` is None (see ``export.updatable.learning_rate``).

    Raises ``ExportInputError`` for a bad input folder (message names the file/field and the fix)
    and ``UpdatableRuleError`` if the updatable head would be refused by Core ML.
    """
    config = config or ExportConfig()
    out_dir = Path(out_dir).absolute()
    _check_out_dir(out_dir, config.overwrite)
    job = _read_input(model_dir, config, texts)
    with staged_directory(out_dir, kind="export") as job.stage:
        _write_tokenizer(job)
        _choose_precision(job)
        _choose_learning_rate(job)
        _write_ml_programs(job)
        _write_updatable_models(job)
        _write_manifest(job, out_dir)
    return ExportResult(
        out_dir=out_dir, manifest_path=out_dir / MANIFEST_NAME,
        files={**{role: out_dir / path.name for role, path in job.files.items()}, "vocab": out_dir / VOCAB_FILE},
        precision_requested=config.precision, precision_used=job.precision, fp16_check=job.check,
        decisions=job.decisions, warnings=job.notes, skipped=job.skipped,
    )


@dataclass
class _Job:
    """What the steps of one export share; each step fills in its part."""

    config: ExportConfig
    folder: ModelFolder
    shell: Any
    rows: list
    rows_source: str
    stage: Path = Path()
    tokenizer: dict = field(default_factory=dict)  # the manifest's tokenizer entry
    tokens: Any = None  # texts -> (ids, mask), tokenised by the shipped tokenizer
    check: Optional[Fp16Check] = None
    precision: str = "fp32"
    rate: Optional[LearningRateChoice] = None
    head_spec: Any = None
    files: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    decisions: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # result.warnings and the manifest's precision notes

    @property
    def labels(self) -> list:
        return list(self.folder.labels)

    @property
    def nn_compute_units(self) -> str:
        return "all" if (self.check is not None and self.check.safe) else "cpuOnly"

    def save(self, model: ct.models.MLModel, role: str, file_name: str, what: str) -> ct.models.MLModel:
        apply_metadata(model, _metadata(self, what))
        model.save(str(self.stage / file_name))
        self.files[role] = self.stage / file_name
        return model


def _read_input(model_dir: Union[str, Path], config: ExportConfig, texts: Optional[Sequence[Any]]) -> _Job:
    """Step 1: the folder validated and loaded, and the texts the measurements run on."""
    folder = read_model_folder(model_dir)
    shell = load_checked_shell(folder, config.max_length)
    rows, rows_source = resolve_rows(texts, config.learning_rate_texts)
    return _Job(config, folder, shell, rows, rows_source)


def _write_tokenizer(job: _Job) -> None:
    """Step 2: vocab.txt and the tokenizer files, as the app ships them; the later steps tokenise
    with exactly these files (``job.tokens``: texts -> int64 ids, mask padded to the models' length)."""
    from export.check.inputs import load_tokenizer, tokenize

    folder, stage, max_length = job.folder, job.stage, job.config.max_length
    write_vocab(folder.tokenizer, stage / VOCAB_FILE)
    copied = [VOCAB_FILE]
    for name in _TOKENIZER_COPIES:
        if (folder.path / name).is_file():
            if name == "tokenizer.json":
                _write_fixed_length_tokenizer(folder.path / name, stage / name, max_length, folder)
            else:
                shutil.copyfile(folder.path / name, stage / name)
            copied.append(name)
    job.tokenizer = folder.tokenizer.manifest(VOCAB_FILE, copied)
    manifest = {"max_length": max_length, "tokenizer": job.tokenizer}
    tokenizer = load_tokenizer(stage, manifest)

    def tokens(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = tokenize(tokenizer, texts, manifest)
        return torch.from_numpy(batch.input_ids.astype("int64")), torch.from_numpy(batch.attention_mask.astype("int64"))

    job.tokens = tokens


def _choose_precision(job: _Job) -> None:
    """Step 3: fp16 only where the range check finds it safe. It runs on random token rows plus real
    texts: random ids alone passed a MobileBERT whose fp16 output drifts 0.24 on real sentences
    (found by executing the shipped fp16 Classifier)."""
    config, specials = job.config, job.folder.tokenizer.special_tokens
    if config.fp16_check or config.precision == "fp16":
        ids, mask = sample_inputs(vocab_size=job.folder.tokenizer.vocab_size, max_length=config.max_length,
                                  cls_id=specials["cls"].id, sep_id=specials["sep"].id, pad_id=specials["pad"].id,
                                  count=config.fp16_check_samples, exclude_ids=[tok.id for tok in specials.values()])
        text_ids, text_mask = job.tokens([text for text, _ in job.rows])
        job.check = check_fp16(job.shell, torch.cat([ids, text_ids.to(ids.dtype)]),
                               torch.cat([mask, text_mask.to(mask.dtype)]), prob_tolerance=config.fp16_prob_tolerance)
    job.precision = config.precision
    if config.precision == "fp16" and job.check is not None and not job.check.safe:
        job.precision = "fp32"
        # Recorded once, in result.warnings (the CLI prints them as "warning: ..."), not also as a
        # Python RuntimeWarning, which would print the same news a second time with a source line.
        job.notes.append(f"fp16 requested but unsafe for this {job.folder.model_type} ({job.check.reason}); "
                         "exporting with fp32 compute precision")
    job.decisions.append(f"compute precision: requested {config.precision}, used {job.precision}"
                         + (f" (fp16 check: {job.check.reason})" if job.check else " (fp16 check skipped)"))


def _choose_learning_rate(job: _Job) -> None:
    """Step 4: the user's ``--learning-rate``, else the candidate the simulated update measures best."""
    config, rate = job.config, None
    if config.learning_rate is not None:
        rate = LearningRateChoice(chosen=float(config.learning_rate), fixed_by_user=True)
    elif not (config.build_updatable_head or config.build_updatable_pipeline):
        rate = LearningRateChoice(chosen=float(config.update_params().learning_rate), fixed_by_user=False,
                                  texts="not measured: no updatable model is built")
    else:
        shell = job.shell

        def pooled(texts: list[str]):
            ids, mask = job.tokens(texts)
            with torch.no_grad():
                vectors = shell.pooled(ids, mask)
                predicted = shell.classifier(vectors).argmax(dim=-1)
            return vectors.numpy(), predicted.numpy()

        names = HeadNames()
        rate = choose(lambda candidate: _head_spec(job, config.update_params(candidate)), pooled, job.labels,
                      config.learning_rate_candidates, job.rows, job.rows_source, names.input, names.label)
    job.rate = rate
    job.decisions.append(f"on-device learning rate {rate.chosen:g}: " + (
        "fixed by --learning-rate" if rate.fixed_by_user else
        f"lowest held-out loss of {', '.join(f'{c:g}' for c in rate.candidates)} ({rate.texts})"))


def _write_ml_programs(job: _Job) -> None:
    """Step 5: Classifier.mlpackage and Encoder.mlpackage in the chosen precision."""
    config = job.config
    if config.build_classifier:
        job.save(convert_classifier(job.shell, job.labels, config.max_length, job.precision), "classifier",
                 CLASSIFIER_FILE, "text classifier: tokens -> label, probabilities")
    if config.build_encoder:
        job.save(convert_encoder(job.shell, config.max_length, job.precision), "encoder", ENCODER_FILE,
                 "encoder: tokens -> pooled embedding")


def _write_updatable_models(job: _Job) -> None:
    """Step 6: the updatable head (a failing lint aborts the export) and the optional pipeline
    (skipped, with the reason, only for its two known limitations)."""
    config = job.config
    if not (config.build_updatable_head or config.build_updatable_pipeline):
        return
    job.head_spec = _head_spec(job, config.update_params(job.rate.chosen))  # raises UpdatableRuleError
    if config.build_updatable_head:
        model = job.save(_spec_model(job.head_spec), "updatable_head", HEAD_FILE,
                         "updatable head: pooled embedding -> label; trains on device")
        check_spec(model.get_spec(), what="head")  # re-lint the exact spec written
    if not config.build_updatable_pipeline:
        return
    try:
        encoder_nn = convert_encoder_neuralnetwork(job.shell, config.max_length, int(job.shell.embedding_size),
                                                   fp16_safe=job.nn_compute_units == "all")
        pipeline_spec = build_updatable_pipeline(encoder_nn, job.head_spec, job.labels, config.max_length)
    except (UpdatableRuleError, NotImplementedError, ValueError) as exc:
        reason = _pipeline_unsupported(exc)
        if reason is None:
            raise  # a bug, not a known limitation: never hide it behind a "skipped" file
        job.notes.append(f"updatable pipeline not written: {reason}")
        job.skipped["updatable_pipeline"] = reason
        return
    model = job.save(_spec_model(pipeline_spec), "updatable_pipeline", PIPELINE_FILE,
                     "updatable pipeline: tokens -> label; the head trains on device")
    check_spec(model.get_spec(), what="pipeline")
    job.extra["updatable_pipeline"] = {
        "recommended_compute_units": job.nn_compute_units,
        "why": "a NeuralNetwork may run in fp16 on GPU/ANE; use cpuOnly unless the fp16 check passed",
    }
    job.decisions.append(f"updatable pipeline written; recommended compute units: {job.nn_compute_units}")


def _write_manifest(job: _Job, out_dir: Path) -> None:
    """Step 7: manifest.json, read back from the saved specs."""
    manifest = build_manifest(
        model_type=job.folder.model_type, labels=job.labels, max_length=job.config.max_length,
        embedding_size=int(job.shell.embedding_size), tokenizer=job.tokenizer,
        precision={"requested": job.config.precision, "used": job.precision,
                   "fp16_check": job.check.as_dict() if job.check else None, "notes": job.notes},
        files=job.files, extra=job.extra, skipped=job.skipped,
        versions={"torch": torch.__version__, "coremltools": ct.__version__, "numpy": numpy.__version__,
                  "python": sys.version.split()[0]},
        # Relative to the export folder: an absolute path would put the user's home folder into
        # a manifest that may ship inside an app bundle. Both ends resolved (symlinks too: /tmp and
        # /var are links on macOS), so the path leads back from the export folder's real location.
        source_model_dir=os.path.relpath(job.folder.path.resolve(), out_dir.parent.resolve() / out_dir.name),
    )
    manifest["decisions"] = job.decisions
    # what the updatable models train with, read from the head's spec like every other manifest entry
    manifest["update_config"] = read_update_params(job.head_spec).summary() if job.head_spec is not None else None
    manifest["update_learning_rate"] = job.rate.as_manifest()
    atomic_write_json(job.stage / MANIFEST_NAME, manifest)


# --- helpers ------------------------------------------------------------------------------------


def _head_spec(job: _Job, params: UpdateParams):
    weight = job.shell.classifier.weight.detach().cpu().numpy()
    bias = job.shell.classifier.bias.detach().cpu().numpy()
    return build_updatable_head(weight, bias, job.labels, params)


def _pipeline_unsupported(exc: BaseException) -> Optional[str]:
    """The reason to skip the optional updatable pipeline, or None when ``exc`` must propagate.

    Only two failures are known limitations rather than bugs: the pipeline breaks one of Core ML's
    updatable-model rules (``UpdatableRuleError`` from our linter), or coremltools cannot express
    an op of this encoder in the older NeuralNetwork format (its converter raises
    NotImplementedError / ValueError, e.g. "No available version for pixel_unshuffle in the
    coremltools.target.iOS13 opset" or "not supported by the NeuralNetwork ... model type"; the ML
    Programs have no such gaps). Anything else - a TypeError or ValueError in our own code, any
    other exception type from coremltools - propagates and fails the export.
    """
    if isinstance(exc, UpdatableRuleError):
        return f"it breaks Core ML's updatable-model rules: {exc}"
    if isinstance(exc, (NotImplementedError, ValueError)) and _raised_in(exc, _CONVERTER):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"coremltools cannot convert this encoder to a NeuralNetwork: {type(exc).__name__}: {first}"
    return None


_CONVERTER = os.path.join("coremltools", "converters", "")


def _raised_in(exc: BaseException, path_part: str) -> bool:
    """Was ``exc`` raised by code whose file path contains ``path_part`` (its innermost frame)?"""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return path_part in tb.tb_frame.f_code.co_filename


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ExportInputError(f"--out {out_dir} exists and is not a directory")
    if not any(out_dir.iterdir()):
        return
    if not (out_dir / MANIFEST_NAME).is_file():
        raise ExportInputError(
            f"--out {out_dir} is a non-empty folder that is not a previous export (no {MANIFEST_NAME}); "
            "choose a new or empty folder"
        )
    if not overwrite:
        raise ExportInputError(f"--out {out_dir} already holds an export; pass overwrite=True to replace it")


def _spec_model(spec) -> ct.models.MLModel:
    # On macOS, loading compiles the model: Core ML itself validates the updatable spec. coremltools
    # only warns when that fails (and keeps the error), so a rejected model is raised here instead.
    model = ct.models.MLModel(spec, skip_model_load=sys.platform != "darwin")
    error = getattr(model, "_framework_error", None)
    if sys.platform == "darwin" and error is not None:
        raise UpdatableRuleError(f"Core ML refused to load the updatable model: {error}")
    return model


def _metadata(job: _Job, what: str) -> ModelMetadata:
    folder, config = job.folder, job.config
    name = {"bert": "BERT", "mobilebert": "MobileBERT"}[folder.model_type]
    prefix = f"{config.description} - " if config.description else ""
    tokenizer = {"vocab_file": VOCAB_FILE, "vocab_size": folder.tokenizer.vocab_size, "lowercase": folder.tokenizer.lowercase,
                 "special_token_ids": {role: tok.id for role, tok in folder.tokenizer.special_tokens.items()}}
    return ModelMetadata(
        short_description=f"{prefix}{name} {what}. Labels: {', '.join(folder.labels)}. Max length {config.max_length}.",
        version=config.version,
        author=config.author,
        license=config.license,
        user_defined={"labels": json.dumps(list(folder.labels), ensure_ascii=False), "max_length": str(config.max_length),
                      "model_type": folder.model_type, "compute_precision": job.precision,
                      "tokenizer": json.dumps(tokenizer), "manifest": MANIFEST_NAME, "exported_by": "mlx_distill export"},
        feature_descriptions={
            INPUT_IDS: f"WordPiece token ids, [CLS] text [SEP], right-padded to {config.max_length}",
            ATTENTION_MASK: "1 for real tokens, 0 for padding",
            POOLED: "pooled sentence embedding (the updatable head's input)",
            LABEL: "predicted class label",
            PROBABILITIES: "probability of each class label",
        },
    )


def _write_fixed_length_tokenizer(source: Path, target: Path, max_length: int, folder: ModelFolder) -> None:
    """Ship tokenizer.json padding/truncating to exactly the models' input length.

    A teacher's file often pads to its own length (all-MiniLM: 128); loaded as shipped (Python
    ``tokenizers``, a Swift port) it would then produce arrays the [1, max_length] models reject.
    """
    data = json.loads(source.read_text(encoding="utf-8"))
    pad = folder.tokenizer.special_tokens.get("pad")
    data["truncation"] = {"direction": "Right", "max_length": max_length, "strategy": "LongestFirst", "stride": 0}
    data["padding"] = {
        "strategy": {"Fixed": max_length}, "direction": "Right", "pad_to_multiple_of": None,
        "pad_id": pad.id if pad else 0, "pad_type_id": 0, "pad_token": pad.token if pad else "[PAD]",
    }
    target.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
