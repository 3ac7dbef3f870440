"""The boundary contract: for the same Hugging Face folder, the MLX model and the PyTorch export
shell give the same logits (fp32, max abs diff <= 1e-4) — whether transformers or MLX wrote it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mlx.core as mx
from export.shell.load import load_shell_from_folder
from tests.helpers.hf_models import LABELS, TINY_BERT, TINY_MOBILEBERT, padded_batch, save_hf_classifier
from mlx_distill.models import MobileBertConfig, build_classifier, load_classifier, save_pretrained

LENGTH = 16
CASES = {
    "bert": ("bert", TINY_BERT),
    "mobilebert": ("mobilebert", TINY_MOBILEBERT),
    "mobilebert_layer_norm_gelu": ("mobilebert", {**TINY_MOBILEBERT, "normalization_type": "layer_norm", "hidden_act": "gelu"}),
    "mobilebert_no_trigram_no_pooler_act": ("mobilebert", {**TINY_MOBILEBERT, "trigram_input": False, "classifier_activation": False}),
    "mobilebert_bottleneck_attention_4ffn": ("mobilebert", {**TINY_MOBILEBERT, "use_bottleneck_attention": True, "num_feedforward_networks": 4}),
}


def _both(folder):
    ids, mask = padded_batch(120, [16, 9, 2], LENGTH, seed=4)
    shell = load_shell_from_folder(folder, LENGTH).eval()
    with torch.no_grad():
        shell_logits = np.concatenate([shell(ids[i : i + 1].int(), mask[i : i + 1].int()).numpy() for i in range(3)])
    ours = load_classifier(folder).model(mx.array(ids.numpy().astype(np.int32)), mx.array(mask.numpy().astype(np.int32)))
    return np.array(ours.logits), shell_logits


@pytest.mark.parametrize("case", list(CASES))
def test_transformers_folder_mlx_vs_shell(tmp_path, case):
    kind, config = CASES[case]
    save_hf_classifier(kind, tmp_path, LABELS, **config)
    mlx_logits, shell_logits = _both(tmp_path)
    assert np.abs(mlx_logits - shell_logits).max() <= 1e-4
    assert shell_logits.std() > 1e-3


def test_mlx_written_student_loads_in_shell(tmp_path):
    model = build_classifier(MobileBertConfig(**TINY_MOBILEBERT, id2label=dict(enumerate(LABELS))), seed=7)
    save_pretrained(model, tmp_path)
    mlx_logits, shell_logits = _both(tmp_path)
    assert np.abs(mlx_logits - shell_logits).max() <= 1e-4
