"""Check inputs: real texts tokenised with the exported tokenizer files, and extreme token batches.

Tokenisation uses the files *in the export folder* (what the app ships), padded and truncated to
the manifest's fixed ``max_length``; the special-token ids must be the ones the manifest states.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


class TokenizerMismatch(ValueError):
    """The exported tokenizer files disagree with the manifest."""


@dataclass(frozen=True)
class TokenBatch:
    texts: tuple
    input_ids: np.ndarray  # int32 (N, L)
    attention_mask: np.ndarray  # int32 (N, L)
    lengths: tuple  # real tokens per row
    truncated: tuple  # True where the text was longer than max_length

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class ExtremeCase:
    name: str
    description: str
    input_ids: np.ndarray  # int32 (N, L)
    attention_mask: np.ndarray
    out_of_vocabulary: bool = False


def _special(manifest: Mapping[str, Any], role: str) -> int:
    return int(manifest["tokenizer"]["special_tokens"][role]["id"])


def load_tokenizer(export_dir: Path, manifest: Mapping[str, Any]):
    """``tokenizers.Tokenizer`` from the export's tokenizer.json, else from its vocab.txt."""
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer

    info = manifest["tokenizer"]
    tok_json = export_dir / "tokenizer.json"
    vocab = export_dir / info.get("vocab_file", "vocab.txt")
    if tok_json.is_file():
        tokenizer = Tokenizer.from_file(str(tok_json))
        source = tok_json.name
    elif vocab.is_file():
        tokenizer = BertWordPieceTokenizer(
            str(vocab), lowercase=bool(info.get("lowercase", True)), strip_accents=info.get("strip_accents"),
            handle_chinese_chars=bool(info.get("tokenize_chinese_chars", True)))
        source = vocab.name
    else:
        raise FileNotFoundError(f"{export_dir}: neither tokenizer.json nor {vocab.name} is present")
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size != int(info["vocab_size"]):
        raise TokenizerMismatch(f"{source} has {size} tokens but manifest tokenizer.vocab_size is {info['vocab_size']}")
    for role, spec in info["special_tokens"].items():
        got = tokenizer.token_to_id(spec["token"])
        if got != int(spec["id"]):
            raise TokenizerMismatch(f"{source}: {role} token {spec['token']!r} has id {got}, manifest says {spec['id']}")
    return tokenizer


def tokenize(tokenizer, texts: Sequence[str], manifest: Mapping[str, Any]) -> TokenBatch:
    """[CLS] text [SEP], right-padded with the pad id to exactly ``max_length`` (int32)."""
    length = int(manifest["max_length"])
    pad = manifest["tokenizer"]["special_tokens"]["pad"]
    tokenizer.enable_truncation(max_length=length)
    tokenizer.enable_padding(length=length, pad_id=int(pad["id"]), pad_token=pad["token"])
    encodings = tokenizer.encode_batch(list(texts))
    ids = np.asarray([e.ids for e in encodings], dtype=np.int32)
    mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int32)
    cls, sep = _special(manifest, "cls"), _special(manifest, "sep")
    lengths = tuple(int(m.sum()) for m in mask)
    for row, n in enumerate(lengths):
        if ids[row, 0] != cls or ids[row, n - 1] != sep:
            raise TokenizerMismatch(f"text {row} does not tokenise as [CLS] ... [SEP] "
                                    f"(ids {ids[row, :n].tolist()}); the manifest template is {manifest['tokenizer'].get('template')}")
    truncated = tuple(bool(e.overflowing) for e in encodings)
    return TokenBatch(tuple(texts), ids, mask, lengths, truncated)


def extreme_cases(manifest: Mapping[str, Any], seed: int = 0, random_rows: int = 3) -> list[ExtremeCase]:
    """The seed's "all zeros? garbage?" inputs, at the manifest's fixed length."""
    length = int(manifest["max_length"])
    vocab = int(manifest["tokenizer"]["vocab_size"])
    cls, sep, pad = _special(manifest, "cls"), _special(manifest, "sep"), _special(manifest, "pad")
    specials = {int(t["id"]) for t in manifest["tokenizer"]["special_tokens"].values()}
    ordinary = np.array([i for i in range(vocab) if i not in specials] or list(range(vocab)), dtype=np.int32)
    rng = np.random.default_rng(seed)

    def rows(n: int, fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
        return np.full((n, length), fill, np.int32), np.zeros((n, length), np.int32)

    cases = []
    ids, mask = rows(1, 0)
    mask[:] = 1
    cases.append(ExtremeCase("all_zeros", "every id 0, every position attended", ids, mask))
    ids, mask = rows(1, pad)
    cases.append(ExtremeCase("all_padding", "every id the pad id, attention mask all 0", ids, mask))
    ids, mask = rows(1, pad)
    ids[0, :2], mask[0, :2] = (cls, sep), 1
    cases.append(ExtremeCase("cls_sep_only", "[CLS][SEP] then padding (an empty text)", ids, mask))
    ids, mask = rows(2, pad)
    ids[:, 0], ids[:, -1], mask[:] = cls, sep, 1
    ids[:, 1:-1] = rng.choice(ordinary, size=(2, length - 2))
    cases.append(ExtremeCase("max_length", f"[CLS] + {length - 2} ordinary tokens + [SEP], no padding", ids, mask))
    ids = rng.integers(0, vocab, size=(random_rows, length), dtype=np.int32)
    mask = np.ones((random_rows, length), np.int32)
    if random_rows > 1:
        mask[-1] = rng.integers(0, 2, size=length)
        mask[-1, 0] = 1
    cases.append(ExtremeCase("random_ids", f"uniform random ids in [0, {vocab}) incl. special tokens; "
                             "last row with a random mask" if random_rows > 1 else "uniform random ids", ids, mask))
    bad = [vocab, vocab + 1000, -1]
    ids, mask = rows(len(bad), pad)
    for row, value in enumerate(bad):
        ids[row, :3], mask[row, :3] = (cls, value, sep), 1
    cases.append(ExtremeCase("out_of_vocabulary", f"[CLS] id [SEP] with id in {bad} (vocabulary size {vocab})",
                             ids, mask, out_of_vocabulary=True))
    return cases
