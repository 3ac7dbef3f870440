"""End-to-end ``export_folder`` on tiny BERT / MobileBERT folders; files checked via their specs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import coremltools as ct
from coremltools.proto import MIL_pb2, Model_pb2

from tests.helpers.export_test_utils import LABELS, MAX_LENGTH, WORDS, padded_batch
from mlx_distill.fileio import staged_directory
from export.convert.input_folder import ExportInputError
from export.runtime.neuralnetwork.pipelines import load_executor
from export.shell.common import FP16_MASK_VALUE
from export.folder import ExportConfig, export_folder
from export.shell import load_shell_from_folder
from export.updatable.rules import lint_spec

transformers = pytest.importorskip("transformers")



def _predict(spec, inputs):
    """(label, {label: probability}) from the saved spec, run by the NumPy NeuralNetwork runtime."""
    outputs = load_executor(spec).predict(inputs)
    return outputs[spec.description.predictedFeatureName], outputs[spec.description.predictedProbabilitiesName]

def _spec(path: Path) -> Model_pb2.Model:
    return ct.models.MLModel(str(path), skip_model_load=True).get_spec()


def _manifest(result) -> dict:
    return json.loads(result.manifest_path.read_text())


def _array(feature) -> tuple[list[int], int]:
    return list(feature.type.multiArrayType.shape), feature.type.multiArrayType.dataType


def _program_dtypes(spec: Model_pb2.Model) -> set[int]:
    return {out.type.tensorType.dataType
            for block in spec.mlProgram.functions["main"].block_specializations.values()
            for op in block.operations for out in op.outputs if out.type.WhichOneof("type") == "tensorType"}


def _fp16_constants(spec: Model_pb2.Model) -> list[float]:
    """Every scalar fp16 constant of an ML Program (stored as 2 raw bytes)."""
    out = []
    for block in spec.mlProgram.functions["main"].block_specializations.values():
        for op in block.operations:
            if op.type != "const":
                continue
            value = op.attributes["val"]
            raw = value.immediateValue.tensor.bytes.values
            if value.type.tensorType.dataType == MIL_pb2.DataType.FLOAT16 and len(raw) == 2:
                out.append(float(np.frombuffer(raw, dtype=np.float16)[0]))
    return out


def _classify_labels(spec: Model_pb2.Model) -> list[str]:
    for block in spec.mlProgram.functions["main"].block_specializations.values():
        for op in block.operations:
            if op.type == "classify":
                values = op.inputs["classes"].arguments[0].value.immediateValue.list.values
                return [v.immediateValue.tensor.strings.values[0] for v in values]
    raise AssertionError("no classify op")


# --- files and specs -----------------------------------------------------------------------------


def test_all_files_written_and_nothing_else(bert_export):
    names = sorted(p.name for p in bert_export.out_dir.iterdir())
    assert names == ["Classifier.mlpackage", "Encoder.mlpackage", "UpdatableHead.mlmodel", "UpdatablePipeline.mlmodel",
                     "manifest.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
    assert not [p for p in bert_export.out_dir.parent.iterdir() if p.name.startswith(".")], "staging left behind"
    assert bert_export.skipped == {}


def test_classifier_program_interface(bert_export):
    spec = _spec(bert_export.files.get("classifier"))
    assert spec.WhichOneof("Type") == "mlProgram" and not spec.isUpdatable
    inputs = {f.name: _array(f) for f in spec.description.input}
    assert inputs == {"input_ids": ([1, MAX_LENGTH], Model_pb2.ArrayFeatureType.INT32),
                      "attention_mask": ([1, MAX_LENGTH], Model_pb2.ArrayFeatureType.INT32)}
    outputs = {f.name: f.type.WhichOneof("Type") for f in spec.description.output}
    assert outputs == {"label": "stringType", "label_probs": "dictionaryType"}
    assert spec.description.predictedFeatureName == "label"
    assert _classify_labels(spec) == LABELS
    meta = spec.description.metadata
    assert json.loads(meta.userDefined["labels"]) == LABELS
    assert meta.userDefined["max_length"] == str(MAX_LENGTH)
    assert json.loads(meta.userDefined["tokenizer"])["special_token_ids"]["cls"] == WORDS.index("[CLS]")
    assert "BERT" in meta.shortDescription and meta.versionString == "1.0"
    assert MIL_pb2.DataType.FLOAT16 not in _program_dtypes(spec), "fp32 requested: no fp16 tensors"


def test_encoder_program_interface(bert_export):
    spec = _spec(bert_export.files.get("encoder"))
    (output,) = spec.description.output
    assert output.name == "pooled_embedding"
    assert _array(output) == ([32], Model_pb2.ArrayFeatureType.FLOAT32)


def test_updatable_head_spec(bert_export, bert_dir):
    from safetensors.torch import load_file

    spec = _spec(bert_export.files.get("updatable_head"))
    assert spec.isUpdatable and spec.specificationVersion >= 4
    assert spec.WhichOneof("Type") == "neuralNetworkClassifier"
    nn = spec.neuralNetworkClassifier
    assert list(nn.stringClassLabels.vector) == LABELS
    (updatable,) = [layer for layer in nn.layers if layer.isUpdatable]
    assert updatable.innerProduct.weights.isUpdatable and updatable.innerProduct.bias.isUpdatable
    state = load_file(str(bert_dir / "model.safetensors"))
    weight = np.asarray(updatable.innerProduct.weights.floatValue, np.float32).reshape(len(LABELS), 32)
    assert np.array_equal(weight, state["classifier.weight"].numpy())
    assert np.array_equal(np.asarray(updatable.innerProduct.bias.floatValue, np.float32), state["classifier.bias"].numpy())
    (loss,) = nn.updateParams.lossLayers
    softmax = next(layer for layer in nn.layers if layer.WhichOneof("layer") == "softmax")
    assert loss.categoricalCrossEntropyLossLayer.input == softmax.output[0] == "label_probs"
    training = {f.name: f.type.WhichOneof("Type") for f in spec.description.trainingInput}
    assert training == {"pooled_embedding": "multiArrayType", "label": "stringType"}
    sgd = nn.updateParams.optimizer.sgdOptimizer
    assert sgd.learningRate.defaultValue == pytest.approx(0.005)
    assert sgd.learningRate.range.minValue <= 0.005 <= sgd.learningRate.range.maxValue
    assert sgd.miniBatchSize.defaultValue == 4 and 4 in sgd.miniBatchSize.set.values
    assert nn.updateParams.epochs.defaultValue == 3 and 3 in nn.updateParams.epochs.set.values
    assert lint_spec(spec) == []


def test_encoder_output_feeds_head_input_unchanged(bert_export):
    """The seed's "(1, 768) vs (768)" trap: encoder output and head input have the same shape/type."""
    encoder_out = _spec(bert_export.files.get("encoder")).description.output[0]
    head_in = _spec(bert_export.files.get("updatable_head")).description.input[0]
    assert encoder_out.name == head_in.name
    assert encoder_out.type.SerializeToString() == head_in.type.SerializeToString()


def test_head_file_computes_the_shell_head(bert_export, bert_dir):
    """Run the saved .mlmodel's layers (NumPy) on real pooled embeddings: same probabilities as torch."""
    shell = load_shell_from_folder(bert_dir, MAX_LENGTH)
    ids, mask = padded_batch(len(WORDS), [MAX_LENGTH, 6, 3], seed=9)
    with torch.no_grad():
        pooled = shell.pooled(ids, mask)
        expected = torch.softmax(shell.head(pooled), dim=-1)
    spec = _spec(bert_export.files.get("updatable_head"))
    for row in range(3):
        label, probs = _predict(spec, {"pooled_embedding": pooled[row].numpy()})
        got = np.array([probs[name] for name in LABELS])
        assert np.abs(got - expected[row].numpy()).max() < 1e-5
        assert label == LABELS[int(expected[row].argmax())]


def test_updatable_pipeline_spec(bert_export):
    spec = _spec(bert_export.files.get("updatable_pipeline"))
    assert spec.isUpdatable and spec.WhichOneof("Type") == "pipelineClassifier"
    encoder, head = spec.pipelineClassifier.pipeline.models
    assert not encoder.isUpdatable and head.isUpdatable
    assert encoder.WhichOneof("Type") == "neuralNetwork"
    assert {f.name: _array(f) for f in spec.description.input} == {
        "input_ids": ([1, MAX_LENGTH], Model_pb2.ArrayFeatureType.FLOAT32),
        "attention_mask": ([1, MAX_LENGTH], Model_pb2.ArrayFeatureType.FLOAT32)}
    assert {f.name for f in spec.description.trainingInput} == {"input_ids", "attention_mask", "label"}
    assert encoder.description.output[0].type.SerializeToString() == head.description.input[0].type.SerializeToString()
    assert lint_spec(spec) == []


def _contains_float32(spec: Model_pb2.Model, value: float) -> bool:
    import struct

    return struct.pack("<f", value) in spec.SerializeToString()


def test_pipeline_mask_value_depends_on_the_fp16_check(bert_export, overflow_export):
    """NN encoders may run in fp16 on GPU/ANE: a passed check gets the fp16-safe mask (-1e4); a
    failed one keeps float32's minimum (exact) and the manifest says cpuOnly."""
    safe = _spec(bert_export.files.get("updatable_pipeline"))
    assert _contains_float32(safe, FP16_MASK_VALUE) and not _contains_float32(safe, float(np.finfo(np.float32).min))
    assert _manifest(bert_export)["models"]["updatable_pipeline"]["recommended_compute_units"] == "all"
    unsafe = _spec(overflow_export.files.get("updatable_pipeline"))
    assert _contains_float32(unsafe, float(np.finfo(np.float32).min))


# --- manifest ------------------------------------------------------------------------------------


def test_manifest_matches_the_specs(bert_export):
    manifest = _manifest(bert_export)
    assert manifest["labels"] == LABELS and manifest["max_length"] == MAX_LENGTH
    assert set(manifest["models"]) == {"classifier", "encoder", "updatable_head", "updatable_pipeline"}
    for role, entry in manifest["models"].items():
        spec = _spec(bert_export.out_dir / entry["file"])
        for key, features in (("inputs", spec.description.input), ("outputs", spec.description.output),
                              ("training_inputs", spec.description.trainingInput)):
            listed = entry.get(key, [])
            assert [f["name"] for f in listed] == [f.name for f in features], (role, key)
            for item, feature in zip(listed, features):
                if feature.type.WhichOneof("Type") == "multiArrayType":
                    shape, dtype = _array(feature)
                    assert item["shape"] == shape
                    assert item["dtype"] == {Model_pb2.ArrayFeatureType.INT32: "int32",
                                             Model_pb2.ArrayFeatureType.FLOAT32: "float32"}[dtype]
        assert entry["is_updatable"] == spec.isUpdatable
    head = manifest["models"]["updatable_head"]["update"]
    assert head["optimizer"] == "sgd" and head["updatable_layers"] == ["classifier"]
    assert head["learning_rate"] == {"default": 0.005, "min": 1e-6, "max": 1.0}
    assert head["mini_batch_size"]["default"] == 4 and head["epochs"]["default"] == 3
    assert head["loss"]["input"] == "label_probs"
    assert manifest["models"]["updatable_head"]["class_labels"] == LABELS
    assert manifest["models"]["classifier"]["class_labels"] == LABELS


def test_manifest_tokenizer_and_vocab(bert_export):
    tokenizer = _manifest(bert_export)["tokenizer"]
    vocab = (bert_export.out_dir / tokenizer["vocab_file"]).read_text(encoding="utf-8").split("\n")[:-1]
    assert vocab == WORDS and tokenizer["vocab_size"] == len(WORDS)
    assert tokenizer["lowercase"] is True
    assert tokenizer["special_tokens"]["cls"] == {"token": "[CLS]", "id": WORDS.index("[CLS]")}
    assert tokenizer["special_tokens"]["pad"]["id"] == 0
    hf = transformers.AutoTokenizer.from_pretrained(str(bert_export.out_dir))  # copied files are usable as-is
    assert hf("The cat")["input_ids"] == [WORDS.index(t) for t in ("[CLS]", "the", "cat", "[SEP]")]


def test_manifest_records_precision_decision(bert_export):
    precision = _manifest(bert_export)["precision"]
    assert precision["requested"] == precision["used"] == "fp32"
    assert precision["fp16_check"]["safe"] is True
    assert 0 < precision["fp16_check"]["max_abs_activation"] < 65504


# --- fp16 -----------------------------------------------------------------------------------------


def test_mobilebert_fp16_when_proven_safe(mobilebert_fp16_export):
    result = mobilebert_fp16_export
    assert result.precision_used == "fp16" and result.fp16_check.safe
    for path in (result.files.get("classifier"), result.files.get("encoder")):
        spec = _spec(path)
        assert MIL_pb2.DataType.FLOAT16 in _program_dtypes(spec)
        assert spec.description.metadata.userDefined["compute_precision"] == "fp16"
        constants = _fp16_constants(spec)
        # the attention mask constant is finite in fp16 (never -inf: 0 * -inf = NaN on device) and leaves
        # room for the scores added to it (-65504 + a score overflows to -inf; all-padding rows gave NaN)
        assert FP16_MASK_VALUE in constants and all(np.isfinite(constants)) and -65504.0 not in constants
    manifest = _manifest(result)
    assert manifest["models"]["classifier"]["compute_precision"] == "fp16"
    assert manifest["models"]["updatable_head"]["update"]["optimizer"] == "adam"
    assert "updatable_pipeline" not in manifest["models"]


def test_mobilebert_overflow_falls_back_to_fp32(overflow_export):
    result = overflow_export
    assert result.precision_requested == "fp16" and result.precision_used == "fp32"
    assert not result.fp16_check.safe and result.fp16_check.max_abs_activation > 65504
    assert any("unsafe" in w for w in result.warnings)
    spec = _spec(result.files.get("classifier"))
    assert MIL_pb2.DataType.FLOAT16 not in _program_dtypes(spec)
    manifest = _manifest(result)
    assert manifest["precision"]["used"] == "fp32" and manifest["precision"]["fp16_check"]["safe"] is False
    assert manifest["models"]["updatable_pipeline"]["recommended_compute_units"] == "cpuOnly"
    assert "encoder" not in manifest["models"]


# --- bad input ------------------------------------------------------------------------------------


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_missing_config_is_named(bert_dir, tmp_path):
    folder = _copy(bert_dir, tmp_path / "m")
    (folder / "config.json").unlink()
    with pytest.raises(ExportInputError, match="missing config.json"):
        export_folder(folder, tmp_path / "out")


def test_unsupported_model_type_is_named(bert_dir, tmp_path):
    folder = _copy(bert_dir, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(ExportInputError, match="'model_type' = 'roberta'"):
        export_folder(folder, tmp_path / "out")


def test_missing_labels_are_named(bert_dir, tmp_path):
    folder = _copy(bert_dir, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config.pop("id2label")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportInputError, match="id2label"):
        export_folder(folder, tmp_path / "out")


def test_base_model_without_classifier_weights_is_named(tmp_path, minilm_dir):
    folder = tmp_path / "base"
    folder.mkdir()
    for name in ("model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(minilm_dir / name, folder / name)
    config = json.loads((minilm_dir / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "id2label": {"0": "a", "1": "b"}}))
    with pytest.raises(ExportInputError, match="classifier.weight"):
        export_folder(folder, tmp_path / "out")


def test_bin_only_folder_points_to_convert_bin(bert_dir, tmp_path):
    folder = _copy(bert_dir, tmp_path / "m")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ExportInputError, match="python -m export.convert_bin"):
        export_folder(folder, tmp_path / "out")


def test_missing_tokenizer_is_named(bert_dir, tmp_path):
    folder = _copy(bert_dir, tmp_path / "m")
    for name in ("vocab.txt", "tokenizer.json"):
        (folder / name).unlink()
    with pytest.raises(ExportInputError, match="tokenizer.json or vocab.txt"):
        export_folder(folder, tmp_path / "out")


def test_refuses_to_replace_a_folder_that_is_not_an_export(bert_dir, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ExportInputError, match="not a previous export"):
        export_folder(bert_dir, out, ExportConfig(max_length=MAX_LENGTH))
    assert (out / "notes.txt").read_text() == "keep me"


def test_failed_staging_leaves_previous_output_untouched(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "manifest.json").write_text("{}")
    with pytest.raises(RuntimeError):
        with staged_directory(target) as stage:
            (stage / "half-written").write_text("x")
            raise RuntimeError("conversion failed")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in target.iterdir()] == ["manifest.json"]


def test_leftovers_of_a_killed_export_are_swept_and_a_lost_export_restored(tmp_path):
    target = tmp_path / "out"
    # A kill after the old export was renamed away, before the new one was renamed in: the journal
    # names the backup and the staging folder, which both still exist.
    (tmp_path / ".out.old-abc").mkdir()
    (tmp_path / ".out.old-abc" / "manifest.json").write_text('{"previous": true}')
    (tmp_path / ".out.staging-xyz").mkdir()
    (tmp_path / ".out.staging-xyz" / "Classifier.mlpackage").write_text("half")
    (tmp_path / ".out.swap.json").write_text('{"backup": ".out.old-abc", "staging": ".out.staging-xyz"}')
    with pytest.raises(RuntimeError):
        with staged_directory(target):
            assert (target / "manifest.json").read_text() == '{"previous": true}'  # restored first
            raise RuntimeError("this export fails too")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with staged_directory(target) as stage:
        (stage / "manifest.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (target / "manifest.json").read_text() == "{}"


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="precision"):
        ExportConfig(precision="int8")
    with pytest.raises(ValueError, match=r"^--learning-rate 5.0 is outside its allowed range"):
        ExportConfig(learning_rate=5.0)
    with pytest.raises(ValueError, match=r"^--update-batch-size must be > 0, got 0"):
        ExportConfig(batch_size=0)


def test_export_package_never_imports_mlx():
    """export/ must work where MLX is not installed (Intel Macs, CI Linux without mlx): importing mlx fails
    here, and of mlx_distill only the mlx-free file writing (and the package's BLAS preload) is loaded."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['mlx'] = None; import export.folder, export.convert_bin, export.updatable.rules, "
            "export.runtime.neuralnetwork, export.check; "
            "print(sorted(m for m, v in sys.modules.items() if v is not None and (m == 'mlx' or m.startswith(('mlx.', 'mlx_')))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['mlx_distill', 'mlx_distill.blas', 'mlx_distill.fileio']"


def test_pipeline_spec_computes_the_shell_with_the_numpy_runtime(bert_export, bert_dir):
    """Off macOS, execute the saved UpdatablePipeline.mlmodel (NN encoder + head) with export.runtime.neuralnetwork."""
    pipelines = pytest.importorskip("export.runtime.neuralnetwork.pipelines")
    shell = load_shell_from_folder(bert_dir, MAX_LENGTH)
    executor = pipelines.load_executor(str(bert_export.files.get("updatable_pipeline")))
    ids, mask = padded_batch(len(WORDS), [MAX_LENGTH, 7, 2], seed=3)
    with torch.no_grad():
        expected = torch.softmax(shell(ids, mask), dim=-1).numpy()
    for row in range(ids.shape[0]):
        out = executor.predict({"input_ids": ids[row:row + 1].numpy().astype(np.float32),
                                "attention_mask": mask[row:row + 1].numpy().astype(np.float32)})
        got = np.array([out["label_probs"][label] for label in LABELS])
        assert np.abs(got - expected[row]).max() <= 1e-4
        assert out["label"] == LABELS[int(expected[row].argmax())]


def test_pipeline_whose_stages_disagree_breaks_the_wiring_rule(bert_export):
    spec = _spec(bert_export.files.get("updatable_pipeline"))
    _, head = spec.pipelineClassifier.pipeline.models
    head.description.input[0].type.multiArrayType.shape[:] = [1, int(head.description.input[0].type.multiArrayType.shape[0])]
    rules = [v.rule for v in lint_spec(spec)]
    assert "pipeline-wiring" in rules and "input-rank" in rules
    spec = _spec(bert_export.files.get("updatable_pipeline"))
    spec.description.output[0].name = "nowhere"
    assert [v.rule for v in lint_spec(spec)] == ["pipeline-wiring"]
