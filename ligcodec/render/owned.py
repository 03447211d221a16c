"""Rendering a tiled model in one call: every codec tile owns a rectangle of the output.

The decoder's rule (see :mod:`ligcodec.model`): an output pixel takes the Gaussians of the tile
that contains it, all levels summed. Rendering tile by tile costs a projection, a binning pass
and a parallel launch per tile and level (24 of each for a Kodak image, most of a small decode's
time); here the Gaussians of all tiles and levels are projected once and rendered by one
parallel kernel whose work items are (tile, band of rows) pairs.

Exactness: a region read equals the same window of a full read bit for bit. Each row span's
quadratic ``q(t)`` is anchored at a column that depends only on the Gaussian and its tile (the
span's own start, or the tile's first column), never on the region, and each pixel sums the
same Gaussians in the same order, so the float operations per pixel are the same for any window.
"""

from __future__ import annotations

import math

import numpy as np
from numba import float32, njit, prange

from .kernels import _LANES, _QMAX, _clip_range, _exp_half_neg

#: Rows per work item: a planar RGB band buffer of 256 x 32 floats (~100 KB) stays in L2.
BAND = 32


@njit(cache=True, inline="always")
def _anchored_span(p, cutoff, i, lo_x, hi_x, anchor):
    """Row ``i``'s span of Gaussian ``p`` clipped to [lo_x, hi_x]: ``(t0, j0, j1, q0, q1, q2)``
    with ``q(ja + t) = q0 + t (q1 + t q2)`` for the anchor column ``ja = max(ceil(lo), anchor)``
    and ``t0 = j0 - ja``. Empty when j0 > j1."""
    mx = p[0]
    dy = i + 0.5 - p[1]
    r2 = p[6] * p[6] - dy * dy
    if not (r2 >= 0.0):
        return 0, 1, 0, float32(0.0), float32(0.0), float32(0.0)
    hw = math.sqrt(r2 * p[8])
    centre = mx + p[7] * dy - 0.5
    lo = centre - hw
    hi = centre + hw
    j0 = int(math.ceil(lo)) if lo > lo_x else lo_x
    j1 = int(math.floor(hi)) if hi < hi_x else hi_x
    ja = int(math.ceil(lo)) if lo > anchor else anchor
    dx = ja + 0.5 - mx
    a = p[2]
    b = p[3]
    q0 = float32(a * dx * dx + 2.0 * b * dx * dy + p[4] * dy * dy)
    q1 = float32(max(-_QMAX, min(_QMAX, 2.0 * (a * dx + b * dy))))
    return j0 - ja, j0, j1, q0, q1, float32(min(a, _QMAX))


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
        buf = np.zeros((nch, Y1 - Y0 + 1, width + _LANES), np.float32)
        wrow = np.empty(width + _LANES, np.float32)
        for g in range(seg[t], seg[t + 1]):
            p = params[g]
            i0, i1 = _clip_range(p[1] - 0.5, p[6], Y0, Y1)
            if i0 > i1:
                continue
            c0, c1 = _clip_range(p[0] - 0.5, p[5], X0, X1)
            if c0 > c1:
                continue
            for i in range(i0, i1 + 1):
                t0, j0, j1, q0, q1, q2 = _anchored_span(p, cutoff, i, X0, X1, anchor)
                if j0 > j1:
                    continue
                n = (j1 - j0 + _LANES) // _LANES * _LANES
                ii = i - Y0
                jo = j0 - X0
                nvalid = j1 - j0 + 1
                # An integer induction variable (not tf += 1): LLVM vectorises it without
                # fastmath, and without fastmath every lane rounds exactly as a scalar would.
                if nch == 3:  # the common case, fused: one pass over the span
                    c0 = float32(cols[g, 0])
                    c1 = float32(cols[g, 1])
                    c2 = float32(cols[g, 2])
                    r0 = buf[0, ii, jo : jo + n]
                    r1 = buf[1, ii, jo : jo + n]
                    r2 = buf[2, ii, jo : jo + n]
                    for tt in range(n):
                        tf = float32(t0 + tt)
                        wv = _exp_half_neg(q0 + tf * (q1 + tf * q2)) if tt < nvalid else float32(0.0)
                        r0[tt] += c0 * wv
                        r1[tt] += c1 * wv
                        r2[tt] += c2 * wv
                    continue
                wr = wrow[:n]
                for tt in range(n):
                    tf = float32(t0 + tt)
                    wr[tt] = _exp_half_neg(q0 + tf * (q1 + tf * q2)) if tt < nvalid else float32(0.0)
                for ch in range(nch):
                    cv = float32(cols[g, ch])
                    dst = buf[ch, ii, jo : jo + n]
                    for tt in range(n):
                        dst[tt] += cv * wr[tt]
        for i in range(Y1 - Y0 + 1):
            orow = out[Y0 - y0 + i]
            for j in range(width):
                for ch in range(nch):
                    orow[X0 - x0 + j, ch] += buf[ch, i, j]
    return out
