"""Are an ML Program's weights the source model's? (part of the parity check)

The numbers say whether a package computes what the shell computes; this says whether it holds the
source model's own tensors (a package exported from *another* model of the same shape, re-exported
or swapped could agree by accident on a few texts). This reads the package's weight file (every ``const``
stored as a blob) and looks for each source tensor there, byte for byte, as float32 or float16,
as is or transposed (float16 values below half's smallest subnormal count as zero, since casts
differ there). Conversion legitimately folds a few tensors into constants (position and
token-type embeddings are sliced to the fixed length) and keeps tiny ones inline in the program;
those are listed, not required. So are *constant* tensors (every value the same): the converter
folds ``x * 1`` and ``x + 0`` away and may store a constant as one scalar, so a freshly initialised
model's NoNorm/LayerNorm weights (all exactly 1) and biases (all 0) are legitimately absent. They
prove nothing about provenance anyway - every model of that shape has them - while the tensors
that do (embeddings, dense weights, the classifier) are still required byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

#: source tensors conversion folds away (fixed max_length / token type): not expected verbatim
FOLDED_SUFFIXES = ("position_embeddings.weight", "token_type_embeddings.weight")
#: tensors smaller than this may be stored inline in the program instead of the weight file
MIN_BLOB_ELEMENTS = 16


def _model_path(package: Path) -> Path:
    manifest = json.loads((package / "Manifest.json").read_text())
    root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    return package / "Data" / Path(root).parent


def _digest(array: np.ndarray) -> str:
    if array.dtype == np.float16:
        # float32 -> float16 casts differ on values below half's smallest subnormal (2^-24): numpy
        # gives (-)0, coremltools +-2^-24. Treat both as +0 so only real differences count.
        array = np.where(np.abs(array) <= np.float16(2.0 ** -24), np.float16(0), array).astype(np.float16)
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def blob_digests(package: Path, spec) -> set[str]:
    """Digests of every float32/float16 const stored in the package's weight file(s)."""
    from coremltools.libmilstoragepython import _BlobStorageReader
    from coremltools.proto import MIL_pb2

    readers: dict[str, Any] = {}
    digests = set()
    base = _model_path(package)
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                if op.type != "const":
                    continue
                value = op.attributes["val"]
                if value.WhichOneof("value") != "blobFileValue":
                    continue
                name = value.blobFileValue.fileName.replace("@model_path/", "")
                if name not in readers:
                    readers[name] = _BlobStorageReader(str(base / name))
                dtype = value.type.tensorType.dataType
                if dtype == MIL_pb2.DataType.FLOAT32:
                    data = np.asarray(readers[name].read_float_data(value.blobFileValue.offset), np.float32)
                elif dtype == MIL_pb2.DataType.FLOAT16:
                    raw = readers[name].read_fp16_data(value.blobFileValue.offset)
                    data = np.asarray(raw).view(np.float16) if np.asarray(raw).dtype != np.float16 else np.asarray(raw)
                else:
                    continue
                digests.add(_digest(data))
    return digests


def _is_constant(array: np.ndarray) -> bool:
    """Every element equal (all ones, all zeros, ...): a tensor the converter may fold away."""
    flat = np.asarray(array).reshape(-1)
    return bool(flat.size) and bool(np.all(flat == flat[0]))


def source_tensors_in_package(package: Path, spec, state: Mapping[str, Any], skip_prefixes: tuple = ()) -> dict[str, Any]:
    """Which source tensors the package's weight file holds verbatim."""
    digests = blob_digests(package, spec)
    found, missing, not_expected = [], [], []
    for name, tensor in state.items():
        array = tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
        if name.startswith(skip_prefixes):
            continue
        if name.endswith(FOLDED_SUFFIXES) or array.size < MIN_BLOB_ELEMENTS or _is_constant(array):
            not_expected.append(name)
            continue
        candidates = []
        for dtype in (np.float32, np.float16):
            cast = array.astype(dtype)
            candidates += [_digest(cast), _digest(cast.T)]
        (found if any(c in digests for c in candidates) else missing).append(name)
    return {"found": len(found), "expected": len(found) + len(missing), "missing": missing,
            "not_expected_verbatim": not_expected, "passed": not missing}
