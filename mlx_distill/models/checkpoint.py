"""Read and write model weights in Hugging Face's safetensors layout.

The one place where checkpoint naming differences are handled: task prefixes (``bert.``,
``mobilebert.``), bare ``BertModel`` checkpoints without a prefix, pre-training heads (``cls.``)
and buffers (``position_ids``) that are not parameters. Everything else must match our module
names exactly — a missing or unexpected weight is an error that lists the names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten
import mlx.nn as nn

from mlx_distill.fileio import atomic_write

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
_ENCODER_ROOTS = ("embeddings.", "encoder.", "pooler.")
_IGNORED_ROOTS = ("cls.",)  # MLM/NSP pre-training heads


def read_weights(model_dir: Path) -> dict[str, mx.array]:
    """All tensors of a folder: model.safetensors, or the shards its index names."""
    single, index = model_dir / SINGLE_FILE, model_dir / INDEX_FILE
    if single.exists():
        return _load_file(single)
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{index}: not a valid safetensors index ({exc})") from None
        weights: dict[str, mx.array] = {}
        for shard in sorted(set(weight_map.values())):
            weights.update(_load_file(model_dir / shard))
        return weights
    if (model_dir / "pytorch_model.bin").exists():
        raise FileNotFoundError(
            f"{model_dir} holds only pytorch_model.bin; mlx_distill reads safetensors. Convert it with "
            f"`python -m export.convert_bin {model_dir} {model_dir}-safetensors` and pass the new folder."
        )
    raise FileNotFoundError(f"{model_dir} has no {SINGLE_FILE} (or {INDEX_FILE}); is it a model folder?")


def _load_file(path: Path) -> dict[str, mx.array]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing (named by {INDEX_FILE})")
    try:
        return mx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - mlx raises RuntimeError/ValueError variants
        raise ValueError(f"{path}: cannot read safetensors file ({exc})") from None


@dataclass
class WeightMatch:
    """How a checkpoint's names were mapped onto a model; kept so callers can report it."""

    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)  # fresh head parameters


def normalise_names(weights: dict[str, mx.array], prefix: str, with_head: bool) -> tuple[dict[str, mx.array], list[str]]:
    """Map checkpoint names onto the model's: returns (renamed weights, ignored names).

    ``prefix`` is the model's encoder attribute (``bert``); ``with_head`` says whether the target
    model is a classifier (encoder under ``prefix.``) or a bare encoder (no prefix).
    """
    renamed: dict[str, mx.array] = {}
    ignored: list[str] = []
    for name, value in weights.items():
        if name.endswith("position_ids") or name.startswith(_IGNORED_ROOTS):
            ignored.append(name)
            continue
        if name.startswith(prefix + "."):
            core = name[len(prefix) + 1 :]
        elif name.startswith(_ENCODER_ROOTS):
            core = name
        else:
            if not with_head and name.startswith("classifier."):
                ignored.append(name)  # loading only the encoder of a classifier
                continue
            renamed[name] = value  # head or unknown: matched (or rejected) by the caller
            continue
        renamed[f"{prefix}.{core}" if with_head else core] = value
    return renamed, ignored


def load_into(
    model: nn.Module, weights: dict[str, mx.array], source: str, prefix: str, with_head: bool, fresh_head: bool
) -> WeightMatch:
    """Strictly load ``weights`` into ``model``. ``fresh_head`` allows (and keeps the random init of)
    a missing classifier / pooler, which is what fine-tuning a pre-trained encoder needs."""
    require_finite(weights, source)
    renamed, ignored = normalise_names(weights, prefix, with_head)
    expected = dict(tree_flatten(model.parameters()))
    head_roots = ("classifier.", f"{prefix}.pooler.") if with_head else ()
    if fresh_head:
        renamed = {k: v for k, v in renamed.items() if not k.startswith("classifier.")}
        ignored += [k for k in weights if k.startswith("classifier.")]
    missing = sorted(set(expected) - set(renamed))
    unexpected = sorted(set(renamed) - set(expected))
    initialised = [k for k in missing if fresh_head and k.startswith(head_roots)]
    missing = [k for k in missing if k not in initialised]
    if missing or unexpected:
        lines = [f"{source}: checkpoint does not match the {type(model).__name__} its config describes."]
        if missing:
            lines.append(f"  missing ({len(missing)}): {', '.join(missing[:12])}{' ...' if len(missing) > 12 else ''}")
        if unexpected:
            lines.append(
                f"  unexpected ({len(unexpected)}): {', '.join(unexpected[:12])}{' ...' if len(unexpected) > 12 else ''}"
            )
        lines.append("  Check that config.json belongs to these weights (model_type, sizes, switches).")
        raise ValueError("\n".join(lines))
    shape_errors = [
        f"{k}: checkpoint {tuple(renamed[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in renamed
        if renamed[k].shape != expected[k].shape
    ]
    if shape_errors:
        raise ValueError(f"{source}: weight shapes disagree with config.json:\n  " + "\n  ".join(shape_errors[:12]))
    dtype = next(iter(expected.values())).dtype
    model.update(tree_unflatten([(k, v.astype(dtype)) for k, v in renamed.items()]))
    return WeightMatch(loaded=sorted(renamed), ignored=sorted(ignored), initialised=initialised)


def first_non_finite(weights: dict[str, mx.array]) -> str | None:
    """The name of the first tensor holding NaN or inf, or None."""
    flags = {name: mx.isfinite(value).all() for name, value in weights.items()
             if mx.issubdtype(value.dtype, mx.floating)}
    mx.eval(flags)  # one evaluation for every tensor, not one sync each
    return next((name for name, finite in flags.items() if not finite.item()), None)


def require_finite(weights: dict[str, mx.array], source: str) -> None:
    """Refuse NaN/inf weights: they come from a diverged run, and a model made of them predicts
    NaN probabilities (or one class for everything) without any error."""
    bad = first_non_finite(weights)
    if bad is not None:
        raise ValueError(
            f"{source}: weight {bad} holds NaN or inf values; the model diverged in training — train it again "
            "with a lower learning rate"
        )


def write_weights(model: nn.Module, path: Path) -> None:
    """Write all parameters to one safetensors file, atomically (temp file + rename). Its caller
    (``save_pretrained``) has refused non-finite weights before replacing any file."""
    weights = dict(tree_flatten(model.parameters()))
    atomic_write(path, lambda tmp: mx.save_safetensors(tmp, weights, metadata={"format": "pt"}))
