"""Read an ML Program package as stored: the ``main`` function's ops and every value they name.

The program comes from the package's spec (``model.mlmodel``), constants from the op attributes
(inline values) or the package's weight file (``weights/weight.bin``, read with coremltools' own
blob reader), so the interpreter executes exactly what an app ships - not the PyTorch module it was
converted from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from coremltools.proto import MIL_pb2, Model_pb2

D = MIL_pb2.DataType
#: MIL scalar types -> NumPy (STRING stays a Python str)
NUMPY_TYPES = {
    D.FLOAT16: np.float16, D.FLOAT32: np.float32, D.FLOAT64: np.float64,
    D.INT8: np.int8, D.INT16: np.int16, D.INT32: np.int32, D.INT64: np.int64,
    D.UINT8: np.uint8, D.UINT16: np.uint16, D.UINT32: np.uint32, D.UINT64: np.uint64, D.BOOL: np.bool_,
}
_BLOB_READERS = {D.FLOAT32: "read_float_data", D.FLOAT16: "read_fp16_data", D.INT8: "read_int8_data",
                 D.UINT8: "read_uint8_data", D.INT16: "read_int16_data", D.UINT16: "read_uint16_data",
                 D.INT32: "read_int32_data", D.UINT32: "read_uint32_data"}


class ProgramError(ValueError):
    """The package cannot be read or executed as stored; the message names the file (and op)."""


@dataclass(frozen=True)
class Program:
    """One ML Program: where it came from, its spec, and the ``main`` function's operations."""

    path: Path
    spec: Model_pb2.Model
    function: Any  # MIL_pb2.Function
    operations: tuple
    weights_dir: Optional[Path]

    @property
    def name(self) -> str:
        return self.path.name

    def op_types(self) -> list[str]:
        return sorted({op.type for op in self.operations})


def _model_dir(package: Path) -> Path:
    """The folder holding ``model.mlmodel`` and ``weights/`` (from the package's Manifest.json)."""
    manifest = json.loads((package / "Manifest.json").read_text(encoding="utf-8"))
    root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    return package / "Data" / Path(root).parent


def load_program(package: Union[str, Path], spec: Optional[Model_pb2.Model] = None) -> Program:
    """The ``main`` function of an ``.mlpackage`` (``spec``: already parsed, saves a read)."""
    package = Path(package)
    try:
        model_dir = _model_dir(package)
        if spec is None:
            spec = Model_pb2.Model()
            spec.ParseFromString((model_dir / "model.mlmodel").read_bytes())
    except (OSError, KeyError, ValueError) as exc:
        raise ProgramError(f"{package.name}: cannot read the package ({type(exc).__name__}: {exc})") from None
    if spec.WhichOneof("Type") != "mlProgram":
        raise ProgramError(f"{package.name} is not an ML Program (it is a {spec.WhichOneof('Type')})")
    functions = spec.mlProgram.functions
    if "main" not in functions:
        raise ProgramError(f"{package.name}: the ML Program has no 'main' function ({sorted(functions)})")
    function = functions["main"]
    if function.opset not in function.block_specializations:
        raise ProgramError(f"{package.name}: 'main' has no block for its opset {function.opset!r}")
    block = function.block_specializations[function.opset]
    return Program(package, spec, function, tuple(block.operations), model_dir)


class WeightFile:
    """Lazy readers of a package's blob files, one per file name (``@model_path/weights/...``)."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self._readers: dict[str, Any] = {}

    def read(self, blob, data_type: int, shape: tuple) -> np.ndarray:
        from coremltools.libmilstoragepython import _BlobStorageReader

        name = blob.fileName.replace("@model_path/", "")
        if data_type not in _BLOB_READERS:
            raise ProgramError(f"{self.program.name}: weight of type {D.Name(data_type)} in {name} is not supported")
        path = self.program.weights_dir / name
        if name not in self._readers:
            if not path.is_file():
                raise ProgramError(f"{self.program.name}: weight file {name} is missing")
            self._readers[name] = _BlobStorageReader(str(path))
        try:
            raw = np.asarray(getattr(self._readers[name], _BLOB_READERS[data_type])(blob.offset))
        except Exception as exc:  # the reader raises RuntimeError on a bad offset / header
            raise ProgramError(f"{self.program.name}: cannot read {name} at offset {blob.offset}: {exc}") from None
        dtype = NUMPY_TYPES[data_type]
        values = raw.view(dtype) if raw.dtype.itemsize == np.dtype(dtype).itemsize else raw.astype(dtype)
        if values.size != int(np.prod(shape)):
            raise ProgramError(f"{self.program.name}: {name} at offset {blob.offset} holds {values.size} values, "
                               f"the program declares shape {list(shape)}")
        return values.reshape(shape)


def tensor_shape(value_type) -> tuple:
    """Static shape of a ``ValueType`` tensor (rank 0 -> ())."""
    tensor = value_type.tensorType
    dims = []
    for dim in tensor.dimensions:
        if dim.WhichOneof("dimension") != "constant":
            raise ProgramError("a tensor with a symbolic shape (flexible inputs are not exported)")
        dims.append(int(dim.constant.size))
    return tuple(dims)


def decode_value(value, weights: WeightFile) -> Any:
    """A MIL ``Value`` (immediate or blob) as a NumPy array, a str, or a list of those."""
    kind = value.type.WhichOneof("type")
    if value.WhichOneof("value") == "blobFileValue":
        return weights.read(value.blobFileValue, value.type.tensorType.dataType, tensor_shape(value.type))
    immediate = value.immediateValue
    if kind == "listType" or immediate.WhichOneof("value") == "list":
        return [decode_value(item, weights) for item in immediate.list.values]
    if kind != "tensorType":
        raise ProgramError(f"{weights.program.name}: constant of type {kind} is not supported")
    data_type = value.type.tensorType.dataType
    shape = tensor_shape(value.type)
    tensor = immediate.tensor
    field = tensor.WhichOneof("value")
    if data_type == D.STRING:
        strings = list(tensor.strings.values)
        return strings[0] if not shape else np.asarray(strings, dtype=object).reshape(shape)
    dtype = NUMPY_TYPES.get(data_type)
    if dtype is None:
        raise ProgramError(f"{weights.program.name}: constant of type {D.Name(data_type)} is not supported")
    if field == "bytes":
        values = np.frombuffer(tensor.bytes.values, dtype=dtype)
    elif field is None:
        values = np.zeros(0, dtype)
    else:
        values = np.asarray(list(getattr(tensor, field).values)).astype(dtype)
    return values.reshape(shape)
