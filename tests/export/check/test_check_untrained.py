"""No false alarm on a freshly initialised (untrained) MobileBERT (issue 8).

Its NoNorm weights are all exactly 1 and its biases all 0; the converter folds ``x * 1`` / ``x + 0``
away, so those tensors are legitimately absent from the weight file. The weights check must not
call that "exported from another model" - while a swapped Classifier is still caught
(``test_check_broken.test_a_classifier_from_another_model_is_caught_by_its_weights``).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.helpers.export_test_utils import MAX_LENGTH, mobilebert_config, write_tokenizer
from export.check import CheckConfig, run_checks
from export.folder import ExportConfig, export_folder

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def untrained_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("untrained_mobilebert")
    torch.manual_seed(0)
    model = transformers.MobileBertForSequenceClassification(mobilebert_config()).eval()  # transformers' init, as is
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(str(root / "student"), safe_serialization=True)
    write_tokenizer(root / "student")
    export_folder(root / "student", root / "out", ExportConfig(max_length=MAX_LENGTH, build_updatable_pipeline=False))
    return root / "student", root / "out", model


def test_untrained_mobilebert_export_passes_parity(untrained_export):
    student, out, model = untrained_export
    constant = [name for name, p in model.state_dict().items()
                if p.is_floating_point() and p.numel() >= 16 and bool((p == p.reshape(-1)[0]).all())]
    assert any(name.endswith("LayerNorm.weight") for name in constant)  # the NoNorm ones: the false alarm's cause
    report = run_checks(out, model_dir=student, config=CheckConfig(only=("parity",), write_json=False))
    parity = report.get("parity")
    assert parity.passed is True, parity.message
    for file_name in ("Classifier.mlpackage", "Encoder.mlpackage"):
        weights = parity.details["weights"][file_name]
        assert weights["passed"] and weights["found"] == weights["expected"] > 20, weights
        assert set(constant) - {"classifier.bias"} <= set(weights["not_expected_verbatim"])
        assert "mobilebert.embeddings.word_embeddings.weight" not in weights["not_expected_verbatim"]
