"""A thin, fixed-length wrapper over Hugging Face ``tokenizers``.

Why fixed length: the Core ML models take (1, max_length) int32 inputs, and training batches of
one shape compile once in MLX. The wrapper reads ``tokenizer.json`` when present (exactly what
transformers' fast tokenizer does) and otherwise builds a WordPiece tokenizer from ``vocab.txt``
honouring ``do_lower_case`` from ``tokenizer_config.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer


@dataclass
class Encoded:
    input_ids: np.ndarray  # (N, max_length) int32
    attention_mask: np.ndarray  # (N, max_length) int32


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, max_length: int):
        if max_length < 2:
            raise ValueError("max_length must be at least 2 ([CLS] and [SEP])")
        self.max_length = max_length
        self._tok = tokenizer
        pad_id = tokenizer.token_to_id("[PAD]")
        pad_id = 0 if pad_id is None else pad_id
        self._tok.no_padding()
        self._tok.no_truncation()
        self._tok.enable_truncation(max_length=max_length)
        self._tok.enable_padding(length=max_length, pad_id=pad_id, pad_token=tokenizer.id_to_token(pad_id) or "[PAD]")

    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike[str], max_length: int = 128) -> "TextTokenizer":
        model_dir = Path(model_dir)
        tokenizer_json, vocab = model_dir / "tokenizer.json", model_dir / "vocab.txt"
        if tokenizer_json.exists():
            try:
                return cls(Tokenizer.from_file(str(tokenizer_json)), max_length)
            except Exception as exc:  # noqa: BLE001 - tokenizers raises bare Exception subclasses
                raise ValueError(f"{tokenizer_json}: cannot read tokenizer ({exc})") from None
        if vocab.exists():
            lower = _lower_case(model_dir / "tokenizer_config.json")
            wordpiece = BertWordPieceTokenizer(str(vocab), lowercase=lower, strip_accents=None if lower else False)
            return cls(wordpiece._tokenizer, max_length)
        raise FileNotFoundError(
            f"{model_dir} has no tokenizer.json or vocab.txt; copy the tokenizer files of the model it "
            "was trained from into it"
        )

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, texts: list[str]) -> Encoded:
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts")
        encodings = self._tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int32).reshape(len(texts), self.max_length)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int32).reshape(len(texts), self.max_length)
        return Encoded(ids, mask)


def _lower_case(config_path: Path) -> bool:
    if not config_path.exists():
        return True  # BERT's uncased vocab is the common case; transformers defaults the same way
    try:
        return bool(json.loads(config_path.read_text(encoding="utf-8")).get("do_lower_case", True))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{config_path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
