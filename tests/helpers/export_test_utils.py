"""Helpers for the export tests: tiny random Hugging Face folders with a real WordPiece tokenizer.

Weights are re-drawn with a larger spread than transformers' init (std 0.02 gives logits ~1e-3,
which would make a 1e-4 parity budget meaningless); logits here are O(1).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import transformers

LABELS = ["negative", "positive", "neutral"]
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a an cat dog sat on mat good bad movie great awful is was not very and it this that film "
    "plot acting ##s ##ing ##ed love hate boring fun"
).split() + [f"w{i}" for i in range(30)]

SMALL_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=64)
SMALL_MOBILEBERT = dict(hidden_size=32, embedding_size=16, intra_bottleneck_size=16, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=32, max_position_embeddings=64,
                        num_feedforward_networks=2)
MAX_LENGTH = 16


def label_maps() -> dict[str, Any]:
    return {"id2label": dict(enumerate(LABELS)), "label2id": {label: i for i, label in enumerate(LABELS)}}


def scramble(model: torch.nn.Module, seed: int = 0, std: float = 0.3) -> None:
    """Re-draw every parameter: norms' weights around 1, everything else N(0, std)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * std
            if "LayerNorm.weight" in name:
                param.copy_(1.0 + 0.1 * noise / std)
            else:
                param.copy_(noise)


def write_tokenizer(folder: Path, write_vocab_txt: bool = False, lowercase: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizerFast(vocab=str(vocab), do_lower_case=lowercase)
    tokenizer.save_pretrained(str(folder))
    if not write_vocab_txt:
        vocab.unlink()


def bert_config(**overrides: Any):
    return transformers.BertConfig(vocab_size=len(WORDS), **{**SMALL_BERT, **label_maps(), **overrides})


def mobilebert_config(**overrides: Any):
    return transformers.MobileBertConfig(vocab_size=len(WORDS), **{**SMALL_MOBILEBERT, **label_maps(), **overrides})


def make_model_folder(folder: Path, config, seed: int = 0, write_vocab_txt: bool = False):
    """save_pretrained(safe_serialization=True) a scrambled *ForSequenceClassification + tokenizer."""
    cls = (transformers.BertForSequenceClassification if config.model_type == "bert"
           else transformers.MobileBertForSequenceClassification)
    torch.manual_seed(seed)
    model = cls(config).eval()
    scramble(model, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(str(folder), safe_serialization=True)
    write_tokenizer(folder, write_vocab_txt=write_vocab_txt)
    return model


def padded_batch(vocab_size: int, lengths: list[int], max_length: int = MAX_LENGTH, seed: int = 0):
    """[CLS] random tokens [SEP] + padding, one row per length (int64, as tokenizers return)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.zeros((len(lengths), max_length), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, 0] = 2
        ids[row, 1:length - 1] = torch.randint(5, vocab_size, (length - 2,), generator=generator)
        ids[row, length - 1] = 3
        mask[row, :length] = 1
    return ids, mask
