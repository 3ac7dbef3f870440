"""Errors raised by the NumPy runtime.

They are distinct types (all ``ValueError``s) so that a caller such as the export check can tell
"this model uses something the simulator cannot run" (report it, fall back to a device check)
from "the inputs you gave are wrong" (a bug in the caller).
"""

from __future__ import annotations


class NnexecError(ValueError):
    """Base class of every error raised by ``export.runtime.neuralnetwork``."""


class UnsupportedModelError(NnexecError):
    """The model type or a model-level feature (preprocessing, image inputs...) is not simulated."""


class UnsupportedLayerError(NnexecError):
    """A layer type, or a parameter combination of a known type, that the executor cannot run.

    The message always names the layer and its type so the user can find it in the spec.
    """

    def __init__(self, layer_name: str, layer_type: str, reason: str = "") -> None:
        self.layer_name = layer_name
        self.layer_type = layer_type
        detail = f": {reason}" if reason else ""
        super().__init__(f"layer {layer_name!r} of type {layer_type!r} is not supported by the NumPy executor{detail}")


class UnsupportedWeightsError(NnexecError):
    """Weights stored in a format we do not decode (quantized, lookup table, int8)."""


class InputError(NnexecError):
    """Inputs missing, of the wrong shape, or of the wrong type for the model description."""


class LayerExecutionError(NnexecError):
    """A supported layer failed on the given blobs (shape mismatch, index out of range...)."""

    def __init__(self, layer_name: str, layer_type: str, reason: str) -> None:
        self.layer_name = layer_name
        self.layer_type = layer_type
        super().__init__(f"layer {layer_name!r} ({layer_type}) failed: {reason}")


class UpdateConfigError(NnexecError):
    """An updatable model whose update parameters cannot be simulated (or would fail on device)."""
