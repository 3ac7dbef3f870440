"""The table from NeuralNetwork layer type (the proto's ``oneof layer`` name) to implementation.

Built once from the ``HANDLERS`` of each ``layers_*`` module and frozen, so the executor has no
mutable global state. Types the executor knows but deliberately does not run are listed with
the reason, so the error says *why* instead of only "unknown".
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from export.nnexec import layers_dense, layers_elementwise, layers_norm, layers_pool, layers_reduce, layers_shape
from export.nnexec.context import LayerFn


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
    layers_pool.HANDLERS,
    layers_reduce.HANDLERS,
    layers_shape.HANDLERS,
)

DATA_MOVEMENT = layers_shape.DATA_MOVEMENT

_RANDOM = "random layers draw from Core ML's own generator, which cannot be reproduced"
NOT_SIMULATED: Mapping[str, str] = MappingProxyType({
    "custom": "custom layers run app-provided code",
    "branch": "control flow (branch) is not simulated",
    "loop": "control flow (loop) is not simulated",
    "loopBreak": "control flow (loop) is not simulated",
    "loopContinue": "control flow (loop) is not simulated",
    "randomNormalLike": _RANDOM, "randomNormalStatic": _RANDOM, "randomNormalDynamic": _RANDOM,
    "randomUniformLike": _RANDOM, "randomUniformStatic": _RANDOM, "randomUniformDynamic": _RANDOM,
    "randomBernoulliLike": _RANDOM, "randomBernoulliStatic": _RANDOM, "randomBernoulliDynamic": _RANDOM,
    "categoricalDistribution": _RANDOM,
    "simpleRecurrent": "recurrent layers are not simulated",
    "gru": "recurrent layers are not simulated",
    "uniDirectionalLSTM": "recurrent layers are not simulated",
    "biDirectionalLSTM": "recurrent layers are not simulated",
})


def supported_layer_types() -> list[str]:
    """Every layer type the executor runs, sorted (for reports and docs)."""
    return sorted(HANDLERS)
