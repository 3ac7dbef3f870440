"""Teacher cache: stores what the teacher computes, is keyed by what it depends on, and is reused."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mlx.core as mx
from tests.helpers.hf_models import LABELS, save_hf_classifier, save_real_vocab_bert
from mlx_distill.data import Example
from mlx_distill.models import load_classifier
from mlx_distill.tokenizer import TextTokenizer
from mlx_distill.train.batching import EncodedDataset
from mlx_distill.train.teacher_cache import CacheSpec, TeacherCache

TEXTS = ["Rain tonight in the hills.", "Markets closed higher.", "A late winner for the home side.", "Sunny."]


@pytest.fixture()
def teacher_dir(tmp_path, minilm_dir):
    return save_real_vocab_bert(tmp_path / "teacher", LABELS, minilm_dir, layers=3)


def _dataset(folder, max_length):
    examples = [Example(t, LABELS[i % 3], f"mem:{i}") for i, t in enumerate(TEXTS)]
    return EncodedDataset.build(examples, TextTokenizer.from_dir(folder, max_length), LABELS)


def test_cache_contents_key_and_reuse(teacher_dir, tmp_path):
    teacher = load_classifier(teacher_dir)
    data = _dataset(teacher_dir, 16)
    spec = CacheSpec(hidden_layers=(0, 3), attention_layers=(2,), mean_heads=True, batch_size=3)
    cache = TeacherCache.build(teacher, data, spec, tmp_path / "cache")
    assert not cache.reused
    out = teacher.model(mx.array(data.input_ids), mx.array(data.attention_mask), output_hidden_states=True,
                        output_attentions=True)
    np.testing.assert_allclose(cache.logits, np.array(out.logits), atol=1e-6)
    # Per-token outputs match the full-length forward at real tokens (the teacher ran on each batch
    # cut to its longest row).
    real = data.attention_mask.astype(bool)
    hidden = np.asarray(cache.hidden[3], dtype=np.float32)
    np.testing.assert_allclose(hidden[real], np.array(out.hidden_states[3])[real], atol=2e-3, rtol=1e-3)
    assert cache.hidden[3].dtype == np.float16 and cache.attention[2].shape == (4, 1, 16, 16)
    maps, expected = np.asarray(cache.attention[2], np.float32), np.array(out.attentions[1].mean(axis=1, keepdims=True))
    pairs = real[:, None, :, None] & real[:, None, None, :]
    np.testing.assert_allclose(maps[pairs], expected[pairs], atol=1e-3)
    assert not maps[~pairs].any() and not hidden[~real].any(), "padding is stored as zeros"

    batch = cache.batch(np.array([2, 0]))
    np.testing.assert_allclose(np.array(batch["teacher_logits"]), cache.logits[[2, 0]])
    assert set(batch) == {"teacher_logits", "teacher_hidden.0", "teacher_hidden.3", "teacher_attention.2"}

    again = TeacherCache.build(teacher, data, spec, tmp_path / "cache")
    assert again.reused and again.key == cache.key
    np.testing.assert_array_equal(again.logits, cache.logits)

    # Anything the outputs depend on changes the key: max length, texts, what is stored, the weights.
    assert TeacherCache.build(teacher, _dataset(teacher_dir, 12), spec, tmp_path / "cache").key != cache.key
    assert TeacherCache.build(teacher, data.subset(np.array([0, 1])), spec, tmp_path / "cache").key != cache.key
    assert TeacherCache.build(teacher, data, CacheSpec(hidden_layers=(3,)), tmp_path / "cache").key != cache.key
    save_hf_classifier("bert", teacher_dir, LABELS, seed=5, vocab_size=30522, hidden_size=32, num_hidden_layers=3,
                       num_attention_heads=4, intermediate_size=48, max_position_embeddings=64)
    retrained = load_classifier(teacher_dir)
    assert TeacherCache.build(retrained, data, spec, tmp_path / "cache").key != cache.key
    assert not list((tmp_path / "cache").glob(".*")), "no staging, backup or journal left behind"


def test_multi_shard_cache_reads_rows_from_memory_maps(teacher_dir, tmp_path, monkeypatch):
    import mlx_distill.train.teacher_cache as teacher_cache

    teacher = load_classifier(teacher_dir)
    data = _dataset(teacher_dir, 16)
    spec = CacheSpec(hidden_layers=(2,), attention_layers=(1,), mean_heads=True, batch_size=2)
    single = TeacherCache.build(teacher, data, spec, tmp_path / "one")
    monkeypatch.setattr(teacher_cache, "SHARD_ROWS", 3)  # 4 rows -> shards of 3 and 1
    sharded = TeacherCache.build(teacher, data, spec, tmp_path / "many")
    assert len(list((tmp_path / "many" / sharded.key).glob("shard-*.safetensors"))) == 2
    assert isinstance(sharded.hidden[2].parts[0], np.memmap)
    rows = np.array([3, 0, 2, 3])
    a, b = single.batch(rows), sharded.batch(rows)
    assert set(a) == set(b)
    for name in a:  # rows batched differently run at other lengths: equal to float rounding (fp16 ulp)
        np.testing.assert_allclose(np.array(a[name]), np.array(b[name]), rtol=1e-3, atol=1e-5, err_msg=name)


def test_a_damaged_cache_is_detected_and_rebuilt(teacher_dir, tmp_path, capfd):
    teacher = load_classifier(teacher_dir)
    data = _dataset(teacher_dir, 16)
    spec = CacheSpec(hidden_layers=(3,), batch_size=2)
    cache = TeacherCache.build(teacher, data, spec, tmp_path / "cache")
    logits, hidden = cache.logits.copy(), np.array(cache.hidden[3])  # copies: the shards are damaged below
    del cache
    folder = tmp_path / "cache" / TeacherCache.build(teacher, data, spec, tmp_path / "cache").key
    manifest = json.loads((folder / "manifest.json").read_text())
    (shard,) = manifest["shards"]
    assert shard["bytes"] == (folder / shard["name"]).stat().st_size and len(shard["sha256"]) == 64
    capfd.readouterr()

    with open(folder / shard["name"], "r+b") as f:  # a truncated shard (a full disk, a copy cut short)
        f.truncate(shard["bytes"] // 2)
    rebuilt = TeacherCache.build(teacher, data, spec, tmp_path / "cache")
    assert not rebuilt.reused and "is damaged" in capfd.readouterr().err
    np.testing.assert_array_equal(rebuilt.logits, logits)

    raw = bytearray((folder / shard["name"]).read_bytes())  # same size, one flipped byte
    raw[-1] ^= 0xFF
    (folder / shard["name"]).write_bytes(bytes(raw))
    again = TeacherCache.build(teacher, data, spec, tmp_path / "cache")
    assert not again.reused and "does not match its checksum" in capfd.readouterr().err
    np.testing.assert_allclose(np.asarray(again.hidden[3]), hidden)
    assert TeacherCache.build(teacher, data, spec, tmp_path / "cache").reused


def test_shards_are_memory_mapped_where_safe_open_reads_them(tmp_path):
    """The memory maps sit where safetensors' own reader finds each tensor (mixed dtypes, several
    tensors, a metadata block); a dtype the cache never writes is refused by name."""
    from safetensors import safe_open

    from mlx_distill.train.teacher_cache import _memory_map

    rng = np.random.default_rng(0)
    tensors = {"logits": rng.normal(size=(5, 3)).astype(np.float32),
               "hidden.2": rng.normal(size=(5, 7, 4)).astype(np.float16),
               "attention.1": rng.random((5, 1, 7, 7)).astype(np.float16)}
    mx.save_safetensors(str(tmp_path / "shard.safetensors"), {k: mx.array(v) for k, v in tensors.items()},
                        metadata={"note": "x" * 13})
    maps = _memory_map(tmp_path / "shard.safetensors")
    assert set(maps) == set(tensors) and all(isinstance(m, np.memmap) for m in maps.values())
    with safe_open(tmp_path / "shard.safetensors", framework="numpy") as f:
        for name, values in tensors.items():
            np.testing.assert_array_equal(maps[name], f.get_tensor(name))
            np.testing.assert_array_equal(maps[name], values)
    mx.save_safetensors(str(tmp_path / "ints.safetensors"), {"logits": mx.array([[1, 2]], mx.int32)})
    with pytest.raises(ValueError, match="logits is I32, not a dtype the teacher cache writes"):
        _memory_map(tmp_path / "ints.safetensors")
