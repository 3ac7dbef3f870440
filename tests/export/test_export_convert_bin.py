"""pytorch_model.bin -> model.safetensors conversion (tied weights, file copies, CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.export_test_utils import WORDS, bert_config, padded_batch, scramble, write_tokenizer
from export.convert_bin import ConvertBinError, convert_bin_folder, main

transformers = pytest.importorskip("transformers")
REPO = Path(__file__).resolve().parents[2]


def _bin_folder(folder: Path, masked_lm: bool = False) -> torch.nn.Module:
    """A folder as older transformers wrote it: config + pytorch_model.bin (+ tokenizer)."""
    config = bert_config()
    model = (transformers.BertForMaskedLM(config) if masked_lm
             else transformers.BertForSequenceClassification(config)).eval()
    scramble(model, 4)
    if masked_lm:
        model.tie_weights()
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    write_tokenizer(folder, write_vocab_txt=True)
    return model


def test_classifier_bin_converts_and_loads_identically(tmp_path):
    model = _bin_folder(tmp_path / "src")
    out = convert_bin_folder(tmp_path / "src", tmp_path / "dst")
    assert (out / "model.safetensors").is_file() and not (out / "pytorch_model.bin").exists()
    for name in ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        assert (out / name).read_bytes() == (tmp_path / "src" / name).read_bytes()
    reloaded = transformers.BertForSequenceClassification.from_pretrained(str(out)).eval()
    ids, mask = padded_batch(len(WORDS), [10, 4])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits,
                           reloaded(input_ids=ids, attention_mask=mask).logits)


def test_tied_weights_keep_every_name_as_its_own_tensor(tmp_path):
    from safetensors.torch import load_file

    model = _bin_folder(tmp_path / "src", masked_lm=True)
    state = model.state_dict()
    tied = state["cls.predictions.decoder.weight"]
    assert tied.data_ptr() == state["bert.embeddings.word_embeddings.weight"].data_ptr()
    convert_bin_folder(tmp_path / "src", tmp_path / "dst")
    written = load_file(str(tmp_path / "dst" / "model.safetensors"))
    assert set(written) == set(state)
    for key, value in state.items():
        assert torch.equal(written[key], value), key


def test_missing_bin_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(ConvertBinError, match="pytorch_model.bin"):
        convert_bin_folder(tmp_path / "src", tmp_path / "dst")
    assert main([str(tmp_path / "src"), str(tmp_path / "dst")]) == 2


def test_refuses_to_overwrite_a_non_empty_destination(tmp_path):
    _bin_folder(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep.txt").write_text("mine")
    with pytest.raises(ConvertBinError, match="not empty"):
        convert_bin_folder(tmp_path / "src", tmp_path / "dst")
    assert (tmp_path / "dst" / "keep.txt").read_text() == "mine"


def test_module_entry_point(tmp_path):
    _bin_folder(tmp_path / "src")
    result = subprocess.run([sys.executable, "-m", "export.convert_bin", str(tmp_path / "src"), str(tmp_path / "dst")],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "model.safetensors" in result.stdout
    assert (tmp_path / "dst" / "model.safetensors").is_file()
