"""2-D grouped, strided, dilated convolution in NumPy: forward and the two gradients.

Shared by the executor (forward) and the update simulation (gradients of an updatable
convolution), so the two can never disagree about indexing. Layout is Core ML's: input
(N, C, H, W), weights (C_out, C_in / groups, kH, kW).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class ConvGeometry:
    """Everything but the arrays: strides, dilations, explicit zero padding and groups."""

    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    groups: int

    def padded(self, x: np.ndarray) -> np.ndarray:
        return np.pad(x, ((0, 0), (0, 0), (self.pad_top, self.pad_bottom), (self.pad_left, self.pad_right)))


def _windows(xp: np.ndarray, kh: int, kw: int, geo: ConvGeometry) -> np.ndarray:
    """(N, C, H_out, W_out, kH, kW) view of the padded input."""
    dh, dw = geo.dilation
    sh, sw = geo.stride
    eff_h, eff_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    view = sliding_window_view(xp, (eff_h, eff_w), axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def conv2d(x: np.ndarray, w: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """Convolution of x (N, C, H, W) with w (O, C/g, kH, kW) -> (N, O, H_out, W_out)."""
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    g = geo.groups
    win = _windows(geo.padded(x), kh, kw, geo)
    ho, wo = win.shape[2:4]
    win = win.reshape(n, g, cg, ho, wo, kh, kw)
    wg = w.reshape(g, o // g, cg, kh, kw)
    out = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return out.reshape(n, o, ho, wo)


def conv2d_grads(x: np.ndarray, w: np.ndarray, dy: np.ndarray, geo: ConvGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(d loss / d x, d loss / d w) for ``conv2d(x, w, geo)`` given d loss / d output ``dy``."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    g = geo.groups
    xp = geo.padded(x)
    win = _windows(xp, kh, kw, geo)
    ho, wo = win.shape[2:4]
    win = win.reshape(n, g, cg, ho, wo, kh, kw)
    dyg = dy.reshape(n, g, o // g, ho, wo)
    wg = w.reshape(g, o // g, cg, kh, kw)
    dw = np.einsum("ngchwij,ngohw->gocij", win, dyg, optimize=True).reshape(w.shape)
    dxp = np.zeros_like(xp)
    sh, sw = geo.stride
    dh, dwl = geo.dilation
    for i in range(kh):
        for j in range(kw):
            contrib = np.einsum("ngohw,goc->ngchw", dyg, wg[:, :, :, i, j], optimize=True).reshape(n, c, ho, wo)
            r0, c0 = i * dh, j * dwl
            dxp[:, :, r0:r0 + sh * (ho - 1) + 1:sh, c0:c0 + sw * (wo - 1) + 1:sw] += contrib
    dx = dxp[:, :, geo.pad_top:geo.pad_top + h, geo.pad_left:geo.pad_left + wd]
    return dx, dw
