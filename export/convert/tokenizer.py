"""Read a BERT-family WordPiece tokenizer from a Hugging Face folder, for the iOS side.

The iOS app must reproduce tokenisation byte for byte, so the manifest states the vocabulary,
lower-casing, accent stripping, special tokens with their ids and the single-sentence template.
transformers 5 saves only ``tokenizer.json`` (no ``vocab.txt``); older folders have only
``vocab.txt`` + ``tokenizer_config.json``. Both are read; when both exist they must agree, since
a disagreement means the app and the model would see different ids.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

_SPECIAL_ROLES = ("cls", "sep", "pad", "unk", "mask")
_DEFAULT_SPECIALS = {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]", "mask": "[MASK]"}


class TokenizerInfoError(ValueError):
    """Tokenizer files missing or inconsistent; the message names the file and the fix."""


@dataclass(frozen=True)
class SpecialToken:
    token: str
    id: int


@dataclass(frozen=True)
class TokenizerInfo:
    """Everything needed to re-implement the tokenizer on device."""

    vocab: tuple[str, ...]
    lowercase: bool
    strip_accents: Optional[bool]
    tokenize_chinese_chars: bool
    continuing_subword_prefix: str
    max_input_chars_per_word: int
    special_tokens: dict[str, SpecialToken]
    source_files: tuple[str, ...]
    template: tuple[str, ...] = ("[CLS]", "$A", "[SEP]")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def manifest(self, vocab_file: str, copied_files: list[str]) -> dict[str, Any]:
        """The manifest's ``tokenizer`` section (vocab itself goes to ``vocab_file``)."""
        return {
            "type": "WordPiece",
            "vocab_file": vocab_file,
            "vocab_size": self.vocab_size,
            "lowercase": self.lowercase,
            # The effective value: Hugging Face's null means "strip accents when lower-casing", which
            # an iOS re-implementation would otherwise read as false ("Café" -> "cafe" either way here).
            "strip_accents": self.strip_accents if self.strip_accents is not None else self.lowercase,
            "clean_text": True,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "continuing_subword_prefix": self.continuing_subword_prefix,
            "max_input_chars_per_word": self.max_input_chars_per_word,
            "special_tokens": {role: asdict(tok) for role, tok in self.special_tokens.items()},
            "template": list(self.template),
            "padding": "right, with the pad token id, up to max_length; attention_mask is 1 for real tokens, 0 for padding",
            "truncation": "longest-first to max_length, keeping the trailing [SEP]",
            "files": copied_files,
            "read_from": list(self.source_files),
        }


def _token_text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("content")
    return str(value)


def _read_vocab_txt(path: Path) -> tuple[str, ...]:
    # vocab.txt: one token per line, the id is the line number. Keep tokens verbatim (no strip of
    # inner spaces), only the newline.
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return tuple(line.rstrip("\r") for line in lines)


def _vocab_from_tokenizer_json(data: dict[str, Any], path: Path) -> tuple[tuple[str, ...], dict[str, Any]]:
    model = data.get("model") or {}
    if model.get("type") != "WordPiece":
        raise TokenizerInfoError(
            f"{path}: model.type is {model.get('type')!r}; BERT export needs a WordPiece tokenizer"
        )
    vocab_map: dict[str, int] = model.get("vocab") or {}
    by_id = sorted(vocab_map.items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise TokenizerInfoError(f"{path}: WordPiece vocab ids are not contiguous 0..N-1")
    details = {
        "continuing_subword_prefix": model.get("continuing_subword_prefix", "##"),
        "max_input_chars_per_word": int(model.get("max_input_chars_per_word", 100)),
        "unk_token": model.get("unk_token", "[UNK]"),
    }
    return tuple(token for token, _ in by_id), details


def _normalizer_flags(data: dict[str, Any]) -> dict[str, Any]:
    """lowercase / strip_accents / chinese chars from a BertNormalizer (possibly in a Sequence)."""
    flags: dict[str, Any] = {}
    normalizer = data.get("normalizer")
    stack = [normalizer] if normalizer else []
    while stack:
        node = stack.pop()
        kind = node.get("type")
        if kind == "Sequence":
            stack.extend(node.get("normalizers", []))
        elif kind == "BertNormalizer":
            flags["lowercase"] = bool(node.get("lowercase", True))
            flags["strip_accents"] = node.get("strip_accents")
            flags["tokenize_chinese_chars"] = bool(node.get("handle_chinese_chars", True))
        elif kind == "Lowercase":
            flags["lowercase"] = True
        elif kind == "StripAccents":
            flags["strip_accents"] = True
    return flags


def read_tokenizer_info(folder: Path) -> TokenizerInfo:
    """Parse tokenizer.json and/or vocab.txt (+ tokenizer_config.json) in ``folder``."""
    folder = Path(folder)
    tok_json = folder / "tokenizer.json"
    vocab_txt = folder / "vocab.txt"
    tok_config_path = folder / "tokenizer_config.json"
    if not tok_json.is_file() and not vocab_txt.is_file():
        raise TokenizerInfoError(
            f"{folder}: no tokenizer.json or vocab.txt; save the tokenizer next to the model "
            "(tokenizer.save_pretrained(folder))"
        )
    tok_config: dict[str, Any] = json.loads(tok_config_path.read_text()) if tok_config_path.is_file() else {}
    sources: list[str] = []
    flags: dict[str, Any] = {}
    details: dict[str, Any] = {"continuing_subword_prefix": "##", "max_input_chars_per_word": 100}
    vocab: tuple[str, ...] = ()
    if tok_json.is_file():
        data = json.loads(tok_json.read_text(encoding="utf-8"))
        vocab, details = _vocab_from_tokenizer_json(data, tok_json)
        flags = _normalizer_flags(data)
        sources.append("tokenizer.json")
    if vocab_txt.is_file():
        txt_vocab = _read_vocab_txt(vocab_txt)
        if vocab and txt_vocab != vocab:
            first = next((i for i, (a, b) in enumerate(zip(vocab, txt_vocab)) if a != b), min(len(vocab), len(txt_vocab)))
            raise TokenizerInfoError(
                f"{folder}: vocab.txt and tokenizer.json disagree (sizes {len(txt_vocab)} vs {len(vocab)}, "
                f"first difference at id {first}); delete the stale one and re-save the tokenizer"
            )
        vocab = txt_vocab
        sources.append("vocab.txt")
    if tok_config:
        sources.append("tokenizer_config.json")
    if not vocab:
        raise TokenizerInfoError(f"{folder}: the tokenizer vocabulary is empty")

    lowercase = flags.get("lowercase", tok_config.get("do_lower_case", True))
    strip_accents = flags.get("strip_accents", tok_config.get("strip_accents"))
    chinese = flags.get("tokenize_chinese_chars", tok_config.get("tokenize_chinese_chars", True))

    index = {token: i for i, token in enumerate(vocab)}
    specials: dict[str, SpecialToken] = {}
    for role in _SPECIAL_ROLES:
        text = _token_text(tok_config.get(f"{role}_token")) or _DEFAULT_SPECIALS[role]
        if text not in index:
            if role == "mask":
                continue  # classification never needs [MASK]; absent in some trimmed vocabularies
            raise TokenizerInfoError(
                f"{folder}: special token {role}_token={text!r} is not in the vocabulary"
            )
        specials[role] = SpecialToken(token=text, id=index[text])
    return TokenizerInfo(
        vocab=vocab,
        lowercase=bool(lowercase),
        strip_accents=None if strip_accents is None else bool(strip_accents),
        tokenize_chinese_chars=bool(chinese),
        continuing_subword_prefix=str(details.get("continuing_subword_prefix", "##")),
        max_input_chars_per_word=int(details.get("max_input_chars_per_word", 100)),
        special_tokens=specials,
        source_files=tuple(sources),
        template=(specials["cls"].token, "$A", specials["sep"].token),
    )


def write_vocab(info: TokenizerInfo, path: Path) -> None:
    """vocab.txt in the classic format (line number = id), what iOS BERT tokenizers read."""
    path.write_text("\n".join(info.vocab) + "\n", encoding="utf-8")
