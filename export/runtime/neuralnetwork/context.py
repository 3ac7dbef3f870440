"""What a layer implementation receives: the layer proto, its decoded weights and the rank mode.

Layer functions are pure: ``fn(call, inputs) -> outputs``. Everything they need about the model
comes through ``LayerCall``; the only state is the ``ParamStore`` cache of decoded weights, which
the update simulation overrides with trained values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from export.runtime.neuralnetwork.errors import LayerExecutionError, UnsupportedLayerError
from export.runtime.neuralnetwork.weights import decode_weight_params, resolve_field, round_to_fp16


@dataclass
class ParamStore:
    """Decoded layer weights keyed by (layer name, field path); decoded once, overridable.

    ``precision="fp16"`` rounds every weight as a half-precision device would hold it.
    ``storage`` records, per key, whether the spec stored it as fp32 or fp16 (for reports).
    """

    precision: str = "fp32"
    _cache: dict = field(default_factory=dict)
    _overrides: dict = field(default_factory=dict)
    storage: dict = field(default_factory=dict)

    def get(self, layer: Any, path: str) -> Optional[np.ndarray]:
        key = (layer.name, path)
        if key in self._overrides:
            return self._overrides[key]
        if key not in self._cache:
            params = getattr(layer, layer.WhichOneof("layer"))
            decoded = decode_weight_params(resolve_field(params, path), f"layer {layer.name!r} field {path!r}")
            if decoded is None:
                self._cache[key] = None
            else:
                self.storage[key] = decoded.storage
                values = round_to_fp16(decoded.values) if self.precision == "fp16" else decoded.values
                self._cache[key] = values
        return self._cache[key]

    def override(self, layer_name: str, path: str, values: np.ndarray) -> None:
        """Replace a weight (flat float32) for all later runs; used by the update simulation."""
        self._overrides[(layer_name, path)] = np.asarray(values, dtype=np.float32).ravel()

    def overrides(self) -> dict:
        return dict(self._overrides)

    def decoded(self) -> dict:
        """Every weight decoded so far (after fp16 rounding when emulating), overrides applied."""
        merged = dict(self._cache)
        merged.update(self._overrides)
        return merged


@dataclass(frozen=True)
class LayerCall:
    """One layer about to run: proto, typed params, weights access and the array mapping mode."""

    layer: Any
    kind: str
    params: Any
    store: ParamStore
    rank5: bool

    @property
    def name(self) -> str:
        return self.layer.name

    def weight(self, path: str, count: Optional[int] = None, required: bool = True) -> Optional[np.ndarray]:
        """Flat float32 weights at ``path``; checks the element count when ``count`` is given."""
        values = self.store.get(self.layer, path)
        if values is None:
            if required:
                raise self.fail(f"weights field {path!r} is empty")
            return None
        if count is not None and values.size != count:
            raise self.fail(f"weights field {path!r} holds {values.size} values, expected {count}")
        return values

    def fail(self, reason: str) -> LayerExecutionError:
        return LayerExecutionError(self.name, self.kind, reason)

    def unsupported(self, reason: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(self.name, self.kind, reason)


LayerFn = Callable[[LayerCall, Sequence[np.ndarray]], list]


def axis_index(call: LayerCall, axis: int, rank: int) -> int:
    """A possibly negative axis as a positive index, with a named error when out of range."""
    index = axis + rank if axis < 0 else axis
    if not 0 <= index < rank:
        raise call.fail(f"axis {axis} is out of range for a rank-{rank} blob")
    return index
