"""Decode and encode ``WeightParams`` (the proto that holds every layer's numbers).

Core ML stores weights as fp32 (``floatValue``), fp16 (``float16Value``, little-endian bytes) or
quantized (``rawValue`` / ``int8RawValue`` + ``quantization``). We decode the first two exactly and
refuse the quantized forms with a message naming the layer: silently mis-decoding a lookup table
would give plausible-looking but wrong parity numbers, which is worse than no number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from export.runtime.neuralnetwork.errors import UnsupportedWeightsError

FP16_MAX = 65504.0


@dataclass(frozen=True)
class DecodedWeights:
    """A flat float32 array plus the storage it came from ("fp32" or "fp16")."""

    values: np.ndarray
    storage: str


def decode_weight_params(weights: Any, where: str) -> Optional[DecodedWeights]:
    """Flat float32 values of a ``WeightParams`` message, or ``None`` when it holds nothing.

    ``where`` ("layer 'dense' field 'weights'") only feeds the error message.
    """
    if weights.HasField("quantization") or len(weights.rawValue) or len(weights.int8RawValue):
        bits = weights.quantization.numberOfBits if weights.HasField("quantization") else 8
        raise UnsupportedWeightsError(
            f"{where}: quantized weights ({bits}-bit) are not supported by the NumPy executor; "
            "export fp32 or fp16 weights for the parity check"
        )
    if len(weights.floatValue):
        return DecodedWeights(np.asarray(weights.floatValue, dtype=np.float32), "fp32")
    if len(weights.float16Value):
        half = np.frombuffer(weights.float16Value, dtype="<f2")
        return DecodedWeights(half.astype(np.float32), "fp16")
    return None


def encode_fp32(weights: Any, values: np.ndarray) -> None:
    """Overwrite ``weights`` with fp32 ``values`` (flattened row-major), keeping ``isUpdatable``.

    Updatable layers must hold fp32 weights (Core ML rejects fp16 there), so fp32 is the only form
    we ever write back.
    """
    updatable = weights.isUpdatable
    weights.Clear()
    weights.floatValue.extend(np.asarray(values, dtype=np.float32).ravel().tolist())
    weights.isUpdatable = updatable


def round_to_fp16(values: np.ndarray) -> np.ndarray:
    """float32 values as a fp16 device would hold them: rounded, and +-inf beyond 65504.

    NumPy's cast rounds 65504 < |x| < 65520 down to 65504; we send everything above 65504 to inf,
    the conservative reading (and what the brief for this check asks for), so that a value the
    device might keep finite is still flagged.
    """
    x = np.asarray(values, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        half = x.astype(np.float16).astype(np.float32)
        return np.where(np.abs(x) > FP16_MAX, np.copysign(np.float32(np.inf), x), half).astype(np.float32)


def resolve_field(message: Any, path: str) -> Any:
    """``resolve_field(params, "PReLU.alpha")`` -> the nested sub-message."""
    node = message
    for part in path.split("."):
        node = getattr(node, part)
    return node
