"""Stage: distil a teacher classifier into a MobileBERT student, in MLX.

Objective = kd_weight * KD(T) + ce_weight * CE(labels) + hidden_weight * MSE(mapped hidden states,
through learned projections when widths differ) + attention_weight * KL(mapped attention maps,
head-averaged when head counts differ) [+ embedding_weight * MSE(embedding outputs)].
The teacher runs once into the cache and is released before the student trains.
"""

from __future__ import annotations

import gc
from dataclasses import asdict, dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from mlx_distill.build.settings import setting
from mlx_distill.data import Example, dedupe, drop_overlaps
from mlx_distill.distributed import world
from mlx_distill.fileio import atomic_write_json
from mlx_distill.models import check_inputs_fit, load_classifier, save_pretrained
from mlx_distill.runtime import runtime_info
from mlx_distill.tokenizer import TextTokenizer
from mlx_distill.train import losses
from mlx_distill.train.batching import EncodedDataset, Splits
from mlx_distill.train.evaluation import evaluate_classifier, predict_logits, report_metrics
from mlx_distill.train.metrics import classification_metrics
from mlx_distill.train.student_init import StudentSpec, init_student
from mlx_distill.train.teacher_cache import CacheSpec, TeacherCache
from mlx_distill.train.trainer import TrainConfig, Trainer, weighted_sum


def parse_layer_map(text: str) -> dict[int, int]:
    """``"1:2,2:4"`` -> ``{1: 2, 2: 4}`` (student layer -> teacher layer, 1-based)."""
    try:
        return {int(s): int(t) for s, t in (pair.split(":") for pair in text.split(","))}
    except ValueError:
        raise ValueError(f"layer map {text!r}: write student:teacher pairs, e.g. 1:2,2:4,3:6") from None


@dataclass
class DistillConfig:
    """The distillation objective's settings; help text and flags live on the fields (``setting``)."""

    max_length: int = setting(128, "tokens per text")
    temperature: float = setting(2.0, "softmax temperature of the KD term")
    kd_weight: float = setting(1.0, "soft-logit KD weight")
    ce_weight: float = setting(0.5, "hard-label cross-entropy weight")
    hidden_weight: float = setting(1.0, "hidden-state MSE weight (0 = off)")
    attention_weight: float = setting(1.0, "attention-map KL weight (0 = off)")
    embedding_weight: float = setting(0.0, "embedding-output MSE weight (0 = off)")
    # student layer -> teacher layer (1-based); None = uniform
    layer_map: dict[int, int] | None = setting(None, "student:teacher layer pairs, e.g. 1:2,2:4 (default: uniform)",
                                               parse=parse_layer_map)
    cache_dir: str | None = setting(None, "teacher cache folder (default OUT/training/teacher_cache)")
    # How often each labelled row is seen per epoch relative to a transfer-set row: with 100 labels
    # and thousands of unlabelled texts, repeating the labelled rows keeps their hard labels in play.
    labelled_repeats: int = setting(1, "times each labelled row is seen per epoch for each transfer row")
    train: TrainConfig = setting(
        help="training loop settings",
        default_factory=lambda: TrainConfig(epochs=10, learning_rate=3e-4, batch_size=16, warmup_ratio=0.06,
                                            best_metric="accuracy")
    )

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        if min(self.kd_weight, self.ce_weight, self.hidden_weight, self.attention_weight, self.embedding_weight) < 0:
            raise ValueError("loss weights must be >= 0")
        if self.kd_weight + self.ce_weight == 0:
            raise ValueError("at least one of kd_weight / ce_weight must be > 0 (the student needs an output target)")
        if self.labelled_repeats < 1:
            raise ValueError(f"--labelled-repeats must be >= 1 (got {self.labelled_repeats})")


class DistillModule(nn.Module):
    """What the trainer optimises: the student plus the learned width projections."""

    def __init__(self, student: nn.Module, projected_layers: list[int], student_width: int, teacher_width: int):
        super().__init__()
        self.student = student
        self.projected_layers = projected_layers
        if student_width != teacher_width:
            self.projections = [nn.Linear(student_width, teacher_width) for _ in projected_layers]

    def project(self, position: int, hidden: mx.array) -> mx.array:
        return self.projections[position](hidden) if "projections" in self else hidden


def make_objective(config: DistillConfig, layer_map: dict[int, int], teacher_heads: int, student_heads: int):
    hidden_pairs = [(s, t) for s, t in sorted(layer_map.items())] if config.hidden_weight > 0 else []
    if config.embedding_weight > 0:
        hidden_pairs = [(0, 0), *hidden_pairs]  # position 0: the embedding outputs, weighted on their own
    attention_pairs = sorted(layer_map.items()) if config.attention_weight > 0 else []
    mean_heads = teacher_heads != student_heads

    def objective(module: DistillModule, batch: dict[str, mx.array]):
        out = module.student(
            batch["input_ids"], batch["attention_mask"],
            output_hidden_states=bool(hidden_pairs), output_attentions=bool(attention_pairs),
        )
        mask = batch["attention_mask"]
        parts: dict[str, mx.array] = {}
        if config.kd_weight > 0:
            parts["kd"] = losses.kd_loss(out.logits, batch["teacher_logits"], config.temperature)
        if config.ce_weight > 0:
            parts["ce"] = losses.cross_entropy(out.logits, batch["labels"])
        layer_terms = []
        for i, (s, t) in enumerate(hidden_pairs):
            term = losses.hidden_mse(module.project(i, out.hidden_states[s]), batch[f"teacher_hidden.{t}"], mask)
            if s == 0:
                parts["embedding"] = term
            else:
                layer_terms.append(term)
        if layer_terms:
            parts["hidden"] = sum(layer_terms) / len(layer_terms)
        if attention_pairs:
            terms = []
            for s, t in attention_pairs:
                student_maps = out.attentions[s - 1]
                student_maps = losses.head_average(student_maps) if mean_heads else student_maps
                terms.append(losses.attention_kl(student_maps, batch[f"teacher_attention.{t}"], mask))
            parts["attention"] = sum(terms) / len(terms)
        weights = {"kd": config.kd_weight, "ce": config.ce_weight, "hidden": config.hidden_weight,
                   "attention": config.attention_weight, "embedding": config.embedding_weight}
        loss = weighted_sum(parts, weights, batch)
        return loss, parts

    return objective, hidden_pairs, attention_pairs


def part_counts(batch: dict[str, mx.array]) -> dict[str, mx.array]:
    """What each loss part is a mean over (rows for KD, labelled rows for CE, real tokens for the
    hidden-state, attention and embedding terms), so the trainer can combine micro-batches and
    ranks into exactly the global batch's means (``weighted_sum``)."""
    mask = batch["attention_mask"]
    tokens = mask.sum()
    return {"kd": mx.array(mask.shape[0]), "ce": (batch["labels"] >= 0).sum(), "hidden": tokens,
            "attention": tokens, "embedding": tokens}


def distill(
    teacher_dir: str | Path, train: list[Example], evaluation: list[Example], out_dir: str | Path,
    student: StudentSpec, config: DistillConfig, resume: bool = True, test: list[Example] | None = None,
    unlabeled: list[Example] | None = None, synthetic: list[Example] | None = None,
) -> dict[str, object]:
    """Distil ``teacher_dir`` into a student written to ``out_dir``.

    ``unlabeled`` is the transfer set: texts without labels that the teacher soft-labels. The
    student learns KD (and the hidden/attention terms) on every row, CE only on labelled ones.
    ``synthetic`` rows (e.g. ``augment`` output kept by ``clean``) are extra labelled training rows;
    they never join the evaluation split. Transfer and synthetic rows that occur in the evaluation
    or test data are dropped and counted, so the reported numbers are not inflated by texts the
    student was fitted to.
    """
    out_dir = Path(out_dir)
    work = out_dir / "training"
    teacher = load_classifier(teacher_dir)
    labels = teacher.config.labels
    tokenizer = TextTokenizer.from_dir(teacher.path, config.max_length)
    check_inputs_fit(teacher.config, tokenizer.vocab_size, config.max_length, str(teacher.path))
    kept_synthetic, synthetic_counts = _extra_rows(synthetic or [], train, evaluation, test, labelled=True)
    train = [*train, *kept_synthetic]
    transfer, transfer_counts = _extra_rows(unlabeled or [], train, evaluation, test, labelled=False)
    splits = Splits.encode(tokenizer, labels, train, evaluation, test)
    eval_set = splits.evaluation
    transfer_set = EncodedDataset.build(transfer, tokenizer, labels) if transfer else None
    train_set = splits.train if transfer_set is None else splits.train.concat(transfer_set)
    # Labelled rows first, each `labelled_repeats` times, then the transfer rows: the batch order
    # shuffles this index, and the teacher cache still holds every row once.
    index = np.concatenate([np.tile(np.arange(len(splits.train)), config.labelled_repeats),
                            np.arange(len(splits.train), len(train_set))])

    model, init_report = init_student(student, labels, teacher.model, teacher.config.vocab_size, config.layer_map)
    check_inputs_fit(model.config, tokenizer.vocab_size, config.max_length, "student")
    layer_map = losses.resolve_layer_map(config.layer_map, model.config.num_hidden_layers,
                                         teacher.config.num_hidden_layers)
    objective, hidden_pairs, attention_pairs = make_objective(
        config, layer_map, teacher.config.num_attention_heads, model.config.num_attention_heads
    )
    spec = CacheSpec(
        hidden_layers=tuple(sorted({t for _, t in hidden_pairs})),
        attention_layers=tuple(sorted({t for _, t in attention_pairs})),
        mean_heads=teacher.config.num_attention_heads != model.config.num_attention_heads,
    )
    cache = TeacherCache.build(teacher, train_set, spec, Path(config.cache_dir) if config.cache_dir else work / "teacher_cache")
    # The teacher runs once over eval and test; its metrics come from those same logits.
    teacher_logits = {"eval": predict_logits(teacher.model, eval_set)}
    if splits.test is not None:
        teacher_logits["test"] = predict_logits(teacher.model, splits.test)
    teacher_metrics = {
        f"teacher_{name}": classification_metrics(logits, (eval_set if name == "eval" else splits.test).labels, labels)
        for name, logits in teacher_logits.items()
    }
    teacher_path = teacher.path
    del teacher
    gc.collect()
    mx.clear_cache()

    module = DistillModule(model, [s for s, _ in hidden_pairs], model.config.hidden_size, _teacher_width(cache))

    def make_batch(positions):
        rows = index[positions]
        ids, mask, length = train_set.batch_arrays(rows)
        return {"input_ids": mx.array(ids), "attention_mask": mx.array(mask), "labels": mx.array(train_set.labels[rows]),
                **cache.batch(rows, length)}

    trainer = Trainer(
        module, objective, make_batch, len(index), config.train, work,
        evaluate=lambda: evaluate_classifier(model, eval_set, labels, teacher_logits["eval"]), label="distill",
        fingerprint={"teacher_cache": cache.key, "labels": labels, **splits.fingerprint(),
                     "transfer": transfer_set.digest() if transfer_set is not None else None,
                     "student": model.config.to_dict(), "student_init": asdict(student),
                     "distill": {k: v for k, v in asdict(config).items() if k not in ("train", "cache_dir")}},
        part_counts=part_counts,
    )
    result = trainer.fit(resume=resume)
    trainer.restore_best()
    model.eval()
    is_root = world().is_root  # data-parallel runs: every rank holds the same student, rank 0 writes it
    if is_root:
        save_pretrained(model, out_dir, tokenizer_dir=teacher_path)
    report = {
        "stage": "distill", "teacher": str(teacher_path), "labels": labels, "student": init_report,
        "student_parameters": sum(v.size for _, v in tree_flatten(model.parameters())),
        "layer_map": layer_map, "cache": {"key": cache.key, "reused": cache.reused, "spec": asdict(spec)},
        "train_examples": len(splits.train), "transfer": transfer_counts,
        "synthetic": synthetic_counts, "eval_examples": len(eval_set),
        "test_examples": len(splits.test) if splits.test else 0, "config": asdict(config),
        "training": asdict(result), **teacher_metrics, **report_metrics(model, splits, labels, teacher_logits),
        "runtime": runtime_info(), "processes": world().size,
    }
    if is_root:
        atomic_write_json(work / "report.json", report)
    return report


def _teacher_width(cache: TeacherCache) -> int:
    return next(iter(cache.hidden.values())).shape[-1] if cache.hidden else 0



def _extra_rows(
    rows: list[Example], train: list[Example], evaluation: list[Example], test: list[Example] | None, labelled: bool,
) -> tuple[list[Example], dict[str, int]]:
    """The transfer (``labelled=False``: labels removed, the teacher's soft labels only) or synthetic
    rows to keep, and how many were dropped and why: duplicates, texts already in the labelled
    training data, and texts of the evaluation or test data (leakage)."""
    kept = rows if labelled else [Example(e.text, None, e.source) for e in rows]
    kept, duplicates = dedupe(kept)
    kept, in_train = drop_overlaps(kept, train)
    kept, leaked = drop_overlaps(kept, [*evaluation, *(test or [])])
    return kept, {"given": len(rows), "used": len(kept), "duplicates": duplicates,
                  "also_labelled": in_train, "dropped_eval_test": leaked}
