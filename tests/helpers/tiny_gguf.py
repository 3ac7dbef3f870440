"""Write small, valid llama-architecture GGUF files with the ``gguf`` package's own writer.

Why: the real GGUF we have (SmolLM2, Q4_1) does not exercise the K-quant path (Q4_K, Q6_K), which
``mx.load`` cannot read and the converter dequantises with ``gguf``. These files hold random but
valid quantised blocks (block scales set to small finite values) and a byte-level BPE tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
NO_SYSTEM = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
             + CHATML)


def write_tiny_gguf(path: Path, quant: str = "Q4_K", arch: str = "llama", hidden: int = 256, layers: int = 1,
                    seed: int = 0, block_scale: float = 0.01, chat_template: str | None = None) -> Path:
    """``block_scale``: the fp16 scale written into every quantised block (nan makes a damaged file)."""
    import gguf
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    rng = np.random.default_rng(seed)
    qtype = GGMLQuantizationType[quant]
    block, block_bytes = GGML_QUANT_SIZES[qtype]
    tokens = list(bytes_to_unicode().values()) + ["he", "<|im_start|>", "<|im_end|>"]
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_uint32(f"{arch}.block_count", layers)
    writer.add_uint32(f"{arch}.context_length", 512)
    writer.add_uint32(f"{arch}.embedding_length", hidden)
    writer.add_uint32(f"{arch}.feed_forward_length", hidden)
    writer.add_uint32(f"{arch}.attention.head_count", 4)
    writer.add_uint32(f"{arch}.attention.head_count_kv", 2)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    writer.add_float32(f"{arch}.rope.freq_base", 10000.0)
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.add_string("tokenizer.ggml.pre", "default")
    writer.add_array("tokenizer.ggml.tokens", tokens)
    writer.add_array("tokenizer.ggml.token_type", [1] * 257 + [3, 3])
    writer.add_array("tokenizer.ggml.merges", ["h e"])
    writer.add_uint32("tokenizer.ggml.bos_token_id", 257)
    writer.add_uint32("tokenizer.ggml.eos_token_id", 258)
    writer.add_string("tokenizer.chat_template", chat_template or CHATML)

    def quantised(rows: int, cols: int) -> np.ndarray:
        data = rng.integers(0, 256, size=(rows, cols // block, block_bytes), dtype=np.uint8)
        # every block carries fp16 scales (d, and m/dmin): random bytes could be inf/nan, so set them
        scale = np.frombuffer(np.float16(block_scale).tobytes(), dtype=np.uint8)
        offset = block_bytes - 2 if quant == "Q6_K" else 0  # Q6_K stores d last
        head = 4 if quant in ("Q4_1", "Q5_1", "Q2_K", "Q4_K", "Q5_K") else 2
        for k in range(0, head, 2):
            data[:, :, offset + k:offset + k + 2] = scale
        return data.reshape(rows, -1)

    def add(name: str, rows: int, cols: int) -> None:
        writer.add_tensor(name, quantised(rows, cols), raw_dtype=qtype)

    add("token_embd.weight", len(tokens), hidden)
    for i in range(layers):
        for part in ("attn_q", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            add(f"blk.{i}.{part}.weight", hidden, hidden)
        for part in ("attn_k", "attn_v"):
            add(f"blk.{i}.{part}.weight", hidden // 2, hidden)
        for part in ("attn_norm", "ffn_norm"):
            writer.add_tensor(f"blk.{i}.{part}.weight", np.ones(hidden, dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
