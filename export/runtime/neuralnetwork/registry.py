"""The table from NeuralNetwork layer type (the proto's ``oneof layer`` name) to implementation.

Built once from the ``HANDLERS`` of each ``layers_*`` module and frozen, so the executor has no
mutable global state. It holds the layer kinds the files we export contain, over every supported
BERT/MobileBERT switch and both precisions (emitted ⊆ supported: ``tests/export/test_emitted_ops.py``);
any other kind is refused, naming it.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from export.runtime.neuralnetwork import layers_dense, layers_elementwise, layers_norm, layers_shape
from export.runtime.neuralnetwork.context import LayerFn


def _merge(*tables: Mapping[str, LayerFn]) -> Mapping[str, LayerFn]:
    merged: dict[str, LayerFn] = {}
    for table in tables:
        overlap = set(merged) & set(table)
        if overlap:
            raise RuntimeError(f"layer types implemented twice: {sorted(overlap)}")
        merged.update(table)
    return MappingProxyType(merged)


HANDLERS: Mapping[str, LayerFn] = _merge(
    layers_dense.HANDLERS,
    layers_elementwise.HANDLERS,
    layers_norm.HANDLERS,
    layers_shape.HANDLERS,
)

DATA_MOVEMENT = layers_shape.DATA_MOVEMENT

def supported_layer_types() -> list[str]:
    """Every layer type the executor runs, sorted (for reports and docs)."""
    return sorted(HANDLERS)
