"""fp16 emulation: crafted overflow / NaN networks name the right layer; a tame network is safe."""

from __future__ import annotations

import numpy as np

from export.runtime.neuralnetwork.fp16_emulation import fp16_report
from export.runtime.neuralnetwork.pipelines import load_executor
from tests.helpers.nnexec_helpers import make_builder


def _overflowing_spec():
    """x -> 'scale_in' (x2, tame) -> 'blow_up' (innerProduct, weights 2000) -> 'squash' (tanh)."""
    nb = make_builder([("x", (4,))])
    nb.add_activation("scale_in", "LINEAR", "x", "h", params=[2.0, 0.0])
    nb.add_inner_product("blow_up", np.full((3, 4), 2000.0, dtype=np.float32), None, 4, 3, False, "h", "big")
    nb.add_activation("squash", "TANH", "big", "out")
    return nb.spec


def test_overflow_is_reported_at_the_first_layer_beyond_65504():
    sample = {"x": np.array([5.0, 6.0, 7.0, 8.0], dtype=np.float32)}  # blow_up: 2 * 26 * 2000 = 104000 > 65504
    report = fp16_report(_overflowing_spec(), [sample])
    assert not report.safe
    assert report.first_overflow_layer == "blow_up (innerProduct)"
    assert report.overflow_layers == ("blow_up (innerProduct)",)
    assert report.max_abs_layer == "blow_up"
    assert report.max_abs_activation == np.float32(2 * 26 * 2000)
    by_name = {layer.name: layer for layer in report.layers}
    assert by_name["scale_in"].max_abs_fp32 == 16.0 and not by_name["scale_in"].fp16_overflow
    # the fp16 run records what the layer computed (from fp16 inputs) before its output became inf
    assert by_name["blow_up"].max_abs_fp16 == 104000.0 and by_name["blow_up"].fp16_overflow
    assert "first overflow at blow_up" in report.reason


def test_fp16_run_really_carries_inf_forward_while_fp32_does_not():
    sample = {"x": np.array([5.0, 6.0, 7.0, 8.0], dtype=np.float32)}
    half = load_executor(_overflowing_spec(), precision="fp16").run(sample, keep_blobs=True)
    full = load_executor(_overflowing_spec()).run(sample, keep_blobs=True)
    assert np.isinf(half.blobs["big"]).all() and np.isfinite(full.blobs["big"]).all()
    np.testing.assert_array_equal(half.outputs["out"], [1.0, 1.0, 1.0])  # tanh(inf)


def test_nan_is_reported_where_inf_minus_inf_happens():
    nb = make_builder([("x", (4,))])
    weights = np.full((2, 4), 30000.0, dtype=np.float32)
    nb.add_inner_product("a", weights, None, 4, 2, False, "x", "ya")
    nb.add_inner_product("b", -weights, None, 4, 2, False, "x", "yb")
    nb.add_add_broadcastable("diff", ["ya", "yb"], "out")
    report = fp16_report(nb.spec, [{"x": np.ones(4, dtype=np.float32)}])
    assert report.first_overflow_layer == "a (innerProduct)"
    assert report.first_nan_layer == "diff (addBroadcastable)"  # inf + (-inf)
    assert not report.outputs_finite and not report.safe


def test_weights_beyond_fp16_range_are_listed():
    nb = make_builder([("x", (2,))])
    nb.add_inner_product("huge_w", np.array([[1e5, 0.0]], dtype=np.float32), None, 2, 1, False, "x", "out")
    report = fp16_report(nb.spec, [{"x": np.zeros(2, dtype=np.float32)}])
    assert report.overflowing_weights == ("huge_w.weights",)
    assert not report.safe


def test_layer_norm_input_with_huge_mean_square_is_a_risk_even_without_output_overflow():
    nb = make_builder([("x", (1, 1, 8))])
    nb.add_mvn("norm", "x", "out", across_channels=False, normalize_variance=True, epsilon=1e-5)
    big = {"x": np.array([[[300.0, -300.0] * 4]], dtype=np.float32)}  # mean square 9e4 > 65504, outputs are +-1
    report = fp16_report(nb.spec, [big])
    assert report.internal_risk_layers == ("norm",)
    assert report.first_overflow_layer is None and not report.safe
    tame = fp16_report(nb.spec, [{"x": big["x"] / 10}])
    assert tame.safe and tame.internal_risk_layers == ()


def test_tame_network_is_safe_and_close_to_fp32():
    rng = np.random.default_rng(0)
    nb = make_builder([("x", (8,))])
    nb.add_inner_product("d1", rng.normal(size=(6, 8)).astype(np.float32), np.zeros(6, np.float32), 8, 6, True, "x", "h")
    nb.add_activation("r", "RELU", "h", "h2")
    nb.add_inner_product("d2", rng.normal(size=(3, 6)).astype(np.float32), None, 6, 3, False, "h2", "out")
    samples = [{"x": rng.normal(size=8).astype(np.float32)} for _ in range(3)]
    report = fp16_report(nb.spec, samples, max_output_diff=1e-2)
    assert report.safe, report.reason
    assert report.samples == 3 and report.first_overflow_layer is None and report.first_nan_layer is None
    assert 0 < report.output_max_abs_diff < 1e-2  # fp16 rounding is visible but small
    assert [layer.name for layer in report.layers] == ["d1", "r", "d2"]


def test_pipeline_report_prefixes_stage_names():
    from coremltools.models import datatypes
    from coremltools.models.pipeline import Pipeline

    first = make_builder([("x", (1, 1, 8))], outputs=("n",))
    first.add_mvn("norm", "x", "n", across_channels=False, normalize_variance=True, epsilon=1e-5)
    first.spec.description.output[0].type.multiArrayType.shape.extend([1, 1, 8])
    second = make_builder([("n", (1, 1, 8))], outputs=("y",))
    second.add_activation("grow", "LINEAR", "n", "y", params=[1e5, 0.0])
    pipe = Pipeline([("x", datatypes.Array(1, 1, 8))], [("y", datatypes.Array(1, 1, 8))])
    pipe.add_model(first.spec)
    pipe.add_model(second.spec)
    report = fp16_report(pipe.spec, [{"x": np.array([[[300.0, -300.0] * 4]], dtype=np.float32)}])
    assert report.internal_risk_layers == ("0/norm",)
    assert report.first_overflow_layer == "1/grow (activation)"
