"""Build tiny NeuralNetwork specs with coremltools' own builder and run them through the executor.

Specs come from ``NeuralNetworkBuilder`` (the same code path coremltools' converters use), so the
tests check our reading of the proto against independently written references (NumPy, PyTorch).
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

from export.runtime.neuralnetwork.pipelines import load_executor


def make_builder(inputs: Sequence[tuple[str, tuple]], outputs: Sequence[str] = ("out",), rank5: bool = False,
                 mode=None) -> NeuralNetworkBuilder:
    return NeuralNetworkBuilder(
        [(name, datatypes.Array(*shape)) for name, shape in inputs],
        [(name, None) for name in outputs],
        disable_rank5_shape_mapping=not rank5,
        mode=mode,
    )


def run_single(inputs: dict[str, np.ndarray], add: Callable[[NeuralNetworkBuilder], None],
               outputs: Sequence[str] = ("out",), rank5: bool = False) -> dict:
    """A one-layer (or few-layer) network over ``inputs``; returns the executor's outputs."""
    builder = make_builder([(k, v.shape) for k, v in inputs.items()], outputs, rank5=rank5)
    add(builder)
    return load_executor(builder.spec).predict(inputs)


def rand(*shape: int, seed: int = 0, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)
