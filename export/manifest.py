"""``manifest.json``: the contract an iOS developer wires to.

Per file: inputs/outputs (names, shapes, dtypes) read back from the saved spec, plus max length,
labels, tokenizer (vocab copied beside it) and update parameters. Reading the saved files rather
than restating intentions means the manifest cannot drift from what Core ML enforces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import coremltools as ct

from export.spec_info import describe_spec

MANIFEST_FORMAT = "mlx_distill.export/1"
MANIFEST_NAME = "manifest.json"


def describe_saved_model(path: Path) -> dict[str, Any]:
    """Reload a saved .mlpackage / .mlmodel without compiling it and describe its interface."""
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    return describe_spec(spec)


def build_manifest(*, model_type: str, labels: list[str], max_length: int, embedding_size: int,
                   tokenizer: Mapping[str, Any], precision: Mapping[str, Any],
                   files: Mapping[str, Path], extra: Mapping[str, Mapping[str, Any]],
                   skipped: Mapping[str, str], versions: Mapping[str, str],
                   source_model_dir: Optional[str] = None) -> dict[str, Any]:
    """Assemble the manifest; ``files`` maps a role (classifier, encoder, ...) to its saved path.

    ``source_model_dir`` (relative to the export folder) is the Hugging Face folder exported; ``python -m export.check``
    reloads the PyTorch shell from it for parity checks.
    """
    models: dict[str, Any] = {}
    for role, path in files.items():
        entry = {"file": path.name, **describe_saved_model(path)}
        entry.update(extra.get(role, {}))
        models[role] = entry
    return {
        "format": MANIFEST_FORMAT,
        "model_type": model_type,
        "source_model_dir": source_model_dir,
        "max_length": max_length,
        "labels": list(labels),
        "num_labels": len(labels),
        "embedding_size": embedding_size,
        "tokenizer": dict(tokenizer),
        "precision": dict(precision),
        "models": models,
        "skipped": dict(skipped),
        "wiring": _wiring(files, max_length, embedding_size),
        "versions": dict(versions),
    }


def _wiring(files: Mapping[str, Path], max_length: int, embedding_size: int) -> list[str]:
    steps = [
        f"Tokenize with the manifest's tokenizer, pad/truncate to exactly {max_length} tokens: "
        f"input_ids and attention_mask as MLMultiArray of shape [1, {max_length}].",
    ]
    if "classifier" in files:
        steps.append(f"{files['classifier'].name}: int32 inputs -> 'label' (String) and 'label_probs' ([String: Double]).")
    if "encoder" in files:
        steps.append(f"{files['encoder'].name}: int32 inputs -> 'pooled_embedding' Float32 of shape [{embedding_size}].")
    if "updatable_head" in files:
        steps.append(
            f"{files['updatable_head'].name}: pass the Encoder's 'pooled_embedding' unchanged (shape [{embedding_size}], "
            "not [1, E]); train with MLUpdateTask on the compiled .mlmodelc using feature providers holding "
            "'pooled_embedding' and the correct 'label' String; write the updated model to Application Support or "
            "Documents, never into the app bundle."
        )
    if "updatable_pipeline" in files:
        steps.append(
            f"{files['updatable_pipeline'].name}: single file; input_ids/attention_mask are Float32 [1, {max_length}] "
            "(NeuralNetwork has no int32 arrays); training inputs add 'label' (String)."
        )
    return steps

