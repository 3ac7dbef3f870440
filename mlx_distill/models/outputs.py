"""Model outputs. Hidden states and attention maps are returned only on request (the distillation
losses need them; inference does not, and keeping them alive costs memory)."""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx


@dataclass
class EncoderOutput:
    last_hidden_state: mx.array  # (B, L, hidden)
    pooled: mx.array | None  # (B, hidden)
    hidden_states: list[mx.array] | None = None  # embeddings output + one per layer
    attentions: list[mx.array] | None = None  # one (B, heads, L, L) per layer


@dataclass
class ClassifierOutput:
    logits: mx.array  # (B, num_labels)
    pooled: mx.array
    hidden_states: list[mx.array] | None = None
    attentions: list[mx.array] | None = None
