"""Broken exports give failing reports whose messages name the fault (and `python -m export.check` exits 1)."""

from __future__ import annotations

import json
from pathlib import Path

import coremltools as ct
import numpy as np
import pytest

from export.check import CheckConfig, run_checks
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
    """The swapped file is executed itself: its numbers differ, and its weight file gives it away."""
    import shutil

    folder = copy_export(bert_export)
    shutil.rmtree(folder / "Classifier.mlpackage")
    shutil.copytree(mobilebert_fp16_export.out_dir / "Classifier.mlpackage", folder / "Classifier.mlpackage")
    report = run_checks(folder)
    parity = report.get("parity")
    assert parity.passed is False
    assert "Classifier.mlpackage: 38 of 38 source tensors are not in its weights" in parity.message
    assert "bert.embeddings.word_embeddings.weight" in parity.message and "was it exported from" in parity.message
    row = next(r for r in parity.details["comparisons"] if r["artefact"] == "Classifier.mlpackage")
    assert row["max_abs_diff"] > 0.01 and "export.runtime.mlprogram" in row["via"]
    assert "Classifier.mlpackage: max |Δp|" in parity.message
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


def _const_in_weight_file(package: Path, name_part: str):
    """(weight.bin path, byte offset of the data, value count) of the first fp32 blob const whose name has name_part."""
    from export.runtime.mlprogram.program import load_program

    program = load_program(package)
    for op in program.operations:
        value = op.attributes["val"] if op.type == "const" else None
        if value is not None and value.WhichOneof("value") == "blobFileValue" and name_part in op.outputs[0].name:
            size = 1
            for dim in value.type.tensorType.dimensions:
                size *= dim.constant.size
            blob = program.weights_dir / value.blobFileValue.fileName.replace("@model_path/", "")
            # a blob's 64-byte metadata record (sentinel, type, size, data offset) precedes its data
            header = np.frombuffer(blob.read_bytes()[value.blobFileValue.offset:value.blobFileValue.offset + 64], np.uint64)
            return blob, int(header[2]), size
    raise AssertionError(f"no blob const named like {name_part!r}")


def test_a_corrupted_constant_in_the_shipped_classifier_fails_check_naming_the_file(bert_export, copy_export):
    """One dense weight inside Classifier.mlpackage's weight.bin is scaled: the package itself is
    executed, so parity (and the weight search) fail naming that file, and the Encoder still passes."""
    folder = copy_export(bert_export)
    blob, offset, count = _const_in_weight_file(folder / "Classifier.mlpackage", "intermediate_dense_weight")
    data = bytearray(blob.read_bytes())
    values = np.frombuffer(bytes(data[offset:offset + 4 * count]), np.float32) * 3.0
    data[offset:offset + 4 * count] = values.astype(np.float32).tobytes()
    blob.write_bytes(bytes(data))
    report = run_checks(folder, config=CheckConfig(only=("parity",)))
    (parity,) = report.checks
    assert parity.passed is False
    row = next(r for r in parity.details["comparisons"] if r["artefact"] == "Classifier.mlpackage")
    assert row["max_abs_diff"] > 1e-3 and not row["passed"]
    assert parity.message.startswith("Classifier.mlpackage: max |Δp|")
    assert "Encoder.mlpackage" not in parity.message  # the other package is untouched and still matches
    assert not parity.details["weights"]["Classifier.mlpackage"]["passed"]


def test_an_op_outside_the_interpreter_fails_check_naming_the_op(bert_export, copy_export):
    """An op the interpreter does not implement is an error naming it, never a silent pass."""
    from coremltools.proto import Model_pb2

    folder = copy_export(bert_export)
    model_file = folder / "Classifier.mlpackage" / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model()
    spec.ParseFromString(model_file.read_bytes())
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    op = next(o for o in block.operations if o.type == "tanh")
    op.type = "atanh"
    model_file.write_bytes(spec.SerializeToString())
    report = run_checks(folder, config=CheckConfig(only=("parity", "extreme-inputs", "fp16")))
    for check in report.checks:
        assert check.passed is False, check.name
        assert "Classifier.mlpackage: MIL op 'atanh'" in check.message and "is not supported" in check.message
