"""The banded forward pass of :func:`ligcodec.render.render`: every scale up to
:data:`MAX_SCALE`, and larger scales when the Gaussians are spatially coherent.

At scale 1/4 a Gaussian of sigma 2-4 px covers a box of ~5 x 5 output pixels, so what costs is
not the drawing but everything done once per Gaussian. The tiled path (:mod:`.kernels`) pays for
a projection into a 9-column ``params`` table (two scalar ``exp`` calls, seven divisions and
square roots), a counting sort of (tile, Gaussian) pairs and an indirection per pair; at scale
1/4 that was 6.6 of 18 ms for 200k Gaussians on 2048^2 (bench/render.py). Here instead:

- :func:`setup` projects every Gaussian in vectorised loops over blocks of :data:`_BLOCK` (its
  ``exp`` is :func:`_exp`, a polynomial with the exponent set by bit arithmetic, so no libm call
  blocks the vector loop) and notes the rows each block reaches.
- :func:`forward` needs no binning: the output is cut into bands of rows, and every band scans
  the blocks that reach it, drawing their Gaussians in index order into a planar band buffer.
  A pixel sums its Gaussians in index order whatever the bands, threads or region, so the render
  does not depend on the threads, and a region render equals the same window of the full
  render bit for bit (a pixel's weight depends only on the pixel and the Gaussian).
- Boxes at most 8 columns wide, nearly all at scale 1/4, are drawn two rows per 16-lane vector
  (:func:`.kernels.make_box8_rows`, shared with the tiled path), with the exp polynomial
  evaluated by Estrin's scheme and every multiply-add fused (:data:`.simd.FUSED`). Runs of
  consecutive small RGB boxes, the common case, are drawn by one LLVM function of their own
  (:func:`.simd._make_box8_block`: the same operations per pixel, with the arrays' pointers,
  the column set-up and the constants kept in registers); at scale 1/4 that made the render
  12-15 % faster.

Wider Gaussians (8-16 columns, and the span path beyond) reuse :func:`.kernels.splat`. Bands
only pay off when consecutive Gaussians are near each other (the codec's order): in random order
every block reaches every band (:func:`block_spread` tells the two apart).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import float32, float64, njit, prange, types
from numba.extending import intrinsic

from . import simd
from .kernels import (FASTMATH, LANES, P_A, P_B, P_C, P_KSPAN, P_MX, P_MY, P_RX, P_RY, P_SLOPE, copy_out,
                      fill_params, make_box8_rows, projected_cov, splat)

#: The banded path serves every scale up to this; above it, only spatially coherent Gaussians
#: (see :func:`ligcodec.render.raster.render`).
MAX_SCALE = 0.5

_box8_rows = make_box8_rows(simd.est_box_weights8, simd.est_box_weights_rgb8, simd.est_box_weights8x2,
                             simd.est_box_weights_rgb8x2)

#: Gaussians per block: the unit that a band skips when none of them reaches it.
_BLOCK = 512

_LOG2E = 1.4426950408889634
#: ln 2 split so that ``k * _LN2_HI`` is exact for |k| < 2^11 (Cody-Waite range reduction).
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10


@intrinsic
def _f64_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bit pattern is the int64 ``bits``."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@njit(cache=True, inline="always")
def _exp(x):
    """``exp(x)`` for ``x`` in [-700, 700] (a log-Cholesky entry is validated to |x| <= 50),
    relative error ~1e-15, written without libm calls or branches so that loops calling it
    vectorise: ``x = k ln2 + r`` with |r| <= ln2 / 2, ``exp(r)`` by its Taylor polynomial of
    degree 13 (remainder < 4e-18), and ``2^k`` built from its exponent bits."""
    kf = np.floor(x * _LOG2E + 0.5)
    r = (x - kf * _LN2_HI) - kf * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _f64_from_bits((np.int64(kf) + 1023) << 52)


@njit(cache=True, inline="always")
def _clip_box(centre, radius, lo_i, hi_i):
    """Like :func:`.kernels.clip_range` but branch-free (so that :func:`setup` vectorises):
    ``(j0, j1)`` inclusive, empty (j0 > j1) when the range misses [lo_i, hi_i]. Clamping in float
    first keeps huge or far-away boxes from overflowing an integer."""
    lo = min(max(centre - radius, lo_i - 1.0), hi_i + 1.0)
    hi = min(max(centre + radius, lo_i - 1.0), hi_i + 1.0)
    j0 = max(np.int64(np.ceil(lo)), lo_i)
    j1 = min(np.int64(np.floor(hi)), hi_i)
    return j0, j1


def setup(means, chol, scale, aa_var, cutoff, log_limit, x0, y0, w, h, nworkers):
    """Project every Gaussian to output pixels at ``scale``: ``(geo, aux, box, rows, ok)``.

    - ``geo [3, N]`` float64: ``(a, 2b, c)``, the conic of ``q = a dx^2 + 2b dx dy + c dy^2``; the
      same S' = s^2 S + k I as :func:`.kernels.project`. (The centre, ``means * scale``, is not
      stored: :func:`forward` recomputes it with the same operation, which saves writing 16 of
      64 bytes per Gaussian.)
    - ``aux [2, N]`` float32: ``(amp, width)``: energy factor and the 3-sigma box width 2 rx.
    - ``box [4, N]`` int32: ``(j0, j1, i0, i1)``, the 3-sigma box clipped to the region (empty if
      j0 > j1 or i0 > i1). The pass is bound by writing these (48 bytes per Gaussian; float64/int64
      throughout measured ~0.3 ms slower for 200k).
    - ``rows [2, blocks]``: the first and last row any Gaussian of each block of :data:`_BLOCK`
      reaches, so that a band skips whole blocks (Gaussians in the codec's order are spatially
      coherent).
    - ``ok``: the test of :func:`.kernels.all_valid` on means and chol (finite, log-diagonal
      within ``log_limit``); if False the other results are meaningless and the caller raises.

    ``nworkers`` parallel work items each take a contiguous run of blocks (one work item per
    block cost ~0.6 ms more for 200k Gaussians, even on one thread).
    """
    seg = np.array([0, len(means)], np.int64)
    rects = np.array([[x0, y0, x0 + w, y0 + h]], np.int64)
    return setup_owned(means, chol, scale, aa_var, cutoff, log_limit, x0, y0, w, h, nworkers, seg, rects)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def setup_owned(means, chol, scale, aa_var, cutoff, log_limit, x0, y0, w, h, nworkers, seg, rects):
    """:func:`setup` with every box also clipped to the pixels its owner owns: Gaussians
    ``seg[t]:seg[t + 1]`` belong to owner ``t``, which owns the output pixels ``rects[t] =
    (X0, Y0, X1, Y1)`` (half-open). The decoder's rule (spec section 6): a codec tile's Gaussians
    draw only into the pixels the tile owns."""
    n = means.shape[0]
    geo = np.empty((3, n), np.float64)
    aux = np.empty((2, n), np.float32)
    box = np.empty((4, n), np.int32)
    nblk = (n + _BLOCK - 1) // _BLOCK
    rows = np.empty((2, nblk), np.int64)
    bad = np.zeros(nblk, np.float64)
    s2 = scale * scale
    k = aa_var
    xr1 = x0 + w - 1
    yr1 = y0 + h - 1
    flat_means = means.reshape(2 * n)
    flat_chol = chol.reshape(3 * n)
    for wk in prange(nworkers):
        # LLVM vectorises a loop only if it can rule out overlaps between its arrays with a few
        # run-time checks, so the maths is split into loops of few arrays each, over unit-stride
        # block-local copies (one loop over everything stayed scalar: 7 ms for 200k Gaussians).
        l11 = np.empty(_BLOCK, np.float64)
        l21 = np.empty(_BLOCK, np.float64)
        l22 = np.empty(_BLOCK, np.float64)
        mx = np.empty(_BLOCK, np.float64)
        my = np.empty(_BLOCK, np.float64)
        sxx = np.empty(_BLOCK, np.float64)
        syy = np.empty(_BLOCK, np.float64)
        for blk in range(wk * nblk // nworkers, (wk + 1) * nblk // nworkers):
            g0 = blk * _BLOCK
            m = min(n, g0 + _BLOCK) - g0
            for t in range(m):  # flat indexing: fewer index computations than means[g, 0]
                g = g0 + t
                mx[t] = flat_means[2 * g] * scale
                my[t] = flat_means[2 * g + 1] * scale
                l11[t] = flat_chol[3 * g]
                l21[t] = flat_chol[3 * g + 1]
                l22[t] = flat_chol[3 * g + 2]
            # Branch-free validity test (see kernels.all_valid): x * 0 is 0 only for finite x,
            # and a log-diagonal beyond the limit adds a positive amount.
            z = 0.0
            for t in range(m):
                z += (mx[t] + my[t] + l11[t] + l21[t] + l22[t]) * 0.0
                z += max(0.0, abs(l11[t]) - log_limit) + max(0.0, abs(l22[t]) - log_limit)
            bad[blk] = z
            for t in range(m):
                l11[t] = _exp(l11[t])
            for t in range(m):
                l22[t] = _exp(l22[t])
            for t in range(m):
                sxx[t] = s2 * (l11[t] * l11[t]) + k
                syy[t] = s2 * (l21[t] * l21[t] + l22[t] * l22[t]) + k
            ga = geo[0, g0 : g0 + m]
            gb = geo[1, g0 : g0 + m]
            gc = geo[2, g0 : g0 + m]
            gamp = aux[0, g0 : g0 + m]
            for t in range(m):
                sxy = s2 * (l11[t] * l21[t])
                pr = l11[t] * l22[t]
                det0 = s2 * s2 * pr * pr
                det = det0 + k * (sxx[t] + syy[t] - 2.0 * k) + k * k
                inv = 1.0 / det
                ga[t] = syy[t] * inv
                gb[t] = -2.0 * sxy * inv
                gc[t] = sxx[t] * inv
                # exactly 1 without the AA filter (scale >= 1), as in kernels.project
                gamp[t] = float32(math.sqrt(det0 * inv)) if k > 0.0 else float32(1.0)
            gw = aux[1, g0 : g0 + m]
            bj0 = box[0, g0 : g0 + m]
            bj1 = box[1, g0 : g0 + m]
            for t in range(m):
                rx = math.sqrt(cutoff * sxx[t])
                gw[t] = float32(2.0 * rx)
                j0, j1 = _clip_box(mx[t] - 0.5, rx, x0, xr1)
                bj0[t] = np.int32(j0)
                bj1[t] = np.int32(j1)
            bi0 = box[2, g0 : g0 + m]
            bi1 = box[3, g0 : g0 + m]
            for t in range(m):
                i0, i1 = _clip_box(my[t] - 0.5, math.sqrt(cutoff * syy[t]), y0, yr1)
                bi0[t] = np.int32(i0)
                bi1[t] = np.int32(i1)
            own = np.searchsorted(seg, g0, side="right") - 1
            # Scalar, unlike the loops above, so skipped when there is one owner (render()): its
            # rectangle is the region, which the boxes are already clipped to.
            for t in range(m if len(rects) > 1 else 0):
                while g0 + t >= seg[own + 1]:
                    own += 1
                bj0[t] = max(bj0[t], np.int32(rects[own, 0]))
                bj1[t] = min(bj1[t], np.int32(rects[own, 2] - 1))
                bi0[t] = max(bi0[t], np.int32(rects[own, 1]))
                bi1[t] = min(bi1[t], np.int32(rects[own, 3] - 1))
            lo = yr1 + 1
            hi = y0 - 1
            for t in range(m):
                if bi0[t] <= bi1[t] and bj0[t] <= bj1[t]:
                    lo = min(lo, np.int64(bi0[t]))
                    hi = max(hi, np.int64(bi1[t]))
            rows[0, blk] = lo
            rows[1, blk] = hi
    return geo, aux, box, rows, bad.sum() == 0.0


@njit(cache=True, parallel=True)
def block_spread(means, scale):
    """Mean over blocks of :data:`_BLOCK` Gaussians of the span of their centres' rows, in output
    pixels at ``scale``: small when consecutive Gaussians are near each other (the codec's
    order), about the image height in random order. NaN centres make it NaN (callers validate
    later)."""
    n = means.shape[0]
    nblk = (n + _BLOCK - 1) // _BLOCK
    spread = np.empty(nblk, np.float64)
    for blk in prange(nblk):
        lo = np.inf
        hi = -np.inf
        for g in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            lo = min(lo, means[g, 1])
            hi = max(hi, means[g, 1])
        spread[blk] = (hi - lo) * scale
    return spread.mean() if nblk else 0.0


@njit(cache=True)
def plane_size(rows, stride):
    """Floats per channel plane of a band buffer: at least ``rows * stride``, padded so that the
    planes do not start a multiple of 4 KiB apart. Otherwise a channel's load and the previous
    channel's store of the same pixel alias in the store buffer's 4 KiB address check and stall
    (measured: 1.5 ms of 16 at scale 1/4 on a 512-px-wide output)."""
    base = rows * stride
    for pad in range(0, 1024, 40):
        p = base + pad
        ok = True
        for m in range(1, 4):
            r = (m * p) % 1024
            if r < 64 or r > 960:
                ok = False
        if ok:
            return p
    return base


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def forward(geo, aux, box, rows, means, chol, colours, scale, aa_var, cutoff, x0, y0, w, h, nbands, nworkers,
            out):
    """Write the render of region ``(x0, y0, w, h)`` into ``out [h, w, C]`` float32 in ``nbands``
    bands of rows, ``nworkers`` parallel workers each drawing bands w, w + nworkers, ... into one
    reused buffer (cache-warm, and no fresh pages to fault in per band). ``geo``, ``aux``,
    ``box``, ``rows``: from :func:`setup` on the same region and the same ``means`` (full-res
    centres; the draw scales them as setup did)."""
    nch = colours.shape[1]
    stride = w + LANES
    xr1 = x0 + w - 1
    hmax = (h + nbands - 1) // nbands
    for wk in prange(nworkers):
        buf = np.empty(nch * plane_size(hmax, stride) + LANES, np.float32)
        wv = np.empty(LANES, np.float32)
        dxs = np.empty(LANES, np.float64)
        adxs = np.empty(LANES, np.float64)
        cg = np.empty(nch, np.float32)
        p = np.empty(9, np.float64)
        for bnd in range(wk, nbands, nworkers):
            B0 = y0 + bnd * h // nbands
            B1 = y0 + (bnd + 1) * h // nbands - 1
            plane = plane_size(B1 - B0 + 1, stride)
            buf[: nch * plane + LANES] = 0.0
            _draw_band(geo, aux, box, rows, means, chol, colours, scale, aa_var, cutoff, x0, xr1, y0, B0, B1,
                       stride, plane, buf, wv, dxs, adxs, cg, p, out)
    return out


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _draw_band(geo, aux, box, rows, means, chol, colours, scale, aa_var, cutoff, x0, xr1, y0, B0, B1, stride,
               plane, buf, wv, dxs, adxs, cg, p, out):
    """Draw every Gaussian that reaches rows B0..B1 into the zeroed planar ``buf`` and copy it out."""
    n = geo.shape[1]
    rgb = colours.shape[1] == 3
    w = xr1 - x0 + 1
    for blk in range(rows.shape[1]):
        if rows[1, blk] < B0 or rows[0, blk] > B1:
            continue  # no Gaussian of this block reaches the band
        g = blk * _BLOCK
        end = min(n, (blk + 1) * _BLOCK)
        while g < end:
            if rgb:  # small RGB boxes, nearly all at scale 1/4: in one intrinsic, up to the next other one
                g = simd.est_box8_rgb_block(buf, stride, plane, box, geo, aux, means, colours, scale, cutoff,
                                             x0, B0, B1, g, end)
                if g == end:
                    break
            _draw_gaussian(g, geo, aux, box, means, chol, colours, scale, aa_var, cutoff, x0, xr1, B0, B1,
                           stride, plane, buf, wv, dxs, adxs, cg, p)
            g += 1
    copy_out(buf, stride, plane, B1 - B0 + 1, w, out, B0 - y0, 0)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _draw_gaussian(g, geo, aux, box, means, chol, colours, scale, aa_var, cutoff, x0, xr1, B0, B1, stride,
                   plane, buf, wv, dxs, adxs, cg, p):
    """Draw Gaussian ``g`` into the band buffer (rows B0..B1), if its box reaches them."""
    nch = colours.shape[1]
    s2 = scale * scale
    i0 = max(np.int64(box[2, g]), B0)
    i1 = min(np.int64(box[3, g]), B1)
    j0 = np.int64(box[0, g])
    j1 = np.int64(box[1, g])
    if i0 > i1 or j0 > j1:
        return
    mx = means[g, 0] * scale  # as in setup
    my = means[g, 1] * scale
    a = geo[0, g]
    b2 = geo[1, g]
    c = geo[2, g]
    amp = float64(aux[0, g])
    nj = j1 - j0 + 1
    off = (i0 - B0) * stride + j0 - x0
    # The box's full width (not the clipped nj) picks the path, so a region render draws
    # every pixel the same way as the full render does.
    width = float64(aux[1, g])
    # Boxes under 4 columns too: the tiled path's four-rows-per-vector packing drew them
    # 2-8 % slower here overall (forward at 1/4, one-process A/B), the branch between the
    # two packings being hard to predict.
    for ch in range(nch):
        cg[ch] = float32(colours[g, ch] * amp)
    if width < 8.0:
        simd.box_columns8x2(dxs, adxs, j0, mx, a)
        _box8_rows(buf, off, stride, plane, cg, dxs, adxs, nj, my, b2, c, i0, i1, cutoff, wv)
        return
    if width < 16.0:
        # splat()'s small-box path reads only these; the span geometry it never reads is NaN, not
        # a stale row (a path that read it would draw nothing, and the tests would see it).
        p[P_MX] = mx
        p[P_MY] = my
        p[P_A] = a
        p[P_B] = 0.5 * b2
        p[P_C] = c
        p[P_RX] = 0.5 * width
        p[P_RY] = np.nan
        p[P_SLOPE] = np.nan
        p[P_KSPAN] = np.nan
    else:  # the exact span geometry of the scale-1 path, from the covariance
        _, _, _, sxx, sxy, syy, _, det = projected_cov(chol[g], s2, aa_var)
        fill_params(p, mx, my, sxx, sxy, syy, det, cutoff)
    # Anchor 0 (the output's first column) does not depend on the region or the band. Spans are
    # clipped to the box, which setup_owned clipped to the columns the Gaussian's tile owns.
    splat(buf, stride, plane, cg, p, j0, j1, i0, i1, x0, xr1, B0, 0, cutoff, wv, dxs, adxs, j0, j1)
