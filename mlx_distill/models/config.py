"""Config base shared by the architectures: Hugging Face field names in, Hugging Face config.json out.

Why a dataclass and not a dict: the fields our math reads are typed and defaulted in one place,
while every field we do not model (``architectures``, ``torch_dtype``, a user's custom keys) is kept
in ``extra`` and written back unchanged, so a folder round-trips through us without losing anything.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="EncoderConfig")

# Keys transformers writes that are derived or describe the writer, never read back by our math.
_DERIVED_KEYS = {"true_hidden_size", "transformers_version", "_name_or_path", "num_labels"}


@dataclass
class EncoderConfig:
    """Fields common to BERT-family encoders (names are Hugging Face's)."""

    model_type: ClassVar[str] = ""
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    classifier_dropout: float | None = None
    id2label: dict[int, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- labels -------------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        """Class names in id order ([] when the config carries none)."""
        if not self.id2label:
            return []
        return [self.id2label[i] for i in range(len(self.id2label))]

    @property
    def num_labels(self) -> int:
        return len(self.id2label or {})

    def with_labels(self: T, labels: list[str]) -> T:
        return dataclasses.replace(self, id2label={i: name for i, name in enumerate(labels)})

    # ---- (de)serialisation --------------------------------------------------------------------
    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any], source: str = "config") -> T:
        data = dict(data)
        model_type = data.pop("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(f"{source}: model_type is {model_type!r}, expected {cls.model_type!r}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "id2label"}
        kwargs: dict[str, Any] = {k: data.pop(k) for k in list(data) if k in names}
        id2label = data.pop("id2label", None)
        data.pop("label2id", None)
        if id2label is not None:
            try:
                id2label = {int(k): str(v) for k, v in id2label.items()}
            except (ValueError, AttributeError) as exc:
                raise ValueError(f"{source}: id2label must map integer ids to names ({exc})") from None
            if sorted(id2label) != list(range(len(id2label))):
                raise ValueError(f"{source}: id2label ids must be 0..N-1, got {sorted(id2label)}")
        extra = {k: v for k, v in data.items() if k not in _DERIVED_KEYS}
        try:
            return cls(**kwargs, id2label=id2label, extra=extra)
        except TypeError as exc:
            raise ValueError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name in ("extra", "id2label"):
                continue
            out[f.name] = getattr(self, f.name)
        out["model_type"] = self.model_type
        if self.id2label:
            out["id2label"] = {str(i): name for i, name in self.id2label.items()}
            out["label2id"] = {name: i for i, name in self.id2label.items()}
        return out

    @classmethod
    def from_file(cls: type[T], path: str | Path) -> T:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        return cls.from_dict(data, source=str(path))
