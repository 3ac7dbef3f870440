"""Build a shell from a Hugging Face folder and load its weights strictly.

Strict loading is the point: a silently missing tensor would ship a model with random weights.
The only keys we tolerate and drop are non-persistent buffers some checkpoints still carry
(``embeddings.position_ids``, ``embeddings.token_type_ids``). A prefix-less base-model checkpoint
(``BertModel`` / ``MobileBertModel``: ``embeddings.*``, ``encoder.*``) is mapped under the
``bert.`` / ``mobilebert.`` prefix so it loads into the encoder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Union

import torch
from torch import nn

from export.shell.bert import BertForSequenceClassificationShell, BertShellConfig
from export.shell.common import FP32_MASK_VALUE
from export.shell.mobilebert import MobileBertForSequenceClassificationShell, MobileBertShellConfig

Shell = Union[BertForSequenceClassificationShell, MobileBertForSequenceClassificationShell]

SUPPORTED_MODEL_TYPES = ("bert", "mobilebert")
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")
_BASE_MODEL_ROOTS = ("embeddings.", "encoder.", "pooler.")


class ShellLoadError(ValueError):
    """Weights or config that do not fit the shell; the message names the file/keys and the fix."""


def build_shell(config: Mapping[str, Any], max_length: int, mask_value: float = FP32_MASK_VALUE) -> Shell:
    """An uninitialised shell for a parsed config.json (dispatch on ``model_type``)."""
    model_type = config.get("model_type")
    if model_type == "bert":
        return BertForSequenceClassificationShell(BertShellConfig.from_hf(config), max_length, mask_value)
    if model_type == "mobilebert":
        return MobileBertForSequenceClassificationShell(MobileBertShellConfig.from_hf(config), max_length, mask_value)
    raise ShellLoadError(
        f"config.json field 'model_type' = {model_type!r} is not supported; "
        f"export handles {', '.join(SUPPORTED_MODEL_TYPES)}"
    )


def read_safetensors_state(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of ``model.safetensors`` (or a sharded ``model.safetensors.index.json``)."""
    from safetensors.torch import load_file

    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if single.is_file():
        return dict(load_file(str(single)))
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_file(str(folder / shard)))
        return state
    hint = ""
    if (folder / "pytorch_model.bin").is_file():
        hint = f"; it has pytorch_model.bin: run `python -m export.convert_bin {folder} NEW_DIR` first"
    raise ShellLoadError(f"{folder}: no model.safetensors (or model.safetensors.index.json){hint}")


def normalise_state(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drop buffers, add the base-model prefix to a prefix-less checkpoint, cast to float32."""
    out: dict[str, torch.Tensor] = {}
    prefixed = any(key.startswith(prefix + ".") for key in state)
    for key, value in state.items():
        if key.endswith(_BUFFER_SUFFIXES):
            continue
        if not prefixed and key.startswith(_BASE_MODEL_ROOTS):
            key = f"{prefix}.{key}"
        out[key] = value.to(torch.float32) if value.is_floating_point() else value
    return out


def load_state_into(shell: Shell, state: Mapping[str, torch.Tensor], require_classifier: bool = True) -> None:
    """Strictly load ``state`` into ``shell`` (whole model) or only its encoder.

    With ``require_classifier=False`` a checkpoint without ``classifier.*`` loads strictly into the
    encoder and the head keeps its initial weights (used for encoder-only exports and tests).
    """
    prefix = shell.base_model_prefix
    state = normalise_state(state, prefix)
    has_head = "classifier.weight" in state and "classifier.bias" in state
    if not has_head and require_classifier:
        raise ShellLoadError(
            "checkpoint has no classifier.weight / classifier.bias: it is not a sequence classifier. "
            "Export the distilled student folder (a *ForSequenceClassification checkpoint), not a base model"
        )
    if has_head:
        _strict_load(shell, state, "model")
        return
    base_state = {key[len(prefix) + 1:]: value for key, value in state.items() if key.startswith(prefix + ".")}
    extra = sorted(key for key in state if not key.startswith(prefix + "."))
    if extra:
        raise ShellLoadError(f"unexpected keys outside '{prefix}.': {extra[:8]}")
    _strict_load(shell.base, base_state, prefix)


def _strict_load(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{key}: checkpoint {tuple(state[key].shape)} vs config {tuple(expected[key].shape)}"
        for key in set(expected) & set(state)
        if tuple(state[key].shape) != tuple(expected[key].shape)
    )
    if missing or unexpected or wrong_shape:
        raise ShellLoadError(
            f"weights do not match config.json for the {what}: "
            f"missing={missing[:8]} unexpected={unexpected[:8]} wrong_shape={wrong_shape[:4]} "
            "(is config.json the one saved with these weights?)"
        )
    module.load_state_dict(dict(state), strict=True)


def load_shell_from_folder(folder: Union[str, Path], max_length: int, mask_value: float = FP32_MASK_VALUE) -> Shell:
    """config.json + model.safetensors -> an eval-mode shell in float32."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ShellLoadError(f"{folder}: missing config.json (a Hugging Face model folder is expected)")
    config = json.loads(config_path.read_text())
    shell = build_shell(config, max_length, mask_value)
    load_state_into(shell, read_safetensors_state(folder))
    return shell.eval()
