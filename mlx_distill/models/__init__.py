"""MLX BERT-family models with Hugging Face names: load from and save to Hugging Face folders.

Entry points:
- :func:`load_classifier` — a ``*ForSequenceClassification`` (optionally with a fresh head, for
  fine-tuning a pre-trained encoder into a classifier for new labels);
- :func:`load_encoder` — the bare encoder (``BertModel`` / ``MobileBertModel``);
- :func:`save_pretrained` — config.json + model.safetensors + tokenizer files, readable by
  transformers' ``from_pretrained`` and by our PyTorch export shell.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from mlx_distill.fileio import atomic_write, atomic_write_json, disk_full_guard
from mlx_distill.models.base import EncoderModel, SequenceClassifier
from mlx_distill.models.bert import BertConfig, BertForSequenceClassification, BertModel
from mlx_distill.models.checkpoint import SINGLE_FILE, WeightMatch, load_into, read_weights, require_finite, write_weights
from mlx_distill.models.config import EncoderConfig
from mlx_distill.models.hub import resolve_model_dir
from mlx_distill.models.mobilebert import MobileBertConfig, MobileBertForSequenceClassification, MobileBertModel

__all__ = [
    "Architecture", "ARCHITECTURES", "BertConfig", "check_inputs_fit", "BertForSequenceClassification", "BertModel",
    "EncoderConfig", "EncoderModel", "LoadedModel", "MobileBertConfig", "MobileBertForSequenceClassification",
    "MobileBertModel", "SequenceClassifier", "build_classifier", "load_classifier", "load_encoder",
    "read_config", "resolve_model_dir", "save_pretrained", "TOKENIZER_FILES",
]

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class Architecture:
    config: type[EncoderConfig]
    encoder: type[EncoderModel]
    classifier: type[SequenceClassifier]


ARCHITECTURES: dict[str, Architecture] = {
    "bert": Architecture(BertConfig, BertModel, BertForSequenceClassification),
    "mobilebert": Architecture(MobileBertConfig, MobileBertModel, MobileBertForSequenceClassification),
}


@dataclass
class LoadedModel:
    """A model plus where it came from and how its weights were matched (for reports)."""

    model: nn.Module
    config: EncoderConfig
    path: Path
    weights: WeightMatch


def read_config(model_dir: str | os.PathLike[str]) -> EncoderConfig:
    model_dir = resolve_model_dir(model_dir)
    path = model_dir / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; a Hugging Face model folder needs config.json")
    try:
        model_type = json.loads(path.read_text(encoding="utf-8")).get("model_type")
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if model_type not in ARCHITECTURES:
        raise ValueError(
            f"{path}: model_type {model_type!r} is not supported; mlx_distill handles {sorted(ARCHITECTURES)}"
        )
    return ARCHITECTURES[model_type].config.from_file(path)


def allowed_tokenizer_shortfall(rows: int) -> int:
    """How many fewer tokens than embedding rows a tokenizer may have: vocabularies padded to a
    multiple of 64 or 128 and a few reserved slots. The export side applies the same rule
    (``export.model_folder.allowed_tokenizer_shortfall``; ``export/`` cannot import this package)."""
    return max(128, rows // 100)


def check_inputs_fit(config: EncoderConfig, vocab_size: int, max_length: int, source: str) -> None:
    """Refuse token ids or lengths the model cannot embed: MLX does not bounds-check embedding
    lookups, so an oversized id or position would silently read unrelated memory."""
    if max_length > config.max_position_embeddings:
        raise ValueError(
            f"{source}: max length {max_length} exceeds the model's max_position_embeddings "
            f"({config.max_position_embeddings}); use --max-length {config.max_position_embeddings} or less"
        )
    if vocab_size > config.vocab_size:
        raise ValueError(
            f"{source}: the tokenizer has {vocab_size} tokens but the model's vocab_size is {config.vocab_size}; "
            "the tokenizer files belong to another model"
        )
    # A few spare embedding rows are normal (vocabularies padded to a multiple of 8 or 64); a
    # tokenizer with far fewer tokens than the embedding matrix has rows comes from another model
    # and maps every word to the wrong embedding, silently.
    if vocab_size and config.vocab_size - vocab_size > allowed_tokenizer_shortfall(config.vocab_size):
        raise ValueError(
            f"{source}: the tokenizer has {vocab_size:,} tokens but the model embeds {config.vocab_size:,} "
            "(config.json vocab_size); the tokenizer files (vocab.txt / tokenizer.json) belong to another model — "
            "copy the tokenizer the model was trained with"
        )


def build_classifier(config: EncoderConfig, seed: int | None = None) -> SequenceClassifier:
    """A randomly initialised classifier for ``config`` (students from scratch, tests)."""
    if seed is not None:
        mx.random.seed(seed)
    model = ARCHITECTURES[config.model_type].classifier(config)
    model.eval()
    return model


def load_classifier(
    name_or_path: str | os.PathLike[str], labels: list[str] | None = None, dtype: mx.Dtype = mx.float32,
    seed: int = 0,
) -> LoadedModel:
    """Load a sequence classifier.

    - ``labels=None``: the folder must already be a classifier (``classifier.*`` weights and
      ``id2label`` in config.json).
    - ``labels=[...]``: if the folder is a classifier for exactly these labels (in any order) it is
      loaded as is, keeping its label order (read it from ``LoadedModel.config.labels``);
      otherwise the encoder is loaded and a fresh, randomly initialised head for ``labels`` is put
      on top (what teacher fine-tuning needs). ``LoadedModel.weights.initialised`` lists it. The
      head's initialisation is drawn from ``seed``, so fine-tuning runs are reproducible.
    """
    model_dir = resolve_model_dir(name_or_path)
    config = read_config(model_dir)
    weights = read_weights(model_dir)
    has_head = "classifier.weight" in weights
    if labels is None:
        if not has_head or config.num_labels < 2:
            raise ValueError(
                f"{model_dir} is not a sequence classifier (no classifier weights or id2label); "
                "pass the labels to put a fresh head on it (e.g. fine-tune it as a teacher first)"
            )
        fresh = False
    else:
        # The same label set in another order is the same classifier: keep its head and its order.
        fresh = not (has_head and sorted(config.labels) == sorted(labels) and len(config.labels) == len(labels))
        if fresh:
            config = config.with_labels(list(labels))
    arch = ARCHITECTURES[config.model_type]
    mx.random.seed(seed)
    model = arch.classifier(config)
    match = load_into(model, weights, str(model_dir), arch.classifier.base_model_prefix, True, fresh)
    if dtype != mx.float32:
        model.set_dtype(dtype)
    model.eval()
    return LoadedModel(model, config, model_dir, match)


def load_encoder(name_or_path: str | os.PathLike[str], dtype: mx.Dtype = mx.float32) -> LoadedModel:
    """Load the bare encoder of any BERT/MobileBERT folder (classifier or not)."""
    model_dir = resolve_model_dir(name_or_path)
    config = read_config(model_dir)
    arch = ARCHITECTURES[config.model_type]
    weights = read_weights(model_dir)
    model = arch.encoder(config)
    match = load_into(model, weights, str(model_dir), arch.classifier.base_model_prefix, False, False)
    if dtype != mx.float32:
        model.set_dtype(dtype)
    model.eval()
    return LoadedModel(model, config, model_dir, match)


def save_pretrained(
    model: SequenceClassifier, out_dir: str | os.PathLike[str], tokenizer_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Write a Hugging Face-format folder: config.json, model.safetensors, tokenizer files.

    Each file is written atomically. ``tokenizer_dir`` is where the tokenizer files are copied from
    (usually the teacher or the pre-trained student folder); without them the folder still loads
    as a model but ``predict`` needs a tokenizer.
    """
    out = Path(out_dir)
    require_finite(dict(tree_flatten(model.parameters())), str(out))  # before any file is replaced
    out.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    with disk_full_guard(out, "the model folder"):
        write_weights(model, out / SINGLE_FILE)
        atomic_write_json(out / "config.json", config)
        if tokenizer_dir is not None:
            source = Path(tokenizer_dir)
            for name in TOKENIZER_FILES:
                if (source / name).exists() and source.resolve() != out.resolve():
                    atomic_write(out / name, lambda tmp, src=source / name: shutil.copyfile(src, tmp))
    return out
