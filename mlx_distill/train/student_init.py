"""Ways to start a MobileBERT student, and the presets users pick from.

- ``pretrained``: a pre-trained MobileBERT folder (e.g. google/mobilebert-uncased), fresh head —
  the usual case on a user's Mac.
- ``random``: any MobileBERT config, small ones included.
- ``teacher``: random, then the token/position/type embeddings are taken from the teacher and
  projected onto its top principal directions (PCA) to the student's sizes. The student starts
  with the teacher's lexical geometry, which matters most when there is no pre-trained MobileBERT
  and only a few hundred texts. Needs a shared vocabulary (same tokenizer).
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from mlx_distill.models import MobileBertConfig, SequenceClassifier, build_classifier, load_classifier

STUDENT_PRESETS: dict[str, dict[str, object]] = {
    # The published MobileBERT (24 layers, 25M parameters).
    "mobilebert": {},
    # Same block widths, 4 layers: ~1/5 of the compute, the default for laptops and CI-sized runs.
    "mobilebert-4l": {"num_hidden_layers": 4},
    # A tiny student for quick experiments and tests (2M parameters, most of it the embedding table).
    "tiny": {
        "num_hidden_layers": 4, "hidden_size": 128, "embedding_size": 64, "intra_bottleneck_size": 64,
        "intermediate_size": 128, "num_attention_heads": 4, "num_feedforward_networks": 2,
    },
}


@dataclass
class StudentSpec:
    init: str = "teacher"  # "teacher" | "random" | "pretrained"
    preset: str = "mobilebert-4l"  # used for "teacher" / "random"
    config_file: str | None = None  # a config.json overriding the preset
    pretrained_dir: str | None = None  # for "pretrained"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.init not in ("teacher", "random", "pretrained"):
            raise ValueError(f"student init must be teacher, random or pretrained, not {self.init!r}")
        if self.init == "pretrained" and not self.pretrained_dir:
            raise ValueError("init 'pretrained' needs the pre-trained MobileBERT folder (--student)")
        if self.preset not in STUDENT_PRESETS:
            raise ValueError(f"unknown student preset {self.preset!r}; choose from {sorted(STUDENT_PRESETS)}")


def student_config(spec: StudentSpec, vocab_size: int, labels: list[str], max_positions: int) -> MobileBertConfig:
    if spec.config_file:
        config = MobileBertConfig.from_file(spec.config_file)
    else:
        config = MobileBertConfig(**STUDENT_PRESETS[spec.preset])
    fields = config.to_dict()
    fields.update(vocab_size=vocab_size, max_position_embeddings=max(config.max_position_embeddings, max_positions))
    fields.pop("model_type")
    return MobileBertConfig.from_dict({"model_type": "mobilebert", **fields}).with_labels(labels)


def _pca_project(table: np.ndarray, width: int) -> np.ndarray:
    """Rows of ``table`` (N, D) in the basis of its top-``width`` principal directions (N, width).
    When width > D the extra columns are zero."""
    centred = table - table.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    k = min(width, vt.shape[0])
    projected = np.zeros((table.shape[0], width))
    projected[:, :k] = centred @ vt[:k].T
    return projected.astype(np.float32)


def init_student(
    spec: StudentSpec, labels: list[str], teacher: SequenceClassifier, teacher_vocab: int
) -> tuple[SequenceClassifier, dict[str, object]]:
    """Build the student; returns (model, a description for the report)."""
    if spec.init == "pretrained":
        loaded = load_classifier(spec.pretrained_dir, labels=labels, seed=spec.seed)
        if loaded.config.model_type != "mobilebert":
            raise ValueError(f"{spec.pretrained_dir}: the student must be a MobileBERT, not {loaded.config.model_type}")
        if loaded.config.vocab_size != teacher_vocab:
            raise ValueError(
                f"{spec.pretrained_dir}: student vocab_size {loaded.config.vocab_size} != teacher {teacher_vocab}; "
                "student and teacher must share a tokenizer"
            )
        return loaded.model, {"init": "pretrained", "from": str(loaded.path)}
    config = student_config(spec, teacher_vocab, labels, teacher.config.max_position_embeddings)
    model = build_classifier(config, seed=spec.seed)
    described: dict[str, object] = {"init": spec.init, "preset": spec.preset, "config_file": spec.config_file}
    if spec.init == "teacher":
        source = teacher.encoder_model.embeddings
        target = model.encoder_model.embeddings
        rows = min(source.position_embeddings.weight.shape[0], target.position_embeddings.weight.shape[0])
        target.word_embeddings.weight = mx.array(_pca_project(np.array(source.word_embeddings.weight), config.embedding_size))
        positions = np.array(target.position_embeddings.weight)
        positions[:rows] = _pca_project(np.array(source.position_embeddings.weight), config.hidden_size)[:rows]
        target.position_embeddings.weight = mx.array(positions)
        target.token_type_embeddings.weight = mx.array(
            _pca_project(np.array(source.token_type_embeddings.weight), config.hidden_size)
        )
        described["copied"] = ["word_embeddings (PCA)", "position_embeddings (PCA)", "token_type_embeddings (PCA)"]
    return model, described
