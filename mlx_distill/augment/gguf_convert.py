"""Turn a ``.gguf`` file (what llama.cpp and Ollama users have on disk) into an mlx-lm folder, once.

Why a conversion and not a GGUF loader: mlx-lm loads folders (``config.json``, safetensors,
``tokenizer.json``), and so do ``mlx_lm.server`` and every other mlx-lm tool. Converting once into a
cache keyed by the file's SHA-256 makes the second run instant and lets the user point any mlx-lm
tool at the result.

What is read, and from where:

- weights: the ``gguf`` package's ``GGUFReader`` and ``gguf.quants.dequantize``, which handle every
  llama.cpp quantisation (Q4_0/Q4_1/Q8_0 and the K-quants such as Q4_K_M, which ``mx.load`` cannot
  read). They are written as float32/float16/bfloat16 (``dtype``): on this project's Linux CPU
  float32 generated fastest (fp16 and MLX-quantised weights were slower), and MLX's quantised
  kernels help only on Metal.
- config: the ``llama.*`` hyper-parameters. llama.cpp stores the query/key projections of the llama
  architecture permuted for its interleaved RoPE, so the folder says ``rope_traditional: true``
  (as mlx-examples' ``llms/gguf_llm`` does) instead of un-permuting the weights.
- tokenizer: ``tokenizer.json`` built by transformers' GGUF tokenizer converters from the metadata
  (read here with ``GGUFReader``: transformers' own GGUF reader imports torch), plus the chat
  template and special tokens in ``tokenizer_config.json``.

Supported: architecture ``llama`` (Llama 1-3, Mistral 7B, SmolLM/SmolLM2, TinyLlama ...). Other
architectures are refused with a message naming them; convert those with ``mlx_lm.convert`` from
the original Hugging Face checkpoint instead.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from mlx_distill.fileio import sha256_file

#: Bump when the folder layout changes, so caches made by an older converter are not reused.
CONVERTER_VERSION = 1
SUPPORTED_ARCHITECTURES = ("llama",)
DTYPES = ("float32", "float16", "bfloat16")

_NAME_MAP = (  # GGUF tensor name parts -> Hugging Face / mlx-lm names (llama)
    ("blk.", "model.layers."), ("ffn_gate", "mlp.gate_proj"), ("ffn_down", "mlp.down_proj"),
    ("ffn_up", "mlp.up_proj"), ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"), ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"), ("token_embd", "model.embed_tokens"),
    ("output_norm", "model.norm"), ("output", "lm_head"),
)
# End-of-turn markers of common chat templates: generation must stop at them, not only at EOS.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>", "<|endoftext|>")


def default_cache_dir() -> Path:
    """``$MLX_DISTILL_CACHE`` or ``~/.cache/mlx_distill`` (XDG_CACHE_HOME respected)."""
    if os.environ.get("MLX_DISTILL_CACHE"):
        return Path(os.environ["MLX_DISTILL_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlx_distill"




def convert_gguf(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None,
                 dtype: str = "float32", sha256: str | None = None) -> Path:
    """The mlx-lm folder for ``path`` under ``cache_dir/gguf/<sha>-<dtype>/``, converting on first use.

    The folder is assembled in a temporary sibling and renamed into place, so an interrupted
    conversion leaves nothing that a later run could mistake for a finished one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--llm {path}: no such .gguf file")
    if dtype not in DTYPES:
        raise ValueError(f"--gguf-dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    sha256 = sha256 or sha256_file(path)  # callers that record the hash pass it: one read of a GB file
    target = root / "gguf" / f"{sha256[:32]}-{dtype}-v{CONVERTER_VERSION}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_folder(path, staging, dtype)
        (staging / "source.json").write_text(json.dumps({"gguf": path.name, "dtype": dtype}) + "\n")
        try:
            os.replace(staging, target)
        except OSError:  # another process finished the same conversion first
            if not (target / "config.json").exists():
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _write_folder(path: Path, out: Path, dtype: str) -> None:
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # the gguf package raises ValueError/struct errors on non-GGUF bytes
        raise ValueError(f"--llm {path}: not a readable GGUF file ({exc})") from None
    meta = _metadata(reader)
    arch = meta.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"--llm {path}: GGUF architecture {arch!r} is not supported (supported: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}); convert the original Hugging Face checkpoint with "
            "`python -m mlx_lm convert` and pass that folder")
    weights = _weights(reader, path, dtype)
    config = _config(meta, weights, path)
    _save_weights(weights, out / "model.safetensors", dtype)
    tokenizer_config, eos_ids = _write_tokenizer(reader, meta, out)
    config["eos_token_id"] = eos_ids
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n")


def _metadata(reader) -> dict:
    """Scalar and string fields (big arrays such as the vocabulary are read separately)."""
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key.rsplit(".", 1)[-1] in ("tokens", "merges", "scores", "token_type"):
            continue
        try:
            meta[key] = field.contents()
        except Exception:  # an exotic field type this gguf version cannot decode; we do not need it
            continue
    return meta


def _rename(name: str) -> str:
    for old, new in _NAME_MAP:
        name = name.replace(old, new)
    return name


def _weights(reader, path: Path, dtype: str) -> dict[str, np.ndarray]:
    from gguf.quants import dequantize

    weights = {}
    for tensor in reader.tensors:
        try:
            with np.errstate(invalid="ignore", over="ignore"):  # damaged blocks are reported below
                array = dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError:
            raise ValueError(
                f"--llm {path}: tensor {tensor.name} uses {tensor.tensor_type.name}, which the gguf package "
                "cannot dequantise; re-quantise the model as Q4_K_M, Q8_0 or F16 with llama.cpp") from None
        if not np.isfinite(array).all():  # DESIGN.md: non-finite weights are never written as a model
            raise ValueError(f"--llm {path}: tensor {tensor.name} holds NaN or infinite values; the file is damaged")
        weights[_rename(tensor.name)] = np.ascontiguousarray(array, dtype=np.float32)
    return weights


def _config(meta: dict, weights: dict[str, np.ndarray], path: Path) -> dict:
    def need(key: str):
        if key not in meta:
            raise ValueError(f"--llm {path}: GGUF metadata has no {key!r}; the file looks incomplete")
        return meta[key]

    heads = int(need("llama.attention.head_count"))
    hidden = int(need("llama.embedding_length"))
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": int(need("llama.block_count")),
        "intermediate_size": int(need("llama.feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get("llama.attention.head_count_kv", heads)),
        "rms_norm_eps": float(need("llama.attention.layer_norm_rms_epsilon")),
        "vocab_size": int(weights["model.embed_tokens.weight"].shape[0]),
        "rope_theta": float(meta.get("llama.rope.freq_base", 10000.0)),
        "rope_traditional": True,  # llama.cpp permutes Q/K for interleaved RoPE (see module docstring)
        "max_position_embeddings": int(meta.get("llama.context_length", 4096)),
        "tie_word_embeddings": "lm_head.weight" not in weights,
    }
    if "llama.attention.key_length" in meta:
        config["head_dim"] = int(meta["llama.attention.key_length"])
    scaling = meta.get("llama.rope.scaling.type")
    if scaling == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": float(meta["llama.rope.scaling.factor"])}
    elif scaling not in (None, "none"):
        raise ValueError(f"--llm {path}: RoPE scaling {scaling!r} is not supported (only linear)")
    return config


def _save_weights(weights: dict[str, np.ndarray], file: Path, dtype: str) -> None:
    import mlx.core as mx

    arrays = {name: mx.array(value).astype(getattr(mx, dtype)) for name, value in weights.items()}
    mx.save_safetensors(str(file), arrays, metadata={"format": "mlx"})


def _tokenizer_dict(reader, meta: dict) -> tuple[dict, dict]:
    """What transformers' ``get_gguf_tokenizer`` builds, read through the ``gguf`` package."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING

    def field(key: str):
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    grouped = {}
    for group, renames in GGUF_TOKENIZER_MAPPING.items():
        grouped[group] = {name: value for key, name in renames.items()
                          if (value := field(f"tokenizer.{key}")) is not None}
    tokenizer, tokenizer_config = grouped["tokenizer"], grouped["tokenizer_config"]
    if "tokens" not in tokenizer:
        raise ValueError("GGUF metadata has no tokenizer.ggml.tokens; this file carries no tokenizer")
    if tokenizer.get("tokenizer_type") == "llama":
        tokenizer_config.setdefault("add_bos_token", True)  # llama.cpp's rule for sentencepiece files
    for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                      ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id")):
        token_id = meta.get(f"tokenizer.ggml.{key}")
        tokenizer_config[name] = tokenizer["tokens"][int(token_id)] if token_id is not None else None
    return tokenizer, tokenizer_config


def _write_tokenizer(reader, meta: dict, out: Path) -> tuple[dict, list[int]]:
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

    tokenizer_dict, tokenizer_config = _tokenizer_dict(reader, meta)
    backend, extra = convert_gguf_tokenizer(meta["general.architecture"], tokenizer_dict)
    backend.save(str(out / "tokenizer.json"))
    tokens = tokenizer_dict["tokens"]
    template = tokenizer_config.get("chat_template")
    eos_ids = []
    if tokenizer_config.get("eos_token") is not None:
        eos_ids.append(tokens.index(tokenizer_config["eos_token"]))
    for marker in _END_OF_TURN:
        if template and marker in template and marker in tokens and tokens.index(marker) not in eos_ids:
            eos_ids.append(tokens.index(marker))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **extra,
              **{k: v for k, v in tokenizer_config.items() if v is not None}}
    return config, eos_ids
