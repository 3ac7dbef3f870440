"""BERT encoder and sequence classifier in MLX, parameter-for-parameter like Hugging Face's.

Serves BERT-base/large, MiniLM and any other ``model_type: bert`` checkpoint with absolute
position embeddings. Attribute names mirror transformers' (``embeddings.word_embeddings``,
``encoder.layer.N.attention.self.query`` ...), so ``model.safetensors`` loads with no renaming.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import mlx.core as mx
import mlx.nn as nn

from mlx_distill.models.config import EncoderConfig
from mlx_distill.models.layers import activation, multi_head_attention
from mlx_distill.models.base import EncoderModel, SequenceClassifier


@dataclass
class BertConfig(EncoderConfig):
    model_type: ClassVar[str] = "bert"
    position_embedding_type: str = "absolute"

    def __post_init__(self) -> None:
        if self.position_embedding_type != "absolute":
            raise ValueError(
                f"position_embedding_type {self.position_embedding_type!r} is not supported; "
                "mlx_distill's BERT implements absolute position embeddings only"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        activation(self.hidden_act)  # fail early on an unknown activation


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def __call__(self, input_ids: mx.array, token_type_ids: mx.array | None = None) -> mx.array:
        positions = mx.arange(input_ids.shape[1])
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def __call__(self, x: mx.array, mask: mx.array | None, need_probs: bool = True) -> tuple[mx.array, mx.array | None]:
        return multi_head_attention(
            self.query(x), self.key(x), self.value(x), self.num_heads, mask, self.dropout, need_probs
        )


class BertDenseResidual(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual): HF's BertSelfOutput and BertOutput."""

    def __init__(self, in_dims: int, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(in_dims, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def __call__(self, x: mx.array, residual: mx.array) -> mx.array:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertDenseResidual(config.hidden_size, config)

    def __call__(self, x: mx.array, mask: mx.array | None, need_probs: bool = True) -> tuple[mx.array, mx.array | None]:
        context, probs = self.self(x, mask, need_probs)
        return self.output(context, x), probs


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = activation(config.hidden_act)

    def __call__(self, x: mx.array) -> mx.array:
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertDenseResidual(config.intermediate_size, config)

    def __call__(self, x: mx.array, mask: mx.array | None, need_probs: bool = True) -> tuple[mx.array, mx.array | None]:
        attended, probs = self.attention(x, mask, need_probs)
        return self.output(self.intermediate(attended), attended), probs


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = [BertLayer(config) for _ in range(config.num_hidden_layers)]


class BertPooler(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def __call__(self, hidden: mx.array) -> mx.array:
        return mx.tanh(self.dense(hidden[:, 0]))


class BertModel(EncoderModel):
    """The encoder (HF ``BertModel``): embeddings, layers, optional pooler."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        if add_pooling_layer:
            self.pooler = BertPooler(config)


class BertForSequenceClassification(SequenceClassifier):
    """HF ``BertForSequenceClassification``: ``bert.`` encoder + dropout + ``classifier`` linear."""

    base_model_prefix: ClassVar[str] = "bert"
    encoder_class = BertModel
