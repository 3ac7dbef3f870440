"""Stage: make the teacher a classifier for the user's labels (fine-tune when it is not one yet)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import mlx.core as mx

from mlx_distill.build.settings import setting
from mlx_distill.data import Example, label_set
from mlx_distill.distributed import world
from mlx_distill.fileio import atomic_write_json
from mlx_distill.models import LoadedModel, check_inputs_fit, load_classifier, save_pretrained
from mlx_distill.runtime import runtime_info
from mlx_distill.tokenizer import TextTokenizer
from mlx_distill.train.batching import Splits
from mlx_distill.train.evaluation import evaluate_classifier, report_metrics
from mlx_distill.train.losses import cross_entropy
from mlx_distill.train.trainer import TrainConfig, Trainer


@dataclass
class TeacherConfig:
    """Teacher fine-tuning settings; help text and flags live on the fields (``setting``)."""

    max_length: int = setting(128, "tokens per text")
    freeze_encoder: bool = setting(False, "train only the classification head (fast; for big teachers on small machines)")
    train: TrainConfig = setting(help="training loop settings",
                                 default_factory=lambda: TrainConfig(epochs=4, learning_rate=5e-5, batch_size=16))


def classifier_objective(model, batch):
    loss = cross_entropy(model(batch["input_ids"], batch["attention_mask"]).logits, batch["labels"])
    return loss, {"ce": loss}


def _batch(data, rows) -> dict[str, mx.array]:
    ids, mask, _ = data.batch_arrays(rows)
    return {"input_ids": mx.array(ids), "attention_mask": mx.array(mask), "labels": mx.array(data.labels[rows])}


def fine_tune_teacher(
    model_dir: str | Path, train: list[Example], evaluation: list[Example], out_dir: str | Path, config: TeacherConfig,
    resume: bool = True, test: list[Example] | None = None,
) -> dict[str, object]:
    """Fine-tune (or pass through) ``model_dir`` into a classifier for the labels of ``train``.

    Writes a Hugging Face folder to ``out_dir`` (+ ``out_dir/training/`` with checkpoints, metrics
    and ``report.json``). Returns the report.
    """
    out_dir = Path(out_dir)
    loaded: LoadedModel = load_classifier(model_dir, labels=label_set(train), seed=config.train.seed)
    labels = loaded.config.labels  # an existing head keeps its own label order
    tokenizer = TextTokenizer.from_dir(loaded.path, config.max_length)
    check_inputs_fit(loaded.config, tokenizer.vocab_size, config.max_length, str(loaded.path))
    splits = Splits.encode(tokenizer, labels, train, evaluation, test)
    train_set, eval_set = splits.train, splits.evaluation
    model = loaded.model
    report: dict[str, object] = {
        "stage": "teacher", "source": str(loaded.path), "labels": labels, "train_examples": len(train_set),
        "eval_examples": len(eval_set), "test_examples": len(splits.test) if splits.test else 0,
        "config": asdict(config), "runtime": runtime_info(),
    }
    if not loaded.weights.initialised:
        report["fine_tuned"] = False
        report["reason"] = "already a classifier for exactly these labels"
    else:
        if config.freeze_encoder:
            model.encoder_model.freeze()
        trainer = Trainer(
            model, classifier_objective,
            lambda rows: _batch(train_set, rows),
            len(train_set), config.train, out_dir / "training",
            evaluate=lambda: evaluate_classifier(model, eval_set, labels), label="teacher",
            fingerprint={"source": str(loaded.path.resolve()), "labels": labels, **splits.fingerprint(),
                         "max_length": config.max_length, "freeze_encoder": config.freeze_encoder},
        )
        result = trainer.fit(resume=resume)
        trainer.restore_best()
        model.unfreeze()
        report.update(fine_tuned=True, training=asdict(result))
    model.eval()
    report.update(report_metrics(model, splits, labels))
    report["processes"] = world().size
    if world().is_root:  # data-parallel runs: every rank holds the same model, rank 0 writes it
        save_pretrained(model, out_dir, tokenizer_dir=loaded.path)
        atomic_write_json(out_dir / "training" / "report.json", report)
    return report
