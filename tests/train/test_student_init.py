"""``init = "teacher-layers"``: a MobileBERT with the BERT-block switches, the teacher's blocks copied.

The proofs: at the teacher's depth the student *is* the teacher (to the two LayerNorm eps values
MobileBERT fixes at 1e-5); shallower, each student block holds the teacher block the layer map pairs
it with; the folder we save is a MobileBERT that transformers itself loads to the same logits."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
import torch
import transformers
from mlx.utils import tree_flatten

from mlx_distill.models import load_classifier, save_pretrained
from mlx_distill.train.student_init import StudentSpec, init_student
from tests.helpers.hf_models import save_hf_classifier

LABELS = ["a", "b", "c"]
BERT = dict(vocab_size=120, hidden_size=32, num_hidden_layers=6, num_attention_heads=4, intermediate_size=48,
            max_position_embeddings=40)
IDS = np.array([[2, 17, 33, 5, 9, 71, 3, 0], [2, 44, 8, 3, 0, 0, 0, 0]], dtype=np.int32)
MASK = (IDS > 0).astype(np.int32)


def _teacher(tmp_path, **overrides):
    save_hf_classifier("bert", tmp_path / "teacher", LABELS, **{**BERT, **overrides})
    return load_classifier(tmp_path / "teacher")


def _logits(model) -> np.ndarray:
    return np.array(model(mx.array(IDS), mx.array(MASK)).logits)


def test_at_the_teachers_depth_the_student_is_the_teacher(tmp_path):
    teacher = _teacher(tmp_path)
    # The full preset (24 layers) is capped at the teacher's 6: every block is copied.
    student, described = init_student(StudentSpec(init="teacher-layers", preset="mobilebert"), LABELS, teacher.model,
                                      teacher.config.vocab_size)
    assert student.config.num_hidden_layers == 6 and not student.config.use_bottleneck
    assert [name for name in described["copied"] if name.startswith("layer")] == [
        f"layer {i} <- teacher {i}" for i in range(6)]
    diff = np.abs(_logits(student) - _logits(teacher.model)).max()
    assert diff < 1e-3, diff  # measured 3e-4 on all-MiniLM-L6-v2: the 1e-5 vs 1e-12 LayerNorm eps, nothing else
    random_start, _ = init_student(StudentSpec(init="random", preset="tiny"), LABELS, teacher.model, 120)
    assert np.abs(_logits(random_start) - _logits(teacher.model)).max() > 100 * diff


def test_a_shallower_student_holds_the_blocks_its_layer_map_pairs_it_with(tmp_path):
    teacher = _teacher(tmp_path)
    student, _ = init_student(StudentSpec(init="teacher-layers", preset="mobilebert-4l"), LABELS, teacher.model,
                              teacher.config.vocab_size, layer_map={3: 5})
    pairs = {1: 2, 2: 3, 3: 5, 4: 6}  # uniform 4-of-6 map, with the given 3 -> 5 replacing its 3 -> 4
    for s, t in pairs.items():
        ours = dict(tree_flatten(student.encoder_model.encoder.layer[s - 1].parameters()))
        theirs = dict(tree_flatten(teacher.model.encoder_model.encoder.layer[t - 1].parameters()))
        assert ours.keys() == theirs.keys()
        assert all(np.array_equal(np.array(ours[k]), np.array(theirs[k])) for k in ours), (s, t)
    assert np.array_equal(np.array(student.classifier.weight), np.array(teacher.model.classifier.weight))


def test_the_saved_student_is_a_mobilebert_transformers_loads_to_the_same_logits(tmp_path):
    teacher = _teacher(tmp_path)
    student, _ = init_student(StudentSpec(init="teacher-layers", preset="mobilebert-4l"), LABELS, teacher.model,
                              teacher.config.vocab_size)
    save_pretrained(student, tmp_path / "student")
    hf = transformers.MobileBertForSequenceClassification.from_pretrained(tmp_path / "student").eval()
    with torch.no_grad():
        theirs = hf(input_ids=torch.tensor(IDS, dtype=torch.long), attention_mask=torch.tensor(MASK)).logits.numpy()
    assert np.abs(theirs - _logits(student)).max() < 1e-4


def test_only_a_bert_teacher_can_be_copied(tmp_path):
    save_hf_classifier("mobilebert", tmp_path / "mb", LABELS, vocab_size=120, hidden_size=32, embedding_size=16,
                       intra_bottleneck_size=16, num_attention_heads=2, intermediate_size=32, num_hidden_layers=2)
    mobile = load_classifier(tmp_path / "mb")
    with pytest.raises(ValueError, match="copies BERT blocks; the teacher is a mobilebert"):
        init_student(StudentSpec(init="teacher-layers"), LABELS, mobile.model, 120)


def test_a_layer_map_pair_outside_either_model_is_one_clear_error(tmp_path):
    teacher = _teacher(tmp_path)
    for pairs in ({1: 9}, {1: 0}, {5: 2}):  # teacher has 6 blocks, the student 4
        with pytest.raises(ValueError, match=r"layer_map entries out of range \(student 1..4, teacher 1..6\)"):
            init_student(StudentSpec(init="teacher-layers", preset="mobilebert-4l"), LABELS, teacher.model,
                         teacher.config.vocab_size, layer_map=pairs)
