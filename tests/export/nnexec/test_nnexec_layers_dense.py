"""Weight-carrying layers against PyTorch: innerProduct, batchedMatmul, embeddings, convolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tests.helpers.nnexec_helpers import rand, run_single


@pytest.mark.parametrize("shape,expected", [
    ((5,), (3,)),
    ((2, 5), (2, 3)),
    ((2, 4, 5), (2, 4, 3)),
    ((2, 5, 1, 1), (2, 3, 1, 1)),
    ((2, 3, 5, 1, 1), (2, 3, 3, 1, 1)),
])
def test_inner_product_follows_the_rank_rules_and_matches_torch_linear(shape, expected):
    w, b = rand(3, 5, seed=1), rand(3, seed=2)
    x = rand(*shape, seed=3)

    out = run_single({"x": x}, lambda nb: nb.add_inner_product("ip", w, b, 5, 3, True, "x", "out"))["out"]

    ref = F.linear(torch.from_numpy(x.reshape(-1, 5)), torch.from_numpy(w), torch.from_numpy(b)).numpy()
    assert out.shape == expected
    np.testing.assert_allclose(out.reshape(-1, 3), ref, atol=1e-5)


def test_inner_product_rank4_flattens_chw():
    w = rand(3, 12, seed=1)
    x = rand(2, 3, 2, 2, seed=3)
    out = run_single({"x": x}, lambda nb: nb.add_inner_product("ip", w, None, 12, 3, False, "x", "out"))["out"]
    np.testing.assert_allclose(out.reshape(2, 3), x.reshape(2, 12) @ w.T, atol=1e-5)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_batched_matmul_two_inputs_with_transposes_and_broadcast(ta, tb):
    a = rand(2, 1, 4, 3, seed=1) if not ta else rand(2, 1, 3, 4, seed=1)
    b = rand(5, 3, 6, seed=2) if not tb else rand(5, 6, 3, seed=2)
    out = run_single({"a": a, "b": b}, lambda nb: nb.add_batched_mat_mul(
        "mm", ["a", "b"], "out", transpose_a=ta, transpose_b=tb))["out"]
    ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
    ref = torch.matmul(ta_.transpose(-1, -2) if ta else ta_, tb_.transpose(-1, -2) if tb else tb_).numpy()
    assert out.shape == (2, 5, 4, 6)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_batched_matmul_rank1_operands_keep_rank_2():
    a, b = rand(3, seed=1), rand(3, 4, seed=2)
    out = run_single({"a": a, "b": b}, lambda nb: nb.add_batched_mat_mul("mm", ["a", "b"], "out"))["out"]
    assert out.shape == (1, 4)
    np.testing.assert_allclose(out[0], a @ b, atol=1e-5)


def test_batched_matmul_with_weight_matrix_and_bias():
    w, bias = rand(5, 3, seed=1), rand(3, seed=2)
    x = rand(2, 4, 5, seed=3)
    out = run_single({"x": x}, lambda nb: nb.add_batched_mat_mul(
        "mm", ["x"], "out", weight_matrix_rows=5, weight_matrix_columns=3, W=w, bias=bias))["out"]
    assert out.shape == (2, 4, 3)
    np.testing.assert_allclose(out, x @ w + bias, atol=1e-5)


def test_embedding_nd_matches_torch_embedding():
    table = rand(11, 6, seed=1)  # (vocab, dim) like torch
    ids = np.array([[[0], [10], [3]], [[7], [7], [1]]], dtype=np.float32)
    out = run_single({"ids": ids}, lambda nb: nb.add_embedding_nd(
        "emb", "ids", "out", vocab_size=11, embedding_size=6, W=table.T.copy()))["out"]
    ref = F.embedding(torch.from_numpy(ids[..., 0].astype(np.int64)), torch.from_numpy(table)).numpy()
    assert out.shape == (2, 3, 6)
    np.testing.assert_allclose(out, ref, atol=0)


def test_embedding_nd_rejects_an_index_outside_the_vocabulary():
    from export.runtime.neuralnetwork.errors import LayerExecutionError

    ids = np.array([[11.0]], dtype=np.float32)
    with pytest.raises(LayerExecutionError, match=r"'emb'.*outside \[0, 10\]"):
        run_single({"ids": ids}, lambda nb: nb.add_embedding_nd(
            "emb", "ids", "out", vocab_size=11, embedding_size=2, W=rand(2, 11)))


CONV_CASES = [
    dict(cin=4, cout=3, k=1, stride=1, groups=1, pad=(0, 0, 0, 0), mode="valid", dil=1),
    dict(cin=4, cout=6, k=3, stride=2, groups=2, pad=(1, 1, 1, 1), mode="valid", dil=1),
    dict(cin=3, cout=2, k=3, stride=1, groups=1, pad=(2, 0, 1, 2), mode="valid", dil=2),
    dict(cin=4, cout=4, k=3, stride=1, groups=4, pad=(1, 1, 1, 1), mode="same", dil=1),
]


def test_fp16_stored_weights_are_decoded_exactly():
    from coremltools.models.utils import _convert_neural_network_spec_weights_to_fp16

    from export.runtime.neuralnetwork.pipelines import load_executor
    from tests.helpers.nnexec_helpers import make_builder

    w, b = rand(3, 5, seed=1), rand(3, seed=2)
    nb = make_builder([("x", (5,))])
    nb.add_inner_product("ip", w, b, 5, 3, True, "x", "out")
    half = _convert_neural_network_spec_weights_to_fp16(nb.spec)
    assert len(half.neuralNetwork.layers[0].innerProduct.weights.float16Value) == 30
    x = rand(5, seed=3)
    out = load_executor(half).predict({"x": x})["out"]
    w16, b16 = w.astype(np.float16).astype(np.float32), b.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(out, w16 @ x + b16, atol=1e-5)
    assert np.abs(out - (w @ x + b)).max() > 1e-6  # the fp16 rounding is really applied


def test_quantized_weights_are_rejected_naming_the_layer():
    from export.runtime.neuralnetwork.errors import UnsupportedWeightsError
    from export.runtime.neuralnetwork.pipelines import load_executor
    from tests.helpers.nnexec_helpers import make_builder

    nb = make_builder([("x", (5,))])
    nb.add_inner_product("dense_q", rand(3, 5), None, 5, 3, False, "x", "out")
    weights = nb.spec.neuralNetwork.layers[0].innerProduct.weights
    weights.ClearField("floatValue")
    weights.rawValue = bytes(15)
    weights.quantization.numberOfBits = 8
    weights.quantization.linearQuantization.scale.append(0.1)
    with pytest.raises(UnsupportedWeightsError, match="'dense_q'.*quantized"):
        load_executor(nb.spec).predict({"x": rand(5)})
