"""Distillation losses: small pure functions of MLX arrays, each tested on its own.

Conventions: logits are (B, C); hidden states (B, L, H); attention maps (B, heads, L, L) holding
probabilities over the last axis; ``mask`` is the (B, L) 1/0 attention mask. Every loss is a mean
over real (non-padded) positions, so padding never pulls the student anywhere.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

_EPS = 1e-8


def cross_entropy(logits: mx.array, labels: mx.array) -> mx.array:
    """Hard-label cross-entropy, mean over the rows that have a label (``labels >= 0``); rows of
    the transfer set carry -1 and learn from the teacher's soft labels only. 0 when none has one."""
    labelled = (labels >= 0).astype(mx.float32)
    per_row = nn.losses.cross_entropy(logits.astype(mx.float32), mx.maximum(labels, 0), reduction="none")
    return (per_row * labelled).sum() / mx.maximum(labelled.sum(), 1.0)


def kd_loss(student_logits: mx.array, teacher_logits: mx.array, temperature: float) -> mx.array:
    """Hinton's soft-target loss: KL(teacher_T || student_T) * T^2, mean over the batch.

    The T^2 factor keeps the gradient scale independent of T, so the weight between this and the
    hard-label loss means the same thing at any temperature.
    """
    t = temperature
    teacher_log_p = nn.log_softmax(teacher_logits.astype(mx.float32) / t, axis=-1)
    student_log_p = nn.log_softmax(student_logits.astype(mx.float32) / t, axis=-1)
    kl = (mx.exp(teacher_log_p) * (teacher_log_p - student_log_p)).sum(axis=-1)
    return kl.mean() * (t * t)


def hidden_mse(student: mx.array, teacher: mx.array, mask: mx.array) -> mx.array:
    """Mean squared error between (already width-matched) hidden states over real tokens."""
    weights = mask.astype(mx.float32)[..., None]
    squared = (student.astype(mx.float32) - teacher.astype(mx.float32)).square() * weights
    return squared.sum() / (weights.sum() * student.shape[-1] + _EPS)


def head_average(attention: mx.array) -> mx.array:
    """(B, heads, L, L) -> (B, 1, L, L): what we compare when head counts differ."""
    return attention.mean(axis=1, keepdims=True)


def attention_kl(student: mx.array, teacher: mx.array, mask: mx.array) -> mx.array:
    """KL(teacher || student) between attention distributions, per query row, over real query rows.

    Head counts must match (call :func:`head_average` on both first when they do not). Key
    positions that are padding carry ~0 probability in both maps already; query rows that are
    padding are excluded by the mask.
    """
    if student.shape[1] != teacher.shape[1]:
        raise ValueError(
            f"attention maps have {student.shape[1]} vs {teacher.shape[1]} heads; head-average both first"
        )
    t = teacher.astype(mx.float32)
    s = student.astype(mx.float32)
    kl = (t * (mx.log(t + _EPS) - mx.log(s + _EPS))).sum(axis=-1)  # (B, heads, L)
    rows = mask.astype(mx.float32)[:, None, :]
    return (kl * rows).sum() / (rows.sum() * kl.shape[1] + _EPS)


def uniform_layer_map(student_layers: int, teacher_layers: int) -> dict[int, int]:
    """Student layer i (1-based, 0 = embeddings) -> teacher layer round(i * T / S) (at least 1):
    spread evenly, last maps to last; a student deeper than its teacher shares teacher layers.
    Indices address ``hidden_states`` lists, where 0 is the embedding output."""
    if student_layers < 1 or teacher_layers < 1:
        raise ValueError("both models need at least one layer")
    return {i: max(1, round(i * teacher_layers / student_layers)) for i in range(1, student_layers + 1)}


def resolve_layer_map(given: dict[int, int] | None, student_layers: int, teacher_layers: int) -> dict[int, int]:
    """``given`` (the ``layer_map`` setting) or the uniform map, with every pair checked against both
    depths: a wrong pair is one clear error before anything uses it."""
    pairs = {int(k): int(v) for k, v in (given or uniform_layer_map(student_layers, teacher_layers)).items()}
    bad = {s: t for s, t in pairs.items() if not (1 <= s <= student_layers and 1 <= t <= teacher_layers)}
    if bad:
        raise ValueError(f"layer_map entries out of range (student 1..{student_layers}, teacher 1..{teacher_layers}): {bad}")
    return pairs
