"""Ways to start a MobileBERT student, and the presets users pick from.

- ``pretrained``: a pre-trained MobileBERT folder (e.g. google/mobilebert-uncased), fresh head —
  the usual case on a user's Mac.
- ``random``: any MobileBERT config, small ones included.
- ``teacher``: random, then the token/position/type embeddings are taken from the teacher and
  projected onto its top principal directions (PCA) to the student's sizes. The student starts
  with the teacher's lexical geometry, which matters most when there is no pre-trained MobileBERT
  and only a few hundred texts. Needs a shared vocabulary (same tokenizer).
- ``teacher-layers``: a MobileBERT with its bottlenecks, trigram input and stacked FFNs switched
  off and LayerNorm on -- which is exactly a post-LN BERT block -- in the teacher's width, with the
  preset's number of layers. Its embeddings, the teacher layers it is trained to imitate (the layer
  map), pooler and head are copied from the fine-tuned teacher, so it starts as a shallower
  teacher instead of from nothing. Why: without a pre-trained MobileBERT (none is reachable
  offline) a student started from random blocks needs many passes over a large transfer set.
  Measured on BANKING77 with 10 labels per intent and 9,223 transfer texts: ``mobilebert-4l``
  from the teacher's embeddings 0.724 after 3 epochs, this init 0.803 after 2 (teacher 0.797).
  The price is size: 4 of MiniLM-L6's layers are 19.3M parameters against mobilebert-4l's 8.0M
  (and 4 of BERT-base's would be ~53M, more than MobileBERT), so it is not the default.
  Fine-tune it at ~1e-4: on the demo 3e-4 lost 4 points. The teacher must be a BERT (the blocks
  are copied by their Hugging Face names).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from mlx_distill.build.config import STUDENT_INITS
from mlx_distill.models import MobileBertConfig, SequenceClassifier, build_classifier, load_classifier
from mlx_distill.models.config import EncoderConfig
from mlx_distill.train.losses import resolve_layer_map, uniform_layer_map

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
    init: str = "teacher"  # "teacher" | "teacher-layers" | "random" | "pretrained"
    preset: str = "mobilebert-4l"  # used for "teacher" / "random"
    config_file: str | None = None  # a config.json overriding the preset
    pretrained_dir: str | None = None  # for "pretrained"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.init not in STUDENT_INITS:
            raise ValueError(f"student init must be one of {', '.join(STUDENT_INITS)}, not {self.init!r}")
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


def teacher_shaped_config(preset: MobileBertConfig, teacher: EncoderConfig) -> MobileBertConfig:
    """The MobileBERT switches that make each block a BERT block, in the teacher's sizes; the
    preset keeps only its depth (at most the teacher's) and its dropout settings."""
    return dataclasses.replace(
        preset, hidden_size=teacher.hidden_size, embedding_size=teacher.hidden_size,
        intra_bottleneck_size=teacher.hidden_size, intermediate_size=teacher.intermediate_size,
        num_attention_heads=teacher.num_attention_heads, hidden_act=teacher.hidden_act,
        layer_norm_eps=teacher.layer_norm_eps, type_vocab_size=teacher.type_vocab_size,
        num_hidden_layers=min(preset.num_hidden_layers, teacher.num_hidden_layers),
        max_position_embeddings=teacher.max_position_embeddings,
        trigram_input=False, use_bottleneck=False, use_bottleneck_attention=False,
        key_query_shared_bottleneck=False, num_feedforward_networks=1, normalization_type="layer_norm",
        classifier_activation=True,
    )


def copy_teacher_layers(student: SequenceClassifier, teacher: SequenceClassifier, layer_map: dict[int, int]) -> list[str]:
    """Copy embeddings, the mapped blocks, pooler and head by their Hugging Face names; returns what
    was copied. ``layer_map`` is 1-based (student layer -> teacher layer), as the hidden-state loss
    uses it, so each student block starts as the teacher block it is then trained to imitate."""
    source, target = teacher.encoder_model, student.encoder_model
    copied = []

    def take(into: nn.Module, src: nn.Module, name: str) -> None:
        ours, theirs = dict(tree_flatten(into.parameters())), dict(tree_flatten(src.parameters()))
        missing = sorted(set(ours) - set(theirs))
        if missing or any(ours[k].shape != theirs[k].shape for k in ours):
            raise ValueError(f"init teacher-layers: {name} does not match the teacher's ({missing[:3] or 'shapes'})")
        into.update(tree_unflatten([(k, theirs[k]) for k in ours]))
        copied.append(name)

    emb = target.embeddings
    for part in ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm"):
        take(getattr(emb, part), getattr(source.embeddings, part), f"embeddings.{part}")
    for s_layer in range(1, len(target.encoder.layer) + 1):
        t_layer = layer_map[s_layer]
        take(target.encoder.layer[s_layer - 1], source.encoder.layer[t_layer - 1], f"layer {s_layer - 1} <- teacher {t_layer - 1}")
    if "pooler" in source:
        take(target.pooler, source.pooler, "pooler")
    take(student.classifier, teacher.classifier, "classifier")
    return copied


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
    spec: StudentSpec, labels: list[str], teacher: SequenceClassifier, teacher_vocab: int,
    layer_map: dict[int, int] | None = None,
) -> tuple[SequenceClassifier, dict[str, object]]:
    """Build the student; returns (model, a description for the report). ``layer_map`` (the
    distillation's, 1-based; default uniform) picks the blocks ``teacher-layers`` copies."""
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
    if spec.init == "teacher-layers":
        if teacher.config.model_type != "bert":
            raise ValueError(f"init teacher-layers copies BERT blocks; the teacher is a {teacher.config.model_type}")
        config = teacher_shaped_config(config, teacher.config)
    model = build_classifier(config, seed=spec.seed)
    described: dict[str, object] = {"init": spec.init, "preset": spec.preset, "config_file": spec.config_file}
    if spec.init == "teacher-layers":
        depths = config.num_hidden_layers, teacher.config.num_hidden_layers
        pairs = {**uniform_layer_map(*depths), **resolve_layer_map(layer_map, *depths)}  # the map's pairs win
        described["copied"] = copy_teacher_layers(model, teacher, pairs)
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
