"""Data-movement and reduction layers against NumPy, including the proto's own worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from nnexec_helpers import rand, run_single

X = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)


def test_reshape_static_transpose_expand_squeeze():
    out = run_single({"x": X}, lambda nb: nb.add_reshape_static("r", "x", "out", [6, -1, 5]))["out"]
    np.testing.assert_array_equal(out, X.reshape(6, 4, 5))
    out = run_single({"x": X}, lambda nb: nb.add_transpose("t", [0, 2, 3, 1], "x", "out"))["out"]
    np.testing.assert_array_equal(out, X.transpose(0, 2, 3, 1))
    y = X[0, 0]
    out = run_single({"y": y}, lambda nb: nb.add_expand_dims("e", "y", "out", axes=[0, -1]))["out"]
    assert out.shape == (1, 4, 5, 1)
    out = run_single({"z": y.reshape(1, 4, 1, 5)}, lambda nb: nb.add_squeeze("s", "z", "out", axes=[0, -2]))["out"]
    np.testing.assert_array_equal(out, y)


def test_legacy_permute_keeps_the_batch_axis():
    """Proto example: input [Seq, B, C, H, W] with axis [3, 1, 2, 0] gives [W, B, C, H, Seq]."""
    x = rand(2, 1, 3, 4, 5, seed=1)
    out = run_single({"x": x}, lambda nb: nb.add_permute("p", (3, 1, 2, 0), "x", "out"))["out"]
    np.testing.assert_array_equal(out, x.transpose(4, 1, 2, 3, 0))


def test_legacy_reshape_under_rank5_mapping():
    x = rand(1, 2, 5, seed=1)  # declared (C, H, W) -> blob (1, 1, 1, 2, 5)
    out = run_single({"x": x}, lambda nb: nb.add_reshape("r", "x", "out", target_shape=(10, 1, 1), mode=0), rank5=True)["out"]
    assert out.shape == (1, 1, 10, 1, 1)
    np.testing.assert_array_equal(out.ravel(), x.ravel())
    out = run_single({"x": x}, lambda nb: nb.add_reshape("r", "x", "out", target_shape=(5, 2, 1), mode=1), rank5=True)["out"]
    # CHANNEL_LAST: flatten in H, W, C order, then lay out as [C_out, H_out, W_out]
    np.testing.assert_array_equal(out[0, 0], x.transpose(1, 2, 0).reshape(2, 1, 5).transpose(2, 0, 1))


def test_legacy_flatten_and_flatten_to_2d():
    out = run_single({"x": X}, lambda nb: nb.add_flatten("f", 0, "x", "out"))["out"]
    np.testing.assert_array_equal(out, X.reshape(2, 60, 1, 1))
    out = run_single({"x": X}, lambda nb: nb.add_flatten("f", 1, "x", "out"))["out"]
    np.testing.assert_array_equal(out, X.transpose(0, 2, 3, 1).reshape(2, 60, 1, 1))
    for axis, shape in ((-1, (24, 5)), (0, (1, 120)), (2, (6, 20))):
        out = run_single({"x": X}, lambda nb: nb.add_flatten_to_2d("f", "x", "out", axis=axis))["out"]
        assert out.shape == shape
        np.testing.assert_array_equal(out.ravel(), X.ravel())


def test_concat_split_and_interleave():
    a, b = rand(2, 3, 4, seed=1), rand(2, 5, 4, seed=2)
    out = run_single({"a": a, "b": b}, lambda nb: nb.add_concat_nd("c", ["a", "b"], "out", axis=1))["out"]
    np.testing.assert_array_equal(out, np.concatenate([a, b], axis=1))
    c = rand(2, 3, 4, seed=3)
    out = run_single({"a": a, "c": c}, lambda nb: nb.add_concat_nd("c", ["a", "c"], "out", axis=0, interleave=True))["out"]
    np.testing.assert_array_equal(out[0::2], a)
    np.testing.assert_array_equal(out[1::2], c)
    outs = run_single({"x": X}, lambda nb: nb.add_split_nd("s", "x", ["o1", "o2"], axis=-1, split_sizes=[2, 3]),
                      outputs=("o1", "o2"))
    np.testing.assert_array_equal(outs["o1"], X[..., :2])
    np.testing.assert_array_equal(outs["o2"], X[..., 2:])


def test_slice_static_is_the_protos_strided_slice_example():
    """Proto: beginIds [1,2,3], beginMasks [T,F,T], endIds [3,-3,2], endMasks [F,T,T], strides [2,2,2]
    squeezeMasks [F,T,F] on a (5,5,5) input is input[:3:2, 2, ::2]."""
    x = np.arange(125, dtype=np.float32).reshape(5, 5, 5)
    out = run_single({"x": x}, lambda nb: nb.add_slice_static(
        "s", "x", "out", begin_ids=[1, 2, 3], end_ids=[3, -3, 2], strides=[2, 2, 2],
        begin_masks=[True, False, True], end_masks=[False, True, True], squeeze_masks=[False, True, False]))["out"]
    np.testing.assert_array_equal(out, x[:3:2, 2, ::2])


def test_legacy_slice_uses_numpy_semantics_on_height():
    x = rand(1, 8, 4, seed=1)
    out = run_single({"x": x}, lambda nb: nb.add_slice("s", "x", "out", axis="height", start_index=1, end_index=-1,
                                                        stride=2))["out"]
    np.testing.assert_array_equal(out, x[:, 1:-1:2, :])


def test_slice_by_size():
    x = rand(2, 6, 3, seed=1)
    begin = np.array([2.0], dtype=np.float32)
    out = run_single({"x": x, "b": begin}, lambda nb: nb.add_slice_by_size("s", ["x", "b"], "out", axis=1, size=3))["out"]
    np.testing.assert_array_equal(out, x[:, 2:5])


def test_gather_and_gather_nd():
    data = rand(4, 3, 2, seed=1)
    idx = np.array([[3, 0], [-1, 2]], dtype=np.float32)
    out = run_single({"d": data, "i": idx}, lambda nb: nb.add_gather("g", ["d", "i"], "out", axis=0))["out"]
    np.testing.assert_array_equal(out, np.take(data, [[3, 0], [3, 2]], axis=0))
    nd_idx = np.array([[1, 2], [3, 0]], dtype=np.float32)
    out = run_single({"d": data, "i": nd_idx}, lambda nb: nb.add_gather_nd("g", ["d", "i"], "out"))["out"]
    np.testing.assert_array_equal(out, np.stack([data[1, 2], data[3, 0]]))


def test_legacy_padding_doc_example_and_constant_pad():
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32).reshape(1, 2, 3)
    out = run_single({"x": x}, lambda nb: nb.add_padding("p", left=1, top=2, value=-1, input_name="x",
                                                          output_name="out"))["out"]
    expected = np.array([[-1, -1, -1, -1], [-1, -1, -1, -1], [-1, 1, 2, 3], [-1, 4, 5, 6]], dtype=np.float32)
    np.testing.assert_array_equal(out, expected.reshape(1, 4, 4))
    out = run_single({"x": x}, lambda nb: nb.add_padding("p", left=1, top=2, padding_type="replication",
                                                          input_name="x", output_name="out"))["out"]
    np.testing.assert_array_equal(out[0, :, 0], [1, 1, 1, 4])
    out = run_single({"x": x}, lambda nb: nb.add_constant_pad("c", ["x"], "out", value=7.0,
                                                               pad_amounts=[0, 0, 1, 0, 0, 2]))["out"]
    np.testing.assert_array_equal(out, np.pad(x, [(0, 0), (1, 0), (0, 2)], constant_values=7.0))


def test_tile_get_shape_broadcast_reverse():
    x = rand(2, 3, seed=1)
    np.testing.assert_array_equal(run_single({"x": x}, lambda nb: nb.add_tile("t", "x", "out", reps=[2, 1]))["out"],
                                  np.tile(x, (2, 1)))
    np.testing.assert_array_equal(run_single({"x": X}, lambda nb: nb.add_get_shape("s", "x", "out"))["out"],
                                  [2, 3, 4, 5])
    out = run_single({"x": x}, lambda nb: nb.add_broadcast_to_static("b", "x", "out", [4, 2, 3]))["out"]
    np.testing.assert_array_equal(out, np.broadcast_to(x, (4, 2, 3)))
    out = run_single({"x": x}, lambda nb: nb.add_reverse("r", "x", "out", reverse_dim=[False, True]))["out"]
    np.testing.assert_array_equal(out, x[:, ::-1])


@pytest.mark.parametrize("method,fn", [
    ("add_reduce_sum", np.sum), ("add_reduce_mean", np.mean), ("add_reduce_max", np.max), ("add_reduce_min", np.min),
    ("add_reduce_prod", np.prod), ("add_reduce_sumsquare", lambda v, axis, keepdims: np.sum(v * v, axis, keepdims=keepdims)),
    ("add_reduce_l2", lambda v, axis, keepdims: np.sqrt(np.sum(v * v, axis, keepdims=keepdims))),
    ("add_reduce_logsumexp", lambda v, axis, keepdims: np.log(np.sum(np.exp(v), axis, keepdims=keepdims))),
])
def test_reduce_nd(method, fn):
    x = rand(2, 3, 4, seed=1, low=0.5, high=1.5)
    out = run_single({"x": x}, lambda nb: getattr(nb, method)("r", "x", "out", axes=[0, -1], keepdims=False))["out"]
    np.testing.assert_allclose(out, fn(x, axis=(0, 2), keepdims=False), rtol=1e-5)
    out = run_single({"x": x}, lambda nb: getattr(nb, method)("r", "x", "out", axes=[1], keepdims=True))["out"]
    np.testing.assert_allclose(out, fn(x, axis=1, keepdims=True), rtol=1e-5)


def test_legacy_reduce_keeps_dims_and_argmax():
    x = rand(2, 3, 4, 5, seed=1)
    out = run_single({"x": x}, lambda nb: nb.add_reduce("r", "x", "out", axis="HW", mode="avg"))["out"]
    np.testing.assert_allclose(out, x.mean(axis=(2, 3), keepdims=True), rtol=1e-5)
    out = run_single({"x": x}, lambda nb: nb.add_reduce("r", "x", "out", axis="C", mode="argmax"))["out"]
    np.testing.assert_array_equal(out, np.argmax(x, axis=1)[:, None])


def test_argmax_topk_cumsum():
    x = rand(3, 6, seed=1)
    out = run_single({"x": x}, lambda nb: nb.add_argmax("a", "x", "out", axis=1, keepdims=False))["out"]
    np.testing.assert_array_equal(out, np.argmax(x, axis=1))
    outs = run_single({"x": x}, lambda nb: nb.add_topk("k", ["x"], ["v", "i"], k=2, axis=1), outputs=("v", "i"))
    np.testing.assert_array_equal(outs["i"], np.argsort(-x, axis=1)[:, :2])
    np.testing.assert_allclose(outs["v"], -np.sort(-x, axis=1)[:, :2])
    out = run_single({"x": x}, lambda nb: nb.add_cumsum("c", ["x"], "out", axis=1, reverse=True))["out"]
    np.testing.assert_allclose(out, np.flip(np.cumsum(np.flip(x, 1), 1), 1), rtol=1e-5)
