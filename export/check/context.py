"""Everything the checks share, loaded lazily and at most once: manifest, specs, tokens, runners.

A loader either returns its value, raises :class:`Unavailable` (the check that needs it is skipped
and says why: no source model folder, no such file in this export) or raises any other error (the
check fails and names the file). Results and errors are memoised, so six checks asking for the
PyTorch shell load it once and report the same reason.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from export.check.config import CheckConfig
from export.check.inputs import TokenBatch, load_tokenizer, tokenize
from export.check.runners import (
    ClassifierRunner,
    EncoderRunner,
    HeadRunner,
    Outputs,
    ReferenceRunner,
    Runner,
    ShellRunner,
)


class Unavailable(Exception):
    """What a check needs is absent for a legitimate reason; the check is skipped with this reason."""


def coreml_runtime_available() -> bool:
    """True on macOS with coremltools' compiled runtime (MLModel.predict works)."""
    if sys.platform != "darwin":
        return False
    try:
        import coremltools.libcoremlpython  # noqa: F401
    except ImportError:
        return False
    return True


class CheckContext:
    def __init__(self, export_dir: Path, model_dir: Optional[Path], reference: Optional[Callable],
                 reference_name: str, config: CheckConfig) -> None:
        self.export_dir = Path(export_dir).absolute()
        self.config = config
        self.reference = reference
        self.reference_name = reference_name
        self.coreml = coreml_runtime_available()
        self._memo: dict[str, tuple[bool, Any]] = {}
        self.manifest: Optional[dict] = None
        self.manifest_error: Optional[str] = None
        path = self.export_dir / "manifest.json"
        try:
            self.manifest = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(self.manifest, dict) or not isinstance(self.manifest.get("models"), dict):
                raise ValueError("it has no 'models' table")
        except FileNotFoundError:
            self.manifest, self.manifest_error = None, f"{path.name} is missing from {self.export_dir}"
        except (OSError, ValueError) as exc:
            self.manifest, self.manifest_error = None, f"{path.name} cannot be read: {exc}"
        self.model_dir, self.model_dir_note = self._resolve_model_dir(model_dir)

    # -- basics ------------------------------------------------------------------------------------

    def _resolve_model_dir(self, given: Optional[Path]) -> tuple[Optional[Path], str]:
        if given is not None:
            return Path(given).absolute(), "given"
        recorded = (self.manifest or {}).get("source_model_dir")
        if not recorded:
            return None, ("no source model folder: the manifest records none; pass --model DIR (the Hugging "
                          "Face folder this was exported from)")
        folder = (self.export_dir.resolve() / recorded).resolve()  # relative to the export folder's real location
        if not folder.is_dir():
            return None, f"the source model folder recorded in the manifest ({recorded}) no longer exists; pass --model DIR"
        return folder, "from the manifest"

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            try:
                self._memo[key] = (True, make())
            except Exception as exc:  # remembered and re-raised to every caller
                self._memo[key] = (False, exc)
        ok, value = self._memo[key]
        if ok:
            return value
        raise value

    def need_manifest(self) -> dict:
        if self.manifest is None:
            raise Unavailable(f"needs the manifest ({self.manifest_error})")
        return self.manifest

    @property
    def labels(self) -> list:
        return list(self.need_manifest()["labels"])

    @property
    def max_length(self) -> int:
        return int(self.need_manifest()["max_length"])

    @property
    def precision_used(self) -> str:
        return str((self.need_manifest().get("precision") or {}).get("used", "fp32"))

    def entry(self, role: str) -> dict:
        models = self.need_manifest()["models"]
        if role not in models:
            skipped = self.need_manifest().get("skipped", {}).get(role)
            raise Unavailable(f"this export has no {role}" + (f" (skipped at export: {skipped})" if skipped else ""))
        return models[role]

    def file_name(self, role: str) -> str:
        return str(self.entry(role).get("file", role))

    def spec(self, role: str):
        """The saved spec of a role's file; a missing, unreadable or empty file raises naming it."""

        def load():
            import coremltools as ct

            name = self.file_name(role)
            path = self.export_dir / name
            if not path.exists():
                raise FileNotFoundError(f"{name} is missing from the export folder")
            try:
                spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
            except Exception as exc:
                raise ValueError(f"{name} cannot be read as a Core ML model ({type(exc).__name__}: {exc})") from None
            if spec.WhichOneof("Type") is None:
                raise ValueError(f"{name} holds no model (empty or truncated file)")
            return spec

        return self.memo(f"spec:{role}", load)

    def tokens(self) -> TokenBatch:
        def make():
            manifest = self.need_manifest()
            return tokenize(load_tokenizer(self.export_dir, manifest), self.config.check_texts, manifest)

        return self.memo("tokens", make)

    # -- runners -----------------------------------------------------------------------------------

    def shell(self):
        def load():
            if self.model_dir is None:
                raise Unavailable(self.model_dir_note)
            from export.shell.common import FP16_MASK_VALUE, FP32_MASK_VALUE
            from export.shell.load import load_shell_from_folder

            mask = FP16_MASK_VALUE if self.precision_used == "fp16" else FP32_MASK_VALUE
            try:
                return load_shell_from_folder(self.model_dir, self.max_length, mask_value=mask)
            except Exception as exc:
                raise ValueError(f"cannot load the PyTorch shell from {self.model_dir}: {type(exc).__name__}: {exc}") from None

        return self.memo("shell", load)

    def _coreml_model(self, role: str):
        import coremltools as ct

        self.spec(role)  # names a missing/corrupt file first
        return ct.models.MLModel(str(self.export_dir / self.file_name(role)), compute_units=ct.ComputeUnit.CPU_ONLY)

    def _predictor(self, role: str):
        """(predictor, how it runs) for a role's file: Core ML on macOS; elsewhere the shipped file
        itself, an ML Program by ``export.runtime.mlprogram`` and a NeuralNetwork by ``export.runtime.neuralnetwork``."""
        if self.coreml:
            return self._coreml_model(role), "Core ML runtime, cpuOnly"
        spec = self.spec(role)
        if spec.WhichOneof("Type") == "mlProgram":
            from export.runtime.mlprogram.interpreter import RUNTIME

            program = self.program(role)
            return program, f"{RUNTIME}, {'fp16' if program.computes_in_fp16() else 'fp32'} as stored"
        from export.runtime.neuralnetwork.pipelines import load_executor

        return load_executor(spec), "export.runtime.neuralnetwork"

    def program(self, role: str, precision: str = "stored"):
        """The role's ML Program package loaded by the NumPy interpreter (unsupported op: an error)."""
        from export.runtime.mlprogram.interpreter import MLProgramExecutor

        return self.memo(f"program:{role}:{precision}", lambda: MLProgramExecutor(
            self.export_dir / self.file_name(role), precision, spec=self.spec(role)))

    def runner(self, key: str) -> Runner:
        """'shell', 'classifier', 'updatable_pipeline', 'updatable_head' or 'reference'."""

        def make():
            if key == "shell":
                return ShellRunner(self.shell())
            if key == "reference":
                if self.reference is None:
                    raise Unavailable(f"no reference given; run `python -m mlx_distill check {self.export_dir}` "
                                      "to include MLX")
                return ReferenceRunner(self.reference, len(self.labels), self.reference_name)
            if key == "updatable_head":
                predictor, via = self._predictor(key)
                encoder = self.head_encoder()
                return HeadRunner(predictor, self.entry(key), self.entry(key).get("class_labels") or self.labels,
                                  encoder, self.file_name(key), f"{via}, fed {encoder.name}'s pooled embeddings")
            predictor, via = self._predictor(key)
            return ClassifierRunner(predictor, self.entry(key), self.entry(key).get("class_labels") or self.labels,
                                    self.file_name(key), via)

        return self.memo(f"runner:{key}", make)

    def encoder(self) -> EncoderRunner:
        def make():
            predictor, via = self._predictor("encoder")
            return EncoderRunner(predictor, self.entry("encoder"), self.file_name("encoder"), via)

        return self.memo("runner:encoder", make)

    def head_encoder(self):
        """What feeds the head: Encoder.mlpackage; else the pipeline's frozen encoder
        stage; else the shell's pooled output."""

        def make():
            reasons = []
            for source in (self.encoder, self._pipeline_encoder, self._shell_encoder):
                try:
                    return source()
                except Unavailable as exc:
                    reasons.append(str(exc))
            raise Unavailable("nothing can compute pooled embeddings for the head: " + "; ".join(reasons))

        return self.memo("head_encoder", make)

    def _pipeline_encoder(self) -> EncoderRunner:
        from export.runtime.neuralnetwork.pipelines import load_executor
        from export.runtime.neuralnetwork.spec_io import pipeline_models

        spec = self.spec("updatable_pipeline")
        stage = pipeline_models(spec)[0]
        entry = dict(self.entry("updatable_pipeline"))
        entry["outputs"] = [{"name": stage.description.output[0].name}]
        return EncoderRunner(load_executor(stage), entry, f"{self.file_name('updatable_pipeline')} (encoder stage)",
                             "export.runtime.neuralnetwork")

    def _shell_encoder(self) -> ShellRunner:
        return self.runner("shell")

    def computes_in_fp16(self, key: str) -> bool:
        """Does this runner's output carry fp16 arithmetic? (an fp16 ML Program, or the head fed one)"""
        if key == "updatable_head":
            encoder = self.head_encoder()
            return isinstance(encoder, EncoderRunner) and encoder.name == self._safe_file_name("encoder") \
                and self.computes_in_fp16("encoder")
        if key not in ("classifier", "encoder"):
            return False
        if self.coreml:
            return self.precision_used == "fp16"
        return self.program(key).computes_in_fp16()

    def tolerance(self, key: str) -> float:
        """Parity bound for a runner: fp32 files ``tolerance``, fp16 ones ``fp16_tolerance``."""
        try:
            half = self.computes_in_fp16(key)
        except Exception:
            half = False
        return self.config.fp16_tolerance if half else self.config.tolerance

    def sum_tolerance(self, key: str) -> float:
        """How far a runner's probabilities may sum from 1 (fp16 files store them in fp16)."""
        return max(self.config.sum_tolerance, self.tolerance(key) if self.tolerance(key) > self.config.tolerance else 0)

    def _safe_file_name(self, role: str) -> Optional[str]:
        try:
            return self.file_name(role)
        except Exception:
            return None

    def text_outputs(self, key: str) -> Outputs:
        tokens = self.tokens()
        return self.memo(f"texts:{key}", lambda: self.runner(key).run(tokens.input_ids, tokens.attention_mask))



def describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
