"""Decide whether a shell may run in fp16 before shipping an fp16 Core ML model.

MobileBERT's NoNorm blocks let activations grow far beyond fp16's range (65504), and Core ML then
returns NaN (huggingface/exporters#80). coremltools cannot run predictions off macOS, so the
check runs the PyTorch shell on sample inputs in two ways:

1. fp32 with forward hooks on every module, recording the largest |activation| (including the raw
   attention scores, see ``AttentionScores``) and the largest per-row mean square entering a
   LayerNorm (a fp16 LayerNorm that squares its input overflows when that exceeds 65504 - a
   conservative guard, since some backends accumulate the variance in fp32);
2. a half-precision copy (fp16 weights, fp16 mask value) whose probabilities must be finite and
   close to the fp32 ones.

fp16 is declared safe only if every activation stays within range, the half run is finite and its
probabilities differ from fp32 by at most ``prob_tolerance``. This is a simulation: it bounds the
common failure (overflow) but is not a proof for every input.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Iterable, Optional

import torch
from torch import nn

from export.runtime.neuralnetwork.weights import FP16_MAX
from export.shell.common import FP16_MASK_VALUE



@dataclass(frozen=True)
class Fp16Check:
    safe: bool
    reason: str
    max_abs_activation: float
    max_abs_module: str
    max_layernorm_mean_square: float
    half_finite: bool
    half_max_prob_diff: float
    samples: int
    limit: float = FP16_MAX

    def as_dict(self) -> dict:
        return asdict(self)


def sample_inputs(vocab_size: int, max_length: int, cls_id: int, sep_id: int, pad_id: int,
                  count: int = 8, seed: int = 0, exclude_ids: Iterable[int] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic tokenizer-shaped batches: [CLS] random tokens [SEP] padding, lengths from 2 to L.

    Body tokens are drawn uniformly from the vocabulary minus ``exclude_ids`` (the special tokens),
    wherever in the vocabulary those sit.
    """
    generator = torch.Generator().manual_seed(seed)
    excluded = set(exclude_ids)
    allowed = torch.tensor([i for i in range(vocab_size) if i not in excluded] or list(range(vocab_size)))
    ids = torch.full((count, max_length), pad_id, dtype=torch.long)
    mask = torch.zeros((count, max_length), dtype=torch.long)
    for row in range(count):
        length = max(2, round(2 + (max_length - 2) * row / max(count - 1, 1)))
        picks = torch.randint(0, len(allowed), (max(length - 2, 0),), generator=generator)
        ids[row, 0] = cls_id
        ids[row, 1:length - 1] = allowed[picks]
        ids[row, length - 1] = sep_id
        mask[row, :length] = 1
    return ids, mask


def _max_abs(value) -> float:
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            return 0.0
        finite = torch.nan_to_num(value.detach().float(), nan=float("inf"))
        return float(finite.abs().max()) if finite.numel() else 0.0
    if isinstance(value, (tuple, list)):
        return max((_max_abs(v) for v in value), default=0.0)
    return 0.0


def check_fp16(shell: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               prob_tolerance: float = 0.05, limit: float = FP16_MAX) -> Fp16Check:
    """Run the range checks on an fp32 ``shell``, which is left as it was: the fp32 pass runs it in
    eval mode with hooks that are removed again (no copy of the weights), the half pass runs a copy."""
    reference, was_training = shell, shell.training
    reference.eval()
    worst = {"abs": 0.0, "module": "", "ln": 0.0}
    handles = []

    def record(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            value = _max_abs(output)
            if value > worst["abs"]:
                worst["abs"], worst["module"] = value, name
            if isinstance(module, nn.LayerNorm):
                x = inputs[0].detach().float()
                worst["ln"] = max(worst["ln"], float(x.pow(2).mean(dim=-1).max()))
        return hook

    for name, module in reference.named_modules():
        if name:
            handles.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            probs32 = torch.softmax(reference(input_ids, attention_mask), dim=-1)
    finally:
        for handle in handles:
            handle.remove()
        reference.train(was_training)

    half = copy.deepcopy(shell).half().eval()
    half.set_mask_value(FP16_MASK_VALUE)
    with torch.no_grad():
        logits16 = half(input_ids, attention_mask)
    half_finite = bool(torch.isfinite(logits16).all())
    probs16 = torch.softmax(logits16.float(), dim=-1)
    diff = float((probs16 - probs32).abs().max()) if half_finite else float("inf")

    reason: Optional[str] = None
    if worst["abs"] > limit:
        reason = f"activation {worst['abs']:.4g} in '{worst['module']}' exceeds the fp16 maximum {limit:g}"
    elif worst["ln"] > limit:
        reason = f"a LayerNorm input has mean square {worst['ln']:.4g} > {limit:g} (variance overflows in fp16)"
    elif not half_finite:
        reason = "the half-precision run produced NaN/inf logits"
    elif diff > prob_tolerance:
        reason = f"half-precision probabilities differ from fp32 by {diff:.3g} > {prob_tolerance:g}"
    return Fp16Check(
        safe=reason is None,
        reason=reason or "all activations within fp16 range; half-precision run finite and close to fp32",
        max_abs_activation=worst["abs"],
        max_abs_module=worst["module"],
        max_layernorm_mean_square=worst["ln"],
        half_finite=half_finite,
        half_max_prob_diff=diff,
        samples=int(input_ids.shape[0]),
        limit=limit,
    )
