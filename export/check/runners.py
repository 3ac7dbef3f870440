"""Uniform "token batch -> probabilities" runners over every artefact the checks compare.

Each runner takes int32 ``(N, L)`` ids and mask and returns ``(N, C)`` float64 probabilities in the
manifest's label order (plus the label each model itself predicted, where it outputs one). Core ML
files are fed one example at a time with exactly the names, shapes and dtypes the manifest
declares, as an app would; a disagreement surfaces as the runtime's own error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

_DTYPES = {"int32": np.int32, "float32": np.float32, "float64": np.float64, "float16": np.float16}


@dataclass(frozen=True)
class Outputs:
    probabilities: np.ndarray  # (N, C) float64
    labels: Optional[list]  # the model's own predicted label per row, if it outputs one


def feed(features: Sequence[Mapping[str, Any]], values: Mapping[str, np.ndarray], file: str) -> dict[str, np.ndarray]:
    """One example's inputs shaped and typed exactly as the manifest ``features`` declare."""
    out = {}
    for feature in features:
        name = feature["name"]
        if name not in values:
            raise ValueError(f"{file}: manifest input {name!r} is not one the check can provide ({sorted(values)})")
        value = np.asarray(values[name])
        shape = tuple(int(d) for d in feature.get("shape", value.shape))
        if int(np.prod(shape)) != value.size:
            raise ValueError(f"{file}: manifest declares {name!r} with shape {list(shape)} "
                             f"({int(np.prod(shape))} values) but the check has {value.size} values for it")
        dtype = _DTYPES.get(feature.get("dtype", "float32"))
        if dtype is None:
            raise ValueError(f"{file}: manifest dtype {feature.get('dtype')!r} of {name!r} is not a multi-array type")
        out[name] = value.reshape(shape).astype(dtype)
    return out


class Runner:
    """Base: ``name`` is the artefact (file name, "PyTorch shell", the reference), ``via`` how it ran."""

    name: str = ""
    via: str = ""

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> Outputs:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} ({self.via})"


class ShellRunner(Runner):
    """The PyTorch shell the files were converted from."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.name, self.via = "PyTorch shell", "torch, float32"

    def run(self, input_ids, attention_mask) -> Outputs:
        import torch

        with torch.no_grad():
            logits = self.shell(torch.from_numpy(np.asarray(input_ids, np.int64)),
                                torch.from_numpy(np.asarray(attention_mask, np.int64)))
            probs = torch.softmax(logits.double(), dim=-1).numpy()
        return Outputs(probs, None)

    def pooled(self, input_ids, attention_mask) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.shell.pooled(torch.from_numpy(np.asarray(input_ids, np.int64)),
                                     torch.from_numpy(np.asarray(attention_mask, np.int64))).double().numpy()


class ClassifierRunner(Runner):
    """A classifier model (Core ML ``MLModel`` or an export.runtime executor: both have ``predict``) on tokens."""

    def __init__(self, predictor, entry: Mapping[str, Any], labels: Sequence[Any], name: str, via: str) -> None:
        self.predictor, self.entry, self.labels = predictor, entry, list(labels)
        self.name, self.via = name, via

    def run(self, input_ids, attention_mask) -> Outputs:
        rows, predicted = [], []
        for ids, mask in zip(np.asarray(input_ids), np.asarray(attention_mask)):
            out = self.predictor.predict(feed(self.entry["inputs"], {"input_ids": ids, "attention_mask": mask}, self.name))
            probs, label = _classifier_outputs(out, self.entry, self.labels, self.name)
            rows.append(probs)
            predicted.append(label)
        return Outputs(np.asarray(rows, np.float64).reshape(len(rows), len(self.labels)), predicted)


class EncoderRunner:
    """An encoder model on tokens -> pooled embeddings (N, E)."""

    def __init__(self, predictor, entry: Mapping[str, Any], name: str, via: str) -> None:
        self.predictor, self.entry, self.name, self.via = predictor, entry, name, via

    def pooled(self, input_ids, attention_mask) -> np.ndarray:
        output = self.entry["outputs"][0]["name"]
        rows = []
        for ids, mask in zip(np.asarray(input_ids), np.asarray(attention_mask)):
            out = self.predictor.predict(feed(self.entry["inputs"], {"input_ids": ids, "attention_mask": mask}, self.name))
            if output not in out:
                raise ValueError(f"{self.name}: output {output!r} (from the manifest) is missing; got {sorted(out)}")
            rows.append(np.asarray(out[output], np.float64).ravel())
        return np.asarray(rows)


class HeadRunner(Runner):
    """The updatable head fed with an encoder's pooled embeddings, reshaped to the head's declared input."""

    def __init__(self, predictor, entry: Mapping[str, Any], labels: Sequence[Any], encoder, name: str, via: str) -> None:
        self.predictor, self.entry, self.labels, self.encoder = predictor, entry, list(labels), encoder
        self.name, self.via = name, via

    def run_embeddings(self, pooled: np.ndarray) -> Outputs:
        feature = self.entry["inputs"][0]
        rows, predicted = [], []
        for vector in np.asarray(pooled):
            out = self.predictor.predict(feed([feature], {feature["name"]: vector}, self.name))
            probs, label = _classifier_outputs(out, self.entry, self.labels, self.name)
            rows.append(probs)
            predicted.append(label)
        return Outputs(np.asarray(rows, np.float64).reshape(len(rows), len(self.labels)), predicted)

    def run(self, input_ids, attention_mask) -> Outputs:
        return self.run_embeddings(self.encoder.pooled(input_ids, attention_mask))


class ReferenceRunner(Runner):
    """The caller's reference, e.g. the MLX model's ``TextClassifier.probabilities_for_ids``."""

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], Any], num_labels: int, name: str) -> None:
        self.fn, self.num_labels = fn, num_labels
        self.name, self.via = name, "reference callable"

    def run(self, input_ids, attention_mask) -> Outputs:
        ids = np.ascontiguousarray(input_ids, dtype=np.int32)
        mask = np.ascontiguousarray(attention_mask, dtype=np.int32)
        probs = np.asarray(self.fn(ids, mask), dtype=np.float64)
        if probs.shape != (ids.shape[0], self.num_labels):
            raise ValueError(f"reference {self.name!r} returned shape {probs.shape}, expected {(ids.shape[0], self.num_labels)}")
        return Outputs(probs, None)


def _classifier_outputs(out: Mapping[str, Any], entry: Mapping[str, Any], labels: list, file: str):
    probs_name = entry.get("predicted_probabilities")
    label_name = entry.get("predicted_feature")
    if probs_name not in out:
        raise ValueError(f"{file}: probability output {probs_name!r} (from the manifest) is missing; got {sorted(out)}")
    table = out[probs_name]
    missing = [label for label in labels if label not in table]
    if missing:
        raise ValueError(f"{file}: output {probs_name!r} lacks the manifest's labels {missing}; it has {sorted(table)}")
    return [float(table[label]) for label in labels], out.get(label_name)
