"""How many bits per Gaussian would context-adaptive entropy models save? (issue #16)

    python bench/context_gain.py                        # 6 Kodak images at 1 bpp, effort 1 (~1 min
                                                        # with the encodes, seconds once they exist)
    python bench/context_gain.py --images 12 --bpp 0.5
    python bench/context_gain.py --workdir /tmp/x       # where the .lig files are (re)used

A measurement, not a codec change. It encodes (or reuses) Kodak images spread over the set
(``ligcodec encode --effort 1 --workers 1``), decodes every chunk's quantised symbols with
:func:`ligcodec.codec.tile.decode_chunk` and gives, per attribute stream (``x``, ``dy``,
``cov0..2``, ``colour0..2``: YCoCg) and in total, bits per Gaussian of:

(0) the file: its chunk bytes x 8 (header and index not counted), and the ideal code length
    (-log2 p) under the very per-chunk tables the file uses (``x`` uniform, the others the 24-bit
    geometric tables of spec section 4, rebuilt with ``ans.geometric_cdf``) plus the stream tables
    (``side``); the gap between the two is the ANS coder's overhead (printed as a check);
(1) each chunk's per-stream empirical entropy: the bound of any static table per stream and chunk,
    the histogram's own cost not counted (for ``x``, ~1700 values seen ~1300 times, that makes it
    an unreachable 1.4 bits under uniform);
(2) adaptive models: ideal code lengths of causal models that learn as they decode, over contexts
    (rows), in three families:

    A. adaptive geometric (the main one): per context a probability of ``r >= 0`` and a geometric
       distribution for each side, all running means seeded with the chunk-wide scale of the
       stream (mean |r|: the one byte ``k`` the stream table already holds) at a weight of
       ``SEED_WEIGHT`` symbols, restarted in every chunk. Three numbers a context, so it pays
       almost nothing to learn. Beside it: the two-pass alternative the present format is closest
       to, one symmetric geometric table per context and chunk, each costing one more byte ``k``.
    B. binarised Krichevsky-Trofimov counts, as a video codec's CABAC: a zero flag, a sign, the
       bucket of ``|r| - 1`` in unary (exact below 8, then 4 buckets an octave) and the bits below
       the bucket raw, each binary decision with its own count pair (p = (n_bit + 1/2) / (n + 1))
       per context; flat in every chunk, and (``carried``) carried over the chunks of a level in
       tile order: chunks would no longer decode alone, so read it as the bound of what priors
       trained offline could give. ``KT over values`` is the plain alternative: one adaptive count
       per value of ``lo..hi``, +1/2 each, no context.

``r`` is the stream value minus the chunk's ``loc`` (stream table), or minus a prediction. The
coding order is today's, stream after stream over the Gaussians in ``(qy, qx)`` order, so a context
may use every Gaussian's earlier streams (all positions before any covariance) and the same
attribute of the Gaussians before it; two rows reorder streams (said where). "Neighbours" are the
<= 6 nearest Gaussians before it (above / left) within 2.5 average spacings. For the detail level,
"level 0" contexts read level 0's decoded render (full resolution, clamped, Y) and its gradient at
the Gaussian's centre: a full-resolution decode has it, at the price of rendering level 0 first.
``x`` is coded uniformly (as in the file) in every row but the position ones, and every row adds the
file's stream tables (``side``) unchanged. The contexts of the ``combined`` row were chosen by the
mutual information of candidate features on the default images, so check them on others
(``--images 12`` adds six the choice never saw: table D is per image).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Light on the CPU: one thread everywhere (set before numba / torch are imported).
for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numba  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import DATA, print_table  # noqa: E402

LN2 = math.log(2.0)
NODES = 100  # binary models per context: zero flag, sign, unary bucket nodes
NEIGHBOURS = 6  # causal spatial neighbours kept per Gaussian
RADIUS_SPACINGS = 2.5  # neighbour radius in average spacings (sqrt(bbox area / n))
SEED_WEIGHT = 8.0  # adaptive geometric models: weight of the chunk-wide scale, in symbols


# ------------------------------------------------------------------------------------- files
def kodak_files(n: int, bpp: float, workdir: Path) -> list[Path]:
    """``n`` Kodak images spread over the set, encoded at ``bpp`` with ``--effort 1`` (reused)."""
    src = sorted((DATA / "kodak").glob("*.png"))
    if not src:
        sys.exit(f"no Kodak images in {DATA / 'kodak'}")
    n = min(n, len(src))
    pick = [src[round(i * len(src) / n)] for i in range(n)]
    workdir.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("ligcodec") or str(Path(sys.executable).parent / "ligcodec")
    out = []
    for p in pick:
        lig = workdir / f"{p.stem}-{bpp:g}bpp-e1.lig"
        if not lig.exists():
            t = time.perf_counter()
            subprocess.run([exe, "encode", str(p), str(lig), "--bpp", str(bpp), "--effort", "1",
                            "--workers", "1", "--quiet"], check=True)
            print(f"encoded {lig.name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        out.append(lig)
    return out


def _stream_params(data: bytes, n: int, channels: int, layout: int, grid):
    """The stream table of a part: ``([(kind, lo, hi, loc, k)] per stream, table bytes)``; ``grid``
    gets the positions' ``(x0, width, y0)``."""
    from ligcodec.codec.tile import stream_table

    return stream_table(data, n, channels, "chunk", layout, grid)


def static_bits(s: np.ndarray, kind: int, lo: int, hi: int, loc: int, k: int) -> float:
    """Ideal bits of ``s`` under the file's 24-bit model of the stream (spec section 4)."""
    from ligcodec.codec import ans

    m = hi - lo + 1
    if kind == ans.CONST:
        return 0.0
    if kind == ans.UNIFORM:
        u = (1 << 24) // m
        prob = np.where(s - lo < m - 1, u, (1 << 24) - (m - 1) * u)
    else:
        w = np.empty(m + 1, np.float64)
        cdf = np.empty(m + 1, np.uint32)
        ans.geometric_cdf(lo, hi, loc, k, w, cdf)
        prob = np.diff(cdf.astype(np.int64))[s - lo]
    return float(np.sum(24 - np.log2(prob)))


def _y_of(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] / 4 + rgb[..., 1] / 2 + rgb[..., 2] / 4 if rgb.shape[-1] >= 3 else rgb[..., 0]


class Chunk:
    """One decoded chunk: its symbol streams and what contexts need."""

    def __init__(self, fi, level, tile, data, n, header, layout, origin, l0):
        from ligcodec.codec.tile import decode_chunk, position_streams

        self.file, self.level, self.tile, self.n, self.bytes = fi, level, tile, n, len(data)
        qx, qy, qc, qk = decode_chunk(data, n, header.channels, f"file {fi} level {level} tile {tile}", layout)
        grid = np.zeros(3, np.int64)
        self.params, table = _stream_params(data, n, header.channels, layout, grid)
        self.side = 8 * table
        self.qx, self.qy, self.qc, self.qk = qx, qy, qc, qk
        self.dqy = np.diff(qy, prepend=0)
        # The file's own streams (format 3: the positions' raster gaps, low bits and high part).
        self.streams = position_streams(qx, qy, self.params, layout, grid) + [qc[:, j] for j in range(3)] + \
            [qk[:, j] for j in range(qk.shape[1])]
        self.locs = [p[3] for p in self.params]
        self.locs[0] = int(np.round(np.median(qx)))
        ps, cs = header.pos_step, np.asarray(header.chol_step)
        self.pos_step = ps
        self.px = origin[0] + (qx + 0.5) * ps  # full-resolution pixels
        self.py = origin[1] + (qy + 0.5) * ps
        self.log_size = (qc[:, 0] * cs[0] + qc[:, 2] * cs[2]) / 2  # log of the geometric-mean sigma
        self.aniso = qc[:, 0] * cs[0] - qc[:, 2] * cs[2]
        self.bbox = (int(qx.min()), int(qx.max()), int(qy.min()), int(qy.max()))
        area = (self.bbox[1] - self.bbox[0] + 1) * (self.bbox[3] - self.bbox[2] + 1)
        self.spacing = math.sqrt(area / n)
        self.nb = np.full((n, NEIGHBOURS), -1, np.int64)
        _causal_neighbours(qx, qy, RADIUS_SPACINGS * self.spacing, self.nb)
        self.origin, self.l0 = origin, l0
        if l0 is not None:  # level 0's render (Y) and its gradient at the Gaussian centres
            ix = np.clip(self.px.astype(np.int64), 0, l0[0].shape[1] - 1)
            iy = np.clip(self.py.astype(np.int64), 0, l0[0].shape[0] - 1)
            self.l0_y, self.l0_grad = l0[0][iy, ix], l0[1][iy, ix]

    def r(self, i: int) -> np.ndarray:
        """Stream ``i`` minus the chunk's ``loc`` (from the stream table)."""
        return self.streams[i] - self.locs[i]


def load_chunks(paths) -> list[Chunk]:
    from ligcodec.codec.tile import chunk_layout, chunk_parts, part_layout
    from ligcodec.container import LigReader
    from ligcodec.image import LigImage
    from ligcodec.model import tile_grid

    chunks = []
    for fi, path in enumerate(paths):
        with LigReader(path) as r:
            h = r.header
            layout = chunk_layout(r.prefix.major, r.prefix.minor)
            l0 = None
            if h.levels > 1:
                img = LigImage(path)
                y = _y_of(img.read_float(1.0, levels=[0]).astype(np.float64))
                gy, gx = np.gradient(y)
                l0 = (y, np.hypot(gx, gy) * 255)  # gradient in 8-bit code values per pixel
            origins = {t: (x0, y0) for t, x0, y0, _, _ in tile_grid(h.width, h.height, h.tile)}
            for lvl in range(h.levels):
                for t in range(h.n_tiles):
                    e = r.entry(lvl, t)
                    if not e.count:
                        continue
                    # Format 4: each part has its own table and models, so it is this bench's unit.
                    for data, n in chunk_parts(r.chunk(lvl, t), e.count, f"tile {t}, level {lvl}", layout):
                        chunks.append(Chunk(fi, lvl, t, data, n, h, part_layout(layout), origins[t],
                                            l0 if lvl > 0 else None))
    return chunks


# ----------------------------------------------------------------------------------- kernels
@numba.njit(cache=True)
def _causal_neighbours(qx, qy, radius, nb):
    """``nb[i]``: the (up to ``nb.shape[1]``) nearest ``j < i`` within ``radius`` (grid units);
    the Gaussians are sorted by ``(qy, qx)``, so the scan stops ``radius`` rows up."""
    k = nb.shape[1]
    best = np.empty(k, np.float64)
    r2 = radius * radius
    for i in range(len(qx)):
        m = 0
        j = i - 1
        while j >= 0 and qy[i] - qy[j] <= radius:
            dx = float(qx[i] - qx[j])
            dy = float(qy[i] - qy[j])
            d2 = dx * dx + dy * dy
            if d2 <= r2 and (m < k or d2 < best[m - 1]):
                p = m if m < k else k - 1
                while p > 0 and best[p - 1] > d2:
                    if p < k:
                        best[p] = best[p - 1]
                        nb[i, p] = nb[i, p - 1]
                    p -= 1
                best[p] = d2
                nb[i, p] = j
                if m < k:
                    m += 1
            j -= 1


@numba.njit(cache=True, inline="always")
def _kt(c, k, node, bit):
    p = (c[k, node, bit] + 0.5) / (c[k, node, 0] + c[k, node, 1] + 1.0)
    c[k, node, bit] += 1.0
    return -np.log2(p)


@numba.njit(cache=True)
def binarised_bits(r, ctx, signed, start, nctx, out):
    """Ideal bits of each ``r[i]`` under adaptive binary KT models in context ``ctx[i]`` (all
    counts reset where ``start[i]``): zero flag, sign (if ``signed[i]``), bucket of ``|r| - 1`` in
    unary (exact below 8, then 4 buckets an octave), then the bits below the bucket raw."""
    c = np.zeros((nctx, NODES, 2), np.float64)
    for i in range(len(r)):
        if start[i]:
            c[:] = 0.0
        k = ctx[i]
        v = r[i]
        bits = _kt(c, k, 0, 1 if v != 0 else 0)
        if v != 0:
            if signed[i]:
                bits += _kt(c, k, 1, 1 if v < 0 else 0)
            u = abs(v) - 1
            raw = 0
            if u < 8:
                b = u
            else:
                e = 0
                t = u
                while t > 1:
                    t >>= 1
                    e += 1
                b = 8 + 4 * (e - 3) + ((u >> (e - 2)) & 3)
                raw = e - 2
            for j in range(b + 1):
                bits += _kt(c, k, 2 + min(j, NODES - 3), 1 if j == b else 0)
            bits += raw
        out[i] = bits


@numba.njit(cache=True)
def kt_value_bits(idx, size, start, alpha, out):
    """Ideal bits of ``idx[i]`` (in ``0 .. size[i] - 1``) under one adaptive count per value,
    ``+alpha`` each, reset where ``start[i]`` (a chunk's values share one alphabet)."""
    c = np.zeros(1, np.float64)
    tot = 0.0
    for i in range(len(idx)):
        if start[i]:
            c = np.zeros(size[i], np.float64)
            tot = 0.0
        out[i] = -np.log2((c[idx[i]] + alpha) / (tot + alpha * size[i]))
        c[idx[i]] += 1.0
        tot += 1.0


@numba.njit(cache=True)
def laplace_bits(r, ctx, signed, seed, start, nctx, w0, out):
    """Ideal bits of each ``r[i]`` under an adaptive geometric model per context ``ctx[i]`` (all
    reset where ``start[i]``). Unsigned: a geometric over 0, 1, ... whose mean is the context's
    running mean, starting from ``seed[i]`` (the mean |r|) with the weight of ``w0`` symbols.
    Signed: a two-sided geometric with its own probability of ``r >= 0`` and a geometric for each
    side (``r`` and ``-r - 1``), each a running mean starting from the discrete Laplace of mean
    |r| ``seed[i]`` (weight ``w0`` for the sign, ``w0 / 2`` for each side): it learns skew and a
    context's sign as well as its scale."""
    n_p = np.zeros(nctx)
    s_p = np.zeros(nctx)
    n_n = np.zeros(nctx)
    s_n = np.zeros(nctx)
    for i in range(len(r)):
        if start[i]:
            n_p[:] = 0.0
            s_p[:] = 0.0
            n_n[:] = 0.0
            s_n[:] = 0.0
        k = ctx[i]
        m = max(seed[i], 1e-3)
        v = r[i]
        if signed[i]:
            th = (np.sqrt(1 + m * m) - 1) / m
            q0, mu0, h = 1 / (1 + th), th / (1 - th), w0 / 2
            q = (n_p[k] + w0 * q0) / (n_p[k] + n_n[k] + w0)
            if v >= 0:
                mu = (s_p[k] + h * mu0) / (n_p[k] + h)
                a, lp = v, np.log2(q)
                n_p[k] += 1.0
                s_p[k] += v
            else:
                mu = (s_n[k] + h * mu0) / (n_n[k] + h)
                a, lp = -v - 1, np.log2(1 - q)
                n_n[k] += 1.0
                s_n[k] += -v - 1
        else:
            mu = (s_p[k] + w0 * m) / (n_p[k] + w0)
            a, lp = abs(v), 0.0
            n_p[k] += 1.0
            s_p[k] += abs(v)
        t = max(mu, 1e-4) / (1 + max(mu, 1e-4))
        out[i] = min(-(lp + np.log2(1 - t) + a * np.log2(t)), 24.0)  # a 24-bit coder's floor


# --------------------------------------------------------------------------------- contexts
def lb(v, k: int) -> np.ndarray:
    """Magnitude bucket: ``floor(2 log2(1 + |v|))`` capped at ``k - 1`` (0, 1, 2 ... for 0, 0.5, 1,
    2, 3, 5, 7, 10, 15, ...)."""
    return np.minimum(k - 1, np.floor(2 * np.log2(1 + np.abs(v)))).astype(np.int64)


def sb(v, k: int) -> np.ndarray:
    """Signed magnitude bucket in ``0 .. 2k - 2``."""
    return (np.sign(v).astype(np.int64) * lb(v, k) + k - 1).astype(np.int64)


def nb_stats(ch: Chunk, v: np.ndarray):
    """``(count, mean, mean |.|, values, valid)`` of ``v`` over each Gaussian's causal neighbours."""
    valid = ch.nb >= 0
    vals = np.where(valid, v[np.maximum(ch.nb, 0)], 0.0)
    cnt = valid.sum(1)
    den = np.maximum(cnt, 1)
    return cnt, vals.sum(1) / den, np.abs(vals).sum(1) / den, vals, valid


def prev_of(v: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], v[:-1]])


def size_bucket(ch: Chunk, k: int = 10) -> np.ndarray:
    """Own size: log of the geometric-mean sigma (px) in steps of 0.35 from -1 (0.37 px)."""
    return np.clip(np.floor((ch.log_size + 1.0) / 0.35), 0, k - 1).astype(np.int64)


def grad_bucket(ch: Chunk, k: int = 6) -> np.ndarray:
    """Level 0's render gradient at the Gaussian (8-bit values / px); 0 on level 0 itself."""
    if ch.l0 is None:
        return np.zeros(ch.n, np.int64)
    return np.minimum(k - 1, 1 + lb(ch.l0_grad, k - 1))


def l0y_bucket(ch: Chunk, k: int = 6) -> np.ndarray:
    if ch.l0 is None:
        return np.zeros(ch.n, np.int64)
    return 1 + np.clip(np.floor(np.clip(ch.l0_y, 0, 1) * (k - 1)), 0, k - 2).astype(np.int64)


# A plan codes one stream of one chunk: (r, ctx, signed, fixed bits): the symbols and contexts the
# adaptive models code (``r`` None: nothing adaptive), and the bits of what is coded otherwise.
def plan_default(ch: Chunk, i: int, ctx=None):
    if i == 0:  # the file's own model: x uniform over lo..hi (2.x), the gaps' low bits uniform (3.x)
        kind, lo, hi, loc, k = ch.params[0]
        return None, None, False, static_bits(ch.streams[0], kind, lo, hi, loc, k)
    return ch.r(i), np.zeros(ch.n, np.int64) if ctx is None else ctx, True, 0.0


def plan_ctx(ch, i, ctx):
    return plan_default(ch, i, ctx)


def plan_pred(ch, i, pred, ctx=None):
    """Code stream ``i`` minus a prediction."""
    r = ch.streams[i] - pred
    return r, np.zeros(ch.n, np.int64) if ctx is None else ctx, True, 0.0


def v_prev(ch, i):
    if i < 1:
        return None
    r = ch.r(i)
    ctx = 1 + sb(prev_of(r), 6)
    ctx[0] = 0
    return plan_ctx(ch, i, ctx)


def v_prevdelta(ch, i):
    if i < 2:
        return None
    s = ch.streams[i]
    pred = prev_of(s)
    pred[0] = ch.locs[i]
    return plan_pred(ch, i, pred)


def v_nbmag(ch, i):
    if i < 2:
        return None
    cnt, _, mabs, _, _ = nb_stats(ch, ch.r(i).astype(np.float64))
    return plan_ctx(ch, i, np.where(cnt > 0, 1 + lb(mabs, 10), 0))


def v_nbpred(ch, i):
    if i < 2:
        return None
    s = ch.streams[i].astype(np.float64)
    cnt, mean, _, vals, valid = nb_stats(ch, s)
    spread = np.where(valid, np.abs(vals - mean[:, None]), 0).sum(1) / np.maximum(cnt, 1)
    pred = np.where(cnt > 0, np.round(mean), ch.locs[i]).astype(np.int64)
    return plan_pred(ch, i, pred, np.where(cnt > 0, 1 + lb(spread, 8), 0))


def v_own_geometry(ch, i):
    """The same Gaussian's geometry, coded cov0, cov2, then the shear cov1 (a reordering): cov2 |
    cov0's signed bucket; shear | size and signed anisotropy (log l11 - log l22); colours | size."""
    if i == 4:
        return plan_ctx(ch, i, sb(ch.r(2), 5))
    if i == 3:
        return plan_ctx(ch, i, size_bucket(ch) * 7 + sb(ch.aniso / 0.25, 4))
    if i >= 5:
        return plan_ctx(ch, i, size_bucket(ch))
    return None


def v_channels(ch, i):
    """Co | Y's signed bucket, Cg | (Y's, Co's signed buckets) of the same Gaussian."""
    if i == 6:
        return plan_ctx(ch, i, sb(ch.r(5), 6))
    if i == 7:
        return plan_ctx(ch, i, sb(ch.r(5), 4) * 7 + sb(ch.r(6), 4))
    return None


def v_l0grad(ch, i):
    if i < 2:
        return None
    return plan_ctx(ch, i, grad_bucket(ch))


def v_l0y(ch, i):
    if i < 5:
        return None
    return plan_ctx(ch, i, l0y_bucket(ch))


def v_pos_row(ch, i):
    """dy adaptive (context: previous dy == 0); x - previous x - 1 when on the same row (dy = 0),
    else x uniform."""
    if i == 1:
        d = ch.dqy.copy()
        lo, hi = int(d.min()), int(d.max())
        d[0] = 0  # the first Gaussian's qy, uniform over the stream's range
        return d, np.minimum(prev_of(d), 1), False, math.log2(hi - lo + 1)
    if i == 0:
        d = ch.dqy
        same = (d == 0) & (np.arange(ch.n) > 0)
        r = ch.qx[same] - prev_of(ch.qx)[same] - 1
        m = int(ch.qx.max() - ch.qx.min()) + 1
        fixed = float((~same).sum()) * (24 - math.log2((1 << 24) // m))
        return r, np.zeros(len(r), np.int64), False, fixed
    return None


def _cells(ch, factor=1.0):
    """Cell grid over the chunk's bounding box, cells of ``2^round(log2(factor x spacing))`` grid
    units (known to a decoder from ``n`` and the box): counts [cy, cx], areas, cell edge."""
    x0, x1, y0, y1 = ch.bbox
    g = max(1, 2 ** int(round(math.log2(max(factor * ch.spacing, 1)))))
    ncx, ncy = (x1 - x0) // g + 1, (y1 - y0) // g + 1
    cnt = np.zeros((ncy, ncx), np.int64)
    np.add.at(cnt, ((ch.qy - y0) // g, (ch.qx - x0) // g), 1)
    wx = np.minimum(g, x1 - x0 + 1 - np.arange(ncx) * g)
    wy = np.minimum(g, y1 - y0 + 1 - np.arange(ncy) * g)
    return cnt, wy[:, None] * wx[None, :], g


def _log2_multiset(a, k):
    """log2 of the number of multisets of ``k`` positions out of ``a`` (an unordered set)."""
    from scipy.special import gammaln

    return float(np.sum((gammaln(a + k) - gammaln(k + 1) - gammaln(a)) / LN2))


def v_pos_cells(ch, i, l0=False):
    """Positions as a set: the count of Gaussians in each cell (raster order of cells, context: the
    counts left, above and above-left + above-right, capped at 2, and with ``l0`` level 0's render
    gradient at the cell centre), then each cell's positions as an unordered set (log2 of the
    multisets). Reported as x = the in-cell positions, dy = the counts."""
    if i > 1:
        return None
    cnt, area, g = _cells(ch)
    if i == 0:
        return None, None, False, _log2_multiset(area, cnt)
    pad = np.pad(np.minimum(cnt, 2), 1)
    left, up = pad[1:-1, :-2], pad[:-2, 1:-1]
    diag = np.minimum(pad[:-2, :-2] + pad[:-2, 2:], 2)
    ctx = left + 3 * up + 9 * diag
    if l0 and ch.l0 is not None:
        x0, _, y0, _ = ch.bbox
        cy = ch.origin[1] + (y0 + (np.arange(cnt.shape[0]) + 0.5) * g) * ch.pos_step
        cx = ch.origin[0] + (x0 + (np.arange(cnt.shape[1]) + 0.5) * g) * ch.pos_step
        gm = ch.l0[1]
        iy = np.clip(cy.astype(np.int64), 0, gm.shape[0] - 1)
        ix = np.clip(cx.astype(np.int64), 0, gm.shape[1] - 1)
        ctx = ctx + 27 * lb(gm[iy[:, None], ix[None, :]], 6)
    return cnt.ravel(), ctx.ravel(), False, 0.0


def _morton(x, y, bits=16):
    out = np.zeros(len(x), np.int64)
    for b in range(bits):
        out |= ((x >> b) & 1) << (2 * b) | ((y >> b) & 1) << (2 * b + 1)
    return out


def v_pos_morton(ch, i):
    """Positions sorted in Morton (Z) order, the gaps between successive Morton codes coded (the
    first code whole), context: the previous gap's bucket (local density). All bits under x."""
    if i > 1:
        return None
    if i == 1:
        return None, None, False, 0.0
    x0, _, y0, _ = ch.bbox
    gaps = np.diff(np.sort(_morton(ch.qx - x0, ch.qy - y0)), prepend=0)
    ctx = np.minimum(lb(np.log2(1 + prev_of(gaps)), 8), 7)
    return gaps, ctx, False, 0.0


def v_pos_set_bound(ch, i):
    """Reference: the positions as one unordered set in the bounding box, uniform density."""
    if i > 1:
        return None
    x0, x1, y0, y1 = ch.bbox
    return None, None, False, _log2_multiset((x1 - x0 + 1) * (y1 - y0 + 1), ch.n) if i == 0 else 0.0


#: Contexts only for chunks of at least this many Gaussians (a decoder knows ``n`` from the
#: index): level-0 chunks (~40 Gaussians) cannot pay for learning them.
MIN_CONTEXT_N = 256


def v_combined(ch, i):
    """The most informative causal features found (mutual information on the default images), two a
    stream at most: positions as cell counts + in-cell sets; cov0 | neighbours' mean (signed); cov2 |
    cov0; the shear, coded last, | size x signed anisotropy; Y | size x neighbours' |Y|; Co |
    neighbours' |Co| x signed Y; Cg | neighbours' |Cg| x signed Y. No contexts in chunks of fewer
    than ``MIN_CONTEXT_N`` Gaussians."""
    if i <= 1:
        return v_pos_cells(ch, i)
    if ch.n < MIN_CONTEXT_N:
        return None
    if i == 2:  # log l11 | neighbours' mean (signed bucket)
        cnt, mean, _, _, _ = nb_stats(ch, ch.r(2).astype(np.float64))
        return plan_ctx(ch, i, np.where(cnt > 0, 1 + sb(mean, 6), 0))
    if i in (3, 4):
        return v_own_geometry(ch, i)

    def nbmag(j, k=6):
        cnt, _, mabs, _, _ = nb_stats(ch, ch.r(j).astype(np.float64))
        return np.where(cnt > 0, 1 + lb(mabs, k), 0)

    if i == 5:  # Y | size, neighbours' |Y|
        return plan_ctx(ch, i, size_bucket(ch) * 7 + nbmag(5))
    if i == 6:  # Co | neighbours' |Co|, Y
        return plan_ctx(ch, i, nbmag(6) * 7 + sb(ch.r(5), 4))
    return plan_ctx(ch, i, nbmag(7) * 7 + sb(ch.r(5), 4))  # Cg | neighbours' |Cg|, Y


VARIANTS = [
    ("adaptive, no context", lambda ch, i: None),
    ("ctx: previous symbol", v_prev),
    ("predict: previous symbol (delta)", v_prevdelta),
    ("ctx: neighbours' |value|", v_nbmag),
    ("predict: neighbours' mean", v_nbpred),
    ("ctx: own geometry (shear coded last)", v_own_geometry),
    ("ctx: earlier colour channels", v_channels),
    ("ctx: level-0 render gradient", v_l0grad),
    ("ctx: level-0 render value (colours)", v_l0y),
    ("pos: dy, then dx on the same row", v_pos_row),
    ("pos: cell counts + set", v_pos_cells),
    ("pos: cell counts + set, level-0 ctx", lambda ch, i: v_pos_cells(ch, i, l0=True)),
    ("pos: Morton order, gaps", v_pos_morton),
    ("pos: unordered set, uniform (reference)", v_pos_set_bound),
    ("combined (best two-feature contexts)", v_combined),
]


# ------------------------------------------------------------------------------- evaluation
def static_context_bits(r, ctx, signed):
    """Two-pass bits of ``r``: one geometric table per context, its scale fitted to the chunk's
    symbols of that context (maximum likelihood) and sent as one byte per context beyond the first
    (the file already sends one per stream)."""
    a = np.abs(r).astype(np.float64)
    n_c = np.bincount(ctx, minlength=1).astype(np.float64)
    s_c = np.bincount(ctx, a, minlength=1)
    used = n_c > 0
    n_c, s_c = n_c[used], s_c[used]
    m = s_c / n_c
    if signed:  # two-sided: E|r| = 2t / (1 - t^2)
        t = np.where(m > 0, (np.sqrt(1 + m * m) - 1) / np.maximum(m, 1e-12), 0.0)
        bits = n_c * np.log2((1 + t) / (1 - t))
    else:  # one-sided: E r = t / (1 - t)
        t = m / (1 + m)
        bits = -n_c * np.log2(1 - t)
    bits = bits - np.where(s_c > 0, s_c * np.log2(np.maximum(t, 1e-300)), 0.0)
    return float(bits.sum()) + 8.0 * (used.sum() - 1)


def run_variant(chunks, fn, n_streams):
    """Bits of every stream of every chunk, ``[chunk, stream]``, by model family: ``laplace``
    (adaptive geometric per context, seeded by the chunk's stream scale), ``tables`` (two-pass: one
    geometric table per context and chunk), ``kt`` (binarised KT counts, flat in each chunk) and
    ``kt carried`` (counts carried over the chunks of a level)."""
    out = {f: np.zeros((len(chunks), n_streams)) for f in ("laplace", "tables", "kt", "kt carried")}
    for i in range(n_streams):
        plans = [fn(ch, i) or plan_default(ch, i) for ch in chunks]
        for ci, (r, ctx, signed, fixed) in enumerate(plans):
            for f in out:
                out[f][ci, i] += fixed
        for carry in (False, True):
            rs, cs, sg, seed, starts, owner = [], [], [], [], [], []
            prev_group = None
            for ci, (ch, (r, ctx, signed, fixed)) in enumerate(zip(chunks, plans)):
                if r is None or len(r) == 0:
                    continue
                if not carry:
                    out["tables"][ci, i] += static_context_bits(np.asarray(r), np.asarray(ctx), signed)
                group = (ch.file, ch.level) if carry else ci
                st = np.zeros(len(r), np.bool_)
                st[0] = group != prev_group
                prev_group = group
                rs.append(np.asarray(r, np.int64))
                cs.append(np.asarray(ctx, np.int64))
                sg.append(np.full(len(r), signed, np.bool_))
                # the chunk's own scale (mean |r|): the one byte k a stream table already holds
                seed.append(np.full(len(r), max(float(np.mean(np.abs(r))), 1e-3)))
                starts.append(st)
                owner.append(np.full(len(r), ci))
            if not rs:
                continue
            r, ctx = np.concatenate(rs), np.concatenate(cs)
            assert ctx.min() >= 0, "negative context"
            sg, st, own = np.concatenate(sg), np.concatenate(starts), np.concatenate(owner)
            res = np.empty(len(r))
            binarised_bits(r, ctx, sg, st, int(ctx.max()) + 1, res)
            out["kt carried" if carry else "kt"][:, i] += np.bincount(own, res, minlength=len(chunks))
            if not carry:
                laplace_bits(r, ctx, sg, np.concatenate(seed), st, int(ctx.max()) + 1, SEED_WEIGHT, res)
                out["laplace"][:, i] += np.bincount(own, res, minlength=len(chunks))
    return out


def baseline_rows(chunks, n_streams):
    """``(static table bits, empirical entropy bits, KT-over-values bits)``, each ``[chunk, stream]``."""
    stat = np.zeros((len(chunks), n_streams))
    emp = np.zeros((len(chunks), n_streams))
    kt = np.zeros((len(chunks), n_streams))
    for ci, ch in enumerate(chunks):
        for i, s in enumerate(ch.streams):
            kind, lo, hi, loc, k = ch.params[i]
            stat[ci, i] = static_bits(s, kind, lo, hi, loc, k)
            c = np.bincount(s - s.min())
            c = c[c > 0]
            emp[ci, i] = -float(np.sum(c * np.log2(c / ch.n)))
            if i == 0:
                kt[ci, i] = stat[ci, i]
            elif hi > lo:
                res = np.empty(ch.n)
                st = np.zeros(ch.n, np.bool_)
                st[0] = True
                kt_value_bits(s - lo, np.full(ch.n, hi - lo + 1), st, 0.5, res)
                kt[ci, i] = res.sum()
    return stat, emp, kt


FAMILIES = {"laplace": "adaptive geometric", "tables": "tables per context", "kt": "KT counts",
            "kt carried": "KT counts carried"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=6, help="Kodak images, spread over the set (default 6)")
    ap.add_argument("--bpp", type=float, default=1.0, help="target rate of the encodes (default 1)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ligcodec-ctx"),
                    help="where the .lig files are written and reused (default /tmp/ligcodec-ctx)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    paths = kodak_files(args.images, args.bpp, args.workdir)
    chunks = load_chunks(paths)
    channels = chunks[0].qk.shape[1]
    # 2.x files code x and dy; 3.x files the raster gaps' low bits and high part (spec section 4).
    names = ["x|low", "dy|high", "cov0", "cov1", "cov2"] + [f"colour{c}" for c in range(channels)]
    ns = len(names)
    gauss = np.array([ch.n for ch in chunks], np.float64)
    level = np.array([ch.level for ch in chunks])
    side = np.array([ch.side for ch in chunks], np.float64)
    file_bits = np.array([8 * ch.bytes for ch in chunks], np.float64)
    total_n = gauss.sum()
    levels = sorted(set(level.tolist()))

    stat, emp, kt = baseline_rows(chunks, ns)
    base = [("(0) file: chunk bytes x 8", None, file_bits),
            ("(0) file's static tables, ideal", stat, None),
            ("(1) per-chunk empirical entropy", emp, None),
            ("(2) KT over values lo..hi, +1/2", kt, None)]
    variants = [(name, run_variant(chunks, fn, ns)) for name, fn in VARIANTS]
    ref = file_bits.sum()

    def cells(bits, total_only=None, streams=True):
        """Per-stream, side, total and saving cells of ``bits [chunk, stream]`` (+ side)."""
        row = {}
        if bits is None:
            tot = total_only
        else:
            if streams:
                row.update({nm: f"{bits[:, i].sum() / total_n:.2f}" for i, nm in enumerate(names)})
                row["side"] = f"{side.sum() / total_n:.2f}"
            tot = bits.sum(1) + side
        row["total"] = f"{tot.sum() / total_n:.2f}"
        row["saving"] = f"{100 * (1 - tot.sum() / ref):+.1f}%"
        row["_tot"] = tot
        return row

    def table(family, extra):
        rows = []
        for name, bits, total_only in base:
            rows.append({"variant": name, **cells(bits, total_only)})
        for name, fam in variants:
            row = {"variant": name, **cells(fam[family])}
            for f in extra:
                c = cells(fam[f], streams=False)
                row[f"{FAMILIES[f]}"], row[f"{FAMILIES[f]} saving"] = c["total"], c["saving"]
            rows.append(row)
        cols = ["variant"] + names + ["side", "total", "saving"]
        for f in extra:
            cols += [FAMILIES[f], f"{FAMILIES[f]} saving"]
        print_table(rows, cols)

    per_level = ", ".join(f"level {lv}: {int(gauss[level == lv].sum())} in {int((level == lv).sum())} chunks"
                          for lv in levels)
    print(f"{len(paths)} Kodak images at {args.bpp:g} bpp (effort 1), {int(total_n)} Gaussians ({per_level}); "
          "bits per Gaussian, all levels pooled; savings against the file's bytes.")
    print()
    print("A. Adaptive geometric per context (sign probability and one geometric per side, running means "
          f"seeded with the chunk's stream scale at weight {SEED_WEIGHT:g}, flat in each chunk); and (right) "
          "two-pass, one symmetric geometric table per context and chunk, + 1 byte per extra context")
    table("laplace", ["tables"])
    print()
    print("B. Binarised KT counts per context (zero, sign, unary bucket; flat in each chunk), and (right) "
          "counts carried over a level's chunks")
    table("kt", ["kt carried"])
    print()
    lrows = []
    for name, bits, total_only in base:
        tot = cells(bits, total_only)["_tot"]
        lrows.append({"variant": name, **{f"L{lv} {FAMILIES['laplace']}": f"{tot[level == lv].sum() / gauss[level == lv].sum():.2f}"
                                          for lv in levels}})
    for name, fam in variants:
        row = {"variant": name}
        for lv in levels:
            sel = level == lv
            for f in FAMILIES:
                row[f"L{lv} {FAMILIES[f]}"] = f"{(fam[f][sel].sum() + side[sel].sum()) / gauss[sel].sum():.2f}"
        lrows.append(row)
    print("C. Per level, total bits per Gaussian (baselines in the first column of each level)")
    print_table(lrows, ["variant"] + [f"L{lv} {FAMILIES[f]}" for lv in levels for f in FAMILIES])
    print()
    fam = dict(variants)
    comb, none = fam["combined (best two-feature contexts)"], fam["adaptive, no context"]
    fileno = np.array([ch.file for ch in chunks])
    irows = []
    for fi, path in enumerate(paths):
        sel = fileno == fi
        n = gauss[sel].sum()
        f = file_bits[sel].sum()

        def bpg(b):
            return (b[sel].sum() + side[sel].sum()) / n

        irows.append({"image": path.stem.split("-")[0], "Gaussians": int(n), "file": f"{f / n:.2f}",
                      "static ideal": f"{bpg(stat):.2f}", "adaptive geometric": f"{bpg(none['laplace']):.2f}",
                      "combined": f"{bpg(comb['laplace']):.2f}",
                      "saving": f"{100 * (1 - bpg(comb['laplace']) * n / f):+.1f}%",
                      "combined, KT carried": f"{bpg(comb['kt carried']):.2f}",
                      "saving ": f"{100 * (1 - bpg(comb['kt carried']) * n / f):+.1f}%"})
    print("D. Per image, total bits per Gaussian")
    print_table(irows, ["image", "Gaussians", "file", "static ideal", "adaptive geometric", "combined", "saving",
                        "combined, KT carried", "saving "])
    print()
    print(f"Check: the file's static tables' ideal bits + stream tables = {100 * (stat.sum() + side.sum()) / ref:.2f}% "
          "of the chunk bytes (the rest is the ANS coder's overhead).")
    print("x, dy of the 'pos: cell' rows are the in-cell positions and the cell counts; the 'pos: Morton' and "
          "'pos: unordered set' rows put all position bits under x.")
    print(f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
