"""The trainer shared by teacher fine-tuning and student distillation.

One compiled step (``mx.compile`` over module + optimizer + RNG state, ``nn.value_and_grad``),
AdamW with warm-up then linear/cosine decay, gradient clipping and accumulation, evaluation every
N steps with best-checkpoint keeping and early stopping, and atomic checkpoints holding everything
needed to resume bit-for-bit: weights, optimizer state, step and the data-order cursor (dropout
randomness is derived from the step, see ``_seed_rng``).

What is being trained is just an ``nn.Module`` and an *objective* ``(module, batch) -> (loss,
parts)``; the stages (teacher, distill) supply those, so the loop exists once.

Data-parallel (``mx.distributed``, see ``mlx_distill.distributed``): every rank draws the same
global batch from the same seeded order and trains on its own contiguous shard of it; gradients are
weighted so their mean over ranks (``mlx.nn.average_gradients``) is the gradient of the whole
global batch, losses and token counts are all-reduced, every rank starts from rank 0's weights and
optimizer state, every rank evaluates its shard of the evaluation set (the evaluation is sharded and
all-reduced, so all ranks see the same metrics), and only rank 0 writes (checkpoints, best weights,
the log) and sends the best weights to the others at the end.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from mlx_distill.build.settings import setting, settings_of
from mlx_distill.distributed import World, average_gradients, broadcast_arrays, broadcast_json, shard
from mlx_distill.distributed import world as current_world
from mlx_distill.fileio import atomic_write, disk_full_guard, repair_directory, staged_directory
from mlx_distill.train.batching import BatchOrder

Objective = Callable[[nn.Module, dict[str, mx.array]], tuple[mx.array, dict[str, mx.array]]]
MakeBatch = Callable[[np.ndarray], dict[str, mx.array]]
Evaluate = Callable[[], dict[str, object]]
#: ``batch -> {loss part: how many items that part is a mean over in this batch}`` (rows for KD,
#: labelled rows for CE, real tokens for the hidden-state and attention terms). Counts must add up
#: over rows (a batch's count is the sum of its rows'): data-parallel steps count the global batch.
PartCounts = Callable[[dict[str, mx.array]], dict[str, mx.array]]

#: Batch keys through which the trainer hands an objective each part's share of the step.
SCALE_PREFIX = "scale."


def weighted_sum(parts: dict[str, mx.array], weights: dict[str, float], batch: dict[str, mx.array]) -> mx.array:
    """``sum(weight * part * batch["scale.<part>"])``: how an objective with ``part_counts`` combines
    its parts. The scale is this batch's share of the whole step's count of that part (times the
    number of ranks), so summing over micro-batches and averaging over ranks gives each part's mean
    over the global batch exactly, not a mean of means weighted by rows (which differs for
    token-averaged terms and for CE when only some rows are labelled)."""
    return sum(weights[name] * value * batch.get(SCALE_PREFIX + name, 1.0) for name, value in parts.items())


_DTYPES = {"float32": mx.float32, "bfloat16": mx.bfloat16, "float16": mx.float16}


@dataclass
class TrainConfig:
    """The training loop's settings. Help text and flag live on each field (``setting``): the CLI
    flags, the ``build`` file schema and the README's reference are generated from them."""

    epochs: float = setting(3.0, "passes over the training rows (fractions allowed)")
    batch_size: int = setting(16, "rows per micro-batch")
    learning_rate: float = setting(5e-5, "peak learning rate (AdamW)", flag="--lr")
    weight_decay: float = setting(0.01, "AdamW weight decay (never on biases and norm scales)")
    warmup_ratio: float = setting(0.1, "warm-up fraction of the steps", flag="--warmup")
    decay: str = setting("linear", "learning-rate decay after warm-up", choices=("linear", "cosine", "constant"))
    max_grad_norm: float = setting(1.0, "gradient clipping norm (0 disables clipping)")
    grad_accum_steps: int = setting(1, "micro-batches per optimizer step", flag="--grad-accum")
    eval_every: int = setting(0, "optimizer steps between evaluations (0 = once per epoch)")
    early_stopping_patience: int = setting(0, "stop after N evaluations without gain (0 = off)", flag="--patience")
    checkpoint_every: int = setting(50, "optimizer steps between resumable checkpoints (0 = only at the end)")
    best_metric: str = setting("accuracy", "evaluation metric that picks the best checkpoint, higher is better "
                                           "(accuracy, macro_f1, teacher_agreement)")
    seed: int = setting(0, "seed of the data order, dropout and the held-out split")
    compute_dtype: str = setting("float32", "forward/backward precision (the optimizer keeps fp32 weights)",
                                 choices=("float32", "bfloat16", "float16"))
    compile: bool = setting(True, "compile the training step with mx.compile")
    log_every: int = setting(10, "optimizer steps between metrics.jsonl records")

    def __post_init__(self) -> None:
        """Refuse settings that cannot train before any work: a zero or negative learning rate
        trains to NaN (or to nothing) and used to be saved as a model."""
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                flag = _FLAGS.get(name, name)
                raise ValueError(f"{flag} must be {rule} (got {getattr(self, name)!r})")

        need(self.decay in ("linear", "cosine", "constant"), "decay", "linear, cosine or constant")
        need(math.isfinite(self.learning_rate) and self.learning_rate > 0, "learning_rate", "a number > 0, e.g. 5e-5")
        need(math.isfinite(self.epochs) and self.epochs > 0, "epochs", "> 0")
        need(self.batch_size >= 1, "batch_size", ">= 1")
        need(self.grad_accum_steps >= 1, "grad_accum_steps", ">= 1")
        need(0 <= self.warmup_ratio < 1, "warmup_ratio", "in [0, 1)")
        need(self.weight_decay >= 0, "weight_decay", ">= 0")
        need(self.max_grad_norm >= 0, "max_grad_norm", ">= 0 (0 turns clipping off)")
        need(self.eval_every >= 0, "eval_every", ">= 0 (0 = once per epoch)")
        need(self.early_stopping_patience >= 0, "early_stopping_patience", ">= 0 (0 = off)")
        need(self.checkpoint_every >= 0, "checkpoint_every", ">= 0 (0 = only at the end)")
        need(self.log_every >= 1, "log_every", ">= 1")
        need(self.compute_dtype in _DTYPES, "compute_dtype", f"one of {sorted(_DTYPES)}")


#: The command-line flag of each setting, so a refused value names what the user typed.
_FLAGS = {s.name: s.flag for s in settings_of(TrainConfig)}


class TrainingDiverged(ValueError):
    """The loss or the gradient became NaN/inf: nothing of that step is saved."""


def decays(path: str) -> bool:
    """Whether AdamW's weight decay applies to a parameter. Biases and LayerNorm / NoNorm scales
    are excluded, as in BERT's recipe and Hugging Face's Trainer: decaying a norm's scale towards 0
    fights the normalisation instead of regularising."""
    parts = path.split(".")
    return parts[-1] != "bias" and not any("norm" in part.lower() for part in parts[:-1])


@dataclass
class TrainResult:
    steps: int
    stopped_early: bool
    best_step: int | None
    best_metrics: dict[str, object] | None
    seconds: float
    tokens_per_s: float
    peak_memory_gb: float


def _changed_keys(saved: dict, current: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    keys = (set(saved) | set(current)) - set(ignore)
    return sorted(k for k in keys if saved.get(k) != current.get(k))


def learning_rate_schedule(config: TrainConfig, total_steps: int) -> Callable[[mx.array], mx.array]:
    warmup = int(round(config.warmup_ratio * total_steps))
    lr = config.learning_rate
    decay_steps = max(total_steps - warmup, 1)
    if config.decay == "linear":
        decay = optim.linear_schedule(lr, 0.0, decay_steps)
    elif config.decay == "cosine":
        decay = optim.cosine_decay(lr, decay_steps)
    else:
        decay = lambda step: mx.array(lr, mx.float32)  # noqa: E731
    if warmup == 0:
        return decay
    return optim.join_schedules([optim.linear_schedule(0.0, lr, warmup), decay], [warmup])


class _Progress:
    """A tqdm bar with an ETA on a terminal (step, loss, tokens/s, peak memory in its postfix); one
    plain line per log record otherwise, so a captured log stays readable."""

    def __init__(self, total: int, label: str, start: int = 0):
        self.total, self.label = total, label
        self.tty = sys.stderr.isatty()
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=label, unit="step", file=sys.stderr, dynamic_ncols=True,
                            leave=True)

    def show(self, step: int, loss: float, tokens_per_s: float) -> None:
        peak = mx.get_peak_memory() / 2**30
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(f"loss {loss:.4f}  {tokens_per_s:,.0f} tok/s  peak {peak:.2f} GB", refresh=True)
            return
        line = f"{self.label} step {step}/{self.total}  loss {loss:.4f}  {tokens_per_s:,.0f} tok/s  peak {peak:.2f} GB"
        print(line, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Trainer:
    """Train ``module`` on ``objective`` over batches from ``make_batch``; checkpoints go to ``run_dir``."""

    def __init__(
        self,
        module: nn.Module,
        objective: Objective,
        make_batch: MakeBatch,
        dataset_size: int,
        config: TrainConfig,
        run_dir: str | Path,
        evaluate: Evaluate | None = None,
        label: str = "train",
        fingerprint: dict[str, object] | None = None,
        part_counts: PartCounts | None = None,
        world: World | None = None,
    ):
        """``fingerprint`` identifies what is being trained beyond ``config`` (data, labels, teacher,
        architecture, loss settings); a checkpoint made for a different fingerprint is refused.

        ``part_counts`` makes micro-batches and ranks combine exactly (see :func:`weighted_sum`,
        which the objective must then use); without it each batch is weighted by its rows, which
        is exact for losses that are means over rows. ``world`` defaults to the launched run's."""
        self.module, self.objective, self.make_batch = module, objective, make_batch
        self.part_counts = part_counts
        self.world = world if world is not None else current_world()
        self.config, self.evaluate, self.label = config, evaluate, label
        self.fingerprint = json.loads(json.dumps(fingerprint or {}, sort_keys=True, default=str))
        self.run_dir = Path(run_dir)
        self.order = BatchOrder(dataset_size, config.batch_size, config.seed)
        micro_batches = math.ceil(config.epochs * self.order.batches_per_epoch)
        self.total_steps = max(1, math.ceil(micro_batches / config.grad_accum_steps))
        schedule = learning_rate_schedule(config, self.total_steps)
        self.optimizer = optim.MultiOptimizer(
            [optim.AdamW(schedule, weight_decay=config.weight_decay), optim.AdamW(schedule, weight_decay=0.0)],
            [lambda path, _: decays(path)],
        )
        self.optimizer.init(module.trainable_parameters())
        self.step = 0
        self.best_step: int | None = None
        self.best_metrics: dict[str, object] | None = None
        self.evals_since_best = 0
        self.stopped_early = False
        self.eval_every = config.eval_every or max(1, self.order.batches_per_epoch // config.grad_accum_steps)

    # ---- checkpoints ---------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoint"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.safetensors"

    def save_checkpoint(self) -> None:
        """Write the full training state into a staging folder, then swap it in (``fileio.staged_directory``:
        a kill at any point leaves the previous checkpoint or the new one, never half of one). Rank 0
        only: every rank holds the same state."""
        if not self.world.is_root:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with disk_full_guard(self.run_dir, f"the step-{self.step} checkpoint"):
            with staged_directory(self.checkpoint_dir, kind="checkpoint") as staging:
                self._write_checkpoint(staging)

    def _write_checkpoint(self, folder: Path) -> None:
        mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(self.module.parameters())))
        mx.save_safetensors(str(folder / "optimizer.safetensors"), dict(tree_flatten(self.optimizer.state)))
        state = {
            "step": self.step,
            "order": self.order.state(),
            "best_step": self.best_step,
            "best_metrics": self.best_metrics,
            "evals_since_best": self.evals_since_best,
            "stopped_early": self.stopped_early,
            "config": asdict(self.config),
            "fingerprint": self.fingerprint,
            "processes": self.world.size,
        }
        (folder / "trainer.json").write_text(json.dumps(state, indent=2))

    def resume(self) -> bool:
        """Load the latest checkpoint if there is one (rank 0 only, see ``_start``). Returns whether
        training resumed."""
        folder = self.checkpoint_dir
        repair_directory(folder)  # a kill between the swap's two renames: put the previous one back
        if not (folder / "trainer.json").exists():
            return False
        state = json.loads((folder / "trainer.json").read_text())
        made_by = state.get("processes", 1)
        if made_by != self.world.size:
            # The shards, and so the float rounding of every step, depend on the process count: a
            # resumed run would no longer end where an uninterrupted one does.
            raise ValueError(
                f"{folder}: this checkpoint was made by a run with {made_by} process(es), this run has "
                f"{self.world.size}; rerun with {'--processes ' + str(made_by) if made_by > 1 else 'one process'} "
                "(or the same --hostfile) to resume, or pass --restart (or a new output folder) to start over"
            )
        changed = _changed_keys(state["config"], asdict(self.config), ignore=("log_every", "compile"))
        changed += [f"fingerprint.{k}" for k in _changed_keys(state.get("fingerprint", {}), self.fingerprint)]
        if changed:
            raise ValueError(
                f"{folder}: this checkpoint was made for a different run ({', '.join(changed)} changed); "
                "rerun with the same inputs and settings to resume, or pass --restart (or a new output folder) "
                "to start over"
            )
        self.module.load_weights(list(mx.load(str(folder / "model.safetensors")).items()), strict=True)
        self.optimizer.state = tree_unflatten(list(mx.load(str(folder / "optimizer.safetensors")).items()))
        self.step = state["step"]
        self.order.restore(state["order"])
        self.best_step, self.best_metrics = state["best_step"], state["best_metrics"]
        self.evals_since_best = state["evals_since_best"]
        self.stopped_early = state.get("stopped_early", False)
        self._truncate_log(self.step)
        return True

    def clear(self) -> None:
        """Forget every trace of an earlier run in ``run_dir`` (checkpoints, best weights, log)."""
        if not self.world.is_root:
            return
        repair_directory(self.checkpoint_dir)  # removes staging and backup folders a kill left
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        self.best_path.unlink(missing_ok=True)
        self.log_path.unlink(missing_ok=True)

    def restore_best(self) -> None:
        """Load the best weights; in a data-parallel run rank 0 reads them and sends them to every
        rank (on several machines only rank 0 may see the file, and another rank's disk may hold an
        older run's)."""
        best = dict(mx.load(str(self.best_path))) if self.world.is_root and self.best_path.exists() else {}
        best = broadcast_arrays(best if self.world.is_root else None, self.world)
        if best:
            self.module.load_weights(list(best.items()), strict=True)

    # ---- logging -------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def _log(self, record: dict[str, object]) -> None:
        if not self.world.is_root:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _truncate_log(self, step: int) -> None:
        """Drop records a crashed run wrote after its last checkpoint, so the log reads as one run."""
        if self.log_path.exists():
            kept = []
            for line in self.log_path.read_text(encoding="utf-8").split("\n"):
                try:
                    if json.loads(line).get("step", 0) <= step:
                        kept.append(line)
                except json.JSONDecodeError:
                    continue  # a line torn by the crash
            atomic_write(self.log_path, lambda tmp: Path(tmp).write_text("".join(k + "\n" for k in kept)))

    # ---- the step ------------------------------------------------------------------------------
    def build_step_functions(self):
        """(compute grads, apply grads, fused step) — compiled unless ``config.compile`` is off."""
        clip = self.config.max_grad_norm
        low_precision = _DTYPES[self.config.compute_dtype]
        objective = self.objective
        if low_precision != mx.float32:
            # Mixed precision: the optimizer keeps fp32 master weights; the forward and backward run
            # on low-precision casts, and gradients flow back through the casts as fp32.
            def objective(module, batch):
                module.update(tree_map(lambda p: p.astype(low_precision), module.trainable_parameters()))
                return self.objective(module, batch)

        grad_fn = nn.value_and_grad(self.module, objective)

        def compute(batch):
            masters = self.module.trainable_parameters()
            (loss, parts), grads = grad_fn(self.module, batch)
            if low_precision != mx.float32:
                self.module.update(masters)  # value_and_grad leaves the casts in the module
            return loss, parts, grads

        def apply(grads):
            # The norm is computed even without clipping: it is how a NaN/inf gradient is seen
            # before a checkpoint could store the weights it produced.
            if clip > 0:
                grads, norm = optim.clip_grad_norm(grads, clip)
            else:
                norm = mx.sqrt(sum(mx.sum(g.astype(mx.float32) ** 2) for _, g in tree_flatten(grads)))
            self.optimizer.update(self.module, grads)
            return norm

        def fused(batch):
            loss, parts, grads = compute(batch)
            return loss, parts, apply(grads)

        if not self.config.compile:
            return compute, apply, fused
        # value_and_grad writes traced parameters into the module, so the module state is an
        # output of the gradient step too, not only an input.
        model_rng = [self.module.state, mx.random.state]
        everything = [self.module.state, self.optimizer.state, mx.random.state]
        return (
            partial(mx.compile, inputs=model_rng, outputs=model_rng)(compute),
            partial(mx.compile, inputs=everything, outputs=everything)(apply),
            partial(mx.compile, inputs=everything, outputs=everything)(fused),
        )

    def _evaluate(self) -> bool:
        """Run the evaluation; keep the best weights; return whether to stop early. Every rank
        evaluates its shard (``evaluate`` is sharded and all-reduced: see
        ``mlx_distill.train.evaluation.predict_logits``), so every rank has the same metrics; rank 0
        writes the best weights and sends its decision to the others, so all ranks stop at the
        same step."""
        if self.evaluate is None:
            return False
        stop = self._evaluate_here()
        return bool(broadcast_json(stop if self.world.is_root else None, self.world))  # one process: as is

    def _evaluate_here(self) -> bool:
        self.module.eval()
        metrics = self.evaluate()
        self.module.train()
        score = metrics.get(self.config.best_metric)
        if score is None:
            raise ValueError(f"evaluation returned no {self.config.best_metric!r} (got {sorted(metrics)})")
        best = None if self.best_metrics is None else self.best_metrics[self.config.best_metric]
        if best is None or score > best:
            self.best_step, self.best_metrics, self.evals_since_best = self.step, metrics, 0
            if self.world.is_root:
                params = dict(tree_flatten(self.module.parameters()))
                with disk_full_guard(self.run_dir, "the best weights"):
                    atomic_write(self.best_path, lambda tmp: mx.save_safetensors(tmp, params))
        else:
            self.evals_since_best += 1
        self._log({"step": self.step, "eval": metrics})
        patience = self.config.early_stopping_patience
        return patience > 0 and self.evals_since_best >= patience

    def _seed_rng(self, micro: int) -> None:
        """Dropout randomness is a pure function of (seed, step, micro-batch): MLX's global key
        cannot be set to a saved value, so instead of checkpointing it we make it derivable, and a
        resumed run draws exactly the masks an uninterrupted run would have drawn. Each rank gets its
        own stream (rank 0's is the one-process stream), so shards do not share dropout masks."""
        mx.random.seed((self.config.seed * 1_000_003 + self.step * self.config.grad_accum_steps + micro
                        + self.world.rank * 2_147_483_629) % 2**32)

    def _diverged(self, loss: float, norm: float) -> TrainingDiverged:
        saved = self.checkpoint_dir / "trainer.json"
        kept = (f"the last good checkpoint (step {json.loads(saved.read_text())['step']}) stays in {self.checkpoint_dir}"
                if saved.exists() else "no checkpoint was written")
        return TrainingDiverged(
            f"{self.label}: training diverged at step {self.step + 1} (loss {loss}, gradient norm {norm}); "
            f"nothing of it was saved and {kept}. Run again with a lower learning rate than "
            f"{self.config.learning_rate:g} (e.g. --lr {self.config.learning_rate / 10:g}) and --restart"
        )

    def _start(self, resume: bool) -> None:
        """Resume (or clear) on rank 0, then give every rank rank 0's state. A refusal on rank 0
        (a checkpoint for another run) is raised on every rank, so none waits for the others."""
        message = state = None
        if self.world.is_root:
            try:
                if resume and self.resume():
                    done = "finished" if self.step >= self.total_steps or self.stopped_early else "resuming"
                    print(f"{self.label}: {done} from the checkpoint at step {self.step} of {self.total_steps} "
                          f"({self.checkpoint_dir})", file=sys.stderr)
                else:
                    self.clear()  # a fresh start (or a crash before the first checkpoint) leaves nothing behind
            except ValueError as exc:
                message = str(exc)
        if not self.world.distributed:
            if message:
                raise ValueError(message)
            return
        if self.world.is_root:
            state = {"error": message, "step": self.step, "order": self.order.state(), "best_step": self.best_step,
                     "best_metrics": self.best_metrics, "evals_since_best": self.evals_since_best,
                     "stopped_early": self.stopped_early}
        state = broadcast_json(state, self.world)
        if state["error"]:
            raise ValueError(state["error"])
        weights = broadcast_arrays(dict(tree_flatten(self.module.parameters())) if self.world.is_root else None,
                                   self.world)
        optimizer = broadcast_arrays(dict(tree_flatten(self.optimizer.state)) if self.world.is_root else None,
                                     self.world)
        if not self.world.is_root:
            self.module.load_weights(list(weights.items()), strict=True)
            self.optimizer.state = tree_unflatten(list(optimizer.items()))
            self.step = state["step"]
            self.order.restore(state["order"])
            self.best_step, self.best_metrics = state["best_step"], state["best_metrics"]
            self.evals_since_best, self.stopped_early = state["evals_since_best"], state["stopped_early"]

    def _scales(self, batches: list[dict[str, mx.array]], real: list[bool],
                full: list[dict[str, mx.array]]) -> list[dict[str, mx.array]]:
        """Per micro-batch, each loss part's share of the whole step (all micro-batches of all
        ranks) times the number of ranks; put into each batch under ``scale.<part>``. A stand-in
        batch (``real`` False) counts zero, so its share is 0. The step's totals are counted on
        ``full``, the global micro-batches every rank makes anyway (counts add up over rows), so no
        all-reduce is needed for them."""
        local = [{k: v if ok else 0 * mx.array(v) for k, v in self.part_counts(b).items()}
                 for b, ok in zip(batches, real)]
        names = sorted(local[0])
        totals = sum(mx.stack([mx.array(c[n], mx.float32) for n in names]) for c in map(self.part_counts, full))
        scales = []
        for b, counts in zip(batches, local):
            scale = {n: self.world.size * mx.array(counts[n], mx.float32) / mx.maximum(totals[i], 1e-12)
                     for i, n in enumerate(names)}
            b.update({SCALE_PREFIX + n: v for n, v in scale.items()})
            scales.append(scale)
        return scales

    @staticmethod
    def _slice(batch: dict[str, mx.array], world: World) -> tuple[dict[str, mx.array], bool]:
        """(this rank's rows of a global batch, whether it has any). Every entry has the rows on
        axis 0. A rank left without rows (a short last batch) gets the batch's first row as a
        stand-in weighted 0: it computes like the others, so every rank's gradients and loss parts
        have the same structure for the all-reduce, and adds exactly nothing."""
        sizes = [len(part) for part in np.array_split(np.arange(batch["attention_mask"].shape[0]), world.size)]
        start = sum(sizes[: world.rank])
        if sizes[world.rank] == 0:
            return {k: v[:1] for k, v in batch.items()}, False
        return {k: v[start: start + sizes[world.rank]] for k, v in batch.items()}, True

    def _sharded_step(self, compute, apply):
        """One optimizer step over ``grad_accum_steps`` global micro-batches, each split across the
        ranks: (global loss, global parts, gradient norm, real tokens of the whole step)."""
        micro_batches = [self.order.next_rows() for _ in range(self.config.grad_accum_steps)]
        local_rows = [shard(rows, self.world) for rows in micro_batches]
        # Each rank makes the whole global batch and keeps its slice, rather than making a batch of
        # its own rows: a batch is cut to its longest row, and the cut can change a row's numbers
        # (MobileBERT's trigram input sees the [PAD] embedding after a row's last token, or zeros
        # when the row ends the batch), so a shard must keep the global batch's length.
        full = [self.make_batch(rows) for rows in micro_batches]
        if self.world.distributed:
            batches, real = map(list, zip(*(self._slice(batch, self.world) for batch in full)))
        else:
            batches, real = full, [True] * len(full)
        all_rows = sum(len(rows) for rows in micro_batches)
        scales = self._scales(batches, real, full) if self.part_counts is not None else None
        del full
        total, loss, parts, n_tokens = None, mx.array(0.0), {}, mx.array(0)
        for micro, (rows, batch) in enumerate(zip(local_rows, batches)):
            self._seed_rng(micro)
            micro_loss, micro_parts, grads = compute(batch)
            if scales is not None:  # the objective applied each part's share itself (weighted_sum)
                part_share = {k: scales[micro].get(k, 1.0) for k in micro_parts}
            else:
                # Each micro-batch's mean loss is weighted by its row count, so a short last batch
                # counts for what it holds and the step equals one large batch.
                share = self.world.size * len(rows) / all_rows
                grads = tree_map(lambda g: g * share, grads)
                micro_loss = micro_loss * share
                part_share = {k: share for k in micro_parts}
            total = grads if total is None else tree_map(mx.add, total, grads)
            loss = loss + micro_loss
            parts = {k: parts.get(k, 0.0) + v * part_share[k] for k, v in micro_parts.items()}
            if real[micro]:
                n_tokens += batch["attention_mask"].sum()
        if self.world.distributed:
            # One all-reduce for the gradients and the step's metrics together (average_gradients
            # packs same-dtype arrays into one buffer): the loss and parts carry the ranks' factor
            # already, so their mean is the global value; the token count's mean times the ranks is
            # its sum.
            names = sorted(parts)
            metrics = mx.stack([loss, *[mx.array(parts[k], mx.float32) for k in names], n_tokens.astype(mx.float32)])
            averaged = average_gradients({"grads": total, "metrics": metrics}, self.world)
            total, metrics = averaged["grads"], averaged["metrics"]
            loss, parts = metrics[0], {k: metrics[1 + i] for i, k in enumerate(names)}
            n_tokens = mx.round(metrics[-1] * self.world.size).astype(mx.int32)
        return loss, parts, apply(total), n_tokens

    def fit(self, resume: bool = True) -> TrainResult:
        """Train to the end (or early stop)."""
        self._start(resume)
        compute, apply, fused = self.build_step_functions()
        accum = self.config.grad_accum_steps
        progress = _Progress(self.total_steps, self.label, self.step) if self.world.is_root else None
        self.module.train()
        mx.reset_peak_memory()
        tokens, start, window_tokens, window_start = 0, time.perf_counter(), 0, time.perf_counter()
        while self.step < self.total_steps and not self.stopped_early:
            if accum == 1 and not self.world.distributed:
                self._seed_rng(0)
                batch = self.make_batch(self.order.next_rows())  # one batch is the whole step: every scale is 1
                loss, parts, norm = fused(batch)
                n_tokens = batch["attention_mask"].sum()
            else:
                loss, parts, norm, n_tokens = self._sharded_step(compute, apply)
            mx.eval(loss, parts, norm, n_tokens, self.module.parameters(), self.optimizer.state)
            # Loss and norm are the same on every rank (all-reduced), so all ranks stop together.
            if not (math.isfinite(loss.item()) and math.isfinite(norm.item())):
                if progress:
                    progress.done()
                raise self._diverged(loss.item(), norm.item())
            self.step += 1
            n_tokens = int(n_tokens.item())  # real (non-padding) tokens of all ranks: what tokens/s reports
            tokens += n_tokens
            window_tokens += n_tokens
            if self.step % self.config.log_every == 0 or self.step == self.total_steps:
                now = time.perf_counter()
                rate = window_tokens / max(now - window_start, 1e-9)
                window_tokens, window_start = 0, now
                record = {"step": self.step, "loss": loss.item(), "grad_norm": norm.item(),
                          "lr": self.optimizer.learning_rate.item(), "tokens_per_s": rate,
                          "epoch": self.order.epoch, **{k: v.item() for k, v in parts.items()}}
                if self.world.distributed:
                    record["processes"] = self.world.size
                self._log(record)
                if progress:
                    progress.show(self.step, record["loss"], rate)
            if self.step % self.eval_every == 0 or self.step == self.total_steps:
                self.stopped_early = self._evaluate()
            if self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0:
                self.save_checkpoint()
        if progress:
            progress.done()
        self.save_checkpoint()
        seconds = time.perf_counter() - start
        return TrainResult(
            steps=self.step, stopped_early=self.stopped_early, best_step=self.best_step, best_metrics=self.best_metrics,
            seconds=seconds, tokens_per_s=tokens / max(seconds, 1e-9), peak_memory_gb=mx.get_peak_memory() / 2**30,
        )
