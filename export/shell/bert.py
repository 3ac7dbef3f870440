"""Trace-friendly BERT sequence classifier with Hugging Face parameter names.

Math follows transformers 5.24 ``modeling_bert.py`` (eager attention, inference mode): absolute
position embeddings, token-type embedding 0 for every token (single-sentence classification),
post-LayerNorm blocks, pooler (dense + tanh on the first token) and a linear classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from export.shell.common import (
    LayerStack,
    DenseResidualNorm,
    Intermediate,
    EncoderShell,
    SequenceClassifierShell,
    AttentionScores,
    ShellConfigError,
    attend,
    make_activation,
    merge_heads,
    split_heads,
)


@dataclass(frozen=True)
class BertShellConfig:
    """The config.json fields that change BERT's math (Hugging Face names)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    num_labels: int = 2

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads != 0:
            raise ShellConfigError(
                f"config.json: hidden_size ({self.hidden_size}) is not a multiple of "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        make_activation(self.hidden_act)  # fail at config time, naming the field

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> "BertShellConfig":
        """Build from a parsed config.json, rejecting switches the shell does not implement."""
        position_type = config.get("position_embedding_type", "absolute")
        if position_type not in (None, "absolute"):
            raise ShellConfigError(
                f"config.json field 'position_embedding_type' = {position_type!r}: only 'absolute' is supported"
            )
        if config.get("add_cross_attention") or config.get("is_decoder"):
            raise ShellConfigError(
                "config.json: 'is_decoder'/'add_cross_attention' is set; export supports encoder classifiers only"
            )
        return cls(
            vocab_size=int(config["vocab_size"]),
            hidden_size=int(config["hidden_size"]),
            num_hidden_layers=int(config["num_hidden_layers"]),
            num_attention_heads=int(config["num_attention_heads"]),
            intermediate_size=int(config["intermediate_size"]),
            hidden_act=config.get("hidden_act", "gelu"),
            max_position_embeddings=int(config.get("max_position_embeddings", 512)),
            type_vocab_size=int(config.get("type_vocab_size", 2)),
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
            num_labels=_num_labels(config),
        )


def _num_labels(config: Mapping[str, Any]) -> int:
    id2label = config.get("id2label")
    if id2label:
        return len(id2label)
    return int(config.get("num_labels", 2))


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertShellConfig, max_length: int) -> None:
        super().__init__()
        self.max_length = max_length
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Positions 0..L-1 and token type 0 are constants: slices of the tables, no index tensors.
        words = self.word_embeddings(input_ids)
        token_type = self.token_type_embeddings.weight[0]
        positions = self.position_embeddings.weight[: self.max_length]
        return self.LayerNorm(words + token_type + positions)


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertShellConfig, max_length: int) -> None:
        super().__init__()
        self.max_length = max_length
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.scores = AttentionScores(self.head_dim)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        shape = (self.max_length, self.num_heads, self.head_dim)
        q = split_heads(self.query(hidden), *shape)
        k = split_heads(self.key(hidden), *shape)
        v = split_heads(self.value(hidden), *shape)
        return merge_heads(attend(self.scores(q, k), mask, v), *shape)


def _layer_norm(config: BertShellConfig) -> nn.LayerNorm:
    return nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


class BertAttention(nn.Module):
    def __init__(self, config: BertShellConfig, max_length: int) -> None:
        super().__init__()
        self.self = BertSelfAttention(config, max_length)
        self.output = DenseResidualNorm(config.hidden_size, config.hidden_size, _layer_norm(config))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden, mask), hidden)


class BertLayer(nn.Module):
    def __init__(self, config: BertShellConfig, max_length: int) -> None:
        super().__init__()
        self.attention = BertAttention(config, max_length)
        self.intermediate = Intermediate(config.hidden_size, config.intermediate_size, config.hidden_act)
        self.output = DenseResidualNorm(config.intermediate_size, config.hidden_size, _layer_norm(config))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attention_output = self.attention(hidden, mask)
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(LayerStack):
    layer_class = BertLayer


class BertPooler(nn.Module):
    def __init__(self, config: BertShellConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class BertModel(EncoderShell):
    """The encoder (``bert.*`` in a classification checkpoint): ids, mask -> pooled (B, E)."""

    embeddings_class = BertEmbeddings
    encoder_class = BertEncoder
    pooler_class = BertPooler


class BertForSequenceClassificationShell(SequenceClassifierShell):
    """HF ``BertForSequenceClassification`` at inference (see ``SequenceClassifierShell``)."""

    base_model_prefix = "bert"
    encoder_class = BertModel
