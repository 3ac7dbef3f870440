"""The PyTorch shell matches transformers (eager attention, fp32) and survives tracing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers.export_test_utils import MAX_LENGTH, WORDS, bert_config, mobilebert_config, padded_batch, scramble
from export.shell import build_shell, load_shell_from_folder, load_state_into
from export.shell.common import ShellConfigError, PooledEncoder
from export.shell.load import ShellLoadError

transformers = pytest.importorskip("transformers")

PARITY_TOL = 1e-4
LENGTHS = [MAX_LENGTH, 9, 4, 2]  # full, half, short and [CLS][SEP]-only rows -> padding in 3 of 4

MOBILEBERT_VARIANTS = {
    "default": {},
    "no_trigram": dict(trigram_input=False),
    "no_trigram_same_width": dict(trigram_input=False, embedding_size=32),
    "no_bottleneck": dict(use_bottleneck=False),
    "bottleneck_attention": dict(use_bottleneck_attention=True),
    "unshared_key_query": dict(key_query_shared_bottleneck=False, intra_bottleneck_size=32),
    "layer_norm": dict(normalization_type="layer_norm", layer_norm_eps=1e-7),
    "single_ffn": dict(num_feedforward_networks=1),
    "four_ffn": dict(num_feedforward_networks=4),
    "no_classifier_activation": dict(classifier_activation=False),
    "gelu": dict(hidden_act="gelu"),
    "gelu_new": dict(hidden_act="gelu_new"),
    "gelu_pytorch_tanh": dict(hidden_act="gelu_pytorch_tanh"),
}


def _reference_and_shell(config, seed: int):
    cls = (transformers.BertForSequenceClassification if config.model_type == "bert"
           else transformers.MobileBertForSequenceClassification)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    reference = cls(config).eval()
    scramble(reference, seed)
    shell = build_shell(config.to_dict(), MAX_LENGTH).eval()
    load_state_into(shell, reference.state_dict())
    return reference, shell


def _max_diff(reference, shell) -> tuple[float, float]:
    ids, mask = padded_batch(len(WORDS), LENGTHS)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).logits
        got = shell(ids, mask)
    return float((expected - got).abs().max()), float(expected.abs().max())


def test_bert_shell_matches_transformers_with_padding():
    reference, shell = _reference_and_shell(bert_config(hidden_act="gelu"), seed=11)
    diff, scale = _max_diff(reference, shell)
    assert scale > 0.1, "logits too small for the tolerance to mean anything"
    assert diff <= PARITY_TOL


@pytest.mark.parametrize("variant", sorted(MOBILEBERT_VARIANTS))
def test_mobilebert_shell_matches_transformers_for_each_switch(variant):
    reference, shell = _reference_and_shell(mobilebert_config(**MOBILEBERT_VARIANTS[variant]), seed=21)
    diff, scale = _max_diff(reference, shell)
    assert scale > 0.1
    assert diff <= PARITY_TOL, f"{variant}: max abs diff {diff}"


@pytest.mark.parametrize("config", [bert_config(), mobilebert_config(trigram_input=False)], ids=["bert", "mobilebert"])
def test_padding_does_not_leak_into_real_tokens(config):
    """Changing ids under attention_mask=0 must not change the logits (the mask is honoured).

    (With trigram_input MobileBERT does see the id after [SEP] - in transformers too - which is why
    the manifest says to pad with the pad id.)"""
    _, shell = _reference_and_shell(config, seed=5)
    ids, mask = padded_batch(len(WORDS), [6])
    noisy = ids.clone()
    noisy[0, 6:] = 17
    with torch.no_grad():
        assert torch.equal(shell(ids, mask), shell(noisy, mask))


def test_mobilebert_layernorm_eps_follow_transformers_exactly():
    """Embeddings and MobileBertOutput LayerNorms use torch's 1e-5; the others config.layer_norm_eps."""
    reference, shell = _reference_and_shell(mobilebert_config(normalization_type="layer_norm", layer_norm_eps=1e-7), 3)
    ref_eps = {n: m.eps for n, m in reference.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    shell_eps = {n: m.eps for n, m in shell.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    assert ref_eps == shell_eps
    assert shell_eps["mobilebert.embeddings.LayerNorm"] == 1e-5
    assert shell_eps["mobilebert.encoder.layer.0.output.LayerNorm"] == 1e-5
    assert shell_eps["mobilebert.encoder.layer.0.attention.output.LayerNorm"] == 1e-7


@pytest.mark.parametrize("make_config", [bert_config, mobilebert_config])
def test_parameter_names_are_exactly_hugging_faces(make_config):
    reference, shell = _reference_and_shell(make_config(), seed=0)
    buffers = {name for name, _ in reference.named_buffers()}
    assert set(shell.state_dict()) == set(reference.state_dict()) - buffers


@pytest.mark.parametrize("make_config", [bert_config, mobilebert_config])
def test_traced_module_equals_eager(make_config):
    _, shell = _reference_and_shell(make_config(), seed=7)
    ids, mask = padded_batch(len(WORDS), [MAX_LENGTH, 5])
    ids32, mask32 = ids.to(torch.int32), mask.to(torch.int32)
    with torch.no_grad():
        traced = torch.jit.trace(shell, (ids32[:1], mask32[:1]), check_trace=False)
        # batch 2 through a graph traced at batch 1: the batch axis really is free
        assert torch.equal(traced(ids32, mask32), shell(ids, mask))
        encoder = PooledEncoder(shell).eval()
        traced_encoder = torch.jit.trace(encoder, (ids32[:1], mask32[:1]), check_trace=False)
        row = traced_encoder(ids32[1:], mask32[1:])
        # batch 1 vs batch 2 may round differently in BLAS; the values are the same computation
        assert float((row - shell.pooled(ids, mask)[1]).abs().max()) <= 1e-6


def test_head_and_pooled_compose_to_the_logits():
    _, shell = _reference_and_shell(bert_config(), seed=2)
    ids, mask = padded_batch(len(WORDS), [7, 12])
    with torch.no_grad():
        assert torch.equal(shell.head(shell.pooled(ids, mask)), shell(ids, mask))


def test_folder_loads_strictly(bert_dir: Path):
    shell = load_shell_from_folder(bert_dir, MAX_LENGTH)
    reference = transformers.BertForSequenceClassification.from_pretrained(str(bert_dir), attn_implementation="eager").eval()
    diff, _ = _max_diff(reference, shell)
    assert diff <= PARITY_TOL


def test_missing_tensor_is_named():
    reference, shell = _reference_and_shell(bert_config(), seed=0)
    state = reference.state_dict()
    del state["bert.encoder.layer.1.output.dense.bias"]
    with pytest.raises(ShellLoadError, match=r"bert\.encoder\.layer\.1\.output\.dense\.bias"):
        load_state_into(shell, state)


def test_base_model_without_head_is_rejected_for_the_classifier():
    config = bert_config()
    base = transformers.BertModel(config).eval()
    shell = build_shell(config.to_dict(), MAX_LENGTH)
    with pytest.raises(ShellLoadError, match="classifier.weight"):
        load_state_into(shell, base.state_dict())


def test_real_prefixless_bert_checkpoint_loads_into_the_encoder(minilm_dir: Path):
    """all-MiniLM-L6-v2 is a BertModel checkpoint (no 'bert.' prefix, carries position_ids)."""
    import json

    from safetensors.torch import load_file

    config = json.loads((minilm_dir / "config.json").read_text())
    shell = build_shell({**config, "num_labels": 2}, 32).eval()
    load_state_into(shell, load_file(str(minilm_dir / "model.safetensors")), require_classifier=False)
    reference = transformers.BertModel.from_pretrained(str(minilm_dir), attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    batch = tokenizer(["The cat sat on the mat.", "Core ML models run on the phone."],
                      padding="max_length", max_length=32, return_tensors="pt")
    with torch.no_grad():
        expected = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
        got = shell.pooled(batch["input_ids"], batch["attention_mask"])
    assert float((expected - got).abs().max()) <= PARITY_TOL


def test_unsupported_activation_is_named():
    with pytest.raises(ShellConfigError, match="hidden_act"):
        build_shell({**mobilebert_config().to_dict(), "hidden_act": "prelu"}, MAX_LENGTH)


def test_max_length_beyond_position_table_is_rejected():
    with pytest.raises(ShellConfigError, match="max_position_embeddings"):
        build_shell(bert_config().to_dict(), 65)
