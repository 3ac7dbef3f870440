"""The on-device learning rate is chosen by measurement at export (unless the user fixed one)."""

from __future__ import annotations

import json

import coremltools as ct
import numpy as np
import pytest

from tests.helpers.export_test_utils import LABELS, MAX_LENGTH
from export.updatable.learning_rate import LearningRateTextsError, pick, read_texts, targets_for


def _spec_learning_rate(path) -> float:
    spec = ct.utils.load_spec(str(path))
    return spec.neuralNetworkClassifier.updateParams.optimizer.WhichOneof("OptimizerType") and (
        spec.neuralNetworkClassifier.updateParams.optimizer.adamOptimizer.learningRate.defaultValue
        or spec.neuralNetworkClassifier.updateParams.optimizer.sgdOptimizer.learningRate.defaultValue)


def test_measured_rate_is_the_lowest_held_out_loss_and_is_written_into_the_head(mobilebert_fp16_export):
    manifest = json.loads(mobilebert_fp16_export.manifest_path.read_text())
    section = manifest["update_learning_rate"]
    assert section["fixed_by_user"] is False and len(section["candidates"]) >= 3
    curves = {float(k): v for k, v in section["held_out_loss"].items()}
    assert set(curves) == set(section["candidates"])
    epochs = manifest["update_config"]["epochs"]
    assert all(len(curve) == epochs + 1 for curve in curves.values())  # before training + every epoch
    assert len({curve[0] for curve in curves.values()}) == 1  # same untrained head for every candidate
    best = min(curves, key=lambda rate: curves[rate][-1])
    assert section["chosen"] == best and curves[best][-1] < curves[best][0]
    # the candidates really differ: the measurement is what decides
    assert max(c[-1] for c in curves.values()) - min(c[-1] for c in curves.values()) > 0.1
    assert manifest["update_config"]["learning_rate"] == best
    assert _spec_learning_rate(mobilebert_fp16_export.files["updatable_head"]) == pytest.approx(best)
    assert section["texts"].startswith("the fixed sample texts") and section["held_out_examples"] == 4
    assert any(d.startswith(f"on-device learning rate {best:g}: lowest held-out loss") for d in mobilebert_fp16_export.decisions)


def test_a_rate_the_user_fixed_is_kept(bert_export):
    """bert_export was made with ExportConfig(learning_rate=0.005)."""
    manifest = json.loads(bert_export.manifest_path.read_text())
    assert manifest["update_learning_rate"]["fixed_by_user"] is True
    assert manifest["update_learning_rate"]["chosen"] == 0.005 and manifest["update_learning_rate"]["candidates"] == []
    assert _spec_learning_rate(bert_export.files["updatable_head"]) == pytest.approx(0.005)


def test_labelled_texts_passed_to_export_are_used(bert_dir, tmp_path):
    from export.folder import ExportConfig, export_folder

    rows = [("good movie", "positive"), ("awful plot", "negative"), ("the cat sat", "neutral"),
            ("great acting", "positive"), ("boring film", "negative"), ("a dog on the mat", "neutral")]
    result = export_folder(bert_dir, tmp_path / "out", ExportConfig(
        max_length=MAX_LENGTH, epochs=2, build_classifier=False, build_encoder=False, build_updatable_pipeline=False,
        fp16_check=False, learning_rate_candidates=(0.1, 0.001)), texts=rows)
    section = json.loads(result.manifest_path.read_text())["update_learning_rate"]
    assert section["targets"] == "the rows' own labels" and section["train_examples"] == 3
    assert section["candidates"] == [0.1, 0.001] and section["chosen"] in (0.1, 0.001)
    assert _spec_learning_rate(result.files["updatable_head"]) == pytest.approx(section["chosen"])


def test_text_files_and_their_mistakes(tmp_path):
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"text": "a", "label": "positive"}\n\n{"text": "b"}\n', encoding="utf-8")
    assert read_texts(jsonl) == [("a", "positive"), ("b", None)]
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("text,label\nfirst,negative\nsecond,\n", encoding="utf-8")
    assert read_texts(csv_file) == [("first", "negative"), ("second", None)]
    txt = tmp_path / "t.txt"
    txt.write_text("one\n\ntwo\n", encoding="utf-8")
    assert read_texts(txt) == [("one", None), ("two", None)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{oops\n', encoding="utf-8")
    with pytest.raises(LearningRateTextsError, match=r"bad.jsonl:2: invalid JSON"):
        read_texts(bad)
    with pytest.raises(LearningRateTextsError, match=r"t.csv2.*not found"):
        read_texts(tmp_path / "t.csv2")
    with pytest.raises(LearningRateTextsError, match=r"labels \['spam'\] are not the model's labels"):
        targets_for([("x", "spam")], np.array([0]), LABELS, "t.jsonl")
    assert targets_for([("x", None), ("y", "neutral")], np.array([2, 0]), LABELS, "f")[0] == ["negative", "neutral"]


def test_pick_takes_the_lowest_finite_final_loss_and_the_smaller_rate_on_a_tie():
    assert pick({0.1: [2.0, 0.5], 0.01: [2.0, 1.0], 1.0: [2.0, float("nan")]}) == 0.1
    assert pick({0.1: [2.0, 0.5], 0.01: [2.0, 0.5]}) == 0.01
    with pytest.raises(ValueError, match="no candidate learning rate"):
        pick({0.1: [float("inf")]})
