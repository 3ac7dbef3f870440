"""The reference callable (the CLI passes MLX's probabilities_for_ids): parity against it, and OOV ids."""

from __future__ import annotations

import numpy as np

from tests.helpers.export_test_utils import WORDS

from export.check import CheckConfig, run_checks

ONLY = CheckConfig(only=("parity", "parity-reference", "extreme-inputs"))


def _refusing(probabilities):
    """Like TextClassifier.probabilities_for_ids: ValueError for ids outside the vocabulary."""

    def reference(input_ids, attention_mask):
        ids = np.asarray(input_ids)
        if ids.min() < 0 or ids.max() >= len(WORDS):
            raise ValueError(f"token ids must be in [0, {len(WORDS)})")
        return probabilities(input_ids, attention_mask)

    return reference


def test_a_shifted_reference_fails_parity_naming_it(bert_export, copy_export, bert_shell_probabilities):
    def shifted(input_ids, attention_mask):
        probs = _refusing(bert_shell_probabilities)(input_ids, attention_mask)
        return probs + np.array([1e-3, -1e-3, 0.0])  # still sums to 1; off by 10x the tolerance

    report = run_checks(copy_export(bert_export), reference=shifted, reference_name="shifted-mlx", config=ONLY)
    check = report.get("parity-reference")
    assert check.passed is False and not report.passed
    assert check.message.startswith("reference 'shifted-mlx': max |Δp| 0.001 > 0.0001 vs PyTorch shell")
    diffs = {row["artefact"]: row["max_abs_diff"] for row in check.details["comparisons"]}
    assert set(diffs) == {"PyTorch shell", "Classifier.mlpackage", "UpdatablePipeline.mlmodel", "UpdatableHead.mlmodel"}
    assert all(abs(d - 1e-3) < 1e-5 for d in diffs.values()), diffs
    # the files themselves still agree with the shell, and the shift breaks no extreme input
    assert report.get("parity").passed and report.get("extreme-inputs").passed


def test_a_reference_that_refuses_oov_ids_is_recorded(bert_export, copy_export, bert_shell_probabilities):
    report = run_checks(copy_export(bert_export), reference=_refusing(bert_shell_probabilities),
                        reference_name="torch-ref", config=ONLY)
    assert report.passed, report.summary()
    assert report.get("parity-reference").details["max_abs_diff"] <= 1e-4
    extremes = report.get("extreme-inputs")
    assert "torch-ref refuses out-of-vocabulary ids" in extremes.message
    rows = extremes.details["cases"]["out_of_vocabulary"]["results"]["torch-ref"]["rows"]
    assert [r["raised"] for r in rows] == [True, True, True]
    assert all(r["error"] == f"ValueError: token ids must be in [0, {len(WORDS)})" for r in rows)
    behaviour = extremes.details["out_of_vocabulary"]
    assert "refuses it: IndexError" in behaviour["PyTorch shell"]
    assert behaviour["torch-ref"] == "raised"


def test_a_reference_that_accepts_oov_ids_fails(bert_export, copy_export, bert_shell_probabilities):
    def clamping(input_ids, attention_mask):
        return bert_shell_probabilities(np.clip(input_ids, 0, len(WORDS) - 1), attention_mask)

    report = run_checks(copy_export(bert_export), reference=clamping, reference_name="clamping", config=ONLY)
    assert report.get("parity-reference").passed
    extremes = report.get("extreme-inputs")
    assert extremes.passed is False
    assert extremes.message == (f"out_of_vocabulary: reference 'clamping' accepted ids "
                                f"[{len(WORDS)}, {len(WORDS) + 1000}, -1] without an error")


def test_a_reference_returning_the_wrong_shape_is_named(bert_export, copy_export):
    report = run_checks(copy_export(bert_export), reference=lambda ids, mask: np.ones((len(ids), 2)) / 2,
                        reference_name="two-class", config=CheckConfig(only=("parity-reference",)))
    (check,) = report.checks
    assert check.passed is False
    assert "reference 'two-class' failed on the check texts" in check.message and "(8, 3)" in check.message
