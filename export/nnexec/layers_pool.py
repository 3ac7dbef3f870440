"""2-D pooling (max / average / L2; valid, same, include-last-pixel and global).

Pooling is one of the layers Core ML back-propagates through, so an updatable image-like head
may contain it; it is cheap to run forward here even though BERT exports never emit it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from export.nnexec.context import LayerCall


def _pads(call: LayerCall, h: int, w: int, kh: int, kw: int, sh: int, sw: int) -> tuple[int, int, int, int]:
    p = call.params
    kind = p.WhichOneof("PoolingPaddingType")
    if kind == "same":
        out = []
        for size, s, k in ((h, sh, kh), (w, sw, kw)):
            total = max(0, (-(-size // s) - 1) * s + k - size)
            small = total // 2
            out.append((total - small, small) if p.same.asymmetryMode == p.same.TOP_LEFT_HEAVY else (small, total - small))
        return out[0][0], out[0][1], out[1][0], out[1][1]
    if kind == "includeLastPixel":
        amounts = list(p.includeLastPixel.paddingAmounts) or [0, 0]
        ph, pw = int(amounts[0]), int(amounts[1])
        result = []
        for size, s, k, pad in ((h, sh, kh, ph), (w, sw, kw, pw)):
            n_out = math.ceil((size + 2 * pad - k) / s) + 1
            if (ph > 0 or pw > 0) and (n_out - 1) * s >= size + pad:
                n_out -= 1
            result.append((pad, max(0, (n_out - 1) * s + k - size - pad)))
        return result[0][0], result[0][1], result[1][0], result[1][1]
    amounts = list(p.valid.paddingAmounts.borderAmounts) if kind == "valid" else []
    top, bottom = (amounts[0].startEdgeSize, amounts[0].endEdgeSize) if amounts else (0, 0)
    left, right = (amounts[1].startEdgeSize, amounts[1].endEdgeSize) if len(amounts) > 1 else (0, 0)
    return int(top), int(bottom), int(left), int(right)


def pooling(call: LayerCall, inputs: Sequence[np.ndarray]) -> list:
    x = inputs[0]
    p = call.params
    if x.ndim < 3:
        raise call.fail(f"needs rank >= 3, got {x.shape}")
    kind = p.PoolingType.Name(p.type)
    h, w = x.shape[-2:]
    if p.globalPooling:
        axes = (-2, -1)
        if kind == "MAX":
            return [np.max(x, axis=axes, keepdims=True)]
        if kind == "AVERAGE":
            return [np.mean(x, axis=axes, keepdims=True).astype(np.float32)]
        return [np.sqrt(np.sum(np.square(x), axis=axes, keepdims=True)).astype(np.float32)]
    kh, kw = tuple(int(v) for v in p.kernelSize) or (3, 3)
    sh, sw = tuple(int(v) for v in p.stride) or (1, 1)
    top, bottom, left, right = _pads(call, h, w, kh, kw, sh, sw)
    pad = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    valid = np.pad(np.ones((h, w), dtype=np.float32), pad[-2:])
    fill = -np.inf if kind == "MAX" else 0.0
    xp = np.pad(x, pad, constant_values=fill)
    win = sliding_window_view(xp, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :]
    if kind == "MAX":
        return [win.max(axis=(-2, -1)).astype(np.float32)]
    if kind == "L2":
        return [np.sqrt(np.square(win).sum(axis=(-2, -1))).astype(np.float32)]
    total = win.sum(axis=(-2, -1))
    if p.avgPoolExcludePadding:
        count = sliding_window_view(valid, (kh, kw))[::sh, ::sw].sum(axis=(-2, -1))
    else:
        count = kh * kw
    return [(total / count).astype(np.float32)]


HANDLERS = {"pooling": pooling}
