"""Pieces shared by the BERT and MobileBERT shells.

Everything here is written for ``torch.jit.trace`` + coremltools 9.0:

- shapes come from the config and a fixed ``max_length`` (never ``int(tensor.shape[i])``, which
  breaks with numpy >= 2.4 inside coremltools and bakes trace-time values into the graph);
- attention uses ``matmul`` (coremltools lowers it to ``matmul``; ``einsum`` paths vary by version);
- the additive attention mask is built inside the module from the int ``attention_mask`` input,
  so the Core ML model takes exactly what a tokenizer gives (no ``new_ones(dtype=bool)``);
- no data-dependent Python control flow: switches are resolved at construction time.
"""

from __future__ import annotations

import math

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

#: Additive mask value used when the model runs in fp32. It equals transformers' eager mask
#: (``torch.finfo(float32).min``), so masked keys get exactly zero weight, as in the reference.
FP32_MASK_VALUE = float(torch.finfo(torch.float32).min)
#: Additive mask value for fp16 compute. ``finfo(float32).min`` becomes ``-inf`` in fp16 and
#: ``0 * -inf`` is NaN for the unmasked keys. fp16's own minimum (-65504) is no better: a score plus
#: -65504 overflows to -inf, and an all-padding row (every key masked) then gives softmax NaN - the
#: shipped fp16 Classifier did, executed by export.runtime.mlprogram. -1e4 (BERT's original value) stays
#: finite for any score below ~5e4 and still gives masked keys exactly zero weight (exp(-1e4) = 0).
FP16_MASK_VALUE = -1e4


class ShellConfigError(ValueError):
    """A config.json value the shell cannot reproduce faithfully (named in the message)."""


# --- activations -------------------------------------------------------------------------------
# Each formula is transformers 5.24 ``activations.py`` verbatim, so parity is exact rather than
# "close": gelu (erf) and gelu_new (tanh) differ by ~1e-3, far above the 1e-4 parity budget.


class _Gelu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)


class _GeluPython(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class _GeluNew(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class _GeluTanhTorch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class _GeluTanhPython(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class _GeluFast(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


class _GeluAccurate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


class _QuickGelu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _Gelu10(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(F.gelu(x), -10.0, 10.0)


class _ReluSquared(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.square(F.relu(x))


class _Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": _Gelu,
    "gelu_python": _GeluPython,
    "gelu_new": _GeluNew,
    "gelu_pytorch_tanh": _GeluTanhTorch,
    "gelu_python_tanh": _GeluTanhPython,
    "gelu_fast": _GeluFast,
    "gelu_accurate": _GeluAccurate,
    "quick_gelu": _QuickGelu,
    "gelu_10": _Gelu10,
    "relu": nn.ReLU,
    "relu2": _ReluSquared,
    "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "mish": nn.Mish,
    "hardswish": nn.Hardswish,
    "linear": _Identity,
}

SUPPORTED_ACTIVATIONS: tuple[str, ...] = tuple(sorted(_ACTIVATIONS))


def make_activation(name: str) -> nn.Module:
    """Activation module for a config ``hidden_act`` string (parameter-free ones only)."""
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise ShellConfigError(
            f"config.json field 'hidden_act' = {name!r} is not supported by the export shell; "
            f"supported: {', '.join(SUPPORTED_ACTIVATIONS)}"
        )
    return _ACTIVATIONS[name]()


# --- normalisation ------------------------------------------------------------------------------


class NoNorm(nn.Module):
    """MobileBERT's element-wise affine "normalisation" (no statistics): ``x * weight + bias``.

    Named like transformers' ``NoNorm`` parameters (``weight``, ``bias``) so checkpoints load.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(size))
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


def make_norm(kind: str, size: int, eps: float) -> nn.Module:
    """``layer_norm`` -> ``nn.LayerNorm(size, eps)``, ``no_norm`` -> :class:`NoNorm`."""
    if kind == "layer_norm":
        return nn.LayerNorm(size, eps=eps)
    if kind == "no_norm":
        return NoNorm(size)
    raise ShellConfigError(
        f"config.json field 'normalization_type' = {kind!r} is not supported; use 'no_norm' or 'layer_norm'"
    )


# --- attention ----------------------------------------------------------------------------------


class AttentionScores(nn.Module):
    """Scaled ``q @ k^T`` (before the mask).

    A parameter-free module rather than an inline expression so that forward hooks (the fp16
    range check) can see the raw scores, which are where MobileBERT's large activations square up.
    """

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.scaling = head_dim**-0.5

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return torch.matmul(query, key.transpose(2, 3)) * self.scaling


def split_heads(x: torch.Tensor, max_length: int, num_heads: int, head_dim: int) -> torch.Tensor:
    """(B, L, H*D) -> (B, H, L, D) with the batch left free (-1) and L fixed by construction."""
    return x.reshape(-1, max_length, num_heads, head_dim).transpose(1, 2)


def merge_heads(x: torch.Tensor, max_length: int, num_heads: int, head_dim: int) -> torch.Tensor:
    """(B, H, L, D) -> (B, L, H*D)."""
    return x.transpose(1, 2).reshape(-1, max_length, num_heads * head_dim)


def attend(scores: torch.Tensor, additive_mask: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """softmax(scores + mask) @ value, transformers' eager attention without dropout."""
    weights = torch.softmax(scores + additive_mask, dim=-1)
    return torch.matmul(weights, value)


def additive_mask(attention_mask: torch.Tensor, max_length: int, mask_value: float, dtype: torch.dtype) -> torch.Tensor:
    """int (B, L) mask with 1 = real token -> additive (B, 1, 1, L) mask: 0 kept, ``mask_value`` masked."""
    keep = attention_mask.to(dtype)
    return ((1.0 - keep) * mask_value).reshape(-1, 1, 1, max_length)


# --- blocks both architectures build from (HF parameter names: dense, LayerNorm) -----------------


class DenseResidualNorm(nn.Module):
    """norm(dense(x) + residual): HF's Bert(Self)Output, MobileBertSelfOutput, OutputBottleneck, FFNOutput."""

    def __init__(self, in_dims: int, out_dims: int, norm: nn.Module) -> None:
        super().__init__()
        self.dense = nn.Linear(in_dims, out_dims)
        self.LayerNorm = norm

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(hidden) + residual)


class Intermediate(nn.Module):
    """act(dense(x)): HF's BertIntermediate / MobileBertIntermediate."""

    def __init__(self, in_dims: int, intermediate_size: int, hidden_act: str) -> None:
        super().__init__()
        self.dense = nn.Linear(in_dims, intermediate_size)
        self.intermediate_act_fn = make_activation(hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden))


class LayerStack(nn.Module):
    """HF's ``*Encoder``: ``layer`` = num_hidden_layers blocks applied in turn with the same mask."""

    layer_class: type[nn.Module]

    def __init__(self, config: Any, max_length: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList([self.layer_class(config, max_length) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            hidden = layer(hidden, mask)
        return hidden


# --- the two levels every architecture shares ---------------------------------------------------


class EncoderShell(nn.Module):
    """ids, mask -> pooled (B, E). Subclasses name their ``embeddings`` / ``encoder`` / ``pooler``
    classes; the mask is built here, inside the traced graph, from the int attention mask."""

    embeddings_class: type[nn.Module]
    encoder_class: type[nn.Module]
    pooler_class: type[nn.Module]

    def __init__(self, config: Any, max_length: int, mask_value: float = FP32_MASK_VALUE) -> None:
        super().__init__()
        if not 1 <= max_length <= config.max_position_embeddings:
            raise ShellConfigError(
                f"max_length {max_length} must be in 1..max_position_embeddings ({config.max_position_embeddings})"
            )
        self.max_length = max_length
        self.mask_value = mask_value
        self.embeddings = self.embeddings_class(config, max_length)
        self.encoder = self.encoder_class(config, max_length)
        self.pooler = self.pooler_class(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(input_ids)
        mask = additive_mask(attention_mask, self.max_length, self.mask_value, hidden.dtype)
        return self.pooler(self.encoder(hidden, mask))


class SequenceClassifierShell(nn.Module):
    """``*ForSequenceClassification`` at inference: ids, mask (B, max_length) -> logits (B, C).

    The encoder lives under ``base_model_prefix`` (``bert`` / ``mobilebert``) so checkpoint names
    load unchanged. ``pooled`` (encoder view) and ``head`` (classifier view) are exposed separately
    because the Encoder and UpdatableHead Core ML models are cut at exactly that point.
    """

    base_model_prefix: str
    encoder_class: type[EncoderShell]

    def __init__(self, config: Any, max_length: int, mask_value: float = FP32_MASK_VALUE) -> None:
        super().__init__()
        self.config = config
        self.max_length = max_length
        setattr(self, self.base_model_prefix, self.encoder_class(config, max_length, mask_value))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    @property
    def base(self) -> EncoderShell:
        return getattr(self, self.base_model_prefix)

    @property
    def embedding_size(self) -> int:
        return self.config.hidden_size

    def set_mask_value(self, value: float) -> None:
        """fp16 graphs need a finite fp16 mask value (see ``FP16_MASK_VALUE``)."""
        self.base.mask_value = value

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.base(input_ids, attention_mask)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(input_ids, attention_mask))


# --- export views -------------------------------------------------------------------------------


class PooledEncoder(nn.Module):
    """ids, mask -> pooled embedding of shape (E,) for batch 1.

    The leading batch axis is dropped on purpose: the updatable head takes a rank-1 (E,) vector
    (the shape Core ML's NeuralNetwork training path is tested with), so the encoder's output can
    be fed to the head unchanged - no "(1, 768) vs (768)" reshaping on the iOS side.
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier.pooled(input_ids, attention_mask)[0]


class ClassifierProbabilities(nn.Module):
    """ids, mask -> class probabilities (B, C); Core ML's ClassifierConfig turns them into a label."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(input_ids, attention_mask), dim=-1)
