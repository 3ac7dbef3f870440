"""Fixtures for the export-check tests: private copies of the session exports (never edit those)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture
def copy_export(tmp_path):
    """copy_export(result_or_path, name) -> a fresh copy of an export folder in this test's tmp_path."""

    def make(source, name: str = "export") -> Path:
        src = Path(getattr(source, "out_dir", source))
        dst = tmp_path / name
        shutil.copytree(src, dst)
        return dst

    return make


@pytest.fixture(scope="session")
def bert_shell_probabilities(bert_dir):
    """The BERT student's probabilities through the PyTorch shell, as a reference-shaped callable."""
    from tests.helpers.export_test_utils import MAX_LENGTH

    from export.shell import load_shell_from_folder

    shell = load_shell_from_folder(bert_dir, MAX_LENGTH)

    def probabilities(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = shell(torch.from_numpy(np.asarray(input_ids, np.int64)),
                           torch.from_numpy(np.asarray(attention_mask, np.int64)))
        return torch.softmax(logits, dim=-1).numpy()

    return probabilities
