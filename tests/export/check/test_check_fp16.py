"""fp16 check on a MobileBERT whose NoNorm activations overflow fp16 (the export fell back to fp32)."""

from __future__ import annotations

import json

from export.check import CheckConfig, run_checks

ONLY = CheckConfig(only=("fp16",))
TWIN = "Classifier.mlpackage (ML Program, fp32 program, fp16 emulated)"


def test_unsafe_fp16_is_reported_but_passes_when_fp16_is_not_used(overflow_export, copy_export):
    report = run_checks(copy_export(overflow_export), config=ONLY)
    (check,) = report.checks
    assert check.passed is True, check.message
    twin = check.details["models"][TWIN]
    assert twin["fp16_claimed"] is False and not twin["safe"] and not twin["report_safe"]
    assert twin["max_abs_activation"] > 65504
    # NoNorm overflow is not the excused mask saturation: it stays a problem, named by layer
    assert twin["problems"][0].startswith("overflow at ") and twin["first_overflow_layer"] in twin["problems"][0]
    assert twin["first_overflow_layer"] not in twin["saturating_overflows_excused"]
    assert f"{TWIN}: fp16 would be unsafe (overflow at" in check.message
    assert "fp16 not used (recommended_compute_units = cpuOnly)" in check.message


def test_unsafe_fp16_fails_when_the_manifest_says_fp16_is_used(overflow_export, copy_export):
    folder = copy_export(overflow_export)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["precision"]["used"] = "fp16"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report = run_checks(folder, config=ONLY)
    (check,) = report.checks
    assert check.passed is False and not report.passed
    twin = check.details["models"][TWIN]
    assert check.message.startswith(f"{TWIN}: manifest says fp16 is used (precision.used = fp16) but the emulation "
                                    f"finds overflow at {twin['first_overflow_layer']}")
