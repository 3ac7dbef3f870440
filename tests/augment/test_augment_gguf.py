"""GGUF conversion on small files written by the ``gguf`` package, and --llm resolution."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.helpers.tiny_gguf import NO_SYSTEM, write_tiny_gguf

from mlx_distill.augment import AugmentConfig
from mlx_distill.augment.backends import MlxBackend, Request, resolve_model
from mlx_distill.augment.prompts import DEFAULT_TEMPLATE, PromptBuilder
from mlx_distill.augment.gguf_convert import convert_gguf


@pytest.mark.parametrize("quant", ["Q4_K", "Q6_K", "Q5_K", "Q8_0", "Q4_1"])
def test_k_quants_are_dequantised_into_a_loadable_mlx_lm_folder(tmp_path, quant):
    import gguf
    import mlx.core as mx
    from gguf.quants import dequantize
    from mlx_lm import load

    path = write_tiny_gguf(tmp_path / f"tiny-{quant}.gguf", quant)
    folder = convert_gguf(path, tmp_path / "cache")
    assert folder.parent == tmp_path / "cache" / "gguf" and folder.name.endswith("-float32-v1")
    config = json.loads((folder / "config.json").read_text())
    assert (config["hidden_size"], config["num_key_value_heads"], config["vocab_size"]) == (256, 2, 259)
    assert config["eos_token_id"] == [258] and config["tie_word_embeddings"] is True
    saved = mx.load(str(folder / "model.safetensors"))
    reader = gguf.GGUFReader(str(path))
    expected = {t.name: dequantize(t.data, t.tensor_type) for t in reader.tensors}
    np.testing.assert_array_equal(np.array(saved["model.layers.0.mlp.down_proj.weight"]),
                                  expected["blk.0.ffn_down.weight"])
    np.testing.assert_array_equal(np.array(saved["model.embed_tokens.weight"]), expected["token_embd.weight"])
    model, tokenizer = load(str(folder))
    ids = tokenizer.encode("hello there")
    assert ids[0] == 256  # the file's one merge ("h e") is applied
    logits = model(mx.array([ids]))
    assert logits.shape == (1, len(ids), 259) and bool(mx.isfinite(logits).all())
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                           tokenize=False)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_float16_is_a_separate_cache_entry(tmp_path):
    import mlx.core as mx

    path = write_tiny_gguf(tmp_path / "tiny.gguf", "Q4_K")
    half = convert_gguf(path, tmp_path / "cache", dtype="float16")
    assert half.name.endswith("-float16-v1")
    assert mx.load(str(half / "model.safetensors"))["model.norm.weight"].dtype == mx.float16
    with pytest.raises(ValueError, match="--gguf-dtype 'int4'"):
        convert_gguf(path, tmp_path / "cache", dtype="int4")


def test_unsupported_architecture_and_bad_files_are_one_clear_error(tmp_path):
    qwen = write_tiny_gguf(tmp_path / "qwen.gguf", "Q4_K", arch="qwen2")
    with pytest.raises(ValueError, match=r"qwen.gguf: GGUF architecture 'qwen2' is not supported .*mlx_lm convert"):
        convert_gguf(qwen, tmp_path / "cache")
    assert not list((tmp_path / "cache" / "gguf").iterdir())  # the staging folder was removed
    damaged = write_tiny_gguf(tmp_path / "nan.gguf", "Q8_0", block_scale=float("nan"))
    with pytest.raises(ValueError, match="nan.gguf: tensor token_embd.weight holds NaN or infinite values"):
        convert_gguf(damaged, tmp_path / "cache")
    assert not list((tmp_path / "cache" / "gguf").iterdir())
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a gguf file at all" * 10)
    with pytest.raises(ValueError, match="junk.gguf: not a readable GGUF file"):
        convert_gguf(junk, tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="--llm .*missing.gguf: no such .gguf file"):
        convert_gguf(tmp_path / "missing.gguf", tmp_path / "cache")


def test_llm_resolution_folder_cached_repo_id_and_missing(tmp_path, monkeypatch):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert resolve_model(str(folder)) == (folder, {"model": "my-model"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="folder has no config.json"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="no such folder or .gguf file"):
        resolve_model(str(tmp_path / "nothing-here"))

    # a Hugging Face cache laid out as huggingface_hub writes it, found without any network call
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    repo = tmp_path / "hf" / "hub" / "models--mlx-community--Tiny-Chat-4bit"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    found, info = resolve_model("mlx-community/Tiny-Chat-4bit")
    assert found == snapshot and info == {"model": "mlx-community/Tiny-Chat-4bit"}
    with pytest.raises(FileNotFoundError, match=r"mlx-community/Other-4bit: not in the local Hugging Face cache "
                                                r"\(mlx_distill never downloads\)"):
        resolve_model("mlx-community/Other-4bit")


def test_mlx_backend_folds_the_system_prompt_into_templates_that_refuse_it(tmp_path):
    path = write_tiny_gguf(tmp_path / "nosys.gguf", "Q8_0", chat_template=NO_SYSTEM)
    config = AugmentConfig(train="t.jsonl", out="o.jsonl", llm=str(path), cache_dir=str(tmp_path / "cache"),
                           max_tokens=3, system_prompt="Be brief.")
    backend = MlxBackend(config)
    prompt = PromptBuilder({"a": ["x y"]}, DEFAULT_TEMPLATE, "Be brief.", 1, 2, 0).build("a", 0)
    assert prompt.messages[0]["role"] == "system"
    (request, generation), = backend.generate([Request(prompt, 1)])
    assert request.prompt is prompt and 1 <= generation.tokens <= 3
    assert backend.info["model"] == "nosys.gguf" and len(backend.info["gguf_sha256"]) == 64
