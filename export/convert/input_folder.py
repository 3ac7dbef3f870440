"""Validate a Hugging Face model folder before any conversion work starts, and load it into the shell.

Every failure names the file or field at fault and says what to do, because the typical user of
``export`` is holding a folder produced by someone else's training script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from export.shell.load import SUPPORTED_MODEL_TYPES
from export.convert.tokenizer import TokenizerInfo, TokenizerInfoError, read_tokenizer_info


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
    embedding_file, embedding_name, rows = _word_embedding_rows(files)
    _check_vocab_sizes(folder, config, tokenizer, embedding_file, embedding_name, rows)
    return ModelFolder(folder, config, model_type, labels, files, tokenizer)


#: a tokenizer may be this much smaller than the embedding table (padding of the table to a
#: multiple of 64/128, a few reserved slots); beyond it, ids the model learnt cannot be produced
TOKENIZER_SHORTFALL_TOKENS = 128
TOKENIZER_SHORTFALL_FRACTION = 0.01


def allowed_tokenizer_shortfall(rows: int) -> int:
    """How many embedding rows a tokenizer may leave unused: max(128, 1 % of the rows)."""
    return max(TOKENIZER_SHORTFALL_TOKENS, int(rows * TOKENIZER_SHORTFALL_FRACTION))


def _word_embedding_rows(files: tuple[Path, ...]) -> tuple[Path, str, int]:
    """(file, tensor name, rows) of the word-embedding matrix, read from the safetensors header."""
    from safetensors import safe_open

    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                if name.endswith("embeddings.word_embeddings.weight"):
                    shape = handle.get_slice(name).get_shape()
                    if len(shape) != 2:
                        raise ExportInputError(f"{path}: {name} has shape {shape}; a [vocab, width] matrix was expected")
                    return path, name, int(shape[0])
    raise ExportInputError(
        f"{files[0]}: no *embeddings.word_embeddings.weight tensor; this is not a BERT/MobileBERT checkpoint"
    )


def _check_vocab_sizes(folder: Path, config: dict[str, Any], tokenizer: TokenizerInfo,
                       embedding_file: Path, embedding_name: str, rows: int) -> None:
    """config.json, the embedding matrix and the tokenizer must describe the same vocabulary.

    The embedding matrix is the ground truth (it is what was trained): a config.json that
    disagrees with it is the config's fault, not the tokenizer's; a tokenizer larger than it
    produces ids past the table; one far smaller cannot produce ids the model was trained with.
    """
    config_path = folder / "config.json"
    tokenizer_files = " + ".join(tokenizer.source_files)
    if "vocab_size" in config and int(config["vocab_size"]) != rows:
        raise ExportInputError(
            f"{config_path}: 'vocab_size' is {int(config['vocab_size'])} but {embedding_name} in "
            f"{embedding_file} has {rows} rows; this config.json was not saved with these weights - "
            f"set vocab_size to {rows} or use the config.json saved with the model"
        )
    if tokenizer.vocab_size > rows:
        raise ExportInputError(
            f"{folder}: the tokenizer ({tokenizer_files}) has {tokenizer.vocab_size} tokens but {embedding_name} "
            f"in {embedding_file.name} has only {rows} rows; ids past the table would crash on device - "
            "copy the tokenizer files the model was trained with"
        )
    shortfall = rows - tokenizer.vocab_size
    if shortfall > allowed_tokenizer_shortfall(rows):
        raise ExportInputError(
            f"{folder}: the tokenizer ({tokenizer_files}) has {tokenizer.vocab_size} tokens but {embedding_name} "
            f"in {embedding_file.name} has {rows} rows; {shortfall} token ids the model was trained with could "
            "never be produced, which usually means the wrong tokenizer files were copied - copy the tokenizer "
            f"files saved with the model (up to {allowed_tokenizer_shortfall(rows)} unused rows are accepted)"
        )


def load_checked_shell(folder: ModelFolder, max_length: int):
    """The PyTorch shell with the folder's weights, strictly loaded; weights with NaN/inf are refused
    (such a model predicts garbage, or NaN, for every input).

    Each weight file is read once: the same tensors are checked and then loaded into the shell.
    """
    import torch
    from safetensors.torch import load_file

    from export.shell.common import ShellConfigError
    from export.shell.load import ShellLoadError, build_shell, load_state_into

    state: dict = {}
    bad: list[tuple[Path, str, int, int]] = []
    for path in folder.weight_files:
        tensors = load_file(str(path))
        for name, tensor in tensors.items():
            count = int((~torch.isfinite(tensor)).sum()) if tensor.is_floating_point() else 0
            if count:
                bad.append((path, name, count, tensor.numel()))
        state.update(tensors)
    if bad:
        path, name, count, size = bad[0]
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise ExportInputError(
            f"{folder.path}: the weights are not finite: {name} in {path.name} has {count} of {size} values "
            f"NaN/inf{more}; the model probably diverged in training - retrain it with a lower learning rate"
        )
    try:
        shell = build_shell(folder.config, max_length)
        load_state_into(shell, state)
    except (ShellLoadError, ShellConfigError) as exc:
        raise ExportInputError(f"{folder.path}: {exc}") from exc
    return shell.eval()
