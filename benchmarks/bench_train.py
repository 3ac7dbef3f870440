"""MLX vs PyTorch (transformers) on the same work: training steps, the teacher-cache forward and
student inference, side by side in one process, interleaved round by round.

Same work on both sides, checked before anything is timed (``same_work``):
- the same initial weights: the MLX model is written once with ``save_pretrained`` and both sides
  load that one ``model.safetensors`` (MLX with ``load_classifier``, PyTorch with transformers'
  ``BertForSequenceClassification`` / ``MobileBertForSequenceClassification``);
- the same batch (token ids, mask, labels, teacher logits);
- the same loss (student: KD at T=2 + 0.5 CE; teacher: CE, as ``train/teacher.py``) and the same
  AdamW settings (lr, betas, eps, weight decay 0.01 on weight matrices only — biases and
  LayerNorm/NoNorm scales excluded exactly as ``trainer.decays`` does — and clipping at norm 1).
  The check runs both sides without dropout and compares the loss and the gradient norm.

Sides: MLX compiled and eager (through our ``Trainer.build_step_functions``, the real step), and
PyTorch + transformers in eager mode (what a user would run instead), each on its framework's best
device (MLX Metal/CUDA/CPU; PyTorch MPS/CUDA/CPU).

    python benchmarks/bench_train.py [--quick] [--rows student-4l teacher-minilm ...] [--json PATH]
                                     [--rounds N] [--steps N] [--threads N]

Tokens/s counts real (non-padding) tokens; MFU is model matmul FLOPs per second over the best
fp32 matmul rate measured on this device in the same run (1024x1024, either framework). Peak
memory is the most memory the framework held during one step, weights and optimizer included
(MLX: ``mx.get_peak_memory``; PyTorch CUDA: ``max_memory_allocated``; PyTorch CPU: the state's
bytes plus the resident-set growth during the step, sampled). On a busy machine set
``MKL_NUM_THREADS=1`` (or ``--threads 1``) for both sides; the output says what was used.
Prints a markdown table, writes ``--json`` (default ``benchmarks/results/train.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mlx_distill  # noqa: F401 - the BLAS preload must precede mlx.core
import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from mlx_distill.models import BertConfig, MobileBertConfig, build_classifier, load_classifier, save_pretrained
from mlx_distill.runtime import runtime_info, select_device
from mlx_distill.train import losses
from mlx_distill.train.trainer import TrainConfig, Trainer, decays

RESULTS = Path(__file__).parent / "results" / "train.json"
# What a step's time is read from. "wall" is what a user waits; "cpu" (the process's CPU time) is
# the fairer A/B on a machine other people are loading, valid when each side runs one thread.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]
LABELS = ["work", "shopping", "health", "travel"]
TEMPERATURE, CE_WEIGHT = 2.0, 0.5
LR, WEIGHT_DECAY, BETAS, EPS, CLIP = 1e-4, 0.01, (0.9, 0.999), 1e-8, 1.0

MOBILEBERT_4L = {"num_hidden_layers": 4}
MINILM_L6 = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}
BERT_BASE: dict = {}  # BertConfig's defaults are BERT-base's


@dataclass(frozen=True)
class Work:
    """One row of the table: what runs, on which architecture, at which batch shape."""

    name: str
    arch: str  # "bert" | "mobilebert"
    config: dict
    mode: str  # "student" (KD+CE step) | "teacher" (CE step) | "cache" (forward + maps) | "infer"
    batch: int
    length: int = 128
    quick_batch: int | None = None  # --quick: a smaller batch where a full one takes too long on 2 cores

    @property
    def trains(self) -> bool:
        return self.mode in ("student", "teacher")


WORK = {
    "student-4l": Work("student step, MobileBERT 4 layers", "mobilebert", MOBILEBERT_4L, "student", 16),
    "student-24l": Work("student step, MobileBERT 24 layers", "mobilebert", {}, "student", 16, quick_batch=4),
    "teacher-minilm": Work("teacher step, BERT shaped like MiniLM-L6", "bert", MINILM_L6, "teacher", 16),
    "teacher-base": Work("teacher step, BERT-base shape", "bert", BERT_BASE, "teacher", 16, quick_batch=2),
    "cache-minilm": Work("teacher cache forward (+hidden, +attention), MiniLM-L6 shape", "bert", MINILM_L6, "cache", 32),
    "infer-b1": Work("student inference, MobileBERT 4 layers, batch 1", "mobilebert", MOBILEBERT_4L, "infer", 1),
    "infer-b32": Work("student inference, MobileBERT 4 layers, batch 32", "mobilebert", MOBILEBERT_4L, "infer", 32),
}
# Rounds x steps per round per side, and warm-up steps of the uncompiled sides (the same-work check
# has already run their forward and backward once; a compiled side always gets one, for compiling).
FULL = {"rounds": 5, "steps": 2, "warmup": 1}
QUICK = {"rounds": 3, "steps": 1, "warmup": 0}


# ---- the shared inputs ---------------------------------------------------------------------------
def make_config(work: Work):
    cls = MobileBertConfig if work.arch == "mobilebert" else BertConfig
    return cls(**work.config, id2label=dict(enumerate(LABELS)))


def make_batch(work: Work, vocab_size: int, seed: int = 0, lengths: list[int] | None = None) -> dict[str, np.ndarray]:
    """Token ids, mask, labels and teacher logits as NumPy arrays: each side converts the same bytes.
    ``lengths`` (real tokens per row) defaults to full rows, as in issue 11's measurements."""
    rng = np.random.default_rng(seed)
    low = 1000 if vocab_size > 2000 else 3  # clear of the special tokens of a WordPiece vocabulary
    ids = rng.integers(low, min(vocab_size, 30000), (work.batch, work.length)).astype(np.int32)
    ids[:, 0] = 101 if vocab_size > 2000 else 1  # [CLS]
    mask = np.ones((work.batch, work.length), dtype=np.int32)
    for row, n in enumerate(lengths or []):
        mask[row, n:] = 0
        ids[row, n:] = 0
    return {"input_ids": ids, "attention_mask": mask,
            "labels": rng.integers(0, len(LABELS), work.batch).astype(np.int32),
            "teacher_logits": rng.normal(0, 2, (work.batch, len(LABELS))).astype(np.float32)}


def matmul_flops(model: nn.Module, work: Work, tokens_per_row: int) -> float:
    """Matmul FLOPs of one forward pass: every Linear (pooler and classifier on one token per row)
    plus QK^T and PV. A training step is counted as three forwards."""
    rows, length = work.batch, tokens_per_row
    total = 0.0
    for path, module in model.named_modules():
        if isinstance(module, nn.Linear):
            out_dims, in_dims = module.weight.shape
            tokens = rows if ("pooler" in path or "classifier" in path) else rows * length
            total += 2 * in_dims * out_dims * tokens
    config = model.config
    width = config.true_hidden_size if isinstance(config, MobileBertConfig) else config.hidden_size
    total += config.num_hidden_layers * 2 * (2 * length * length * width * rows)
    return total * (3 if work.trains else 1)


# ---- MLX side ------------------------------------------------------------------------------------
def mlx_objective(mode: str):
    """The loss each training row optimises, written with the package's own loss functions."""
    if mode == "teacher":
        def teacher(model, batch):
            loss = losses.cross_entropy(model(batch["input_ids"], batch["attention_mask"]).logits, batch["labels"])
            return loss, {"ce": loss}
        return teacher

    def student(model, batch):
        logits = model(batch["input_ids"], batch["attention_mask"]).logits
        parts = {"kd": losses.kd_loss(logits, batch["teacher_logits"], TEMPERATURE),
                 "ce": losses.cross_entropy(logits, batch["labels"])}
        return parts["kd"] + CE_WEIGHT * parts["ce"], parts
    return student


class MlxSide:
    """The MLX model loaded from the shared folder, and its compiled and eager step functions."""

    def __init__(self, folder: Path, work: Work, batch: dict[str, np.ndarray], run_dir: Path):
        self.work = work
        self.model = load_classifier(folder).model
        self.batch = {k: mx.array(v) for k, v in batch.items()}
        self.fns: dict[str, Callable[[], None]] = {}
        if work.trains:
            config = TrainConfig(epochs=1, batch_size=work.batch, learning_rate=LR, weight_decay=WEIGHT_DECAY,
                                 warmup_ratio=0.0, decay="constant", max_grad_norm=CLIP, checkpoint_every=0)
            self.trainer = Trainer(self.model, mlx_objective(work.mode), lambda rows: self.batch, work.batch, config,
                                   run_dir)
            for name, compiled in (("mlx compiled", True), ("mlx eager", False)):
                self.trainer.config = dataclasses.replace(config, compile=compiled)
                _, _, fused = self.trainer.build_step_functions()
                self.fns[name] = self._train_step(fused)
            self.model.train()
        else:
            self.model.eval()
            hidden = attentions = work.mode == "cache"

            def forward(ids, mask):
                out = self.model(ids, mask, output_hidden_states=hidden, output_attentions=attentions)
                return [out.logits, *(out.hidden_states or []), *(out.attentions or [])]

            compiled = mx.compile(forward, inputs=[self.model.state])
            for name, fn in (("mlx compiled", compiled), ("mlx eager", forward)):
                self.fns[name] = lambda fn=fn: mx.eval(fn(self.batch["input_ids"], self.batch["attention_mask"]))

    def _train_step(self, fused):
        def step() -> None:
            loss, _, norm = fused(self.batch)
            mx.eval(loss, norm, self.model.parameters(), self.trainer.optimizer.state)
        return step

    def loss_and_grad_norm(self) -> tuple[float, float, np.ndarray]:
        """Without dropout: the loss, the gradient's global norm and the logits (the same-work check)."""
        self.model.eval()
        try:
            objective = mlx_objective(self.work.mode if self.work.trains else "student")
            (loss, _), grads = nn.value_and_grad(self.model, objective)(self.model, self.batch)
            norm = mx.sqrt(sum(mx.sum(g.square()) for _, g in tree_flatten(grads)))
            logits = self.model(self.batch["input_ids"], self.batch["attention_mask"]).logits
            mx.eval(loss, norm, logits)
            return loss.item(), norm.item(), np.array(logits)
        finally:
            if self.work.trains:
                self.model.train()

    def peak_memory(self, name: str) -> float:
        gc.collect()
        mx.reset_peak_memory()
        self.fns[name]()
        return float(mx.get_peak_memory())


# ---- PyTorch side --------------------------------------------------------------------------------
def torch_device() -> str:
    import torch

    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_loss(mode: str, logits, batch):
    import torch.nn.functional as F

    labelled = (batch["labels"] >= 0).float()
    per_row = F.cross_entropy(logits.float(), batch["labels"].clamp(min=0).long(), reduction="none")
    ce = (per_row * labelled).sum() / labelled.sum().clamp(min=1.0)
    if mode == "teacher":
        return ce
    t = TEMPERATURE
    teacher_log_p = F.log_softmax(batch["teacher_logits"] / t, dim=-1)
    student_log_p = F.log_softmax(logits.float() / t, dim=-1)
    kd = (teacher_log_p.exp() * (teacher_log_p - student_log_p)).sum(-1).mean() * t * t
    return kd + CE_WEIGHT * ce


class TorchSide:
    """transformers' own classifier from the same folder, with AdamW in our trainer's param groups."""

    def __init__(self, folder: Path, work: Work, batch: dict[str, np.ndarray], device: str):
        import torch
        import transformers

        self.torch, self.work, self.device = torch, work, device
        classes = {"bert": transformers.BertForSequenceClassification,
                   "mobilebert": transformers.MobileBertForSequenceClassification}
        # The cache forward needs the attention maps, which only the eager attention returns.
        attention = "eager" if work.mode == "cache" else "sdpa"
        self.model = classes[work.arch].from_pretrained(folder, attn_implementation=attention).to(device)
        self.batch = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
        self.batch["input_ids"] = self.batch["input_ids"].long()
        named = list(self.model.named_parameters())
        self.optimizer = torch.optim.AdamW(
            [{"params": [p for n, p in named if decays(n)], "weight_decay": WEIGHT_DECAY},
             {"params": [p for n, p in named if not decays(n)], "weight_decay": 0.0}],
            lr=LR, betas=BETAS, eps=EPS,
        )
        self.model.train(work.trains)

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()
        elif self.device == "mps":
            self.torch.mps.synchronize()

    def _forward(self):
        b = self.batch
        return self.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                          output_hidden_states=self.work.mode == "cache", output_attentions=self.work.mode == "cache")

    def step(self) -> None:
        torch = self.torch
        if self.work.trains:
            loss = torch_loss(self.work.mode, self._forward().logits, self.batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode():
                self._forward()
        self.sync()

    def loss_and_grad_norm(self) -> tuple[float, float, np.ndarray]:
        torch = self.torch
        self.model.eval()
        try:
            out = self._forward()
            loss = torch_loss(self.work.mode if self.work.trains else "student", out.logits, self.batch)
            loss.backward()
            norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in self.model.parameters() if p.grad is not None))
            self.model.zero_grad(set_to_none=True)
            return loss.item(), norm.item(), out.logits.detach().cpu().numpy()
        finally:
            self.model.train(self.work.trains)

    def peak_memory(self) -> float:
        torch = self.torch
        gc.collect()
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.step()
            return float(torch.cuda.max_memory_allocated())
        if self.device == "mps":
            self.step()
            return float(torch.mps.driver_allocated_memory())
        return _cpu_peak(self.step)


def _cpu_peak(step: Callable[[], None]) -> float:
    """Most bytes held by live tensors during one CPU step (weights, optimizer state, activations).

    PyTorch has no CPU counterpart of ``max_memory_allocated``; its profiler's memory timeline
    (``torch.profiler`` with ``profile_memory``) tracks every tensor allocation and free, which is
    what ``mx.get_peak_memory`` counts on the MLX side. Not timed: the profiler slows the step.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import MemoryProfileTimeline

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        step()
    _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
    return float(np.asarray(sizes).sum(axis=1).max())


# ---- measurement ---------------------------------------------------------------------------------
def same_work(mlx_side: MlxSide, torch_side: TorchSide) -> dict[str, float]:
    """Both sides' loss, gradient norm and logits on the shared batch, without dropout."""
    mlx_loss, mlx_norm, mlx_logits = mlx_side.loss_and_grad_norm()
    torch_loss_, torch_norm, torch_logits = torch_side.loss_and_grad_norm()
    return {"mlx_loss": mlx_loss, "torch_loss": torch_loss_, "loss_diff": abs(mlx_loss - torch_loss_),
            "mlx_grad_norm": mlx_norm, "torch_grad_norm": torch_norm,
            "grad_norm_rel_diff": abs(mlx_norm - torch_norm) / max(torch_norm, 1e-12),
            "logits_max_diff": float(np.abs(mlx_logits - torch_logits).max())}


SAME_WORK_TOLERANCE = {"loss_diff": 1e-3, "grad_norm_rel_diff": 1e-3, "logits_max_diff": 1e-3}


def check_same_work(result: dict[str, float], work: Work) -> None:
    bad = {k: result[k] for k, tol in SAME_WORK_TOLERANCE.items() if not result[k] <= tol}
    if bad:
        raise SystemExit(f"bench_train: {work.name}: the two sides do not compute the same thing ({bad}); "
                         "the comparison would be meaningless")


def matmul_peak(windows: int = 6, seconds: float = 0.25, n: int = 1024) -> dict[str, float]:
    """Best fp32 matmul FLOP/s of each framework on its device, over short alternating windows (a
    busy machine only ever slows a window down, so the best one is closest to the hardware). The
    MFU denominator is the larger of the two."""
    import torch

    device = torch_device()
    sync = {"cuda": lambda: torch.cuda.synchronize(), "mps": lambda: torch.mps.synchronize()}.get(device, lambda: None)
    a, b = mx.random.normal((n, n)), mx.random.normal((n, n))
    ta, tb = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    runs = {"mlx": lambda: mx.eval(a @ b), "torch": lambda: (ta @ tb, sync())}
    best = {name: 0.0 for name in runs}
    for _ in range(windows):
        for name, fn in runs.items():
            fn()
            reps, start = 0, clock()
            while reps < 2 or clock() - start < seconds:
                fn()
                reps += 1
            best[name] = max(best[name], 2 * n**3 * reps / (clock() - start))
    return best


def mlx_buffer_alignment(sizes: tuple[int, ...] = (1 << 10, 1 << 16, 1 << 20, 3 << 20)) -> int:
    """The largest power of two (at most 64) dividing the data address of fresh MLX arrays.

    MLX's CPU allocator (mlx/backend/no_gpu/allocator.cpp, 0.32.4) keeps an 8-byte size header at the
    start of each ``malloc`` block and hands out block + 8, so on Linux every MLX buffer is 8 mod 16.
    MKL's sgemm writes a misaligned output 15-45 % slower at our shapes: most of MLX's Linear gap to
    PyTorch (benchmarks/results/issue11_notes.md). Printed with every run, so a fixed MLX shows here.
    """
    align = 64
    for n in sizes:
        a = mx.zeros((n,), dtype=mx.float32) + 1.0  # a computed output, as a matmul's would be
        mx.eval(a)
        address = np.asarray(memoryview(a)).ctypes.data  # the buffer itself, no copy
        while address % align:
            align //= 2
    return align


def _summary(seconds: list[float], tokens: int, flops: float, peak: float) -> dict[str, float]:
    median = statistics.median(seconds)
    return {"seconds": seconds, "median_s": median, "min_s": min(seconds), "max_s": max(seconds),
            "tokens_per_s": tokens / median, "tokens_per_s_min": tokens / max(seconds),
            "tokens_per_s_max": tokens / min(seconds), "spread": (max(seconds) - min(seconds)) / median,
            "mfu": flops / median / peak}


def bench_row(key: str, work: Work, plan: dict, peak_flops: float, tmp: Path, lengths: list[int] | None = None) -> dict:
    mx.random.seed(0)
    folder = tmp / key
    config = make_config(work)
    save_pretrained(build_classifier(config, seed=0), folder)
    batch = make_batch(work, config.vocab_size, lengths=lengths)
    mlx_side = MlxSide(folder, work, batch, tmp / f"{key}-run")
    torch_side = TorchSide(folder, work, batch, torch_device())
    check = same_work(mlx_side, torch_side)
    check_same_work(check, work)
    sides: dict[str, Callable[[], None]] = {**mlx_side.fns, "torch": torch_side.step}
    for name, fn in sides.items():
        for _ in range(max(plan["warmup"], int("compiled" in name))):
            fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_no in range(plan["rounds"]):
        shift = round_no % len(names)  # rotate the order so no side always runs first
        for name in names[shift:] + names[:shift]:
            for _ in range(plan["steps"]):
                start = clock()
                sides[name]()
                times[name].append(clock() - start)
    tokens = int(batch["attention_mask"].sum())
    flops = matmul_flops(mlx_side.model, work, work.length)
    row = {"key": key, "work": work.name, "batch": work.batch, "length": work.length, "real_tokens": tokens,
           "flops": flops, "same_work": check}
    for name in names:
        peak = torch_side.peak_memory() if name == "torch" else mlx_side.peak_memory(name)
        row[name.replace(" ", "_")] = {**_summary(times[name], tokens, flops, peak_flops), "peak_memory_bytes": peak}
    row["mlx"] = row["mlx_compiled"]
    row["ratio"] = row["mlx"]["tokens_per_s"] / row["torch"]["tokens_per_s"]
    row["ratio_eager"] = row["mlx_eager"]["tokens_per_s"] / row["torch"]["tokens_per_s"]
    del mlx_side, torch_side
    gc.collect()
    mx.clear_cache()
    return row


# ---- profile (MLX vs PyTorch per op class, at one row's shapes) ----------------------------------
def _best_time(fn: Callable[[], None], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)  # a busy machine only adds time: the fastest repeat is the least disturbed


def _op_classes(model: nn.Module, work: Work) -> dict[str, list[tuple]]:
    """The forward's work by class, as shapes: every Linear (rows, in, out), the attention cores
    (width, heads) and the normalisations / activations (rows, width, kind)."""
    rows = work.batch * work.length
    linears, norms = [], []
    config = model.config
    for path, module in model.named_modules():
        if isinstance(module, nn.Linear) and "pooler" not in path and "classifier" not in path:
            out_dims, in_dims = module.weight.shape
            linears.append((rows, in_dims, out_dims))
            if path.endswith("intermediate.dense"):
                norms.append((rows, out_dims, config.hidden_act))
        elif isinstance(module, nn.LayerNorm) or type(module).__name__ == "NoNorm":
            norms.append((rows, module.weight.shape[0], "layer_norm" if isinstance(module, nn.LayerNorm) else "no_norm"))
    width = config.true_hidden_size if isinstance(config, MobileBertConfig) else config.hidden_size
    attention = [(width, config.num_attention_heads)] * config.num_hidden_layers
    return {"linear": linears, "attention": attention, "norm+activation": norms}


def _mlx_class_fn(kind: str, shapes: list[tuple], work: Work):
    from mlx_distill.models.layers import activation, multi_head_attention

    rng = np.random.default_rng(0)
    arrays = []
    for shape in shapes:
        if kind == "linear":
            r, i, o = shape
            arrays.append([mx.array(rng.normal(0, 1, (r, i)).astype(np.float32)),
                           mx.array(rng.normal(0, 0.05, (o, i)).astype(np.float32)), mx.zeros((o,))])
        elif kind == "attention":
            w, _ = shape
            arrays.append([mx.array(rng.normal(0, 1, (work.batch, work.length, w)).astype(np.float32)) for _ in range(3)])
        else:
            r, w, _ = shape
            arrays.append([mx.array(rng.normal(0, 1, (r, w)).astype(np.float32)), mx.ones((w,)), mx.zeros((w,))])
    mask = mx.zeros((work.batch, 1, 1, work.length))
    dropout = nn.Dropout(0.0)

    def forward(arrays):
        total = mx.array(0.0)
        for shape, a in zip(shapes, arrays):
            if kind == "linear":
                y = mx.addmm(a[2], a[0], a[1].T)
            elif kind == "attention":
                y = multi_head_attention(a[0], a[1], a[2], shape[1], mask, dropout)[0]
            elif shape[2] == "layer_norm":
                y = mx.fast.layer_norm(a[0], a[1], a[2], 1e-12)
            elif shape[2] == "no_norm":
                y = a[0] * a[1] + a[2]
            else:
                y = activation(shape[2])(a[0])
            total = total + y.sum()
        return total

    fwd = mx.compile(forward)
    both = mx.compile(mx.value_and_grad(forward))
    return (lambda: mx.eval(fwd(arrays))), (lambda: mx.eval(both(arrays)))


def _torch_class_fn(kind: str, shapes: list[tuple], work: Work):
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    arrays = []
    for shape in shapes:
        if kind == "linear":
            r, i, o = shape
            arrays.append([torch.randn(r, i, generator=gen), torch.randn(o, i, generator=gen) * 0.05, torch.zeros(o)])
        elif kind == "attention":
            arrays.append([torch.randn(work.batch, work.length, shape[0], generator=gen) for _ in range(3)])
        else:
            r, w, _ = shape
            arrays.append([torch.randn(r, w, generator=gen), torch.ones(w), torch.zeros(w)])
    for a in arrays:
        for t in a:
            t.requires_grad_(True)
    mask = torch.zeros(work.batch, 1, 1, work.length)
    acts = {"gelu": F.gelu, "relu": F.relu, "gelu_new": lambda x: F.gelu(x, approximate="tanh")}

    def forward():
        total = 0.0
        for shape, a in zip(shapes, arrays):
            if kind == "linear":
                y = F.linear(a[0], a[1], a[2])
            elif kind == "attention":
                heads = shape[1]
                q, k, v = (t.view(work.batch, work.length, heads, -1).transpose(1, 2) for t in a)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(a[0].shape)
            elif shape[2] == "layer_norm":
                y = F.layer_norm(a[0], (a[0].shape[-1],), a[1], a[2], 1e-12)
            elif shape[2] == "no_norm":
                y = a[0] * a[1] + a[2]
            else:
                y = acts.get(shape[2], F.gelu)(a[0])
            total = total + y.sum()
        return total

    def fwd():
        with torch.no_grad():
            forward()

    def both():
        forward().backward()
        for a in arrays:
            for t in a:
                t.grad = None

    return fwd, both


def profile_row(key: str, work: Work, repeats: int, tmp: Path) -> dict:
    """Where one MLX training step's time goes, and how each op class compares with PyTorch."""
    import torch

    config = make_config(work)
    folder = tmp / key
    save_pretrained(build_classifier(config, seed=0), folder)
    batch = make_batch(work, config.vocab_size)
    side = MlxSide(folder, work, batch, tmp / f"{key}-run")
    model, data = side.model, side.batch
    model.eval()  # no dropout: the split below is about compute, not randomness
    objective = mlx_objective(work.mode if work.trains else "student")
    state = [model.state]
    forward = mx.compile(lambda b: objective(model, b)[0], inputs=state, outputs=state)
    grad = nn.value_and_grad(model, objective)
    both = mx.compile(lambda b: grad(model, b), inputs=state, outputs=state)
    phases = {
        "forward": _best_time(lambda: mx.eval(forward(data)), repeats),
        "forward+backward": _best_time(lambda: mx.eval(both(data)), repeats),
        "full step (compiled)": _best_time(side.fns["mlx compiled"], repeats) if work.trains else float("nan"),
    }
    tside = TorchSide(folder, work, batch, "cpu")
    tside.model.eval()
    with torch.no_grad():
        t_forward = _best_time(lambda: tside._forward(), repeats)
    t_step = _best_time(tside.step, repeats)
    classes = {}
    for kind, shapes in _op_classes(model, work).items():
        m_fwd, m_both = _mlx_class_fn(kind, shapes, work)
        t_fwd, t_both = _torch_class_fn(kind, shapes, work)
        classes[kind] = {"mlx_forward": _best_time(m_fwd, repeats), "torch_forward": _best_time(t_fwd, repeats),
                         "mlx_forward_backward": _best_time(m_both, repeats),
                         "torch_forward_backward": _best_time(t_both, repeats)}
    return {"key": key, "work": work.name, "mlx": phases, "torch": {"forward": t_forward, "full step": t_step},
            "op_classes": classes}


def print_profile(p: dict) -> None:
    m, t = p["mlx"], p["torch"]
    print(f"\n### {p['work']}\n\n| phase | MLX ms | PyTorch ms |\n|---|---|---|")
    print(f"| forward | {m['forward'] * 1e3:.1f} | {t['forward'] * 1e3:.1f} |")
    print(f"| backward (fwd+bwd - fwd) | {(m['forward+backward'] - m['forward']) * 1e3:.1f} | |")
    optimizer = m["full step (compiled)"] - m["forward+backward"]
    # Negative when the fused step's compiled graph saves more than the update costs (the separate
    # fwd+bwd graph has to write every gradient out): the split is then below what can be resolved.
    shown = f"{optimizer * 1e3:.1f}" if optimizer > 0 else f"below resolution ({optimizer * 1e3:.0f})"
    print(f"| optimizer + clipping (step - fwd+bwd) | {shown} | |")
    print(f"| full step | {m['full step (compiled)'] * 1e3:.1f} | {t['full step'] * 1e3:.1f} |")
    print("\n| op class (forward of the whole model) | MLX fwd ms | PyTorch fwd ms | MLX fwd+bwd ms | PyTorch fwd+bwd ms |")
    print("|---|---|---|---|---|")
    for kind, c in p["op_classes"].items():
        print(f"| {kind} | {c['mlx_forward'] * 1e3:.1f} | {c['torch_forward'] * 1e3:.1f} | "
              f"{c['mlx_forward_backward'] * 1e3:.1f} | {c['torch_forward_backward'] * 1e3:.1f} |")


def _threads(requested: int | None) -> str:
    """Use the same thread count on both sides: one process, one MKL, and torch's pool sized alike."""
    import torch

    if requested is not None:
        torch.set_num_threads(requested)
    env = {k: os.environ[k] for k in ("MKL_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"torch threads {torch.get_num_threads()} of {os.cpu_count()} cores; "
            f"{' '.join(f'{k}={v}' for k, v in env.items()) or 'no MKL/OMP thread variables set'}; "
            f"1-min load average at start {load:.1f}")


def markdown(rows: list[dict]) -> str:
    lines = ["| work | batch×len | MLX compiled tok/s | MLX eager tok/s | PyTorch tok/s | MLX/PyTorch | "
             "MFU MLX / PyTorch | peak MB MLX / PyTorch |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def cell(side: dict) -> str:
            return f"{side['tokens_per_s']:,.0f} ({side['tokens_per_s_min']:,.0f}–{side['tokens_per_s_max']:,.0f})"
        lines.append(
            f"| {r['work']} | {r['batch']}×{r['length']} | {cell(r['mlx_compiled'])} | {cell(r['mlx_eager'])} | "
            f"{cell(r['torch'])} | **{r['ratio']:.2f}** (eager {r['ratio_eager']:.2f}) | "
            f"{r['mlx']['mfu']:.1%} / {r['torch']['mfu']:.1%} | "
            f"{r['mlx']['peak_memory_bytes'] / 2**20:,.0f} / {r['torch']['peak_memory_bytes'] / 2**20:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (under 5 minutes on 2 cores)")
    parser.add_argument("--rows", nargs="+", choices=list(WORK), default=list(WORK))
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5, quick 3)")
    parser.add_argument("--steps", type=int, help="steps per side per round (default 2, quick 1)")
    parser.add_argument("--threads", type=int, help="threads for both sides (default: the environment's)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall: elapsed time (default); cpu: this process's CPU time, for A/B runs on a busy "
                             "machine with one thread per side (--threads 1)")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the table: where the MLX step's time goes (forward, backward, optimizer) "
                             "and MLX vs PyTorch per op class (linear, attention, norm+activation), for --rows")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"where the JSON goes (default {RESULTS})")
    args = parser.parse_args(argv)
    plan = dict(QUICK if args.quick else FULL)
    for name in ("rounds", "steps"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                parser.error(f"--{name} must be >= 1 (got {value})")
            plan[name] = value
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1 (got {args.threads})")
    global clock
    clock = CLOCKS[args.clock]
    if args.clock == "cpu" and (args.threads or 0) != 1 and os.environ.get("MKL_NUM_THREADS") != "1":
        parser.error("--clock cpu sums every thread's time: use it with --threads 1 (or MKL_NUM_THREADS=1)")
    threads = _threads(args.threads) + f"; clock {args.clock}"
    device = select_device()
    peaks = matmul_peak()
    peak = max(peaks.values())
    info = runtime_info()
    alignment = mlx_buffer_alignment()
    print(f"MLX device {device}, PyTorch device {torch_device()}; BLAS {info['blas']}; "
          f"MLX buffers {alignment}-byte aligned\n{threads}\n"
          f"fp32 matmul 1024²: MLX {peaks['mlx'] / 1e9:.0f} GFLOP/s, PyTorch {peaks['torch'] / 1e9:.0f} GFLOP/s "
          f"(MFU against {peak / 1e9:.0f})", file=sys.stderr)
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            profiles = [profile_row(key, WORK[key], plan["rounds"], Path(tmp)) for key in args.rows]
        for p in profiles:
            print_profile(p)
        out = args.json if args.json != RESULTS else RESULTS.with_name("profile.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"threads": threads, "clock": args.clock, "profiles": profiles}, indent=2))
        return
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.rows:
            row_start = time.perf_counter()
            work = WORK[key]
            if args.quick and work.quick_batch:
                work = dataclasses.replace(work, batch=work.quick_batch)
            rows.append(bench_row(key, work, plan, peak, Path(tmp)))
            r = rows[-1]
            print(f"{key}: MLX {r['mlx']['tokens_per_s']:,.0f} tok/s, PyTorch {r['torch']['tokens_per_s']:,.0f} tok/s, "
                  f"ratio {r['ratio']:.2f} ({time.perf_counter() - row_start:.0f} s)", file=sys.stderr)
    table = markdown(rows)
    print(table)
    print(f"\nmedians of {plan['rounds']} interleaved rounds × {plan['steps']} step(s) (range in brackets); "
          f"{threads}; {time.perf_counter() - started:.0f} s")
    import torch
    import transformers

    report = {
        "device": {"mlx": device, "torch": torch_device(), "platform": f"{platform.system()} {platform.machine()}",
                   "cpu_count": os.cpu_count()},
        "blas": {"serving": info["blas"], "preload": info["blas_preload"]}, "mlx_buffer_alignment": alignment,
        "threads": threads, "clock": args.clock,
        "versions": {"mlx": info["mlx"], "torch": torch.__version__, "transformers": transformers.__version__,
                     "python": info["python"], "mlx_distill": info["mlx_distill"]},
        "matmul_peak_flops": peaks, "plan": plan, "quick": args.quick,
        "rows": rows, "markdown": table,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp_json = args.json.with_name(args.json.name + ".tmp")
    tmp_json.write_text(json.dumps(report, indent=2))
    os.replace(tmp_json, args.json)
    print(f"JSON: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
