"""MLX models vs transformers' PyTorch implementation: same safetensors, fp32, padded batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mlx.core as mx
from tests.helpers.hf_models import LABELS, TINY_BERT, TINY_MOBILEBERT, padded_batch, save_hf_classifier
from mlx_distill.models import load_classifier

TOL = 1e-4

MOBILEBERT_SWITCHES = {
    "defaults": {},
    "no_trigram": {"trigram_input": False},
    "no_trigram_no_projection": {"trigram_input": False, "embedding_size": 32},
    "bottleneck_attention": {"use_bottleneck_attention": True},
    "no_shared_key_query": {"key_query_shared_bottleneck": False, "intra_bottleneck_size": 32},
    "no_bottleneck": {"use_bottleneck": False},
    "layer_norm": {"normalization_type": "layer_norm"},
    "one_ffn": {"num_feedforward_networks": 1},
    "four_ffn": {"num_feedforward_networks": 4},
    "no_classifier_activation": {"classifier_activation": False},
    "gelu": {"hidden_act": "gelu"},
    "gelu_new": {"hidden_act": "gelu_new"},
}


def _compare(hf_model, folder, vocab_size):
    ids, mask = padded_batch(vocab_size, [11, 5, 16], 16)
    with torch.no_grad():
        ref = hf_model(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    ours = load_classifier(folder).model(
        mx.array(ids.numpy().astype(np.int32)), mx.array(mask.numpy().astype(np.int32)),
        output_hidden_states=True, output_attentions=True,
    )
    diffs = {"logits": float(np.abs(np.array(ours.logits) - ref.logits.numpy()).max())}
    assert len(ours.hidden_states) == len(ref.hidden_states)
    for i, (a, b) in enumerate(zip(ours.hidden_states, ref.hidden_states)):
        diffs[f"hidden_{i}"] = float(np.abs(np.array(a) - b.numpy()).max())
    assert len(ours.attentions) == len(ref.attentions)
    for i, (a, b) in enumerate(zip(ours.attentions, ref.attentions)):
        diffs[f"attention_{i}"] = float(np.abs(np.array(a) - b.numpy()).max())
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= TOL, f"{worst} differs by {diffs[worst]:.3g} ({diffs})"
    # Guard against a vacuous pass: the logits must actually vary between inputs.
    assert float(ref.logits.std()) > 1e-3


def test_bert_parity(tmp_path):
    hf = save_hf_classifier("bert", tmp_path, LABELS, **TINY_BERT)
    _compare(hf, tmp_path, TINY_BERT["vocab_size"])


@pytest.mark.parametrize("switches", list(MOBILEBERT_SWITCHES), ids=list(MOBILEBERT_SWITCHES))
def test_mobilebert_parity(tmp_path, switches):
    config = {**TINY_MOBILEBERT, **MOBILEBERT_SWITCHES[switches]}
    hf = save_hf_classifier("mobilebert", tmp_path, LABELS, **config)
    _compare(hf, tmp_path, config["vocab_size"])
