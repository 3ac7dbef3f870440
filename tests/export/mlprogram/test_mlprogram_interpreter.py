"""The NumPy ML Program interpreter runs the shipped packages as stored: numbers, precision, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from coremltools.proto import MIL_pb2, Model_pb2

from tests.helpers.export_test_utils import LABELS, MAX_LENGTH, WORDS, padded_batch
from export.runtime.mlprogram.fp16_emulation import fp16_report
from export.runtime.mlprogram.interpreter import MLProgramExecutor, OpExecutionError, UnsupportedOpError
from export.shell import load_shell_from_folder
from export.shell.common import FP16_MASK_VALUE

LENGTHS = [MAX_LENGTH, 9, 4, 2]


def _run(executor: MLProgramExecutor, ids: torch.Tensor, mask: torch.Tensor, output: str) -> np.ndarray:
    rows = []
    for i, m in zip(ids.numpy().astype(np.int32), mask.numpy().astype(np.int32)):
        out = executor.predict({"input_ids": i[None], "attention_mask": m[None]})[output]
        rows.append([out[label] for label in LABELS] if isinstance(out, dict) else np.asarray(out, np.float64))
    return np.asarray(rows, np.float64)


def _shell_outputs(model_dir: Path, mask_value=None):
    shell = load_shell_from_folder(model_dir, MAX_LENGTH, **({"mask_value": mask_value} if mask_value else {}))
    ids, mask = padded_batch(len(WORDS), LENGTHS)
    with torch.no_grad():
        return ids, mask, torch.softmax(shell(ids, mask).double(), -1).numpy(), shell.pooled(ids, mask).double().numpy()


def test_fp32_packages_match_the_pytorch_shell(bert_export, bert_dir):
    ids, mask, probs, pooled = _shell_outputs(bert_dir)
    classifier = MLProgramExecutor(bert_export.files["classifier"])
    encoder = MLProgramExecutor(bert_export.files["encoder"])
    got = _run(classifier, ids, mask, "label_probs")
    assert np.abs(got - probs).max() <= 1e-6
    assert np.abs(_run(encoder, ids, mask, "pooled_embedding") - pooled).max() <= 1e-5
    out = classifier.predict({"input_ids": ids[:1].numpy().astype(np.int32),
                              "attention_mask": mask[:1].numpy().astype(np.int32)})
    assert out["label"] == LABELS[int(np.argmax(got[0]))]  # classify: the arg-max's label
    assert not classifier.computes_in_fp16()


def test_fp16_package_computes_in_fp16_as_stored(mobilebert_fp16_export, mobilebert_dir):
    ids, mask, probs, _ = _shell_outputs(mobilebert_dir, FP16_MASK_VALUE)
    stored = MLProgramExecutor(mobilebert_fp16_export.files["classifier"])
    widened = MLProgramExecutor(mobilebert_fp16_export.files["classifier"], "fp32")
    assert stored.computes_in_fp16()
    sample = {"input_ids": ids[:1].numpy().astype(np.int32), "attention_mask": mask[:1].numpy().astype(np.int32)}
    blobs = stored.run(sample, keep_blobs=True).blobs
    linear = next(op.outputs[0].name for op in stored.program.operations if op.type == "linear")
    assert blobs[linear].dtype == np.float16  # held in half between ops, as the program declares
    assert widened.run(sample, keep_blobs=True).blobs[linear].dtype == np.float32
    drift = np.abs(_run(stored, ids, mask, "label_probs") - probs).max()
    assert 1e-5 < drift <= 0.05  # really fp16 (not silently fp32), and bounded
    report = fp16_report(mobilebert_fp16_export.files["classifier"],
                         [{"input_ids": i[None].numpy().astype(np.int32), "attention_mask": m[None].numpy().astype(np.int32)}
                          for i, m in zip(ids, mask)])
    assert report.safe and report.overflow_layers == () and report.output_max_abs_diff > 0


def test_fp32_program_emulated_in_fp16_names_the_overflowing_op(overflow_export):
    """The NoNorm MobileBERT (fp32 export after the fp16 fall-back) overflows fp16 inside its program."""
    ids, mask = padded_batch(len(WORDS), LENGTHS[:2])
    samples = [{"input_ids": i[None].numpy().astype(np.int32), "attention_mask": m[None].numpy().astype(np.int32)}
               for i, m in zip(ids, mask)]
    report = fp16_report(overflow_export.files["classifier"], samples)
    assert not report.safe and report.max_abs_activation > 65504
    assert report.first_overflow_layer and report.first_overflow_layer.endswith(")")  # "var (op type)"


def _copy_with(package: Path, tmp_path: Path, edit) -> Path:
    target = tmp_path / package.name
    shutil.copytree(package, target)
    manifest = json.loads((target / "Manifest.json").read_text())
    root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    model_file = target / "Data" / root
    spec = Model_pb2.Model()
    spec.ParseFromString(model_file.read_bytes())
    function = spec.mlProgram.functions["main"]
    edit(function.block_specializations[function.opset])
    model_file.write_bytes(spec.SerializeToString())
    return target


def test_an_unsupported_op_is_refused_when_the_package_is_loaded(bert_export, tmp_path):
    def rename(block):
        next(op for op in block.operations if op.type == "gelu").type = "erf"

    package = _copy_with(bert_export.files["classifier"], tmp_path, rename)
    with pytest.raises(UnsupportedOpError, match=r"Classifier.mlpackage: MIL op 'erf' \(op \d+, output '.*'\) is "
                                                 r"not supported by export.runtime.mlprogram"):
        MLProgramExecutor(package)


def test_an_id_beyond_the_embedding_table_is_an_error_naming_the_op(bert_export):
    classifier = MLProgramExecutor(bert_export.files["classifier"])
    ids = np.full((1, MAX_LENGTH), len(WORDS), np.int32)
    with pytest.raises(OpExecutionError, match=r"op \d+ 'gather' .* index 66 is outside 0..65"):
        classifier.predict({"input_ids": ids, "attention_mask": np.ones_like(ids)})


def test_an_inline_constant_is_read_from_the_program(bert_export, tmp_path):
    """Setting the (inline) layer_norm epsilon to a huge value changes the output: inline values are used."""
    def edit(block):
        names = {op.inputs["epsilon"].arguments[0].name for op in block.operations if op.type == "layer_norm"}
        for op in block.operations:
            if op.type == "const" and op.outputs[0].name in names:
                value = op.attributes["val"]
                value.immediateValue.tensor.ClearField("floats")
                value.immediateValue.tensor.floats.values.append(1e3)
                assert value.type.tensorType.dataType == MIL_pb2.DataType.FLOAT32

    package = _copy_with(bert_export.files["classifier"], tmp_path, edit)
    ids, mask = padded_batch(len(WORDS), LENGTHS[:1])
    original = _run(MLProgramExecutor(bert_export.files["classifier"]), ids, mask, "label_probs")
    edited = _run(MLProgramExecutor(package), ids, mask, "label_probs")
    assert np.abs(original - edited).max() > 1e-3
