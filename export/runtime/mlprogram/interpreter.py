"""Execute an ML Program's ``main`` function with NumPy, op by op, exactly as stored.

Why: Core ML runs nothing off macOS, and its open-source validator checks only an ML Program's
interface, not its body - a wrong op, constant or cast in ``Classifier.mlpackage`` would go unseen
until a device ran it. This reads the program and its weight file from the package and executes
them, so ``check`` compares the files an app ships with the PyTorch shell and MLX.

Precision (``precision=``):

- ``"stored"`` (default): every value is held in the dtype the program declares for it, so an fp16
  program runs in fp16 between ops (each op's exact result rounded to half, |x| > 65504 -> inf),
  as a device would;
- ``"fp32"``: every fp16 value is widened to fp32 (the same program without half-precision
  rounding: the reference an fp16 program's drift is measured against);
- ``"fp16"``: every fp32 value is held in fp16 (what an fp32 program would do at fp16 compute
  precision; constants saturate at +-65504 the way the exporter builds fp16 masks).

One example per call, as Core ML predicts. Each op's outputs are recorded as the NeuralNetwork
runtime's layers are (``export.runtime.neuralnetwork.executor.LayerRecord``: largest |value|, NaN, inf, fp16
overflow), so both fp16 reports read the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from export.runtime.mlprogram.ops import OPS, Args, supported_ops
from export.runtime.mlprogram.program import NUMPY_TYPES, Program, ProgramError, WeightFile, decode_value, load_program, tensor_shape
from export.runtime.neuralnetwork.executor import ExecutionTrace, LayerRecord
from export.runtime.neuralnetwork.weights import FP16_MAX

PRECISIONS = ("stored", "fp32", "fp16")
RUNTIME = "export.runtime.mlprogram (NumPy ML Program interpreter)"


class UnsupportedOpError(ProgramError):
    """The program uses an op the interpreter does not implement (named, with where it is)."""


class OpExecutionError(ProgramError):
    """An op failed while executing (the message names the file, the op and its output)."""


def check_supported(program: Program) -> None:
    """Refuse, naming the op, any program with an op outside ``supported_ops()``."""
    known = set(supported_ops())
    for index, op in enumerate(program.operations):
        if op.type not in known:
            first = op.outputs[0].name if op.outputs else "?"
            raise UnsupportedOpError(
                f"{program.name}: MIL op {op.type!r} (op {index}, output {first!r}) is not supported by "
                f"{RUNTIME}; it runs only: {', '.join(supported_ops())}")
        if op.blocks:
            raise UnsupportedOpError(f"{program.name}: MIL op {op.type!r} (op {index}) has nested blocks "
                                     "(control flow), which the interpreter does not run")


def _stats(values: np.ndarray) -> tuple[float, bool, bool, bool]:
    finite = np.isfinite(values)
    max_abs = float(np.max(np.abs(values[finite]))) if finite.any() else 0.0
    has_nan, has_inf = bool(np.isnan(values).any()), bool(np.isinf(values).any())
    return max_abs, has_nan, has_inf, bool(has_inf or max_abs > FP16_MAX)


class MLProgramExecutor:
    """``predict(inputs) -> outputs`` (as ``MLModel.predict``) and ``run`` with per-op records."""

    def __init__(self, package: Union[str, Path], precision: str = "stored", spec=None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.program = load_program(package, spec)
        check_supported(self.program)
        self.precision = precision
        self._weights = WeightFile(self.program)
        self._consts: dict[str, Any] = {}
        block = self.program.function.block_specializations[self.program.function.opset]
        self.output_names = list(block.outputs)

    @property
    def name(self) -> str:
        return self.program.name

    # -- dtypes ------------------------------------------------------------------------------------

    def _dtype(self, declared: Any) -> Any:
        if self.precision == "fp32" and declared == np.float16:
            return np.float32
        if self.precision == "fp16" and declared == np.float32:
            return np.float16
        return declared

    def _store(self, value: Any, declared: Any, saturate: bool = False) -> Any:
        """``value`` held as the (precision-adjusted) declared dtype."""
        if declared is None or not isinstance(value, np.ndarray):
            return value
        dtype = self._dtype(declared)
        if saturate and dtype == np.float16 and value.dtype != np.float16:
            value = np.clip(value, -FP16_MAX, FP16_MAX)
        with np.errstate(over="ignore", invalid="ignore"):
            return value.astype(dtype, copy=False)

    @staticmethod
    def _declared(var) -> Optional[Any]:
        kind = var.type.WhichOneof("type")
        if kind != "tensorType":
            return None
        return NUMPY_TYPES.get(var.type.tensorType.dataType)

    def _const(self, op) -> Any:
        name = op.outputs[0].name
        if name not in self._consts:
            value = decode_value(op.attributes["val"], self._weights)
            if isinstance(value, np.ndarray):
                value = self._store(value, value.dtype.type, saturate=True)
            self._consts[name] = value
        return self._consts[name]

    # -- inputs ------------------------------------------------------------------------------------

    def _inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        env = {}
        for var in self.program.function.inputs:
            if var.name not in inputs:
                raise ProgramError(f"{self.name}: input {var.name!r} is missing (got {sorted(inputs)})")
            value = np.asarray(inputs[var.name])
            shape = tensor_shape(var.type)
            if value.size != int(np.prod(shape)):
                raise ProgramError(f"{self.name}: input {var.name!r} has {value.size} values, the program declares "
                                   f"shape {list(shape)}")
            env[var.name] = self._store(value.reshape(shape), self._declared(var))
        return env

    def _bind(self, op, env: Mapping[str, Any]) -> Args:
        bound = {}
        for key, argument in op.inputs.items():
            values = []
            for binding in argument.arguments:
                if binding.WhichOneof("binding") == "name":
                    values.append(env[binding.name])
                else:
                    values.append(decode_value(binding.value, self._weights))
            bound[key] = values
        return Args(bound)

    # -- execution ---------------------------------------------------------------------------------

    def run(self, inputs: Mapping[str, Any], keep_blobs: bool = False) -> ExecutionTrace:
        env = self._inputs(inputs)
        records = []
        for index, op in enumerate(self.program.operations):
            if op.type == "const":
                env[op.outputs[0].name] = self._const(op)
                continue
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    results = OPS[op.type](self._bind(op, env))
            except Exception as exc:
                raise OpExecutionError(f"{self.name}: op {index} {op.type!r} (output {op.outputs[0].name!r}) "
                                       f"failed: {type(exc).__name__}: {exc}") from None
            stats = None
            for var, value in zip(op.outputs, results):
                raw = np.asarray(value) if isinstance(value, np.ndarray) else value
                if isinstance(raw, np.ndarray) and np.issubdtype(raw.dtype, np.floating) and stats is None:
                    stats = _stats(raw)
                env[var.name] = self._store(raw, self._declared(var))
            if stats is not None:
                names = tuple(v.name for v in op.outputs)
                shapes = tuple(tuple(np.shape(env[n])) for n in names)
                records.append(LayerRecord(index, op.outputs[0].name, op.type, names, shapes, *stats))
        missing = [name for name in self.output_names if name not in env]
        if missing:
            raise ProgramError(f"{self.name}: the program never produces its outputs {missing}")
        outputs = {}
        for feature in self.program.spec.description.output:
            if feature.name not in env:
                continue
            value = env[feature.name]
            if isinstance(value, np.ndarray) and feature.type.WhichOneof("Type") == "multiArrayType":
                value = value.astype(np.float32)
            outputs[feature.name] = value
        return ExecutionTrace(outputs, dict(env) if keep_blobs else {}, tuple(records), self.precision)

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return self.run(inputs).outputs

    def consumers(self) -> dict[str, set]:
        """var name -> the op types that read it (for the fp16 check's mask-saturation excuse)."""
        table: dict[str, set] = {}
        for op in self.program.operations:
            for argument in op.inputs.values():
                for binding in argument.arguments:
                    if binding.WhichOneof("binding") == "name":
                        table.setdefault(binding.name, set()).add(op.type)
        return table

    def computes_in_fp16(self) -> bool:
        """True when the stored program holds any op output in fp16 (compute precision fp16)."""
        from coremltools.proto import MIL_pb2

        return any(var.type.tensorType.dataType == MIL_pb2.DataType.FLOAT16
                   for op in self.program.operations if op.type != "const" for var in op.outputs
                   if var.type.WhichOneof("type") == "tensorType")
