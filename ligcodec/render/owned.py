"""Rendering a tiled model in one call: every codec tile owns a rectangle of the output.

The decoder's rule (see :mod:`ligcodec.model`): an output pixel takes the Gaussians of the tile
that contains it, all levels summed. Rendering tile by tile costs a projection, a binning pass
and a parallel launch per tile and level (24 of each for a Kodak image, most of a small decode's
time); here the Gaussians of all tiles and levels are projected once and rendered by one
parallel kernel whose work items are (tile, band of rows) pairs.

Exactness: a region read equals the same window of a full read bit for bit. Pixel weights come
from :func:`.kernels.splat`, whose float operations per pixel do not depend on the window (span
quadratics anchored at the tile's first column), and each pixel sums the same Gaussians in the
same order.
"""

from __future__ import annotations

import numpy as np
from numba import float32, njit, prange

from .kernels import LANES, P_MX, P_MY, P_RX, P_RY, clip_range, splat

#: Rows per work item: a planar RGB band buffer of 256 x 32 floats (~100 KB) stays in L2.
BAND = 32


@njit(cache=True, parallel=True)
def render_owned(params, cols, cutoff, seg, rects, anchors, x0, y0, out):
    """Sum into ``out [h, w, C]`` (region origin ``x0, y0``): tile ``t``'s Gaussians
    ``seg[t]:seg[t + 1]`` over its rectangle ``rects[t] = (X0, Y0, X1, Y1)`` (half-open, output
    pixels, inside the region); ``anchors[t]`` is the tile's first output column (unclipped)."""
    nch = cols.shape[1]
    nt = rects.shape[0]
    first = np.zeros(nt + 1, np.int64)
    for t in range(nt):
        rows = rects[t, 3] - rects[t, 1]
        first[t + 1] = first[t] + ((rows + BAND - 1) // BAND if rows > 0 and rects[t, 2] > rects[t, 0] else 0)
    for it in prange(first[nt]):
        t = np.searchsorted(first, it, side="right") - 1
        X0 = rects[t, 0]
        X1 = rects[t, 2] - 1
        Y0 = rects[t, 1] + (it - first[t]) * BAND
        Y1 = min(rects[t, 3], Y0 + BAND) - 1
        anchor = anchors[t]
        width = X1 - X0 + 1
        stride = width + LANES
        plane = (Y1 - Y0 + 1) * stride
        buf = np.zeros(nch * plane + LANES, np.float32)
        wv = np.empty(LANES, np.float32)
        dxs = np.empty(LANES, np.float64)
        adxs = np.empty(LANES, np.float64)
        cg = np.empty(nch, np.float32)
        for g in range(seg[t], seg[t + 1]):
            p = params[g]
            i0, i1 = clip_range(p[P_MY] - 0.5, p[P_RY], Y0, Y1)
            if i0 > i1:
                continue
            bj0, bj1 = clip_range(p[P_MX] - 0.5, p[P_RX], X0, X1)
            if bj0 > bj1:
                continue
            for ch in range(nch):
                cg[ch] = float32(cols[g, ch])
            splat(buf, stride, plane, cg, p, bj0, bj1, i0, i1, X0, X1, Y0, anchor, cutoff, wv, dxs, adxs)
        for i in range(Y1 - Y0 + 1):
            orow = out[Y0 - y0 + i, X0 - x0 : X0 - x0 + width]
            for ch in range(nch):
                src = buf[ch * plane + i * stride : ch * plane + i * stride + width]
                for j in range(width):
                    orow[j, ch] = src[j]
    return out
