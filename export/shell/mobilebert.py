"""Trace-friendly MobileBERT sequence classifier with Hugging Face parameter names.

Every math-changing ``MobileBertConfig`` switch is honoured exactly as transformers 5.24
``modeling_mobilebert.py`` does (read it before changing anything here):

- ``trigram_input``: [next token, token, previous token] embeddings concatenated (zero padded);
- ``embedding_size`` vs ``hidden_size``: ``embedding_transformation`` applied when trigram or sizes differ
  (the layer always exists in the checkpoint, used or not);
- ``use_bottleneck`` (``true_hidden_size = intra_bottleneck_size``), ``use_bottleneck_attention``,
  ``key_query_shared_bottleneck``: which tensors feed query / key / value / residual;
- ``normalization_type``: ``no_norm`` (element-wise affine) or ``layer_norm``. The embeddings
  LayerNorm and ``MobileBertOutput.LayerNorm`` are built *without* eps, i.e. torch's default 1e-5;
  all others use ``config.layer_norm_eps``;
- ``num_feedforward_networks``: extra FFN blocks before the main intermediate/output;
- ``classifier_activation``: pooler dense + tanh, or the raw first token;
- ``hidden_act``: any parameter-free transformers activation (relu, gelu, gelu_new, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from export.shell.bert import _num_labels
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
    make_norm,
    merge_heads,
    split_heads,
)

#: ``nn.LayerNorm``'s default eps: what transformers gets where it omits ``eps=``.
TORCH_DEFAULT_LN_EPS = 1e-5


@dataclass(frozen=True)
class MobileBertShellConfig:
    """The config.json fields that change MobileBERT's math (Hugging Face names and defaults)."""

    vocab_size: int = 30522
    hidden_size: int = 512
    num_hidden_layers: int = 24
    num_attention_heads: int = 4
    intermediate_size: int = 512
    hidden_act: str = "relu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    embedding_size: int = 128
    trigram_input: bool = True
    use_bottleneck: bool = True
    intra_bottleneck_size: int = 128
    use_bottleneck_attention: bool = False
    key_query_shared_bottleneck: bool = True
    num_feedforward_networks: int = 4
    normalization_type: str = "no_norm"
    classifier_activation: bool = True
    num_labels: int = 2

    def __post_init__(self) -> None:
        if self.true_hidden_size % self.num_attention_heads != 0:
            raise ShellConfigError(
                f"config.json: true hidden size ({self.true_hidden_size}) is not a multiple of "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.num_feedforward_networks < 1:
            raise ShellConfigError("config.json field 'num_feedforward_networks' must be >= 1")
        make_activation(self.hidden_act)
        make_norm(self.normalization_type, 1, 1e-12)

    @property
    def true_hidden_size(self) -> int:
        """Width inside a block: the bottleneck size when bottlenecks are on (as transformers)."""
        return self.intra_bottleneck_size if self.use_bottleneck else self.hidden_size

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> "MobileBertShellConfig":
        defaults = cls.__dataclass_fields__
        values: dict[str, Any] = {}
        for name, field in defaults.items():
            if name == "num_labels":
                continue
            values[name] = config.get(name, field.default)
        values["num_labels"] = _num_labels(config)
        for name in ("trigram_input", "use_bottleneck", "use_bottleneck_attention",
                     "key_query_shared_bottleneck", "classifier_activation"):
            values[name] = bool(values[name])
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size",
                     "embedding_size", "intra_bottleneck_size", "num_feedforward_networks"):
            values[name] = int(values[name])
        values["layer_norm_eps"] = float(values["layer_norm_eps"])
        return cls(**values)


class MobileBertEmbeddings(nn.Module):
    def __init__(self, config: MobileBertShellConfig, max_length: int) -> None:
        super().__init__()
        self.max_length = max_length
        self.trigram_input = config.trigram_input
        self.transform = config.trigram_input or config.embedding_size != config.hidden_size
        #: parameters held (transformers always creates and saves them) but never read by forward
        self.unread = () if self.transform else ("embedding_transformation.",)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        multiplier = 3 if config.trigram_input else 1
        self.embedding_transformation = nn.Linear(config.embedding_size * multiplier, config.hidden_size)
        self.LayerNorm = make_norm(config.normalization_type, config.hidden_size, TORCH_DEFAULT_LN_EPS)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embeds = self.word_embeddings(input_ids)
        if self.trigram_input:
            # F.pad keeps the batch axis free (no zeros tensor whose shape must be known).
            next_token = F.pad(embeds[:, 1:], [0, 0, 0, 1, 0, 0], value=0.0)
            previous_token = F.pad(embeds[:, :-1], [0, 0, 1, 0, 0, 0], value=0.0)
            embeds = torch.cat([next_token, embeds, previous_token], dim=2)
        if self.transform:
            embeds = self.embedding_transformation(embeds)
        positions = self.position_embeddings.weight[: self.max_length]
        token_type = self.token_type_embeddings.weight[0]
        return self.LayerNorm(embeds + positions + token_type)


class MobileBertSelfAttention(nn.Module):
    def __init__(self, config: MobileBertShellConfig, max_length: int) -> None:
        super().__init__()
        self.max_length = max_length
        self.num_heads = config.num_attention_heads
        self.head_dim = config.true_hidden_size // config.num_attention_heads
        width = self.num_heads * self.head_dim
        self.query = nn.Linear(config.true_hidden_size, width)
        self.key = nn.Linear(config.true_hidden_size, width)
        value_in = config.true_hidden_size if config.use_bottleneck_attention else config.hidden_size
        self.value = nn.Linear(value_in, width)
        self.scores = AttentionScores(self.head_dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        shape = (self.max_length, self.num_heads, self.head_dim)
        q = split_heads(self.query(query), *shape)
        k = split_heads(self.key(key), *shape)
        v = split_heads(self.value(value), *shape)
        return merge_heads(attend(self.scores(q, k), mask, v), *shape)


def _norm(config: MobileBertShellConfig, dims: int) -> nn.Module:
    return make_norm(config.normalization_type, dims, config.layer_norm_eps)


def _intermediate(config: MobileBertShellConfig) -> Intermediate:
    return Intermediate(config.true_hidden_size, config.intermediate_size, config.hidden_act)


class MobileBertAttention(nn.Module):
    def __init__(self, config: MobileBertShellConfig, max_length: int) -> None:
        super().__init__()
        self.self = MobileBertSelfAttention(config, max_length)
        width = config.true_hidden_size
        self.output = DenseResidualNorm(width, width, _norm(config, width))

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                layer_input: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(query, key, value, mask), layer_input)


class MobileBertOutput(nn.Module):
    def __init__(self, config: MobileBertShellConfig) -> None:
        super().__init__()
        self.use_bottleneck = config.use_bottleneck
        self.dense = nn.Linear(config.intermediate_size, config.true_hidden_size)
        # transformers builds this one without eps= -> torch default 1e-5.
        self.LayerNorm = make_norm(config.normalization_type, config.true_hidden_size, TORCH_DEFAULT_LN_EPS)
        if self.use_bottleneck:
            self.bottleneck = DenseResidualNorm(config.true_hidden_size, config.hidden_size,
                                                _norm(config, config.hidden_size))

    def forward(self, intermediate: torch.Tensor, residual_1: torch.Tensor, residual_2: torch.Tensor) -> torch.Tensor:
        out = self.LayerNorm(self.dense(intermediate) + residual_1)
        if self.use_bottleneck:
            out = self.bottleneck(out, residual_2)
        return out


class BottleneckLayer(nn.Module):
    def __init__(self, config: MobileBertShellConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intra_bottleneck_size)
        self.LayerNorm = make_norm(config.normalization_type, config.intra_bottleneck_size, config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(hidden))


class Bottleneck(nn.Module):
    """Returns (query, key, value, layer_input), resolved at construction like transformers."""

    def __init__(self, config: MobileBertShellConfig) -> None:
        super().__init__()
        self.key_query_shared_bottleneck = config.key_query_shared_bottleneck
        self.use_bottleneck_attention = config.use_bottleneck_attention
        self.input = BottleneckLayer(config)
        if self.key_query_shared_bottleneck:
            self.attention = BottleneckLayer(config)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        bottlenecked = self.input(hidden)
        if self.use_bottleneck_attention:
            return bottlenecked, bottlenecked, bottlenecked, bottlenecked
        if self.key_query_shared_bottleneck:
            shared = self.attention(hidden)
            return shared, shared, hidden, bottlenecked
        return hidden, hidden, hidden, bottlenecked


class FFNLayer(nn.Module):
    def __init__(self, config: MobileBertShellConfig) -> None:
        super().__init__()
        self.intermediate = _intermediate(config)
        self.output = DenseResidualNorm(config.intermediate_size, config.true_hidden_size,
                                        _norm(config, config.true_hidden_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(self.intermediate(hidden), hidden)


class MobileBertLayer(nn.Module):
    def __init__(self, config: MobileBertShellConfig, max_length: int) -> None:
        super().__init__()
        self.use_bottleneck = config.use_bottleneck
        self.attention = MobileBertAttention(config, max_length)
        self.intermediate = _intermediate(config)
        self.output = MobileBertOutput(config)
        if self.use_bottleneck:
            self.bottleneck = Bottleneck(config)
        if config.num_feedforward_networks > 1:
            self.ffn = nn.ModuleList([FFNLayer(config) for _ in range(config.num_feedforward_networks - 1)])

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.use_bottleneck:
            query, key, value, layer_input = self.bottleneck(hidden)
        else:
            query = key = value = layer_input = hidden
        attention_output = self.attention(query, key, value, layer_input, mask)
        if hasattr(self, "ffn"):
            for ffn in self.ffn:
                attention_output = ffn(attention_output)
        return self.output(self.intermediate(attention_output), attention_output, hidden)


class MobileBertEncoder(LayerStack):
    layer_class = MobileBertLayer


class MobileBertPooler(nn.Module):
    def __init__(self, config: MobileBertShellConfig) -> None:
        super().__init__()
        self.do_activate = config.classifier_activation
        if self.do_activate:
            self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        first = hidden[:, 0]
        if not self.do_activate:
            return first
        return torch.tanh(self.dense(first))


class MobileBertModel(EncoderShell):
    """The encoder (``mobilebert.*`` in a classification checkpoint): ids, mask -> pooled (B, E)."""

    embeddings_class = MobileBertEmbeddings
    encoder_class = MobileBertEncoder
    pooler_class = MobileBertPooler


class MobileBertForSequenceClassificationShell(SequenceClassifierShell):
    """HF ``MobileBertForSequenceClassification`` at inference (see ``SequenceClassifierShell``)."""

    base_model_prefix = "mobilebert"
    encoder_class = MobileBertModel
