"""Model inputs and outputs as Core ML sees them: declared shapes, flexible shapes, data types.

Shape checks are strict on purpose: the iOS side must feed exactly the declared shape (a (768,)
array where (1, 768) is declared makes an update return nil on device), so the simulator refuses
what the device would refuse instead of quietly reshaping.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from export.runtime.neuralnetwork.errors import InputError, UnsupportedModelError

_OUTPUT_DTYPES = {"FLOAT32": np.float32, "DOUBLE": np.float64, "FLOAT16": np.float16, "INT32": np.int32}


def _dtype_name(array_type: Any) -> str:
    return array_type.ArrayDataType.Name(array_type.dataType)


def allowed_shapes(feature: Any) -> tuple[tuple[int, ...], list[tuple[int, ...]], list[tuple[int, int]]]:
    """(default shape, enumerated shapes, per-axis [lower, upper] ranges) of a multi-array feature."""
    t = feature.type.multiArrayType
    default = tuple(int(v) for v in t.shape)
    enumerated = [tuple(int(v) for v in s.shape) for s in t.enumeratedShapes.shapes]
    ranges = [(int(r.lowerBound), int(r.upperBound)) for r in t.shapeRange.sizeRanges]
    return default, enumerated, ranges


def _shape_ok(shape: tuple[int, ...], feature: Any) -> bool:
    default, enumerated, ranges = allowed_shapes(feature)
    if enumerated:
        return shape in enumerated
    if ranges:
        return len(shape) == len(ranges) and all(
            lo <= s and (hi < 0 or s <= hi) for s, (lo, hi) in zip(shape, ranges))
    return not default or shape == default


def prepare_array_input(feature: Any, value: Any, rank5: bool) -> np.ndarray:
    """The float32 blob a NeuralNetwork layer sees for one multi-array input value.

    With the legacy rank-5 mapping a declared [C] becomes [1, 1, C, 1, 1] and [C, H, W] becomes
    [1, 1, C, H, W] (NeuralNetwork.proto, RANK5_ARRAY_MAPPING).
    """
    kind = feature.type.WhichOneof("Type")
    if kind == "imageType":
        raise UnsupportedModelError(f"input {feature.name!r} is an image; image inputs are not simulated")
    if kind != "multiArrayType":
        raise UnsupportedModelError(f"input {feature.name!r} of type {kind!r} is not a multi-array")
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise InputError(f"input {feature.name!r} must be numeric, got dtype {array.dtype}")
    if not _shape_ok(tuple(array.shape), feature):
        default, enumerated, ranges = allowed_shapes(feature)
        allowed = enumerated or ranges or default
        raise InputError(
            f"input {feature.name!r} has shape {tuple(array.shape)} but the model declares {allowed}; "
            "Core ML rejects (or, for updates, silently fails on) a differently shaped MLMultiArray"
        )
    x = array.astype(np.float32)
    if rank5:
        if x.ndim == 1:
            x = x.reshape(1, 1, -1, 1, 1)
        elif x.ndim == 3:
            x = x.reshape((1, 1) + x.shape)
        elif x.ndim != 5:
            raise InputError(f"input {feature.name!r}: rank-5 mapping accepts rank 1, 3 or 5 arrays, got {x.shape}")
    return x


def shape_output(feature: Any, blob: np.ndarray, rank5: bool) -> np.ndarray:
    """A blob as ``MLModel.predict`` returns it: the declared data type, and for rank-5 models
    the declared shape when one is given (the blob itself is always rank 5 there)."""
    t = feature.type.multiArrayType
    y = blob
    declared = tuple(int(v) for v in t.shape)
    if rank5 and declared and int(np.prod(declared)) == blob.size:
        y = blob.reshape(declared)
    dtype = _OUTPUT_DTYPES.get(_dtype_name(t), np.float32)
    return np.asarray(y).astype(dtype)
