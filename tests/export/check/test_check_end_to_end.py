"""run_checks on real exports of tiny random BERT / MobileBERT students: everything passes, with numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.export_test_utils import LABELS, MAX_LENGTH, WORDS

from export.check import CHECK_JSON, CheckConfig, run_checks

ALL = ["shape", "parity", "parity-reference", "extreme-inputs", "updatable-lint", "simulated-update", "fp16"]


def _statuses(report) -> dict:
    return {c.name: c.status for c in report.checks}


def test_bert_export_passes_every_check_including_mlx(bert_export, bert_dir, copy_export):
    from mlx_distill.predict import TextClassifier

    folder = copy_export(bert_export)
    mlx = TextClassifier(bert_dir, max_length=MAX_LENGTH)
    report = run_checks(folder, reference=mlx.probabilities_for_ids, reference_name="mlx")
    assert _statuses(report) == {name: "PASS" for name in ALL}, report.summary()
    assert report.passed
    # the student folder came from the manifest's source_model_dir
    assert report.model_dir == Path(bert_dir).resolve()

    parity = report.get("parity").details
    assert parity["baseline"].startswith("PyTorch shell") and parity["texts"] == 8
    assert parity["truncated_texts"] >= 1  # the long default sentence exceeds max_length 16
    rows = {row["artefact"]: row for row in parity["comparisons"]}
    assert set(rows) == {"Classifier.mlpackage", "UpdatablePipeline.mlmodel", "UpdatableHead.mlmodel"}
    for row in rows.values():
        assert row["max_abs_diff"] <= 1e-4 and row["argmax_agree"] == 8, row
    # the shipped package itself, executed by the ML Program interpreter (no NeuralNetwork twin)
    assert rows["Classifier.mlpackage"]["via"].startswith("export.runtime.mlprogram") and "fp32 as stored" in rows[
        "Classifier.mlpackage"]["via"]
    assert any("executed from their own packages" in note for note in parity["notes"])
    assert "Encoder.mlpackage" in rows["UpdatableHead.mlmodel"]["via"]
    assert parity["encoder"]["artefact"] == "Encoder.mlpackage" and parity["encoder"]["max_abs_diff"] <= 1e-4
    # the ML Programs hold the source model's own tensors (byte for byte, fp32 here)
    weights = parity["weights"]
    assert weights["Classifier.mlpackage"]["found"] == weights["Classifier.mlpackage"]["expected"] == 38
    assert weights["Encoder.mlpackage"]["found"] == 37  # no classifier.weight in the encoder

    reference = report.get("parity-reference").details
    assert {r["artefact"] for r in reference["comparisons"]} == set(rows) | {"PyTorch shell"}
    assert all(r["max_abs_diff"] <= 1e-4 for r in reference["comparisons"])

    extremes = report.get("extreme-inputs").details["cases"]
    assert set(extremes) == {"all_zeros", "all_padding", "cls_sep_only", "max_length", "random_ids", "out_of_vocabulary"}
    padding = extremes["all_padding"]["results"]
    assert set(padding) == {"PyTorch shell", "Classifier.mlpackage", "UpdatableHead.mlmodel",
                            "UpdatablePipeline.mlmodel", "mlx"}
    for result in padding.values():
        assert result["finite"] and result["max_sum_error"] <= 1e-4
    oov = extremes["out_of_vocabulary"]["results"]
    assert [r["raised"] for r in oov["mlx"]["rows"]] == [True, True, True]
    assert "token ids must be in [0, 66)" in oov["mlx"]["rows"][0]["error"]
    assert oov["PyTorch shell"]["passed"] is None and "refuses it" in oov["PyTorch shell"]["rows"][0]["behaviour"]
    assert f"index {len(WORDS)} outside" in oov["UpdatablePipeline.mlmodel"]["behaviour"]

    update = report.get("simulated-update").details["files"]
    for name in ("UpdatableHead.mlmodel", "UpdatablePipeline.mlmodel"):
        record = update[name]
        assert len(record["epoch_losses"]) == 3  # the model's own epochs (ExportConfig(epochs=3))
        assert record["final_loss"] < record["initial_loss"]
        assert record["optimizer"] == "sgd" and record["examples"] == 8
        assert set(record["targets"]) <= set(LABELS)
        assert all(t != p for t, p in zip(record["targets"], record["predicted_before"]))
    assert update["UpdatableHead.mlmodel"]["inputs_from"] == "Encoder.mlpackage"

    lint = report.get("updatable-lint").details["files"]
    assert lint == {"UpdatableHead.mlmodel": {"violations": []}, "UpdatablePipeline.mlmodel": {"violations": []}}

    fp16 = report.get("fp16").details["models"]
    assert fp16["UpdatablePipeline.mlmodel"]["fp16_claimed"] is True  # recommended_compute_units "all"
    for verdict in fp16.values():
        assert verdict["safe"] and verdict["outputs_finite"] and not verdict["nan_layers"]
        assert verdict["output_max_abs_diff"] <= 0.05

    written = json.loads((folder / CHECK_JSON).read_text())
    assert written == json.loads(report.to_json())
    assert written["passed"] is True and written["counts"] == {"PASS": 7, "FAIL": 0, "SKIP": 0}
    summary = report.summary().splitlines()
    assert [line.split()[:2] for line in summary[1:8]] == [["PASS", name] for name in ALL]


def test_mobilebert_fp16_export_passes_without_a_reference(mobilebert_fp16_export, copy_export, tmp_path):
    folder = copy_export(mobilebert_fp16_export)
    out = tmp_path / "reports" / "mobilebert.json"
    report = run_checks(folder, config=CheckConfig(update_epochs=5), output_path=out)
    assert report.passed, report.summary()
    statuses = _statuses(report)
    assert statuses.pop("parity-reference") == "SKIP"
    assert statuses == {name: "PASS" for name in ALL if name != "parity-reference"}
    assert "python -m mlx_distill check" in report.get("parity-reference").message
    assert out.is_file() and not (folder / CHECK_JSON).exists()

    rows = {row["artefact"]: row for row in report.get("parity").details["comparisons"]}
    assert set(rows) == {"Classifier.mlpackage", "UpdatableHead.mlmodel"}  # no pipeline in this export
    # fp16 programs executed as stored: their drift is reported and bounded by fp16_tolerance
    for row in rows.values():
        assert row["tolerance"] == 0.05 and 1e-5 < row["max_abs_diff"] <= 0.05, row
    encoder = report.get("parity").details["encoder"]
    assert encoder["tolerance"] == 0.05 and 1e-5 < encoder["max_abs_diff"] <= 0.05
    weights = report.get("parity").details["weights"]["Classifier.mlpackage"]  # stored as fp16 in this export
    assert weights["passed"] and weights["found"] == weights["expected"] > 50

    fp16 = report.get("fp16").details["models"]
    for name in ("Classifier.mlpackage (ML Program, fp16 as stored)", "Encoder.mlpackage (ML Program, fp16 as stored)"):
        verdict = fp16[name]
        assert verdict["fp16_claimed"] is True and verdict["safe"] and 0 < verdict["output_max_abs_diff"] <= 0.05
        # the fp16 mask value (-1e4) keeps masked attention logits finite: nothing overflows, nothing to excuse
        assert verdict["overflow_layers"] == [] and verdict["saturating_overflows_excused"] == []
    update = report.get("simulated-update").details["files"]["UpdatableHead.mlmodel"]
    assert update["optimizer"] == "adam" and len(update["epoch_losses"]) == 5
    assert update["final_loss"] < update["initial_loss"]


def test_without_the_source_model_the_packages_still_run_but_the_check_fails(bert_export, copy_export):
    """Without the student folder every shipped file still runs (the ML Programs from their own
    packages) and they are compared with each other, but nothing is compared with the PyTorch shell:
    the report must not say OK."""
    folder = copy_export(bert_export)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["source_model_dir"] = str(folder / "moved-away")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report = run_checks(folder, config=CheckConfig(only=("parity", "extreme-inputs", "fp16")))
    assert not report.passed and [c.name for c in report.failed] == ["parity"], report.summary()
    assert report.model_dir is None and "no longer exists" in report.notes[0]
    parity = report.get("parity")
    assert "pass --model DIR" in parity.message and "not checked: PyTorch shell" in parity.message
    assert parity.details["baseline"].startswith("Classifier.mlpackage (export.runtime.mlprogram")
    assert "no longer exists" in parity.details["skipped"]["shell"]
    rows = {row["artefact"]: row for row in parity.details["comparisons"]}
    assert set(rows) == {"UpdatablePipeline.mlmodel", "UpdatableHead.mlmodel"}
    assert "Encoder.mlpackage" in rows["UpdatableHead.mlmodel"]["via"]
    assert all(row["max_abs_diff"] <= 1e-4 for row in rows.values())
    assert set(report.get("extreme-inputs").details["artefacts"]) == {"classifier", "updatable_head", "updatable_pipeline"}


def test_config_validation():
    with pytest.raises(ValueError, match="unknown checks"):
        CheckConfig(only=("shapes",))
    with pytest.raises(ValueError, match="update_epochs"):
        CheckConfig(update_epochs=0)
    with pytest.raises(ValueError, match="no non-empty text"):
        CheckConfig(texts=["  "])
    assert len(CheckConfig().check_texts) == 8
    assert np.unique([len(t) for t in CheckConfig().check_texts]).size == 8


def test_a_teacher_shaped_mobilebert_passes_and_its_unread_projection_is_not_required(tmp_path):
    """``distill --init teacher-layers`` writes a MobileBERT with BERT-block switches: no trigram input
    and embedding width = hidden width, so transformers keeps an embedding_transformation that no
    forward reads. It cannot be in any package; every tensor that is read must be."""
    from export.folder import ExportConfig, export_folder
    from tests.helpers.export_test_utils import make_model_folder, mobilebert_config

    config = mobilebert_config(trigram_input=False, embedding_size=32, hidden_size=32, intra_bottleneck_size=32,
                               use_bottleneck=False, num_feedforward_networks=1, normalization_type="layer_norm",
                               hidden_act="gelu", num_attention_heads=4, intermediate_size=48)
    make_model_folder(tmp_path / "student", config, seed=4)
    folder = tmp_path / "export"
    export_folder(tmp_path / "student", folder, ExportConfig(max_length=MAX_LENGTH, build_updatable_pipeline=False))
    report = run_checks(folder, config=CheckConfig(update_epochs=2))
    assert report.passed, report.summary()
    weights = report.get("parity").details["weights"]
    for name in ("Classifier.mlpackage", "Encoder.mlpackage"):
        assert weights[name]["passed"] and weights[name]["found"] == weights[name]["expected"] > 20, weights[name]
        assert not any("embedding_transformation" in t for t in weights[name]["missing"])
