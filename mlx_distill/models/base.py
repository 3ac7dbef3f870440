"""What BERT and MobileBERT share above the layer level: the encoder loop and the classifier head.

Subclasses only build their modules; the forward pass (mask, per-layer outputs, pooler) and the
``<prefix>.`` + ``classifier`` layout of Hugging Face's ``*ForSequenceClassification`` live here once.
"""

from __future__ import annotations

from typing import ClassVar

import mlx.core as mx
import mlx.nn as nn

from mlx_distill.models.config import EncoderConfig
from mlx_distill.models.layers import additive_mask
from mlx_distill.models.outputs import ClassifierOutput, EncoderOutput


class EncoderModel(nn.Module):
    """Subclasses set ``embeddings``, ``encoder.layer`` (list of blocks) and optionally ``pooler``."""

    config: EncoderConfig

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        token_type_ids: mx.array | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        x = self.embeddings(input_ids, token_type_ids)
        mask = additive_mask(attention_mask, x.dtype)
        hidden_states = [x] if output_hidden_states else None
        attentions: list[mx.array] | None = [] if output_attentions else None
        for layer in self.encoder.layer:
            x, probs = layer(x, mask, attentions is not None)
            if hidden_states is not None:
                hidden_states.append(x)
            if attentions is not None:
                attentions.append(probs)
        pooled = self.pooler(x) if "pooler" in self else None
        return EncoderOutput(x, pooled, hidden_states, attentions)


class SequenceClassifier(nn.Module):
    """``<base_model_prefix>`` encoder + dropout + ``classifier`` linear on the pooled output."""

    base_model_prefix: ClassVar[str]
    encoder_class: ClassVar[type[EncoderModel]]

    def __init__(self, config: EncoderConfig):
        super().__init__()
        if config.num_labels < 2:
            raise ValueError("a classifier needs id2label with at least two labels")
        self.config = config
        setattr(self, self.base_model_prefix, self.encoder_class(config))
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    @property
    def encoder_model(self) -> EncoderModel:
        return self[self.base_model_prefix]

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        token_type_ids: mx.array | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> ClassifierOutput:
        out = self.encoder_model(input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions)
        logits = self.classifier(self.dropout(out.pooled))
        return ClassifierOutput(logits, out.pooled, out.hidden_states, out.attentions)
