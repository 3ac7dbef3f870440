"""Saving, loading, round trips through transformers, and the errors a user sees for bad folders."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file, save_file

import mlx.core as mx
from tests.helpers.hf_models import LABELS, TINY_BERT, TINY_MOBILEBERT, padded_batch, save_hf_classifier
from mlx_distill.models import (
    MobileBertConfig, build_classifier, load_classifier, load_encoder, read_config, resolve_model_dir, save_pretrained,
)


def _logits_mlx(folder, ids, mask):
    model = load_classifier(folder).model
    return np.array(model(mx.array(ids.numpy().astype(np.int32)), mx.array(mask.numpy().astype(np.int32))).logits)


def test_mlx_save_loads_in_transformers(tmp_path, minilm_dir):
    config = MobileBertConfig(**TINY_MOBILEBERT, id2label=dict(enumerate(LABELS)))
    model = build_classifier(config, seed=3)
    save_pretrained(model, tmp_path / "student", tokenizer_dir=minilm_dir)
    assert (tmp_path / "student" / "vocab.txt").exists() and (tmp_path / "student" / "tokenizer.json").exists()
    saved_config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert saved_config["id2label"] == {"0": "business", "1": "sport", "2": "weather"}
    assert saved_config["label2id"] == {"business": 0, "sport": 1, "weather": 2}

    hf = transformers.MobileBertForSequenceClassification.from_pretrained(
        tmp_path / "student", attn_implementation="eager"
    ).eval()
    ids, mask = padded_batch(120, [9, 16, 4], 16)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits.numpy()
    ours = np.array(model(mx.array(ids.numpy().astype(np.int32)), mx.array(mask.numpy().astype(np.int32))).logits)
    assert np.abs(ours - ref).max() <= 1e-4
    assert hf.config.id2label == {0: "business", 1: "sport", 2: "weather"}


@pytest.mark.parametrize("kind,config", [("bert", TINY_BERT), ("mobilebert", TINY_MOBILEBERT)])
def test_transformers_save_loads_in_mlx_and_resaves_identically(tmp_path, kind, config):
    hf = save_hf_classifier(kind, tmp_path / "hf", LABELS, **config)
    ids, mask = padded_batch(120, [16, 3], 16, seed=1)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits.numpy()
    assert np.abs(_logits_mlx(tmp_path / "hf", ids, mask) - ref).max() <= 1e-4
    # MLX -> disk -> MLX keeps every tensor bit-identical and the config fields.
    loaded = load_classifier(tmp_path / "hf")
    save_pretrained(loaded.model, tmp_path / "again")
    before, after = load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert set(after) == set(before) - {k for k in before if k.endswith("position_ids")}
    for name, value in after.items():
        np.testing.assert_array_equal(value, before[name])
    assert read_config(tmp_path / "again").to_dict()["id2label"] == read_config(tmp_path / "hf").to_dict()["id2label"]


def test_sharded_checkpoint_loads(tmp_path):
    save_hf_classifier("bert", tmp_path / "one", LABELS, **TINY_BERT)
    tensors = load_file(tmp_path / "one" / "model.safetensors")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2], "model-00002-of-00002.safetensors": names[len(names) // 2 :]}
    (tmp_path / "sharded").mkdir()
    shutil.copy(tmp_path / "one" / "config.json", tmp_path / "sharded")
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, tmp_path / "sharded" / file, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (tmp_path / "sharded" / "model.safetensors.index.json").write_text(json.dumps(index))
    ids, mask = padded_batch(120, [7], 16)
    np.testing.assert_array_equal(_logits_mlx(tmp_path / "sharded", ids, mask), _logits_mlx(tmp_path / "one", ids, mask))


def test_fresh_head_for_new_labels_and_encoder_only(tmp_path, minilm_dir):
    loaded = load_classifier(minilm_dir, labels=["neg", "pos"])
    assert loaded.weights.initialised == ["classifier.bias", "classifier.weight"]
    assert loaded.config.labels == ["neg", "pos"]
    with pytest.raises(ValueError, match="not a sequence classifier"):
        load_classifier(minilm_dir)
    save_hf_classifier("bert", tmp_path, LABELS, **TINY_BERT)
    assert load_classifier(tmp_path, labels=LABELS).weights.initialised == []  # same labels: keep the head
    assert load_classifier(tmp_path, labels=["a", "b"]).weights.initialised == ["classifier.bias", "classifier.weight"]
    encoder = load_encoder(tmp_path)
    assert "classifier.weight" in encoder.weights.ignored


def test_missing_and_unexpected_weights_are_listed(tmp_path):
    save_hf_classifier("bert", tmp_path, LABELS, **TINY_BERT)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["bert.encoder.layer.1.output.dense.weight"]
    tensors["bert.encoder.layer.1.extra.weight"] = np.zeros(3, np.float32)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError) as err:
        load_classifier(tmp_path)
    message = str(err.value)
    assert "missing (1): bert.encoder.layer.1.output.dense.weight" in message
    assert "unexpected (1): bert.encoder.layer.1.extra.weight" in message


def test_wrong_shapes_and_bad_configs_are_clear(tmp_path):
    save_hf_classifier("bert", tmp_path, LABELS, **TINY_BERT)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "intermediate_size": 40}))
    with pytest.raises(ValueError, match="shapes disagree"):
        load_classifier(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(ValueError, match="model_type 'roberta' is not supported"):
        load_classifier(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "position_embedding_type": "relative_key"}))
    with pytest.raises(ValueError, match="absolute position embeddings only"):
        load_classifier(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        load_classifier(tmp_path)


def test_pytorch_bin_only_points_to_converter(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    torch.save({}, tmp_path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="python -m export.convert_bin"):
        load_encoder(tmp_path)


def test_repo_id_resolves_from_local_hf_cache(tmp_path, monkeypatch, minilm_dir):
    # Lay out a real Hugging Face hub cache entry (refs + snapshot), as `hf download` would.
    repo = tmp_path / "hub" / "models--acme--tiny-bert"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef0123456789abcdef01234567")
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        shutil.copy(minilm_dir / name, snapshot / name)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_dir("acme/tiny-bert") == snapshot
    assert load_encoder("acme/tiny-bert").config.hidden_size == 384
    monkeypatch.delenv("HF_HUB_OFFLINE")  # even when online, a cache miss never reaches the network
    with pytest.raises(FileNotFoundError, match="no Hugging Face repo 'acme/missing' in the local cache.*hf download acme/missing"):
        resolve_model_dir("acme/missing")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model_dir(str(tmp_path / "nowhere"))
