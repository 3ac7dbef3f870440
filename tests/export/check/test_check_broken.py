"""Broken exports give failing reports whose messages name the fault (and `python -m export.check` exits 1)."""

from __future__ import annotations

import json
from pathlib import Path

import coremltools as ct
import pytest

from export.check import run_checks
from export.check.__main__ import main


def _edit_head(folder: Path, edit) -> None:
    path = folder / "UpdatableHead.mlmodel"
    spec = ct.models.utils.load_spec(str(path))
    edit(spec.neuralNetworkClassifier, spec)
    ct.models.utils.save_spec(spec, str(path))


def _report(folder: Path) -> dict:
    return json.loads((folder / "check.json").read_text())


def _check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def test_non_updatable_head_fails_lint_update_and_shape(bert_export, copy_export, capsys):
    folder = copy_export(bert_export)

    def freeze(nn, spec):
        spec.isUpdatable = False
        for layer in nn.layers:
            if layer.isUpdatable:
                layer.isUpdatable = False
                layer.innerProduct.weights.isUpdatable = False
                layer.innerProduct.bias.isUpdatable = False

    _edit_head(folder, freeze)
    assert main([str(folder)]) == 1
    assert "NOT OK" in capsys.readouterr().out
    report = _report(folder)
    lint = _check(report, "updatable-lint")
    assert lint["status"] == "FAIL"
    assert lint["message"].startswith("UpdatableHead.mlmodel: [updatable-model-type] spec.isUpdatable is false")
    assert lint["details"]["files"]["UpdatablePipeline.mlmodel"]["violations"] == []
    update = _check(report, "simulated-update")
    assert update["status"] == "FAIL" and "UpdatableHead.mlmodel: the simulated update failed" in update["message"]
    assert "UpdatablePipeline.mlmodel" not in update["message"]  # the pipeline's own head is still updatable
    shape = _check(report, "shape")
    assert shape["status"] == "FAIL" and "UpdatableHead.mlmodel: is_updatable: manifest True vs model False" in shape["message"]
    assert _check(report, "parity")["status"] == "PASS"  # predictions are unchanged


def test_softmaxnd_before_the_loss_is_named(bert_export, copy_export):
    folder = copy_export(bert_export)

    def softmax_nd(nn, spec):
        layer = next(layer for layer in nn.layers if layer.WhichOneof("layer") == "softmax")
        layer.softmaxND.axis = -3  # same numbers (rank-5 channel axis), the layer type ct.convert emits

    _edit_head(folder, softmax_nd)
    report = run_checks(folder)
    assert not report.passed
    lint = report.get("updatable-lint")
    assert lint.passed is False and lint.details["rules"] == ["backpropagation-path", "ce-input-from-softmax"]
    assert "UpdatableHead.mlmodel: [ce-input-from-softmax]" in lint.message and "'softmaxND'" in lint.message
    update = report.get("simulated-update")
    assert update.passed is False and "softmaxND" in update.message and "UpdatableHead.mlmodel" in update.message
    # the interface and the numbers are untouched: only the updatable checks catch it
    assert report.get("shape").passed and report.get("parity").passed and report.get("extreme-inputs").passed


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupted_file_is_named(bert_export, copy_export, damage):
    folder = copy_export(bert_export)
    path = folder / "UpdatableHead.mlmodel"
    data = path.read_bytes()
    path.write_bytes({"garbage": b"\x00not a model\xff" * 40, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    report = run_checks(folder)
    assert not report.passed
    shape = report.get("shape")
    expected = "holds no model (empty or truncated file)" if damage == "empty" else "cannot be read as a Core ML model"
    assert shape.passed is False and f"UpdatableHead.mlmodel {expected}" in shape.message
    for name in ("parity", "updatable-lint", "simulated-update"):
        check = report.get(name)
        assert check.passed is False and "UpdatableHead.mlmodel" in check.message, (name, check.message)
    assert report.get("fp16").passed  # fp16 is not used; an unreadable file is the other checks' finding


@pytest.mark.parametrize("role, feature, bad", [
    ("classifier", "input_ids", [1, 32]),
    ("updatable_head", "pooled_embedding", [1, 32]),  # the seed's "(1, 768) vs (768)" trap
])
def test_manifest_that_disagrees_with_the_model_fails(bert_export, copy_export, role, feature, bad):
    folder = copy_export(bert_export)
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = manifest["models"][role]
    next(f for f in entry["inputs"] if f["name"] == feature)["shape"] = bad
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert main([str(folder)]) == 1
    report = _report(folder)
    shape = _check(report, "shape")
    model_shape = [1, 16] if role == "classifier" else [32]
    assert f"{entry['file']}: inputs[{feature}].shape: manifest {bad} vs model {model_shape}" in shape["message"]
    if role == "updatable_head":
        # fed exactly as the manifest says, the head refuses the [1, 32] array, as the device would
        for name in ("parity", "simulated-update"):
            check = _check(report, name)
            assert check["status"] == "FAIL" and "pooled_embedding" in check["message"] and "(1, 32)" in check["message"]


def test_missing_file_and_missing_manifest(bert_export, copy_export, tmp_path):
    import shutil

    folder = copy_export(bert_export)
    shutil.rmtree(folder / "Encoder.mlpackage")
    report = run_checks(folder, config=None)
    assert report.get("shape").passed is False
    assert "Encoder.mlpackage is missing from the export folder" in report.get("shape").message
    assert report.get("parity").passed is False and "Encoder.mlpackage" in report.get("parity").message

    (folder / "manifest.json").unlink()
    report = run_checks(folder)
    assert not report.passed and report.get("shape").message == f"manifest.json is missing from {folder}"
    assert all(c.passed is None for c in report.checks if c.name != "shape")
    assert main([str(tmp_path / "nowhere")]) == 2


def test_update_epochs_outside_the_models_allowed_set_fails(bert_export, copy_export):
    from export.check import CheckConfig

    folder = copy_export(bert_export)
    report = run_checks(folder, config=CheckConfig(update_epochs=4, only=("simulated-update",)))
    (check,) = report.checks
    assert check.passed is False and "epochs=4 is not in the model's allowed set" in check.message


def test_a_classifier_from_another_model_is_caught_by_its_weights(bert_export, mobilebert_fp16_export, copy_export):
    """Off macOS the Classifier runs as a twin built from the source model, so the swapped file's
    numbers cannot differ; its weight file gives it away."""
    import shutil

    folder = copy_export(bert_export)
    shutil.rmtree(folder / "Classifier.mlpackage")
    shutil.copytree(mobilebert_fp16_export.out_dir / "Classifier.mlpackage", folder / "Classifier.mlpackage")
    report = run_checks(folder)
    parity = report.get("parity")
    assert parity.passed is False
    assert "Classifier.mlpackage: 38 of 38 source tensors are not in its weights" in parity.message
    assert "bert.embeddings.word_embeddings.weight" in parity.message and "was it exported from" in parity.message
    twin = next(r for r in parity.details["comparisons"] if r["artefact"] == "Classifier.mlpackage")
    assert twin["max_abs_diff"] <= 1e-4  # the twin alone cannot tell
    assert parity.details["weights"]["Encoder.mlpackage"]["passed"]
    assert "Classifier.mlpackage: compute_precision: manifest 'fp32' vs model 'fp16'" in report.get("shape").message


def test_shipped_tokenizer_that_pads_to_another_length_fails(bert_export, copy_export):
    folder = copy_export(bert_export)
    tokenizer = folder / "tokenizer.json"
    if not tokenizer.exists():
        pytest.skip("this export ships no tokenizer.json")
    data = json.loads(tokenizer.read_text())
    data["padding"]["strategy"] = {"Fixed": 128}  # what a teacher's file (all-MiniLM) would say
    data["truncation"]["max_length"] = 128
    tokenizer.write_text(json.dumps(data))
    report = run_checks(folder)
    shape = report.get("shape")
    assert shape.passed is False and "tokenizer.json: as shipped it produces 128 ids" in shape.message
