"""Session fixtures for the export tests (folders and exports are built once and shared)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from tests.helpers.export_test_utils import (
    MAX_LENGTH,
    make_model_folder,
    mobilebert_config,
    bert_config,
    scramble,
    write_tokenizer,
)

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bert_student")
    make_model_folder(folder, bert_config(), seed=1, write_vocab_txt=True)
    return folder


@pytest.fixture(scope="session")
def mobilebert_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mobilebert_student")
    make_model_folder(folder, mobilebert_config(), seed=2)
    return folder


@pytest.fixture(scope="session")
def overflowing_mobilebert_dir(tmp_path_factory) -> Path:
    """A MobileBERT whose NoNorm scales make activations exceed fp16's 65504 (like the real one)."""
    folder = tmp_path_factory.mktemp("mobilebert_overflow")
    config = mobilebert_config()
    torch.manual_seed(3)
    model = transformers.MobileBertForSequenceClassification(config).eval()
    scramble(model, 3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("LayerNorm.weight"):
                param.mul_(40.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(str(folder), safe_serialization=True)
    write_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def bert_export(bert_dir, tmp_path_factory):
    from export.folder import ExportConfig, export_folder

    out = tmp_path_factory.mktemp("bert_export") / "out"
    return export_folder(bert_dir, out, ExportConfig(max_length=MAX_LENGTH, learning_rate=0.005, batch_size=4, epochs=3))


@pytest.fixture(scope="session")
def mobilebert_fp16_export(mobilebert_dir, tmp_path_factory):
    from export.folder import ExportConfig, export_folder

    out = tmp_path_factory.mktemp("mobilebert_export") / "out"
    return export_folder(mobilebert_dir, out, ExportConfig(max_length=MAX_LENGTH, precision="fp16", optimizer="adam",
                                                           build_updatable_pipeline=False))


@pytest.fixture(scope="session")
def overflow_export_run(overflowing_mobilebert_dir, tmp_path_factory):
    """(result, messages of every Python warning export_folder raised) for the fp16 fall-back export."""
    from export.folder import ExportConfig, export_folder

    out = tmp_path_factory.mktemp("overflow_export") / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = export_folder(overflowing_mobilebert_dir, out,
                               ExportConfig(max_length=MAX_LENGTH, precision="fp16", build_encoder=False))
    return result, [str(w.message) for w in caught]


@pytest.fixture(scope="session")
def overflow_export(overflow_export_run):
    return overflow_export_run[0]
