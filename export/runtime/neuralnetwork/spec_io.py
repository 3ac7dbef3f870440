"""Load a Core ML spec from whatever the caller holds, and save one atomically.

Callers hold an ``MLModel`` (coremltools), a ``Model_pb2.Model`` spec, or a path to a
``.mlmodel`` / ``.mlpackage``. Loading never needs the Core ML runtime, which is macOS-only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

from mlx_distill.fileio import atomic_write_bytes
from export.runtime.neuralnetwork.errors import UnsupportedModelError

NN_TYPES = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")
PIPELINE_TYPES = ("pipeline", "pipelineClassifier", "pipelineRegressor")

ModelLike = Union[str, os.PathLike, Any]


def load_spec(model: ModelLike) -> Any:
    """A ``Model_pb2.Model`` for a path, an ``MLModel`` or a spec (returned as is)."""
    from coremltools.proto import Model_pb2

    if isinstance(model, Model_pb2.Model):
        return model
    if hasattr(model, "get_spec"):
        return model.get_spec()
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise FileNotFoundError(f"no Core ML model at {path}")
        from coremltools.models.utils import load_spec as ct_load_spec

        return ct_load_spec(str(path))
    raise TypeError(f"expected an MLModel, a Model_pb2.Model or a path, got {type(model).__name__}")


def model_type(spec: Any) -> str:
    return spec.WhichOneof("Type") or "<empty>"


def network_of(spec: Any) -> Any:
    """The NeuralNetwork / Classifier / Regressor message of a NN spec (raises for other types)."""
    kind = model_type(spec)
    if kind not in NN_TYPES:
        raise UnsupportedModelError(
            f"model type {kind!r} is not a NeuralNetwork; the NumPy executor runs {', '.join(NN_TYPES)} "
            f"and pipelines of them (ML Programs need the Core ML runtime on macOS)"
        )
    return getattr(spec, kind)


def pipeline_models(spec: Any) -> list:
    """The sub-model specs of a pipeline / pipelineClassifier / pipelineRegressor."""
    kind = model_type(spec)
    if kind == "pipeline":
        return list(spec.pipeline.models)
    if kind in ("pipelineClassifier", "pipelineRegressor"):
        return list(getattr(spec, kind).pipeline.models)
    raise UnsupportedModelError(f"model type {kind!r} is not a pipeline")


def save_spec_atomic(spec: Any, path: ModelLike) -> Path:
    """Write ``spec`` to ``path`` (a ``.mlmodel`` file) so a reader never sees half a file.

    Serialised to a temporary file in the same folder, fsynced, then renamed over the target.
    """
    target = Path(path)
    if target.suffix != ".mlmodel":
        raise ValueError(f"updatable models are shipped as .mlmodel files, got {target.name!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, spec.SerializeToString())
    return target
