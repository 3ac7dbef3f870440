"""Core ML predictions vs the PyTorch shell. Core ML runs only on macOS; elsewhere these skip.

On macOS, ``ct.models.MLModel(path)`` compiles the model, so Core ML itself also validates the
updatable head and pipeline here (the linter's rules, enforced by the real runtime).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import coremltools as ct

from tests.helpers.export_test_utils import LABELS, MAX_LENGTH, WORDS, padded_batch
from export.shell import load_shell_from_folder

pytestmark = pytest.mark.skipif(sys.platform != "darwin", reason="Core ML prediction needs macOS")

CPU = ct.ComputeUnit.CPU_ONLY


def _rows():
    ids, mask = padded_batch(len(WORDS), [MAX_LENGTH, 7, 2], seed=13)
    return [(ids[i:i + 1], mask[i:i + 1]) for i in range(ids.shape[0])]


def _probs(out: dict) -> np.ndarray:
    return np.array([out["label_probs"][label] for label in LABELS])


@pytest.mark.parametrize("export_name, folder_name, tol", [
    ("bert_export", "bert_dir", 1e-4),
    ("mobilebert_fp16_export", "mobilebert_dir", 2e-2),
])
def test_classifier_matches_shell(request, export_name, folder_name, tol):
    result, folder = request.getfixturevalue(export_name), request.getfixturevalue(folder_name)
    shell = load_shell_from_folder(folder, MAX_LENGTH)
    model = ct.models.MLModel(str(result.files.get("classifier")), compute_units=CPU)
    for ids, mask in _rows():
        with torch.no_grad():
            expected = torch.softmax(shell(ids, mask), dim=-1)[0].numpy()
        out = model.predict({"input_ids": ids.numpy().astype(np.int32), "attention_mask": mask.numpy().astype(np.int32)})
        assert np.isfinite(_probs(out)).all()
        assert np.abs(_probs(out) - expected).max() <= tol
        assert out["label"] == LABELS[int(expected.argmax())]


def test_encoder_and_head_compose_like_the_shell(bert_export, bert_dir):
    shell = load_shell_from_folder(bert_dir, MAX_LENGTH)
    encoder = ct.models.MLModel(str(bert_export.files.get("encoder")), compute_units=CPU)
    head = ct.models.MLModel(str(bert_export.files.get("updatable_head")), compute_units=CPU)
    for ids, mask in _rows():
        with torch.no_grad():
            pooled = shell.pooled(ids, mask)[0].numpy()
            expected = torch.softmax(shell(ids, mask), dim=-1)[0].numpy()
        out = encoder.predict({"input_ids": ids.numpy().astype(np.int32), "attention_mask": mask.numpy().astype(np.int32)})
        assert out["pooled_embedding"].shape == (32,)
        assert np.abs(out["pooled_embedding"] - pooled).max() <= 1e-4
        head_out = head.predict({"pooled_embedding": out["pooled_embedding"]})
        assert np.abs(_probs(head_out) - expected).max() <= 1e-4


def test_updatable_pipeline_matches_shell(bert_export, bert_dir):
    shell = load_shell_from_folder(bert_dir, MAX_LENGTH)
    pipeline = ct.models.MLModel(str(bert_export.files.get("updatable_pipeline")), compute_units=CPU)
    for ids, mask in _rows():
        with torch.no_grad():
            expected = torch.softmax(shell(ids, mask), dim=-1)[0].numpy()
        out = pipeline.predict({"input_ids": ids.numpy().astype(np.float32),
                                "attention_mask": mask.numpy().astype(np.float32)})
        assert np.abs(_probs(out) - expected).max() <= 1e-4
