"""User mistakes ``export`` must name correctly (issue 8): non-finite weights, a config.json or a
tokenizer that does not belong to the weights, flags named as the user typed them, the fp16
fall-back said once, and bugs never hidden behind a "skipped" updatable pipeline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from tests.helpers.export_test_utils import MAX_LENGTH, WORDS, label_maps, write_tokenizer
from export.convert.input_folder import ExportInputError, allowed_tokenizer_shortfall, read_model_folder
from export.folder import ExportConfig, _pipeline_unsupported, export_folder
from export.updatable.rules import UpdatableRuleError

transformers = pytest.importorskip("transformers")
REPO = Path(__file__).resolve().parents[2]
_ENV = {**os.environ, "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlx_distill", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=_ENV)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def nan_dir(bert_dir, tmp_path_factory) -> Path:
    """The BERT student with one NaN and one inf in a dense weight (as a diverged run leaves it)."""
    from safetensors.torch import load_file, save_file

    folder = _copy(bert_dir, tmp_path_factory.mktemp("nan") / "student")
    state = load_file(str(folder / "model.safetensors"))
    state["bert.encoder.layer.1.output.dense.weight"][0, 0] = float("nan")
    state["bert.encoder.layer.1.output.dense.weight"][3, 1] = float("inf")
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def _save_bert(folder: Path, vocab_size: int) -> Path:
    """A tiny BERT classifier with ``vocab_size`` embedding rows and the 65-token test tokenizer."""
    config = transformers.BertConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=16, max_position_embeddings=32,
                                     **label_maps())
    model = transformers.BertForSequenceClassification(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(str(folder), safe_serialization=True)
    write_tokenizer(folder)
    return folder


# --- non-finite weights --------------------------------------------------------------------------


def test_non_finite_weights_are_refused_before_any_conversion(nan_dir, tmp_path):
    with pytest.raises(ExportInputError) as caught:
        export_folder(nan_dir, tmp_path / "out", ExportConfig(max_length=MAX_LENGTH))
    message = str(caught.value)
    assert message.startswith(f"{nan_dir}: the weights are not finite: ")
    assert "bert.encoder.layer.1.output.dense.weight in model.safetensors has 2 of 2048 values NaN/inf" in message
    assert "diverged in training" in message and "lower learning rate" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == [], "nothing (not even a staging folder) may be written"


def test_cli_export_of_non_finite_weights_is_one_error_line(nan_dir, tmp_path):
    done = _cli("export", str(nan_dir), "--out", str(tmp_path / "out"), "--max-length", str(MAX_LENGTH))
    assert done.returncode == 1, done.stderr
    (line,) = _error_lines(done.stderr)
    assert "bert.encoder.layer.1.output.dense.weight" in line and "lower learning rate" in line
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


# --- vocabulary: config.json vs embedding matrix vs tokenizer -------------------------------------


def test_config_vocab_size_that_disagrees_with_the_embeddings_blames_the_config(bert_dir, tmp_path):
    folder = _copy(bert_dir, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 30}))
    with pytest.raises(ExportInputError) as caught:
        export_folder(folder, tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(f"{folder / 'config.json'}: 'vocab_size' is 30 but bert.embeddings.word_embeddings.weight")
    assert f"{folder / 'model.safetensors'} has {len(WORDS)} rows" in message
    assert f"set vocab_size to {len(WORDS)}" in message and "tokenizer" not in message


def test_tokenizer_far_smaller_than_the_embeddings_is_refused(tmp_path):
    folder = _save_bert(tmp_path / "m", vocab_size=30522)  # a real-size BERT vocabulary, 65-token tokenizer
    with pytest.raises(ExportInputError) as caught:
        read_model_folder(folder)
    message = str(caught.value)
    assert f"the tokenizer (tokenizer.json + tokenizer_config.json) has {len(WORDS)} tokens" in message
    assert "bert.embeddings.word_embeddings.weight in model.safetensors has 30522 rows" in message
    assert "wrong tokenizer files were copied" in message


def test_tokenizer_a_few_unused_rows_short_is_accepted(tmp_path):
    """Embedding tables padded to a multiple of 64/128 (or a few reserved slots) are normal."""
    rows = len(WORDS) + allowed_tokenizer_shortfall(len(WORDS))
    assert allowed_tokenizer_shortfall(len(WORDS)) == 128 and allowed_tokenizer_shortfall(250_000) == 2_500
    assert read_model_folder(_save_bert(tmp_path / "ok", vocab_size=rows)).tokenizer.vocab_size == len(WORDS)
    with pytest.raises(ExportInputError, match=f"has {rows + 1} rows"):
        read_model_folder(_save_bert(tmp_path / "short", vocab_size=rows + 1))


def test_tokenizer_larger_than_the_embeddings_is_still_refused(tmp_path):
    folder = _save_bert(tmp_path / "m", vocab_size=40)
    with pytest.raises(ExportInputError, match=f"has {len(WORDS)} tokens but .* has only 40 rows"):
        read_model_folder(folder)


# --- flags named as typed ------------------------------------------------------------------------


def test_max_length_error_names_the_flag():
    with pytest.raises(ValueError, match=r"^--max-length must be at least 2 \(got 0\)"):
        ExportConfig(max_length=0)
    with pytest.raises(ValueError, match=r"^--update-epochs must be > 0, got 0"):
        ExportConfig(epochs=0)
    assert ExportConfig.flag_for("max_length") == "--max-length"
    assert ExportConfig.flag_for("fp16_check_samples") == "ExportConfig.fp16_check_samples"


def test_cli_max_length_zero_is_one_line_naming_the_flag(bert_dir, tmp_path):
    done = _cli("export", str(bert_dir), "--out", str(tmp_path / "out"), "--max-length", "0")
    assert done.returncode == 1
    assert _error_lines(done.stderr) == ["error: --max-length must be at least 2 (got 0): every input holds [CLS] and [SEP]"]


def test_convert_bin_names_the_overwrite_flag(tmp_path, capsys):
    from export.convert_bin import main

    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep.txt").write_text("x")
    assert main([str(tmp_path / "src"), str(tmp_path / "dst")]) == 2
    assert "pass --overwrite to replace it" in capsys.readouterr().err
    assert (tmp_path / "dst" / "keep.txt").read_text() == "x"


# --- fp16 fall-back said once ----------------------------------------------------------------------


def test_fp16_fallback_is_one_note_not_a_python_warning(overflow_export_run):
    result, python_warnings = overflow_export_run
    assert [w for w in result.warnings if "fp16 requested but unsafe" in w] == result.warnings[:1]
    assert not [m for m in python_warnings if "fp16" in m], python_warnings


def test_cli_prints_the_fp16_fallback_once(overflowing_mobilebert_dir, tmp_path):
    done = _cli("export", str(overflowing_mobilebert_dir), "--out", str(tmp_path / "out"), "--precision", "fp16",
                "--max-length", str(MAX_LENGTH), "--no-pipeline")
    assert done.returncode == 0, done.stderr
    mentions = [line for line in done.stderr.splitlines() if "fp16 requested but unsafe" in line]
    assert len(mentions) == 1 and mentions[0].startswith("warning: fp16 requested but unsafe"), done.stderr
    assert "RuntimeWarning" not in done.stderr


# --- the optional updatable pipeline never hides a bug --------------------------------------------


def test_a_bug_while_building_the_pipeline_fails_the_export(bert_dir, tmp_path, monkeypatch):
    """Inject a bug (a TypeError) into the pipeline step: it must propagate, not become 'skipped'."""
    import export.folder as pipeline

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(pipeline, "convert_encoder_neuralnetwork", broken)
    out = tmp_path / "out"
    with pytest.raises(TypeError, match="unsupported operand"):
        export_folder(bert_dir, out, ExportConfig(max_length=MAX_LENGTH, build_classifier=False, build_encoder=False))
    assert list(tmp_path.iterdir()) == []


def test_only_named_limitations_skip_the_pipeline():
    assert _pipeline_unsupported(UpdatableRuleError("[backpropagation-path] reshape")).startswith(
        "it breaks Core ML's updatable-model rules")
    for exc in (TypeError("x"), KeyError("x"), RuntimeError("x")):
        assert _pipeline_unsupported(exc) is None
    try:  # raised by our own code, not by coremltools' NeuralNetwork backend: a bug
        raise NotImplementedError("our own gap")
    except NotImplementedError as exc:
        assert _pipeline_unsupported(exc) is None

    import coremltools as ct

    class PixelUnshuffle(torch.nn.Module):  # an op the NeuralNetwork format (iOS 13 opset) lacks
        def forward(self, x):
            return torch.nn.functional.pixel_unshuffle(x, 2)

    traced = torch.jit.trace(PixelUnshuffle().eval(), torch.rand(1, 1, 4, 4))
    with pytest.raises((NotImplementedError, ValueError)) as caught:
        ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(1, 1, 4, 4))], convert_to="neuralnetwork")
    reason = _pipeline_unsupported(caught.value)
    assert reason.startswith("coremltools cannot convert this encoder to a NeuralNetwork: ")
    assert "pixel_unshuffle" in reason and "\n" not in reason
