"""MobileBERT encoder and sequence classifier in MLX, exactly as transformers defines it.

Every ``MobileBertConfig`` switch that changes the math is honoured: trigram input embeddings,
embedding_size vs hidden_size projection, intra-block bottlenecks, shared key/query bottleneck,
bottleneck attention, NoNorm vs LayerNorm, stacked feed-forward networks, pooler activation and
the hidden activation. Two LayerNorms use torch's default eps (1e-5) instead of
``layer_norm_eps`` — that is what transformers does, so we do it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import mlx.core as mx
import mlx.nn as nn

from mlx_distill.models.config import EncoderConfig
from mlx_distill.models.layers import NoNorm, activation, multi_head_attention
from mlx_distill.models.base import EncoderModel, SequenceClassifier

_TORCH_LAYER_NORM_EPS = 1e-5  # where transformers builds nn.LayerNorm without passing eps


@dataclass
class MobileBertConfig(EncoderConfig):
    model_type: ClassVar[str] = "mobilebert"
    hidden_size: int = 512
    num_hidden_layers: int = 24
    num_attention_heads: int = 4
    intermediate_size: int = 512
    hidden_act: str = "relu"
    hidden_dropout_prob: float = 0.0
    embedding_size: int = 128
    trigram_input: bool = True
    use_bottleneck: bool = True
    intra_bottleneck_size: int = 128
    use_bottleneck_attention: bool = False
    key_query_shared_bottleneck: bool = True
    num_feedforward_networks: int = 4
    normalization_type: str = "no_norm"
    classifier_activation: bool = True

    def __post_init__(self) -> None:
        if self.normalization_type not in ("no_norm", "layer_norm"):
            raise ValueError(f"normalization_type must be 'no_norm' or 'layer_norm', not {self.normalization_type!r}")
        if self.true_hidden_size % self.num_attention_heads:
            raise ValueError("the attention width (intra_bottleneck_size or hidden_size) must divide by num_attention_heads")
        if (
            self.use_bottleneck
            and not self.use_bottleneck_attention
            and not self.key_query_shared_bottleneck
            and self.intra_bottleneck_size != self.hidden_size
        ):
            # Query/key would then read the full-width input with bottleneck-width weights
            # (transformers fails with a shape error deep in the forward pass).
            raise ValueError(
                "key_query_shared_bottleneck=false needs use_bottleneck_attention=true or "
                "intra_bottleneck_size == hidden_size"
            )
        if self.num_feedforward_networks < 1:
            raise ValueError("num_feedforward_networks must be >= 1")
        activation(self.hidden_act)

    @property
    def true_hidden_size(self) -> int:
        """Width inside a block: the bottleneck when one is used (HF derives it the same way)."""
        return self.intra_bottleneck_size if self.use_bottleneck else self.hidden_size


def _norm(config: MobileBertConfig, dims: int, eps: float | None = None) -> nn.Module:
    if config.normalization_type == "no_norm":
        return NoNorm(dims)
    return nn.LayerNorm(dims, eps=config.layer_norm_eps if eps is None else eps)


class MobileBertEmbeddings(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.trigram_input = config.trigram_input
        self.project = config.trigram_input or config.embedding_size != config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        in_dims = config.embedding_size * (3 if config.trigram_input else 1)
        self.embedding_transformation = nn.Linear(in_dims, config.hidden_size)
        self.LayerNorm = _norm(config, config.hidden_size, eps=_TORCH_LAYER_NORM_EPS)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def __call__(self, input_ids: mx.array, token_type_ids: mx.array | None = None) -> mx.array:
        x = self.word_embeddings(input_ids)
        if self.trigram_input:
            # [next token, this token, previous token], zero-padded at the sequence ends (a width-3 conv).
            zeros = mx.zeros_like(x[:, :1])
            following = mx.concatenate([x[:, 1:], zeros], axis=1)
            preceding = mx.concatenate([zeros, x[:, :-1]], axis=1)
            x = mx.concatenate([following, x, preceding], axis=-1)
        if self.project:
            x = self.embedding_transformation(x)
        x = x + self.position_embeddings(mx.arange(input_ids.shape[1]))[None]
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class MobileBertSelfAttention(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        width = config.true_hidden_size
        self.num_heads = config.num_attention_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width if config.use_bottleneck_attention else config.hidden_size, width)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def __call__(
        self, q: mx.array, k: mx.array, v: mx.array, mask: mx.array | None, need_probs: bool = True
    ) -> tuple[mx.array, mx.array | None]:
        return multi_head_attention(
            self.query(q), self.key(k), self.value(v), self.num_heads, mask, self.dropout, need_probs
        )


class DenseResidualNorm(nn.Module):
    """norm(dense(x) [+dropout] + residual) — HF's SelfOutput / FFNOutput / OutputBottleneck shape."""

    def __init__(self, config: MobileBertConfig, in_dims: int, out_dims: int, dropout: float, eps: float | None = None):
        super().__init__()
        self.dense = nn.Linear(in_dims, out_dims)
        self.LayerNorm = _norm(config, out_dims, eps)
        self.dropout = nn.Dropout(dropout)

    def __call__(self, x: mx.array, residual: mx.array) -> mx.array:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class MobileBertAttention(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        width = config.true_hidden_size
        self.self = MobileBertSelfAttention(config)
        # HF drops the dropout here when bottlenecks are used.
        self.output = DenseResidualNorm(config, width, width, 0.0 if config.use_bottleneck else config.hidden_dropout_prob)

    def __call__(self, q, k, v, layer_input, mask, need_probs: bool = True):
        context, probs = self.self(q, k, v, mask, need_probs)
        return self.output(context, layer_input), probs


class MobileBertIntermediate(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.true_hidden_size, config.intermediate_size)
        self.act = activation(config.hidden_act)

    def __call__(self, x: mx.array) -> mx.array:
        return self.act(self.dense(x))


class MobileBertOutput(nn.Module):
    """FFN output back to the block width, then (with bottlenecks) up to hidden_size + block residual."""

    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.use_bottleneck = config.use_bottleneck
        self.dense = nn.Linear(config.intermediate_size, config.true_hidden_size)
        self.LayerNorm = _norm(config, config.true_hidden_size, eps=_TORCH_LAYER_NORM_EPS)
        self.dropout = nn.Dropout(0.0 if config.use_bottleneck else config.hidden_dropout_prob)
        if config.use_bottleneck:
            self.bottleneck = DenseResidualNorm(
                config, config.true_hidden_size, config.hidden_size, config.hidden_dropout_prob
            )

    def __call__(self, x: mx.array, residual: mx.array, block_input: mx.array) -> mx.array:
        x = self.LayerNorm(self.dropout(self.dense(x)) + residual)
        if self.use_bottleneck:
            x = self.bottleneck(x, block_input)
        return x


class BottleneckLayer(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intra_bottleneck_size)
        self.LayerNorm = _norm(config, config.intra_bottleneck_size)

    def __call__(self, x: mx.array) -> mx.array:
        return self.LayerNorm(self.dense(x))


class Bottleneck(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.use_bottleneck_attention = config.use_bottleneck_attention
        self.key_query_shared_bottleneck = config.key_query_shared_bottleneck
        self.input = BottleneckLayer(config)
        if config.key_query_shared_bottleneck:
            self.attention = BottleneckLayer(config)

    def __call__(self, x: mx.array) -> tuple[mx.array, mx.array, mx.array, mx.array]:
        """Returns (query input, key input, value input, residual input) for the attention block."""
        narrowed = self.input(x)
        if self.use_bottleneck_attention:
            return narrowed, narrowed, narrowed, narrowed
        if self.key_query_shared_bottleneck:
            shared = self.attention(x)
            return shared, shared, x, narrowed
        return x, x, x, narrowed


class FFNLayer(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.intermediate = MobileBertIntermediate(config)
        self.output = DenseResidualNorm(config, config.intermediate_size, config.true_hidden_size, 0.0)

    def __call__(self, x: mx.array) -> mx.array:
        return self.output(self.intermediate(x), x)


class MobileBertLayer(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.use_bottleneck = config.use_bottleneck
        self.attention = MobileBertAttention(config)
        self.intermediate = MobileBertIntermediate(config)
        self.output = MobileBertOutput(config)
        if config.use_bottleneck:
            self.bottleneck = Bottleneck(config)
        if config.num_feedforward_networks > 1:
            self.ffn = [FFNLayer(config) for _ in range(config.num_feedforward_networks - 1)]

    def __call__(self, x: mx.array, mask: mx.array | None, need_probs: bool = True) -> tuple[mx.array, mx.array | None]:
        if self.use_bottleneck:
            q, k, v, layer_input = self.bottleneck(x)
        else:
            q = k = v = layer_input = x
        attended, probs = self.attention(q, k, v, layer_input, mask, need_probs)
        for ffn in self.get("ffn", []):
            attended = ffn(attended)
        return self.output(self.intermediate(attended), attended, x), probs


class MobileBertEncoder(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.layer = [MobileBertLayer(config) for _ in range(config.num_hidden_layers)]


class MobileBertPooler(nn.Module):
    """First token, through dense + tanh only when ``classifier_activation`` is on."""

    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.do_activate = config.classifier_activation
        if self.do_activate:
            self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def __call__(self, hidden: mx.array) -> mx.array:
        first = hidden[:, 0]
        return mx.tanh(self.dense(first)) if self.do_activate else first


class MobileBertModel(EncoderModel):
    def __init__(self, config: MobileBertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = MobileBertEmbeddings(config)
        self.encoder = MobileBertEncoder(config)
        if add_pooling_layer:
            self.pooler = MobileBertPooler(config)


class MobileBertForSequenceClassification(SequenceClassifier):
    """HF ``MobileBertForSequenceClassification``: ``mobilebert.`` encoder + dropout + ``classifier``."""

    base_model_prefix: ClassVar[str] = "mobilebert"
    encoder_class = MobileBertModel
