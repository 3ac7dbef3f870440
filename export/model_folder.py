"""Validate a Hugging Face model folder before any conversion work starts.

Every failure names the file or field at fault and says what to do, because the typical user of
``export`` is holding a folder produced by someone else's training script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from export.shell.load import SUPPORTED_MODEL_TYPES
from export.tokenizer_info import TokenizerInfo, TokenizerInfoError, read_tokenizer_info


class ExportInputError(ValueError):
    """The input folder cannot be exported; the message says which file/field and how to fix it."""


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    config: dict[str, Any]
    model_type: str
    labels: tuple[str, ...]
    weight_files: tuple[Path, ...]
    tokenizer: TokenizerInfo


def _weight_files(folder: Path) -> tuple[Path, ...]:
    single = folder / "model.safetensors"
    if single.is_file():
        return (single,)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError) as exc:
            raise ExportInputError(f"{index}: unreadable shard index ({exc})") from exc
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ExportInputError(f"{index} lists missing shard files: {missing}")
        return tuple(folder / s for s in shards)
    if (folder / "pytorch_model.bin").is_file():
        raise ExportInputError(
            f"{folder} has pytorch_model.bin but no model.safetensors; convert it first: "
            f"python -m export.convert_bin {folder} {folder}-safetensors"
        )
    raise ExportInputError(f"{folder}: no model.safetensors; save the model with save_pretrained(folder)")


def _tensor_names(files: tuple[Path, ...]) -> set[str]:
    from safetensors import safe_open

    names: set[str] = set()
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                names.update(handle.keys())
        except Exception as exc:  # safetensors raises its own error types
            raise ExportInputError(f"{path}: not a readable safetensors file ({exc})") from exc
    return names


def _labels(config: dict[str, Any], config_path: Path) -> tuple[str, ...]:
    id2label = config.get("id2label")
    if not id2label:
        raise ExportInputError(
            f"{config_path}: field 'id2label' is missing; save the classifier with id2label/label2id "
            "(they become the Core ML class labels)"
        )
    try:
        by_id = {int(key): str(value) for key, value in id2label.items()}
    except (TypeError, ValueError) as exc:
        raise ExportInputError(f"{config_path}: 'id2label' keys must be integers 0..N-1 ({exc})") from exc
    if sorted(by_id) != list(range(len(by_id))):
        raise ExportInputError(f"{config_path}: 'id2label' keys must be 0..{len(by_id) - 1}, got {sorted(by_id)}")
    labels = tuple(by_id[i] for i in range(len(by_id)))
    if len(set(labels)) != len(labels):
        raise ExportInputError(f"{config_path}: 'id2label' values must be unique, got {list(labels)}")
    if len(labels) < 2:
        raise ExportInputError(f"{config_path}: 'id2label' needs at least 2 classes for a classifier")
    return labels


def read_model_folder(path: Union[str, Path]) -> ModelFolder:
    """Check config.json, weights (with a classifier head) and tokenizer files; return what was read."""
    folder = Path(path)
    if not folder.is_dir():
        raise ExportInputError(f"{folder}: not a directory (expected a Hugging Face model folder)")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ExportInputError(f"{folder}: missing config.json (expected a Hugging Face model folder)")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:
        raise ExportInputError(f"{config_path}: invalid JSON ({exc})") from exc
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ExportInputError(
            f"{config_path}: field 'model_type' = {model_type!r} is not supported; export handles "
            f"{' and '.join(SUPPORTED_MODEL_TYPES)} sequence classifiers"
        )
    labels = _labels(config, config_path)
    files = _weight_files(folder)
    names = _tensor_names(files)
    if not {"classifier.weight", "classifier.bias"} <= names:
        raise ExportInputError(
            f"{files[0]}: no classifier.weight / classifier.bias tensors; export needs a "
            f"{'Bert' if model_type == 'bert' else 'MobileBert'}ForSequenceClassification checkpoint "
            "(the distilled student folder), not a base model"
        )
    try:
        tokenizer = read_tokenizer_info(folder)
    except TokenizerInfoError as exc:
        raise ExportInputError(str(exc)) from exc
    vocab_size = int(config.get("vocab_size", 0))
    if tokenizer.vocab_size > vocab_size:
        raise ExportInputError(
            f"{folder}: tokenizer has {tokenizer.vocab_size} tokens but config.json 'vocab_size' is {vocab_size}; "
            "ids past the embedding table would crash on device - use the tokenizer the model was trained with"
        )
    return ModelFolder(folder, config, model_type, labels, files, tokenizer)
