"""Data-movement and reduction layers against NumPy, including the proto's own worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.nnexec_helpers import rand, run_single

X = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)


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


