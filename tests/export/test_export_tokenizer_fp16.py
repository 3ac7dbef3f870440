"""Tokenizer facts for the manifest, and the fp16 range check."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers.export_test_utils import MAX_LENGTH, WORDS, mobilebert_config, scramble, write_tokenizer
from export.convert.fp16_safety import FP16_MAX, check_fp16, sample_inputs
from export.shell import build_shell
from export.shell.common import FP16_MASK_VALUE
from export.convert.tokenizer import TokenizerInfoError, read_tokenizer_info

transformers = pytest.importorskip("transformers")


def test_tokenizer_json_only_folder(tmp_path):
    write_tokenizer(tmp_path, write_vocab_txt=False)
    assert not (tmp_path / "vocab.txt").exists()
    info = read_tokenizer_info(tmp_path)
    assert info.vocab == tuple(WORDS)
    assert info.lowercase is True
    assert info.continuing_subword_prefix == "##"
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    for role in ("cls", "sep", "pad", "unk", "mask"):
        token = info.special_tokens[role]
        assert tokenizer.convert_tokens_to_ids(token.token) == token.id
    assert info.template == ("[CLS]", "$A", "[SEP]")


def test_vocab_txt_only_folder_reads_lowercase_from_tokenizer_config(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "cls_token": "[CLS]"}))
    info = read_tokenizer_info(tmp_path)
    assert info.vocab == tuple(WORDS) and info.lowercase is False
    assert info.special_tokens["sep"].id == WORDS.index("[SEP]")


def test_disagreeing_vocab_files_are_an_error(tmp_path):
    write_tokenizer(tmp_path, write_vocab_txt=True)
    swapped = WORDS[:5] + [WORDS[6], WORDS[5]] + WORDS[7:]
    (tmp_path / "vocab.txt").write_text("\n".join(swapped) + "\n", encoding="utf-8")
    with pytest.raises(TokenizerInfoError, match="first difference at id 5"):
        read_tokenizer_info(tmp_path)


def test_missing_tokenizer_files_are_named(tmp_path):
    with pytest.raises(TokenizerInfoError, match="tokenizer.json or vocab.txt"):
        read_tokenizer_info(tmp_path)


def test_sample_inputs_look_like_tokenizer_output():
    ids, mask = sample_inputs(vocab_size=60, max_length=MAX_LENGTH, cls_id=2, sep_id=3, pad_id=0, count=4,
                              exclude_ids=[0, 1, 2, 3, 4, 59])
    lengths = mask.sum(dim=1).tolist()
    assert lengths[0] == 2 and lengths[-1] == MAX_LENGTH
    for row, length in enumerate(lengths):
        assert ids[row, 0] == 2 and ids[row, length - 1] == 3
        assert bool((ids[row, length:] == 0).all())
        body = ids[row, 1:length - 1]
        assert bool(((body >= 5) & (body != 59)).all())


def _mobilebert_shell(scale_norms: float = 1.0):
    config = mobilebert_config()
    torch.manual_seed(0)
    reference = transformers.MobileBertForSequenceClassification(config).eval()
    scramble(reference, 0)
    shell = build_shell(config.to_dict(), MAX_LENGTH).eval()
    state = reference.state_dict()
    for key in state:
        if key.endswith("LayerNorm.weight"):
            state[key] = state[key] * scale_norms
    from export.shell import load_state_into

    load_state_into(shell, state)
    return shell


def test_fp16_check_passes_a_well_scaled_model():
    shell = _mobilebert_shell()
    ids, mask = sample_inputs(len(WORDS), MAX_LENGTH, 2, 3, 0, count=6, exclude_ids=range(5))
    check = check_fp16(shell, ids, mask)
    assert check.safe, check.reason
    assert 0 < check.max_abs_activation < FP16_MAX
    assert check.half_finite and check.half_max_prob_diff < 0.05


def test_fp16_check_catches_mobilebert_style_overflow():
    shell = _mobilebert_shell(scale_norms=40.0)
    ids, mask = sample_inputs(len(WORDS), MAX_LENGTH, 2, 3, 0, count=6, exclude_ids=range(5))
    with torch.no_grad():
        assert torch.isfinite(shell(ids, mask)).all(), "fp32 itself is fine: only fp16 overflows"
    check = check_fp16(shell, ids, mask)
    assert not check.safe
    assert check.max_abs_activation > FP16_MAX
    assert check.max_abs_module.startswith("mobilebert.")
    assert "exceeds the fp16 maximum" in check.reason
    assert shell.mobilebert.mask_value != FP16_MASK_VALUE, "the check must not modify the shell"


def test_fp32_mask_value_would_poison_fp16():
    """Why the fp16 graph swaps the mask value: float32's min is -inf in half, and 0 * -inf = NaN."""
    half_min = torch.tensor(torch.finfo(torch.float32).min).half()
    assert torch.isinf(half_min)
    assert torch.isnan(torch.tensor(0.0).half() * half_min)
    assert torch.isfinite(torch.tensor(FP16_MASK_VALUE).half())
