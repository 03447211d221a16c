"""numba CPU kernels of the sum rasteriser: tile binning, forward and backward.

Conventions (shared with :mod:`.contract` and :mod:`.reference`): every Gaussian is given in output
pixels as one row of ``params [N, 9]`` (see :data:`PARAM_FIELDS`: centre, conic (a, b, c) of
``q = a dx^2 + 2 b dx dy + c dy^2``, and the ellipse geometry) and ``cols [N, C]``; the output pixel
(i, j) has its centre at (j + 0.5, i + 0.5); terms with ``q > cutoff`` are skipped. A region ``(x0, y0, w, h)`` selects a window of the output; tiles lie on a
grid anchored at the output's origin, so a region render sums the same Gaussians in the same order
as the full render, with per-pixel weights that do not depend on the window (:func:`splat`): the
two are equal bit for bit.

Where the time goes, and why the code looks like this (bench/render.py measures it):
- Each row of a Gaussian is cut to the exact span where the row meets the cut-off ellipse (one
  sqrt per row), so no pixel outside the ellipse is visited.
- Along a span ``q`` is a quadratic in the column offset ``t``; the weight ``exp(-q/2)`` for
  ``q`` in [0, cutoff] is a degree-6 polynomial of ``-q/32`` squared four times
  (:func:`_exp_half_neg`): pure multiply-adds, so LLVM vectorises the span loop (8 float32
  lanes with AVX2). Relative error of a weight: the polynomial's truncation <= ~5e-7, and with
  float32 rounding up to ~2.1e-6 (tests/test_spec.py derives the bound the tests use).
- LLVM's vector loop takes 16 pixels per iteration (8 lanes x 2) and leaves shorter spans to a
  scalar tail, yet most spans are 5-20 px: a 12-px span cost 23 ns, a 16-px one 15 ns. So spans
  are padded to a multiple of :data:`LANES` and the padding masked to weight 0 by index. The
  forward pass goes further and writes its rows as explicit fixed-width vectors
  (:mod:`.simd`): LLVM's per-row prologue (slice bounds, alias checks, width dispatch) had
  become the main cost once rows are only a few pixels long, as at reduced scale.
- Small Gaussians (3-sigma box <= 16 columns, e.g. all of them at scale 1/4) skip the per-row
  span geometry in the forward pass: each row of the box is one vector masked by ``q <= cutoff``
  with q in float64 per pixel, which is the contract's test itself and independent of where a
  tile or region cuts the box.
- The forward pass accumulates into a planar float32 tile buffer (cache resident, one unit-stride
  array per channel, :data:`LANES` columns of slack) and copies it into the interleaved
  ``[h, w, C]`` output once per tile.
- Forward is parallel over tiles (each tile owns its pixels: no races). Backward is parallel over
  Gaussians (each owns its gradients and only reads the image gradient: no races, and no
  per-pixel-per-Gaussian buffers).
"""

from __future__ import annotations

import math

import numpy as np
from numba import float32, njit, prange

from . import simd

#: Tile (width, height) in output pixels for binning and the forward pass. Wide, short tiles split
#: fewer rows of a Gaussian at tile edges; 256x32 was fastest or tied at 200k Gaussians on 2048^2
#: (64x64: ~15 % slower) and its planar buffer (~100 KB for RGB) stays in L2.
TILE = (256, 32)

#: Columns of ``params``. The ellipse geometry comes from the covariance S' (not the conic), where
#: it is free of cancellation even for needle-thin Gaussians: the box half-sizes
#: ``rx = sqrt(cutoff Sxx)``, ``ry = sqrt(cutoff Syy)``, and a row at height dy meets the ellipse
#: on ``dx = slope dy +- sqrt((ry^2 - dy^2) kspan)`` with ``slope = Sxy / Syy``,
#: ``kspan = det S' / Syy^2``.
PARAM_FIELDS = ("mx", "my", "a", "b", "c", "rx", "ry", "slope", "kspan")
#: Their indices, by name: every kernel reads and writes ``params`` rows through these (numba folds
#: them to constants, so the code is the same as with bare numbers).
P_MX, P_MY, P_A, P_B, P_C, P_RX, P_RY, P_SLOPE, P_KSPAN = range(len(PARAM_FIELDS))
#: q-polynomial coefficients are clamped here before the float32 cast: only one-pixel spans can
#: have larger ones, and there ``0 * inf`` would otherwise give NaN.
_QMAX = 1e30
#: Spans are padded to a multiple of this many pixels (see the module docstring).
LANES = 16
#: fastmath without 'nnan'/'ninf': reassociation lets LLVM vectorise the sums, while masking by
#: select stays exact even if an input is inf or NaN. Without 'contract' too: with it, a freshly
#: compiled backward kernel fused multiply-adds differently from the same kernel loaded from
#: numba's cache (gradients differed by ~1e-5), so two processes encoded different bytes. The
#: render benchmark showed no measurable cost.
FASTMATH = {"reassoc", "arcp", "nsz", "afn"}
#: :func:`work_chunks`' fixed cost of a Gaussian, in box pixels (its setup and the writes of its
#: gradients); only the balance between threads depends on it, never the results.
WORK_PER_GAUSSIAN = 16


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _exp_half_neg(q):
    """``exp(-q / 2)`` for float32 ``q`` in about [0, 9.5]; relative error <= ~5e-7 in exact
    arithmetic, ~2.1e-6 with float32 rounding."""
    u = q * float32(-1.0 / 32.0)
    p = float32(1.0 / 720.0)
    p = p * u + float32(1.0 / 120.0)
    p = p * u + float32(1.0 / 24.0)
    p = p * u + float32(1.0 / 6.0)
    p = p * u + float32(0.5)
    p = p * u + float32(1.0)
    p = p * u + float32(1.0)
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(cache=True, inline="always")
def _row_span(p, cutoff, i, lo_x, hi_x):
    """Span of row ``i`` inside the ellipse of Gaussian params ``p [9]``, clipped to [lo_x, hi_x].

    Returns ``(j0, j1, q0, q1, q2, dx0)``: columns j0..j1 (empty if j0 > j1) where
    ``q(j0 + t) = q0 + t * (q1 + t * q2)`` and ``dx0 = j0 + 0.5 - mx``. Every comparison is
    written so that NaN leads to an empty or clipped span, never to an index outside [lo_x, hi_x].
    """
    mx = p[P_MX]
    dy = i + 0.5 - p[P_MY]
    r2 = p[P_RY] * p[P_RY] - dy * dy
    if not (r2 >= 0.0):
        return 1, 0, float32(0.0), float32(0.0), float32(0.0), 0.0
    hw = math.sqrt(r2 * p[P_KSPAN])
    centre = mx + p[P_SLOPE] * dy - 0.5
    lo = centre - hw
    hi = centre + hw
    if not (lo <= hi_x and hi >= lo_x):  # misses the window, or NaN: never convert it to an int
        return 1, 0, float32(0.0), float32(0.0), float32(0.0), 0.0
    j0 = int(math.ceil(lo)) if lo > lo_x else lo_x
    j1 = int(math.floor(hi)) if hi < hi_x else hi_x
    dx = j0 + 0.5 - mx
    a = p[P_A]
    b = p[P_B]
    q0 = float32(a * dx * dx + 2.0 * b * dx * dy + p[P_C] * dy * dy)
    q1 = float32(max(-_QMAX, min(_QMAX, 2.0 * (a * dx + b * dy))))
    return j0, j1, q0, q1, float32(min(a, _QMAX)), dx


@njit(cache=True, parallel=True)
def gaussian_boxes(params, x0, y0, w, h):
    """Pixel bounding boxes ``[N, 4]`` (j0, j1, i0, i1) inclusive, clipped to the region.

    A box with j0 > j1 or i0 > i1 means the Gaussian does not reach the region. Clipping happens
    in floating point first, so huge, far-away or NaN geometry never overflows an integer.
    """
    n = params.shape[0]
    boxes = np.empty((n, 4), np.int64)
    xr1 = x0 + w - 1
    yr1 = y0 + h - 1
    for g in prange(n):
        boxes[g, 0], boxes[g, 1] = clip_range(params[g, P_MX] - 0.5, params[g, P_RX], x0, xr1)
        boxes[g, 2], boxes[g, 3] = clip_range(params[g, P_MY] - 0.5, params[g, P_RY], y0, yr1)
    return boxes


@njit(cache=True, inline="always")
def clip_range(centre, radius, lo_i, hi_i):
    lo = centre - radius
    hi = centre + radius
    if not (lo <= hi_i and hi >= lo_i):  # also true for NaN: nothing to draw
        return hi_i + 1, hi_i
    j0 = int(math.ceil(lo)) if lo > lo_i else lo_i
    j1 = int(math.floor(hi)) if hi < hi_i else hi_i
    return j0, j1


@njit(cache=True)
def bin_tiles(boxes, tx0, ty0, ntx, nty, tw, th):
    """Counting sort of (tile, Gaussian) pairs: ``(start [T + 1], ids [pairs])``, ids ascending per tile."""
    n = boxes.shape[0]
    counts = np.zeros(ntx * nty + 1, np.int64)
    for g in range(n):
        j0, j1, i0, i1 = boxes[g, 0], boxes[g, 1], boxes[g, 2], boxes[g, 3]
        if j0 > j1 or i0 > i1:
            continue
        for ty in range(i0 // th - ty0, i1 // th - ty0 + 1):
            for tx in range(j0 // tw - tx0, j1 // tw - tx0 + 1):
                counts[ty * ntx + tx + 1] += 1
    start = np.cumsum(counts)
    fill = start[:-1].copy()
    ids = np.empty(start[-1], np.int32)
    for g in range(n):
        j0, j1, i0, i1 = boxes[g, 0], boxes[g, 1], boxes[g, 2], boxes[g, 3]
        if j0 > j1 or i0 > i1:
            continue
        for ty in range(i0 // th - ty0, i1 // th - ty0 + 1):
            for tx in range(j0 // tw - tx0, j1 // tw - tx0 + 1):
                t = ty * ntx + tx
                ids[fill[t]] = g
                fill[t] += 1
    return start, ids


@njit(cache=True, inline="always")
def _log2_or_neg(d):
    """log2(d) if d is a power of two, else -1 (then :func:`_tile_of` divides)."""
    if d <= 0 or d & (d - 1) != 0:
        return -1
    k = 0
    while (1 << k) < d:
        k += 1
    return k


@njit(cache=True, inline="always")
def _tile_of(v, d, shift):
    return v >> shift if shift >= 0 else v // d


@njit(cache=True, inline="always")
def _tile_grid(x0, y0, w, h, tw, th):
    tx0 = x0 // tw
    ty0 = y0 // th
    ntx = (x0 + w - 1) // tw - tx0 + 1
    nty = (y0 + h - 1) // th - ty0 + 1
    return tx0, ty0, ntx, nty


@njit(cache=True, inline="always")
def _box_and_count(params, g, x0, y0, w, h, tw, th, sx, sy, boxes, cnt):
    """Store Gaussian ``g``'s clipped box and add 1 to ``cnt`` for every tile it touches
    (``sx``, ``sy``: :func:`_log2_or_neg` of the tile size)."""
    tx0, ty0, ntx, _ = _tile_grid(x0, y0, w, h, tw, th)
    j0, j1 = clip_range(params[g, P_MX] - 0.5, params[g, P_RX], x0, x0 + w - 1)
    i0, i1 = clip_range(params[g, P_MY] - 0.5, params[g, P_RY], y0, y0 + h - 1)
    boxes[g, 0] = j0
    boxes[g, 1] = j1
    boxes[g, 2] = i0
    boxes[g, 3] = i1
    if j0 > j1 or i0 > i1:
        return
    a0 = _tile_of(j0, tw, sx) - tx0
    a1 = _tile_of(j1, tw, sx) - tx0
    b0 = _tile_of(i0, th, sy) - ty0
    b1 = _tile_of(i1, th, sy) - ty0
    if a0 == a1 and b0 == b1:  # the common case: no loops
        cnt[b0 * ntx + a0] += 1
        return
    for ty in range(b0, b1 + 1):
        for tx in range(a0, a1 + 1):
            cnt[ty * ntx + tx] += 1


@njit(cache=True, parallel=True)
def _fill_tiles(boxes, slots, x0, y0, w, h, tw, th):
    """Second half of the chunked counting sort: the prefix sum over (tile, chunk) turns the
    per-chunk counts ``slots [chunks, tiles]`` into first slots, then every chunk (the same
    contiguous ranges of Gaussians as when counting) writes its ids. Returns ``(start, ids)``."""
    n = boxes.shape[0]
    nchunks, ntiles = slots.shape
    tx0, ty0, ntx, _ = _tile_grid(x0, y0, w, h, tw, th)
    sx = _log2_or_neg(tw)
    sy = _log2_or_neg(th)
    start = np.empty(ntiles + 1, np.int64)
    total = 0
    for t in range(ntiles):
        start[t] = total
        for ck in range(nchunks):
            c = slots[ck, t]
            slots[ck, t] = total
            total += c
    start[ntiles] = total
    ids = np.empty(total, np.int32)
    for ck in prange(nchunks):
        cur = slots[ck]
        for g in range(ck * n // nchunks, (ck + 1) * n // nchunks):
            j0, j1, i0, i1 = boxes[g, 0], boxes[g, 1], boxes[g, 2], boxes[g, 3]
            if j0 > j1 or i0 > i1:
                continue
            a0 = _tile_of(j0, tw, sx) - tx0
            a1 = _tile_of(j1, tw, sx) - tx0
            b0 = _tile_of(i0, th, sy) - ty0
            b1 = _tile_of(i1, th, sy) - ty0
            if a0 == a1 and b0 == b1:
                t = b0 * ntx + a0
                ids[cur[t]] = g
                cur[t] += 1
                continue
            for ty in range(b0, b1 + 1):
                for tx in range(a0, a1 + 1):
                    t = ty * ntx + tx
                    ids[cur[t]] = g
                    cur[t] += 1
    return start, ids


@njit(cache=True, parallel=True)
def bin_gaussians(params, x0, y0, w, h, tw, th, nchunks):
    """``(boxes, start, ids)`` of :func:`gaussian_boxes` + :func:`bin_tiles` in two parallel passes.

    The Gaussians are cut into ``nchunks`` contiguous chunks; pass 1 computes each chunk's boxes
    and per-tile counts, a prefix sum over (tile, chunk) gives every chunk its slots, and pass 2
    fills them. The result is the same as the serial counting sort for any ``nchunks``: ids
    ascend within each tile. Power-of-two tile sizes bin with shifts instead of divisions.
    """
    n = params.shape[0]
    nchunks = max(1, min(nchunks, n))
    _, _, ntx, nty = _tile_grid(x0, y0, w, h, tw, th)
    sx = _log2_or_neg(tw)
    sy = _log2_or_neg(th)
    boxes = np.empty((n, 4), np.int64)
    slots = np.zeros((nchunks, ntx * nty), np.int64)
    for ck in prange(nchunks):
        for g in range(ck * n // nchunks, (ck + 1) * n // nchunks):
            _box_and_count(params, g, x0, y0, w, h, tw, th, sx, sy, boxes, slots[ck])
    start, ids = _fill_tiles(boxes, slots, x0, y0, w, h, tw, th)
    return boxes, start, ids


@njit(cache=True, parallel=True)
def project_and_bin(means, chol, colours, scale, aa_var, cutoff, x0, y0, w, h, tw, th, nchunks):
    """:func:`project` fused with :func:`bin_gaussians`: ``(params, cols, boxes, start, ids)``.

    One pass projects each Gaussian and bins it while its parameters are in registers, instead of
    writing ``params`` and reading it back; the results equal the separate calls.
    """
    n = means.shape[0]
    nch = colours.shape[1]
    nchunks = max(1, min(nchunks, n))
    _, _, ntx, nty = _tile_grid(x0, y0, w, h, tw, th)
    sx = _log2_or_neg(tw)
    sy = _log2_or_neg(th)
    params = np.empty((n, 9), np.float64)
    cols = np.empty((n, nch), np.float32)
    boxes = np.empty((n, 4), np.int64)
    slots = np.zeros((nchunks, ntx * nty), np.int64)
    s2 = scale * scale
    for ck in prange(nchunks):
        for g in range(ck * n // nchunks, (ck + 1) * n // nchunks):
            _project_one(means, chol, colours, g, scale, s2, aa_var, cutoff, params, cols)
            _box_and_count(params, g, x0, y0, w, h, tw, th, sx, sy, boxes, slots[ck])
    start, ids = _fill_tiles(boxes, slots, x0, y0, w, h, tw, th)
    return params, cols, boxes, start, ids


@njit(cache=True, inline="always")
def _anchored_span(p, cutoff, i, lo_x, hi_x, anchor):
    """Like :func:`_row_span`, but ``q(ja + t) = q0 + t (q1 + t q2)`` is anchored at the column
    ``ja = max(ceil(lo), anchor)``, which does not depend on the clip ``[lo_x, hi_x]`` (``anchor <=
    lo_x``): ``(ta, j0, j1, q0, q1, q2)`` with ``ta = j0 - ja``. So a pixel's weight is computed by
    the same float operations whatever window is rendered."""
    mx = p[P_MX]
    dy = i + 0.5 - p[P_MY]
    r2 = p[P_RY] * p[P_RY] - dy * dy
    if not (r2 >= 0.0):
        return 0, 1, 0, float32(0.0), float32(0.0), float32(0.0)
    hw = math.sqrt(r2 * p[P_KSPAN])
    centre = mx + p[P_SLOPE] * dy - 0.5
    lo = centre - hw
    hi = centre + hw
    # A span that misses the window (or NaN) returns before any float becomes an int: a centre
    # of 1e19 px would otherwise convert to a garbage index (it did: a segfault on a forged file).
    if not (lo <= hi_x and hi >= lo_x):
        return 0, 1, 0, float32(0.0), float32(0.0), float32(0.0)
    j0 = int(math.ceil(lo)) if lo > lo_x else lo_x
    j1 = int(math.floor(hi)) if hi < hi_x else hi_x
    ja = int(math.ceil(lo)) if lo > anchor else anchor
    dx = ja + 0.5 - mx
    a = p[P_A]
    b = p[P_B]
    q0 = float32(a * dx * dx + 2.0 * b * dx * dy + p[P_C] * dy * dy)
    q1 = float32(max(-_QMAX, min(_QMAX, 2.0 * (a * dx + b * dy))))
    return j0 - ja, j0, j1, q0, q1, float32(min(a, _QMAX))


def make_box8_rows(w8, rgb8, w8x2, rgb8x2):
    """``box8_rows`` drawing with the given row intrinsics of :mod:`.simd` (the tiled path's
    exact-Horner ones, or the banded path's fused ones, :data:`.simd.FUSED`)."""

    @njit(inline="always")
    def _box8_rows(buf, off, stride, plane, cg, dxs, adxs, nj, my, b2, c, i0, i1, cutoff, wv):
        """Rows i0..i1 of a box at most 8 columns wide (``nj`` of them inside the window), the first
        at ``buf[off:]``; ``dxs``, ``adxs`` from :func:`.simd.box_columns8x2`. Rows go two at a time
        in one 16-lane vector (:func:`.simd.box_weights_rgb8x2`): each row's exp polynomial is a
        chain of ~20 dependent operations, too short a row to hide it, and pairing halves the chains.
        A pixel's weight is the same whichever row of a pair it falls in."""
        nch = cg.shape[0]
        i = i0
        while i < i1:
            dy = i + 0.5 - my
            dz = i + 1.5 - my  # not dy + 1: the same float operations as row i + 1 on its own
            if nch == 3:
                rgb8x2(buf, off, stride, plane, cg[0], cg[1], cg[2], dxs, adxs, nj,
                       b2 * dy, c * dy * dy, b2 * dz, c * dz * dz, cutoff)
            else:
                w8x2(wv, dxs, adxs, nj, b2 * dy, c * dy * dy, b2 * dz, c * dz * dz, cutoff)
                for ch in range(nch):
                    simd.axpy8(buf, off + ch * plane, cg[ch], wv)
                    simd.axpy8(buf, off + stride + ch * plane, cg[ch], wv[8:])
            off += 2 * stride
            i += 2
        if i == i1:  # an odd row left: on its own, in the first 8 lanes
            dy = i + 0.5 - my
            if nch == 3:
                rgb8(buf, off, plane, cg[0], cg[1], cg[2], dxs, adxs, nj, b2 * dy, c * dy * dy, cutoff)
            else:
                w8(wv, dxs, adxs, nj, b2 * dy, c * dy * dy, cutoff)
                for ch in range(nch):
                    simd.axpy8(buf, off + ch * plane, cg[ch], wv)

    return _box8_rows


def make_box4_rows(w4x4, rgb4x4):
    """``box4_rows`` drawing with the given 4x4 row intrinsics of :mod:`.simd`."""

    @njit(inline="always")
    def _box4_rows(buf, off, stride, plane, cg, dxs, adxs, nj, my, b2, c, i0, i1, cutoff, wv):
        """Like :func:`_box8_rows` for a box at most 4 columns wide, four rows per 16-lane vector
        (``dxs``, ``adxs`` from :func:`.simd.box_columns4x4`). At scale 1/4 about a third of the
        Gaussians of bench/render.py and most detail Gaussians of a codec file are this small."""
        nch = cg.shape[0]
        i = i0
        while i <= i1:
            nr = min(4, i1 - i + 1)
            # i + k + 0.5 is exact, so each row's dy is the float that row would get on its own.
            d0 = i + 0.5 - my
            d1 = i + 1.5 - my
            d2 = i + 2.5 - my
            d3 = i + 3.5 - my
            if nch == 3:
                rgb4x4(buf, off, stride, plane, cg[0], cg[1], cg[2], dxs, adxs, nj, nr,
                       b2 * d0, c * d0 * d0, b2 * d1, c * d1 * d1, b2 * d2, c * d2 * d2,
                       b2 * d3, c * d3 * d3, cutoff)
            else:
                w4x4(wv, dxs, adxs, nj, nr, b2 * d0, c * d0 * d0, b2 * d1, c * d1 * d1,
                     b2 * d2, c * d2 * d2, b2 * d3, c * d3 * d3, cutoff)
                for r in range(nr):
                    for ch in range(nch):
                        simd.axpy4(buf, off + r * stride + ch * plane, cg[ch], wv[4 * r :])
            off += 4 * stride
            i += 4

    return _box4_rows


_box8_rows = make_box8_rows(simd.box_weights8, simd.box_weights_rgb8, simd.box_weights8x2,
                             simd.box_weights_rgb8x2)
_box4_rows = make_box4_rows(simd.box_weights4x4, simd.box_weights_rgb4x4)


@njit(cache=True, inline="always")
def splat(buf, stride, plane, cg, p, bj0, bj1, i0, i1, X0, X1, Y0, anchor, cutoff, wv, dxs, adxs, sx0, sx1):
    """Add one Gaussian (params ``p``, colours ``cg [C]``) to the planar buffer of the window
    columns X0..X1, rows from Y0 (``buf[ch * plane + (i - Y0) * stride + j - X0]``), over its box
    columns bj0..bj1 and rows i0..i1 (already clipped to the window). Wide Gaussians' row spans
    are clipped to columns ``sx0..sx1`` (the window, or for the banded decoder the columns its
    tile owns).

    Gaussians whose 3-sigma box is at most 8 (16) columns wide take the small path: each row of
    the box is one 8- (16-) lane vector (four rows of 4 or two rows of 8 per 16-lane vector,
    :func:`_box4_rows`, :func:`_box8_rows`) whose pixels are masked by the contract's own test
    ``q <= cutoff`` with q in float64 per pixel (:func:`.simd.box_weights`): no per-row sqrt,
    span clipping or loop prologue. Wider ones walk the exact ellipse spans in 16-lane chunks,
    anchored by :func:`_anchored_span`. Either way a pixel's weight does not depend on the window.
    """
    nch = cg.shape[0]
    width = 2.0 * p[P_RX]  # the box spans at most floor(width) + 1 columns
    if width < 16.0:
        my = p[P_MY]
        b2 = 2.0 * p[P_B]
        c = p[P_C]
        ja = max(X0, bj0)
        nj = min(X1, bj1) - ja + 1
        off = (i0 - Y0) * stride + ja - X0
        if width < 4.0:
            simd.box_columns4x4(dxs, adxs, ja, p[P_MX], p[P_A])
            _box4_rows(buf, off, stride, plane, cg, dxs, adxs, nj, my, b2, c, i0, i1, cutoff, wv)
            return
        if width < 8.0:
            simd.box_columns8x2(dxs, adxs, ja, p[P_MX], p[P_A])
            _box8_rows(buf, off, stride, plane, cg, dxs, adxs, nj, my, b2, c, i0, i1, cutoff, wv)
            return
        simd.box_columns16(dxs, adxs, ja, p[P_MX], p[P_A])
        if nch == 3:
            for i in range(i0, i1 + 1):
                dy = i + 0.5 - my
                simd.box_weights_rgb16(buf, off, plane, cg[0], cg[1], cg[2], dxs, adxs, nj, b2 * dy,
                                        c * dy * dy, cutoff)
                off += stride
            return
        for i in range(i0, i1 + 1):
            dy = i + 0.5 - my
            simd.box_weights16(wv, dxs, adxs, nj, b2 * dy, c * dy * dy, cutoff)
            for ch in range(nch):
                simd.axpy16(buf, off + ch * plane, cg[ch], wv)
            off += stride
        return
    for i in range(i0, i1 + 1):
        ta, j0, j1, q0, q1, q2 = _anchored_span(p, cutoff, i, sx0, sx1, anchor)
        if j0 > j1:
            continue
        nf = float32(ta + j1 - j0 + 1)
        off = (i - Y0) * stride + j0 - X0
        for t0 in range(0, j1 - j0 + 1, LANES):
            if nch == 3:
                simd.span_weights_rgb16(buf, off + t0, plane, cg[0], cg[1], cg[2], float32(ta + t0), q0, q1,
                                        q2, nf)
                continue
            simd.span_weights16(wv, float32(ta + t0), q0, q1, q2, nf)
            for ch in range(nch):
                simd.axpy16(buf, off + ch * plane + t0, cg[ch], wv)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def forward(params, cols, cutoff, boxes, start, ids, x0, y0, w, h, tw, th, out):
    """Write the render of the region into ``out [h, w, C]`` (float32), tile by tile
    (:func:`splat` per Gaussian). Each pixel sums its Gaussians in ``ids`` order with weights
    that do not depend on the window, so the result does not depend on the threads, and a region
    render equals the same window of the full render bit for bit."""
    nch = cols.shape[1]
    tx0 = x0 // tw
    ty0 = y0 // th
    ntx = (x0 + w - 1) // tw - tx0 + 1
    ntiles = start.shape[0] - 1
    for t in prange(ntiles):
        ty = t // ntx
        tx = t - ty * ntx
        X0 = max(x0, (tx0 + tx) * tw)
        X1 = min(x0 + w, (tx0 + tx + 1) * tw) - 1
        Y0 = max(y0, (ty0 + ty) * th)
        Y1 = min(y0 + h, (ty0 + ty + 1) * th) - 1
        # Planar [C, rows, cols + slack] flattened, so that a row of a channel is buf[off:].
        stride = X1 - X0 + 1 + LANES
        plane = (Y1 - Y0 + 1) * stride
        buf = np.zeros(nch * plane, np.float32)
        wv = np.empty(LANES, np.float32)
        dxs = np.empty(LANES, np.float64)
        adxs = np.empty(LANES, np.float64)
        cg = np.empty(nch, np.float32)
        anchor = (tx0 + tx) * tw  # the tile's unclipped first column: the same for every region
        for k in range(start[t], start[t + 1]):
            g = ids[k]
            for ch in range(nch):
                cg[ch] = float32(cols[g, ch])
            i0 = max(Y0, boxes[g, 2])
            i1 = min(Y1, boxes[g, 3])
            splat(buf, stride, plane, cg, params[g], boxes[g, 0], boxes[g, 1], i0, i1, X0, X1, Y0, anchor,
                  cutoff, wv, dxs, adxs, X0, X1)
        copy_out(buf, stride, plane, Y1 - Y0 + 1, X1 - X0 + 1, out, Y0 - y0, X0 - x0)
    return out


@njit(cache=True, inline="always")
def copy_out(buf, stride, plane, nrows, ncols, out, r0, c0):
    """Planar buffer rows (``buf[ch * plane + i * stride + j]``) -> ``out[r0 + i, c0 + j, ch]``.
    Slices and loop indices from 0, which LLVM can vectorise (no negative-index wraparound)."""
    nch = out.shape[2]
    for i in range(nrows):
        orow = out[r0 + i, c0 : c0 + ncols]
        src = buf[i * stride : i * stride + (nch - 1) * plane + ncols]
        if nch == 3:
            s0 = src[0:ncols]
            s1 = src[plane : plane + ncols]
            s2 = src[2 * plane : 2 * plane + ncols]
            for j in range(ncols):
                orow[j, 0] = s0[j]
                orow[j, 1] = s1[j]
                orow[j, 2] = s2[j]
        else:
            for j in range(ncols):
                for ch in range(nch):
                    orow[j, ch] = src[ch * plane + j]


@njit(cache=True, parallel=True)
def _tile_keys(params, boxes, x0, y0, w, h, ts):
    """``(key [N], decreases)``: the tile of each Gaussian for :func:`tile_order` and how often a
    key is below the one before. In parallel and branch-free: :func:`tile_order` of 200k Gaussians
    already in order went 1.2 -> 0.6 ms on two threads."""
    n = boxes.shape[0]
    ntx = (w + ts - 1) // ts
    nty = (h + ts - 1) // ts
    inv = 1.0 / ts
    key = np.empty(n, np.int64)
    for g in prange(n):
        # a centre outside the region (its box inside) counts in the edge tile; clamped as floats
        # first, so that no value (NaN included) reaches the integer conversion out of range
        fx = math.floor((params[g, P_MX] - x0) * inv)
        fy = math.floor((params[g, P_MY] - y0) * inv)
        tx = np.int64(min(fx if fx > 0.0 else 0.0, ntx - 1.0))
        ty = np.int64(min(fy if fy > 0.0 else 0.0, nty - 1.0))
        missed = boxes[g, 0] > boxes[g, 1] or boxes[g, 2] > boxes[g, 3]
        key[g] = ntx * nty if missed else ty * ntx + tx
    decreases = 0
    for g in prange(1, n):
        decreases += key[g] < key[g - 1]
    return key, decreases


@njit(cache=True)
def tile_order(params, boxes, x0, y0, w, h, ts):
    """A permutation of the Gaussians by the ``ts``-px tile (raster order) of their centre, stable
    within a tile (so the codec's order, tiles of 64 full-res px, is kept at scale 1);
    Gaussians that miss the region ``(x0, y0, w, h)`` come last. Empty if that is already their
    order (the codec's order at scale 1), which :func:`backward` takes as ``arange(N)``.

    Why: :func:`backward` reads each Gaussian's pixels from the gradient planes, so in random
    order nearly every row it reads is a cache miss (200k shuffled Gaussians on 2048^2: backward
    373 ms, 4.8x the forward). In this order consecutive Gaussians read the same cache lines."""
    n = boxes.shape[0]
    key, decreases = _tile_keys(params, boxes, x0, y0, w, h, ts)
    if decreases == 0:
        return np.empty(0, np.int64)
    ntiles = ((w + ts - 1) // ts) * ((h + ts - 1) // ts)
    start = np.zeros(ntiles + 2, np.int64)
    for g in range(n):
        start[key[g] + 1] += 1
    for k in range(ntiles + 1):
        start[k + 1] += start[k]
    order = np.empty(n, np.int64)
    for g in range(n):
        order[start[key[g]]] = g
        start[key[g]] += 1
    return order


@njit(cache=True, parallel=True)
def order_breaks(order):
    """How many times ``order[k + 1] != order[k] + 1``: few when a permutation moves whole runs
    (the codec's order re-tiled), about N when it scatters (random order)."""
    breaks = 0
    for k in prange(order.shape[0] - 1):
        breaks += order[k + 1] != order[k] + 1
    return breaks


@njit(cache=True, parallel=True)
def take_rows(a, order):
    """``a[order]`` for a 2-D array, in parallel (numpy's fancy indexing of a [200k, 9] float64
    array took 30 ms, this ~1 ms)."""
    out = np.empty((order.shape[0], a.shape[1]), a.dtype)
    for k in prange(order.shape[0]):
        g = order[k]
        for j in range(a.shape[1]):
            out[k, j] = a[g, j]
    return out


@njit(cache=True, parallel=True)
def put_rows(a, order):
    """The inverse of :func:`take_rows`: ``out[order] = a``."""
    out = np.empty_like(a)
    for k in prange(order.shape[0]):
        g = order[k]
        for j in range(a.shape[1]):
            out[g, j] = a[k, j]
    return out


@njit(cache=True, parallel=True)
def residual_planes(out, target, gain, planes):
    """The fit's residual in one pass: writes ``gain * (out - target)`` (float32, as numpy would)
    into ``planes [C, h, w + LANES]`` for :func:`backward`, zeroes the slack columns, and returns
    the sum of the squared residuals (float64). Each row sums on its own and the rows add in
    order, so the sum does not depend on the thread count.

    Why: numpy took four passes over the tile (the difference, its square, the scaling, the
    planar copy), all on one thread, which cost a tile fitted alone as much as its forward."""
    h, w, nch = out.shape
    rows = np.empty(h, np.float64)
    for i in prange(h):
        s = 0.0
        for k in range(nch):
            for j in range(w):
                r = out[i, j, k] - target[i, j, k]
                s += np.float64(r) * np.float64(r)
                planes[k, i, j] = gain * r
            for j in range(w, planes.shape[2]):
                planes[k, i, j] = float32(0.0)
        rows[i] = s
    total = 0.0
    for i in range(h):
        total += rows[i]
    return total


@njit(cache=True)
def work_chunks(boxes, order, nchunks):
    """Bounds ``[nchunks + 1]`` that cut the visiting order (``order``; empty: index order) into
    runs of about equal work, a Gaussian's work taken as its box's pixels plus a fixed cost."""
    n = boxes.shape[0]
    nchunks = max(nchunks, 1)
    reorder = order.shape[0] > 0
    cum = np.empty(n + 1, np.float64)
    cum[0] = 0.0
    for k in range(n):
        g = order[k] if reorder else k
        cols = max(boxes[g, 1] - boxes[g, 0] + 1, 0)
        rows = max(boxes[g, 3] - boxes[g, 2] + 1, 0)
        cum[k + 1] = cum[k] + cols * rows + WORK_PER_GAUSSIAN
    bounds = np.empty(nchunks + 1, np.int64)
    bounds[0] = 0
    k = 0
    for c in range(1, nchunks):
        goal = cum[n] * c / nchunks
        while k < n and cum[k + 1] <= goal:
            k += 1
        bounds[c] = k
    bounds[nchunks] = n
    return bounds


@njit(cache=True)
def _box_sums(colours_only, rx, *args):
    """:data:`.simd.BOX_BACKWARD_SUMS` of one RGB Gaussian's box, by the box's width (half-width
    ``rx``; ``args`` as the simd functions take them): the colour sums alone where ``colours_only``."""
    if rx < 4.0:
        if colours_only:
            return simd.box8_colour_sums(*args)
        return simd.box8_backward_rgb(*args)
    if rx < 8.0:
        if colours_only:
            return simd.box16_colour_sums(*args)
        return simd.box16_backward_rgb(*args)
    if colours_only:
        return simd.wide_colour_sums(*args)
    return simd.wide_backward_rgb(*args)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def backward(params, cols, cutoff, boxes, x0, y0, grad_planes, order, nchunks,
             colours_only=False):
    """Gradients of ``sum(grad_out * render)`` w.r.t. means, conic (a, b, c) and cols (float64).

    ``grad_planes [C, h, w + LANES]`` (float32, planar, zero slack columns) is the image gradient
    of the region whose origin is (x0, y0). Each Gaussian sums over its own pixels: with ``s_p = w_p * <grad_p, cols>`` the
    moments of s_p in (dx, dy) give dL/da = -1/2 sum s dx^2, dL/db = -sum s dx dy,
    dL/dc = -1/2 sum s dy^2, dL/dmx = a sum s dx + b sum s dy, dL/dmy = b sum s dx + c sum s dy.
    The Gaussians are visited in ``order`` (:func:`tile_order`; empty: index order), cut into
    ``nchunks`` runs of about equal work for the threads: each one's gradients depend on it alone,
    so the results depend on neither, only the speed does. ``colours_only``: the colour gradients
    are the same, the others are not wanted (the colour least squares' ``A^T r``), and RGB boxes
    skip their moments (the exact-span path still computes them).

    RGB Gaussians whose box is under 16 columns, or wider but not needle-like, take
    :func:`.simd.box8_backward_rgb` / ``box16_backward_rgb`` / ``wide_backward_rgb``: every pixel of the box
    weighed as the forward's box paths weigh it, the sums kept in vector registers across the
    rows. The others walk the exact ellipse span of each row.
    """
    n = params.shape[0]
    nch = cols.shape[1]
    g_means = np.zeros((n, 2), np.float64)
    g_conic = np.zeros((n, 3), np.float64)
    g_cols = np.zeros((n, nch), np.float64)
    reorder = order.shape[0] > 0
    # Runs of about equal drawing work, not of equal counts: split by count, one thread of two got
    # far more pixels than the other on a Kodak tile (large Gaussians in the sky, small below).
    bounds = work_chunks(boxes, order, nchunks)
    for ck in prange(bounds.shape[0] - 1):
        for k in range(bounds[ck], bounds[ck + 1]):
            g = order[k] if reorder else k
            j0b, j1b, i0, i1 = boxes[g, 0], boxes[g, 1], boxes[g, 2], boxes[g, 3]
            if j0b > j1b or i0 > i1:
                continue
            p = params[g]
            my = p[P_MY]
            a = p[P_A]
            b = p[P_B]
            c = p[P_C]
            # RGB boxes under 16 columns (the pixels the forward's box paths draw), and wider ones
            # whose ellipse fills the box enough (sqrt(1 - rho^2) >= 0.6, over 47 % of it): every
            # pixel of the box is weighed, so a needle across its box is left to the span path.
            if nch == 3 and (p[P_RX] < 8.0 or p[P_KSPAN] * p[P_RY] * p[P_RY] >= 0.36 * p[P_RX] * p[P_RX]):
                k0, k1, k2 = float32(cols[g, 0]), float32(cols[g, 1]), float32(cols[g, 2])
                e0w, e1w, e2w, _, sx, sxx, sy, sxy, syy = _box_sums(
                    colours_only, p[P_RX], grad_planes, y0, x0, i0, i1, j0b, j1b - j0b + 1, p[P_MX], my, a, 2.0 * b,
                    c, k0, k1, k2, cutoff)
                g_cols[g, 0] = e0w
                g_cols[g, 1] = e1w
                g_cols[g, 2] = e2w
            else:  # the exact span of each row
                sx = 0.0
                sy = 0.0
                sxx = 0.0
                sxy = 0.0
                syy = 0.0
                for i in range(i0, i1 + 1):
                    j0, j1, q0, q1, q2, dx0 = _row_span(p, cutoff, i, j0b, j1b)
                    if j0 > j1:
                        continue
                    dy = i + 0.5 - my
                    nf = float32(j1 - j0 + 1)
                    m = (j1 - j0 + LANES) // LANES * LANES
                    ii = i - y0
                    jo = j0 - x0
                    rs = float32(0.0)
                    rsx = float32(0.0)
                    rsxx = float32(0.0)
                    dxf0 = float32(dx0)
                    if nch == 3:
                        k0 = float32(cols[g, 0])
                        k1 = float32(cols[g, 1])
                        k2 = float32(cols[g, 2])
                        p0 = grad_planes[0, ii, jo : jo + m]
                        p1 = grad_planes[1, ii, jo : jo + m]
                        p2 = grad_planes[2, ii, jo : jo + m]
                        a0 = float32(0.0)
                        a1 = float32(0.0)
                        a2 = float32(0.0)
                        tf = float32(0.0)
                        for tt in range(m):
                            inside = tf < nf
                            wv = _exp_half_neg(q0 + tf * (q1 + tf * q2)) if inside else float32(0.0)
                            e0 = p0[tt] if inside else float32(0.0)
                            e1 = p1[tt] if inside else float32(0.0)
                            e2 = p2[tt] if inside else float32(0.0)
                            a0 += e0 * wv
                            a1 += e1 * wv
                            a2 += e2 * wv
                            sw = (e0 * k0 + e1 * k1 + e2 * k2) * wv
                            dxv = dxf0 + tf
                            rs += sw
                            rsx += sw * dxv
                            rsxx += sw * dxv * dxv
                            tf += float32(1.0)
                        g_cols[g, 0] += a0
                        g_cols[g, 1] += a1
                        g_cols[g, 2] += a2
                    else:
                        for ch in range(nch):
                            kc = float32(cols[g, ch])
                            pc = grad_planes[ch, ii, jo : jo + m]
                            acc = float32(0.0)
                            tf = float32(0.0)
                            for tt in range(m):
                                inside = tf < nf
                                wv = _exp_half_neg(q0 + tf * (q1 + tf * q2)) if inside else float32(0.0)
                                e = pc[tt] if inside else float32(0.0)
                                acc += e * wv
                                sw = e * kc * wv
                                dxv = dxf0 + tf
                                rs += sw
                                rsx += sw * dxv
                                rsxx += sw * dxv * dxv
                                tf += float32(1.0)
                            g_cols[g, ch] += acc
                    sx += rsx
                    sy += rs * dy
                    sxx += rsxx
                    sxy += rsx * dy
                    syy += rs * dy * dy
            g_conic[g, 0] = -0.5 * sxx
            g_conic[g, 1] = -sxy
            g_conic[g, 2] = -0.5 * syy
            g_means[g, 0] = a * sx + b * sy
            g_means[g, 1] = b * sx + c * sy
    return g_means, g_conic, g_cols


@njit(cache=True, parallel=True)
def all_valid(means, chol, colours, log_limit):
    """True if every parameter is finite and every log-Cholesky diagonal is within
    ``+-log_limit``: the fast check of :meth:`Gaussians.validate` (which finds the culprit)."""
    n = means.shape[0]
    nch = colours.shape[1]
    bad = 0.0
    # Branch-free so that LLVM vectorises it: x * 0 is 0 for finite x and NaN otherwise, and a
    # NaN in the sum (or a diagonal out of range) makes ``bad`` non-zero.
    for g in prange(n):
        z = (means[g, 0] + means[g, 1] + chol[g, 1]) * 0.0
        for ch in range(nch):
            z += colours[g, ch] * 0.0
        inside = abs(chol[g, 0]) <= log_limit and abs(chol[g, 2]) <= log_limit  # False for NaN
        bad += z + (0.0 if inside else 1.0)
    return bad == 0


@njit(cache=True, inline="always")
def projected_cov(c, s2, k):
    """Cholesky entries, S' = s^2 L L^T + k I, det(s^2 S) and det S' of log-Cholesky row ``c``.

    det(S') = det(s^2 S) + k (s^2 tr S) + k^2 needs no subtraction of nearly equal numbers.
    """
    l11 = math.exp(c[0])
    l22 = math.exp(c[2])
    l21 = c[1]
    sxx = s2 * (l11 * l11) + k
    sxy = s2 * (l11 * l21)
    syy = s2 * (l21 * l21 + l22 * l22) + k
    pr = l11 * l22
    det0 = s2 * s2 * pr * pr
    det = det0 + k * (sxx + syy - 2.0 * k) + k * k
    return l11, l21, l22, sxx, sxy, syy, det0, det


@njit(cache=True, parallel=True)
def project(means, chol, colours, scale, aa_var, cutoff):
    """``(params [N, 9], cols [N, C] float32)`` at ``scale``: the numba twin of
    :func:`ligcodec.render.contract.project` (tests keep the two equal).

    One fused pass instead of ~20 numpy temporaries: this is most of the fixed cost of a
    reduced-scale render. Determinants come from the Cholesky factor, free of cancellation.
    """
    n = means.shape[0]
    nch = colours.shape[1]
    params = np.empty((n, 9), np.float64)
    cols = np.empty((n, nch), np.float32)
    s2 = scale * scale
    k = aa_var
    for g in prange(n):
        _project_one(means, chol, colours, g, scale, s2, k, cutoff, params, cols)
    return params, cols


@njit(cache=True, inline="always")
def _project_one(means, chol, colours, g, scale, s2, k, cutoff, params, cols):
    l11, l21, l22, sxx, sxy, syy, det0, det = projected_cov(chol[g], s2, k)
    amp = math.sqrt(det0 / det) if k > 0.0 else 1.0
    fill_params(params[g], means[g, 0] * scale, means[g, 1] * scale, sxx, sxy, syy, det, cutoff)
    for ch in range(colours.shape[1]):
        cols[g, ch] = colours[g, ch] * amp


@njit(cache=True, inline="always")
def fill_params(p, mx, my, sxx, sxy, syy, det, cutoff):
    p[P_MX] = mx
    p[P_MY] = my
    p[P_A] = syy / det
    p[P_B] = -sxy / det
    p[P_C] = sxx / det
    p[P_RX] = math.sqrt(cutoff * sxx)
    p[P_RY] = math.sqrt(cutoff * syy)
    p[P_SLOPE] = sxy / syy
    p[P_KSPAN] = det / (syy * syy)


@njit(cache=True, parallel=True)
def params_from_conic(means, conic, cutoff):
    """``params [N, 9]`` from projected means and conics (the torch path's output)."""
    n = means.shape[0]
    params = np.empty((n, 9), np.float64)
    for g in prange(n):
        a = conic[g, 0]
        b = conic[g, 1]
        c = conic[g, 2]
        dc = a * c - b * b
        fill_params(params[g], means[g, 0], means[g, 1], c / dc, -b / dc, a / dc, 1.0 / dc, cutoff)
    return params


@njit(cache=True, parallel=True)
def project_backward(chol, colours, scale, aa_var, g_means_s, g_conic, g_cols_s):
    """Chain rule through :func:`project`: gradients w.r.t. (means, chol, colours), float64.

    ``g_means_s [N, 2]``, ``g_conic [N, 3]``, ``g_cols_s [N, C]`` are gradients w.r.t. the projected
    means, conic (a, b, c) and amplitude-scaled colours (what :func:`backward` returns). With
    P = S'^-1 and G_P = [[ga, gb/2], [gb/2, gc]]: dL/dS' = -P G_P P, the energy factor adds
    -amp g_amp P / 2 to it and amp g_amp to each log-diagonal entry (from det(s^2 S)),
    dL/dS = s^2 dL/dS', and S = L L^T gives dL/dL = 2 dL/dS L.
    """
    n = chol.shape[0]
    nch = colours.shape[1]
    g_means = np.empty((n, 2), np.float64)
    g_chol = np.empty((n, 3), np.float64)
    g_cols = np.empty((n, nch), np.float64)
    s2 = scale * scale
    k = aa_var
    for g in prange(n):
        l11, l21, l22, sxx, sxy, syy, det0, det = projected_cov(chol[g], s2, k)
        pa = syy / det
        pb = -sxy / det
        pc = sxx / det
        ga = g_conic[g, 0]
        gb = 0.5 * g_conic[g, 1]
        gc = g_conic[g, 2]
        # M = G_P P, then dS' = -P M (symmetric)
        m00 = ga * pa + gb * pb
        m01 = ga * pb + gb * pc
        m10 = gb * pa + gc * pb
        m11 = gb * pb + gc * pc
        d00 = -(pa * m00 + pb * m10)
        d01 = -(pa * m01 + pb * m11)
        d11 = -(pb * m01 + pc * m11)
        extra = 0.0
        if k > 0.0:
            amp = math.sqrt(det0 / det)
            gamp = 0.0
            for ch in range(nch):
                gamp += g_cols_s[g, ch] * colours[g, ch]
                g_cols[g, ch] = g_cols_s[g, ch] * amp
            h = -0.5 * amp * gamp
            d00 += h * pa
            d01 += h * pb
            d11 += h * pc
            extra = amp * gamp
        else:
            for ch in range(nch):
                g_cols[g, ch] = g_cols_s[g, ch]
        d00 *= s2
        d01 *= s2
        d11 *= s2
        gl11 = 2.0 * (d00 * l11 + d01 * l21)
        gl21 = 2.0 * (d01 * l11 + d11 * l21)
        gl22 = 2.0 * (d11 * l22)
        g_chol[g, 0] = gl11 * l11 + extra
        g_chol[g, 1] = gl21
        g_chol[g, 2] = gl22 * l22 + extra
        g_means[g, 0] = g_means_s[g, 0] * scale
        g_means[g, 1] = g_means_s[g, 1] * scale
    return g_means, g_chol, g_cols
