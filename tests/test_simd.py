"""Each numba intrinsic of ``ligcodec/render/simd.py`` against a scalar twin written here in numpy.

The intrinsics are LLVM IR whose float operations are plain ``fmul``/``fadd``/``fsub``/``fptrunc``
without fast-math flags, or ``llvm.fma`` (exactly rounded): LLVM may neither reassociate nor
contract them, so their results are fixed by IEEE 754 whatever the vector width LLVM lowers them
to (zmm on AVX-512, pairs of ymm on AVX2). The twins below do the same operations in the same
order with numpy's elementwise float32/float64 arithmetic (each ufunc call is one correctly rounded
IEEE operation; numpy cannot contract across two calls), and emulate ``llvm.fma`` exactly (float32:
:func:`fma32`, float64: :func:`fma64`). So every comparison of an intrinsic with its twin is bit for
bit, with no tolerance. The one tolerance in this file is the float64 cross-check of the backward
sums (:func:`test_box_backward_sums`), which checks the twin's loop structure against the
documented sums and is derived there.

The twins are written from the intrinsics' documented semantics and do not import simd.py's
constants (``simd._POLY``): a wrong coefficient in the product would make them differ.

Every intrinsic that the kernels use is tested in isolation (each through a small ``@njit``
wrapper that calls it on a batch of inputs); none needed the dense reference. The wrappers are
not cached on purpose: numba's cache is keyed on this file, not on simd.py, so a cached wrapper
would keep the inlined IR of an older simd.py.
"""

from fractions import Fraction

import numpy as np
import pytest
from numba import njit

from ligcodec.render import kernels, simd
from ligcodec.render.contract import CUTOFF_Q

F32, F64 = np.float32, np.float64
#: The vector width of the wide intrinsics (the kernels' LANES, 16 float32).
LANES = kernels.LANES
#: Written into output slots an intrinsic must not store to, to see that they stay untouched.
SENTINEL = F32(-12345.678)
CUT = F64(CUTOFF_Q)


# ---------------------------------------------------------------------------------------------
# Exact float helpers
# ---------------------------------------------------------------------------------------------


def bits(x):
    """The IEEE bit patterns of a float32 or float64 array (so -0.0 != 0.0 and NaN == same NaN)."""
    x = np.ascontiguousarray(x)
    return x.view(np.uint32 if x.dtype == F32 else np.uint64)


def assert_bits_equal(actual, expected, what=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    bad = np.flatnonzero(bits(actual).ravel() != bits(expected).ravel())
    if bad.size:
        k = bad[0]
        raise AssertionError(f"{what}: {bad.size} of {actual.size} values differ in their bits, first at "
                             f"flat index {k}: {actual.ravel()[k]!r} != twin {expected.ravel()[k]!r}")


def fma32(a, b, c):
    """float32 ``a b + c`` rounded once, like ``llvm.fma.v*f32``, elementwise.

    ``a b`` of two float32 is exact in float64 (24 + 24 <= 53 significand bits); TwoSum then gives
    ``s + e == a b + c`` exactly. Rounding ``s`` to odd (if inexact and ``s``'s last bit is even,
    step to the float64 neighbour on ``e``'s side) keeps a sticky bit, and a round-to-odd result at
    53 bits rounds to nearest at 24 bits exactly as the exact value would (53 >= 24 + 2; Boldo and
    Melquiond, "Emulation of FMA and correctly rounded sums", 2008). Plain float64 ``a b + c``
    would round twice (see test_fma32_twin_is_correctly_rounded)."""
    a, b, c = (np.asarray(v, F32).astype(F64) for v in (a, b, c))
    p = a * b
    s = p + c
    bb = s - p
    e = (p - (s - bb)) + (c - bb)
    even = (bits(s) & np.uint64(1)) == 0
    toward = np.where(e > 0, np.inf, -np.inf)
    s = np.where((e != 0) & even, np.nextafter(s, toward), s)
    return s.astype(F32)


def fma64(x, y, z):
    """float64 ``x y + z`` rounded once, like ``llvm.fma.v*f64``, elementwise, via exact rationals
    (``float(Fraction)`` is a correctly rounded integer division). An exact zero takes IEEE's sign
    rule, which the float64 ``x y + z`` then gets right (``x y == -z`` is exact there); so does a
    NaN or infinite ``z`` with finite ``x y`` (the result is ``z``'s)."""
    x, y, z = np.broadcast_arrays(*(np.asarray(v, F64) for v in (x, y, z)))
    out = np.empty(x.shape, F64)
    for i in np.ndindex(x.shape):
        if not np.isfinite(z[i]):
            assert np.isfinite(x[i] * y[i])
            out[i] = x[i] * y[i] + z[i]
            continue
        exact = Fraction(float(x[i])) * Fraction(float(y[i])) + Fraction(float(z[i]))
        out[i] = float(exact) if exact != 0 else x[i] * y[i] + z[i]
    return out


# ---------------------------------------------------------------------------------------------
# Scalar twins
# ---------------------------------------------------------------------------------------------


def exp_horner(q):
    """exp(-q/2) of float32 ``q`` as ``kernels._exp_half_neg``: u = -q/32, the degree-6 Taylor
    polynomial of exp(u) by Horner, squared four times; all float32."""
    with np.errstate(over="ignore", invalid="ignore"):
        u = np.asarray(q, F32) * F32(-1.0 / 32.0)
        p = np.full_like(u, F32(1.0 / 720.0))
        for c in (1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0):
            p = p * u + F32(c)
        for _ in range(4):
            p = p * p
    return p


def exp_estrin(q):
    """The same polynomial by Estrin's scheme with float32 fused multiply-adds (simd.FUSED):
    p = fma(u^4, fma(u^2, 1/720, fma(u, 1/120, 1/24)), fma(u^2, fma(u, 1/6, 1/2), u + 1)),
    squared four times."""
    with np.errstate(over="ignore", invalid="ignore"):
        u = np.asarray(q, F32) * F32(-1.0 / 32.0)
        u2 = u * u
        u4 = u2 * u2
        a01 = u + F32(1.0)
        a23 = fma32(u, F32(1.0 / 6.0), F32(0.5))
        a45 = fma32(u, F32(1.0 / 120.0), F32(1.0 / 24.0))
        a46 = fma32(u2, F32(1.0 / 720.0), a45)
        p = fma32(u4, a46, fma32(u2, a23, a01))
        for _ in range(4):
            p = p * p
    return p


def columns_twin(j0, mx, a, col):
    """``dx = (j0 + col + 0.5) - mx`` and ``a dx`` in float64, per lane (``col``: the lane's column)."""
    d = (np.asarray(j0 + col, np.int64).astype(F64) + 0.5) - F64(mx)
    return d, F64(a) * d


def weights_twin(d, ad, bvec, kvec, cutoff, lane_ok, fused):
    """A box row's weights: q = (a dx + 2 b dy) dx + c dy^2 in float64 (one fma when ``fused``),
    exp(-q/2) of float32(q), 0 where not (q <= cutoff) or the lane is masked off."""
    a1 = ad + bvec
    q = fma64(a1, d, kvec) if fused else a1 * d + kvec
    p = (exp_estrin if fused else exp_horner)(q.astype(F32))
    return np.where((q <= cutoff) & lane_ok, p, F32(0.0)).astype(F32)


def acc_twin(old, c, w, fused):
    """A channel update ``old + c w`` (float32; one fma when ``fused``)."""
    return fma32(c, w, old) if fused else old + F32(c) * w


# ---------------------------------------------------------------------------------------------
# njit wrappers: each calls one intrinsic on a batch of inputs (row k of each array)
# ---------------------------------------------------------------------------------------------


@njit
def _run_span16(w, t0, q0, q1, q2, nf):
    for k in range(w.shape[0]):
        simd.span_weights16(w[k], t0[k], q0[k], q1[k], q2[k], nf[k])


def _columns_runner(fn):
    @njit
    def run(dx, adx, j0, mx, a):
        for k in range(dx.shape[0]):
            fn(dx[k], adx[k], j0[k], mx[k], a[k])
    return run


def _weights_runner(fn):
    @njit
    def run(w, dx, adx, nj, b, kk, cutoff):
        for k in range(w.shape[0]):
            fn(w[k], dx[k], adx[k], nj[k], b[k], kk[k], cutoff)
    return run


def _rgb_runner(fn):
    @njit
    def run(dst, off, plane, cols, dx, adx, nj, b, kk, cutoff):
        for k in range(off.shape[0]):
            fn(dst, off[k], plane, cols[k, 0], cols[k, 1], cols[k, 2], dx[k], adx[k], nj[k], b[k], kk[k],
               cutoff)
    return run


def _axpy_runner(fn):
    @njit
    def run(dst, off, c, w):
        for k in range(off.shape[0]):
            fn(dst, off[k], c[k], w[k])
    return run


def _pair_runner(fn):
    @njit
    def run(w, dx, adx, nj, bk, cutoff):
        for k in range(w.shape[0]):
            fn(w[k], dx[k], adx[k], nj[k], bk[k, 0], bk[k, 1], bk[k, 2], bk[k, 3], cutoff)
    return run


def _pair_rgb_runner(fn):
    @njit
    def run(dst, off, stride, plane, cols, dx, adx, nj, bk, cutoff):
        for k in range(off.shape[0]):
            fn(dst, off[k], stride, plane, cols[k, 0], cols[k, 1], cols[k, 2], dx[k], adx[k], nj[k],
               bk[k, 0], bk[k, 1], bk[k, 2], bk[k, 3], cutoff)
    return run


@njit
def _run_quad(w, dx, adx, nj, nr, bk, cutoff):
    for k in range(w.shape[0]):
        simd.box_weights4x4(w[k], dx[k], adx[k], nj[k], nr[k], bk[k, 0], bk[k, 1], bk[k, 2], bk[k, 3],
                            bk[k, 4], bk[k, 5], bk[k, 6], bk[k, 7], cutoff)


@njit
def _run_quad_rgb(dst, off, stride, plane, cols, dx, adx, nj, nr, bk, cutoff):
    for k in range(off.shape[0]):
        simd.box_weights_rgb4x4(dst, off[k], stride, plane, cols[k, 0], cols[k, 1], cols[k, 2], dx[k], adx[k],
                                nj[k], nr[k], bk[k, 0], bk[k, 1], bk[k, 2], bk[k, 3], bk[k, 4], bk[k, 5],
                                bk[k, 6], bk[k, 7], cutoff)


@njit
def _run_block(dst, stride, plane, box, geo, aux, means, colours, scale, cutoff, x0, b0, b1, g0, g1):
    return simd.est_box8_rgb_block(dst, stride, plane, box, geo, aux, means, colours, scale, cutoff, x0, b0,
                                   b1, g0, g1)


def _backward_runner(fn):
    @njit
    def run(planes, y0, x0, ii, fl, cols, cutoff, out):
        # ii[k] = (i0, i1, j0, nj); fl[k] = (mx, my, a, 2b, c)
        for k in range(out.shape[0]):
            r = fn(planes, y0, x0, ii[k, 0], ii[k, 1], ii[k, 2], ii[k, 3], fl[k, 0], fl[k, 1], fl[k, 2],
                   fl[k, 3], fl[k, 4], cols[k, 0], cols[k, 1], cols[k, 2], cutoff)
            for m in range(9):
                out[k, m] = r[m]
    return run


_COLUMNS = {
    "box_columns16": (_columns_runner(simd.box_columns16), np.arange(16)),
    "box_columns8x2": (_columns_runner(simd.box_columns8x2), np.arange(16) % 8),
    "box_columns4x4": (_columns_runner(simd.box_columns4x4), np.arange(16) % 4),
}
# name: (wrapper, lanes, fused)
_ROW = {
    "box_weights16": (_weights_runner(simd.box_weights16), 16, False),
    "box_weights8": (_weights_runner(simd.box_weights8), 8, False),
    "est_box_weights8": (_weights_runner(simd.est_box_weights8), 8, True),
}
_ROW_RGB = {
    "box_weights_rgb16": (_rgb_runner(simd.box_weights_rgb16), 16, False),
    "box_weights_rgb8": (_rgb_runner(simd.box_weights_rgb8), 8, False),
    "est_box_weights_rgb8": (_rgb_runner(simd.est_box_weights_rgb8), 8, True),
}
_AXPY = {"axpy16": (_axpy_runner(simd.axpy16), 16), "axpy8": (_axpy_runner(simd.axpy8), 8),
         "axpy4": (_axpy_runner(simd.axpy4), 4)}
_PAIR = {"box_weights8x2": (_pair_runner(simd.box_weights8x2), False),
         "est_box_weights8x2": (_pair_runner(simd.est_box_weights8x2), True)}
_PAIR_RGB = {"box_weights_rgb8x2": (_pair_rgb_runner(simd.box_weights_rgb8x2), False),
             "est_box_weights_rgb8x2": (_pair_rgb_runner(simd.est_box_weights_rgb8x2), True)}
# name: (wrapper, columns per row, chunked)
_BACKWARD = {"box8_backward_rgb": (_backward_runner(simd.box8_backward_rgb), 8, False),
             "box16_backward_rgb": (_backward_runner(simd.box16_backward_rgb), 16, False),
             "wide_backward_rgb": (_backward_runner(simd.wide_backward_rgb), 16, True)}
# name: (wrapper, the full function it must match)
_COLOUR_SUMS = {"box8_colour_sums": (_backward_runner(simd.box8_colour_sums), "box8_backward_rgb"),
                "box16_colour_sums": (_backward_runner(simd.box16_colour_sums), "box16_backward_rgb"),
                "wide_colour_sums": (_backward_runner(simd.wide_colour_sums), "wide_backward_rgb")}


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def _conics(rng, k):
    """``k`` positive definite conics (a, b, c) of Gaussians 0.3-4 px across."""
    a = rng.uniform(0.06, 2.5, k)
    c = rng.uniform(0.06, 2.5, k)
    b = rng.uniform(-0.95, 0.95, k) * np.sqrt(a * c)
    return a, b, c


#: c dy^2 of the first calls of :func:`_rows` (with a = 2b dy = 0, so q = c dy^2), and their weights:
#: kept at the cut-off, 0 above it, 1 at q = 0, 1 at q tiny, 0 for NaN and infinite q.
SPECIAL = [CUT, np.nextafter(CUT, np.inf), 0.0, 1e-30, np.nan, np.inf]
#: The call of each batch that holds :func:`_fma_boundary_lanes`.
FMA_ROW = len(SPECIAL)


def _check_special(w, fused):
    """The weights of :data:`SPECIAL` and :data:`FMA_ROW` calls, ``w [calls, lanes]``."""
    assert (w[0] > 0.01).all() and (w[[1, 4, 5]] == 0.0).all() and (w[[2, 3]] == 1.0).all()
    assert ((w[FMA_ROW] == 0.0) if fused else (w[FMA_ROW] > 0.01)).all()


def _rows(rng, k, nlanes, nrows):
    """Per call: a box's first column ``j0``, centre ``mx``, ``a``, the number of valid columns
    ``nj`` (cycling through -1..nlanes + 1: none, every width, wider than the vector), and
    ``(2 b dy, c dy^2)`` of ``nrows`` rows ``[k, nrows, 2]``. The first calls (:data:`SPECIAL`)
    are the cut-off boundary with q == cutoff exactly (a = b = 0: q = 0 dx + c dy^2 exactly), q
    one float64 above it, q = 0, q tiny, q NaN and q infinite, on every lane."""
    j0 = rng.integers(-60, 400, k)
    mx = j0 + rng.uniform(-3.0, nlanes + 3.0, k)
    a, b, c = _conics(rng, k)
    dy = rng.uniform(-4.5, 4.5, (k, 1)) + np.arange(nrows)  # consecutive rows
    bk = np.stack([(2.0 * b[:, None]) * dy, (c[:, None] * dy) * dy], -1)
    nj = np.arange(k) % (nlanes + 3) - 1
    a[: len(SPECIAL)] = 0.0
    bk[: len(SPECIAL), :, 0] = 0.0
    bk[: len(SPECIAL), :, 1] = np.array(SPECIAL)[:, None]
    nj[: len(SPECIAL)] = nlanes
    return j0.astype(np.int64), mx, a, nj.astype(np.int64), bk


def _fma_boundary_lanes():
    """16 lanes (dx, a dx) where q = a dx * dx + 29 (2b dy = 0, c dy^2 = 29) is the cut-off exactly
    when rounded twice (a dx * dx, then + 29; what HORNER computes: weight exp(-4.5)) but one float64
    above it when rounded once (FUSED's fma64: weight 0). Found by search: a dx * dx near -20 has
    rounding error up to 2^-49, half an ulp of 9 is 2^-50, so about a fifth of the candidates
    qualify. Without them no test would tell an fma64 from an fmul + fadd: a one-ulp change of a
    float64 q almost never changes float32(q)."""
    rng = np.random.default_rng(99)
    d = rng.uniform(1.0, 4.0, 400)
    adx = (CUT - 29.0) / d
    split = ((adx * d + 29.0) <= CUT) & ~(fma64(adx, d, 29.0) <= CUT)
    assert split.sum() >= LANES
    return d[split][:LANES], adx[split][:LANES]


def _plant_fma_boundary(dx, adx, bk, nj, rows, nlanes):
    """Rows ``rows`` of a batch become :func:`_fma_boundary_lanes` rows (all lanes valid)."""
    d, ad = _fma_boundary_lanes()
    for i in rows:
        dx[i, :nlanes], adx[i, :nlanes] = d[:nlanes], ad[:nlanes]
        bk[i, :, 0], bk[i, :, 1], nj[i] = 0.0, 29.0, nlanes


def _dx_lanes(j0, mx, a, col):
    """Twin ``dx``, ``a dx`` of every call, ``[k, 16]`` (lanes past ``len(col)``: NaN, never read)."""
    dx = np.full((len(j0), LANES), np.nan)
    adx = np.full((len(j0), LANES), np.nan)
    for k in range(len(j0)):
        dx[k, : len(col)], adx[k, : len(col)] = columns_twin(j0[k], mx[k], a[k], col)
    return dx, adx


def _colours(rng, k):
    """Per-call colours ``[k, 3]`` float32, every fifth call all zero."""
    cols = rng.normal(0.0, 1.0, (k, 3)).astype(F32)
    cols[FMA_ROW + 1 :: 5] = 0.0  # not the special calls: their colours are needed
    return cols


def _buffer(rng, size):
    """A float32 buffer of random values, a few of them +0.0 and -0.0 (signed-zero sums show)."""
    buf = rng.normal(0.0, 1.0, size).astype(F32)
    buf[::17] = 0.0
    buf[::23] = -0.0
    return buf


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_fma32_twin_is_correctly_rounded():
    """Checks the fma32 emulation itself (every FUSED comparison rests on it): for random float32
    triples and for crafted double-rounding traps (a b = 1 + 2^-11 + 2^-24, a float32 tie, plus or
    minus 2^-80), the result is the float32 nearest to the exact rational a b + c (ties to even).
    Plain float64 a b + c gets the traps wrong, so the traps do test something."""
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, 300).astype(F32)
    b = rng.normal(0, 1, 300).astype(F32)
    c = (rng.normal(0, 1, 300) * 10.0 ** rng.integers(-10, 3, 300)).astype(F32)
    one = F32(1.0 + 2.0 ** -12)
    a = np.concatenate([a, [one, one, F32(3.0)]]).astype(F32)
    b = np.concatenate([b, [one, one, F32(1.0 / 3.0)]]).astype(F32)
    c = np.concatenate([c, [F32(2.0 ** -80), F32(-(2.0 ** -80)), F32(-1.0)]]).astype(F32)
    r = fma32(a, b, c)
    naive = (a.astype(F64) * b.astype(F64) + c.astype(F64)).astype(F32)
    assert r[-3] != naive[-3] and r[-2] == naive[-2]  # the trap: naive rounds the + 2^-80 case down
    for ai, bi, ci, ri in zip(a, b, c, r):
        exact = Fraction(float(ai)) * Fraction(float(bi)) + Fraction(float(ci))
        err = abs(Fraction(float(ri)) - exact)
        for nb in (np.nextafter(ri, F32(np.inf)), np.nextafter(ri, F32(-np.inf))):
            e2 = abs(Fraction(float(nb)) - exact)
            assert err < e2 or (err == e2 and bits(np.array([ri]))[0] % 2 == 0), (ai, bi, ci, ri)
    assert fma64(2.0 ** 30 + 1, 2.0 ** 30 - 1, -(2.0 ** 60)) == -1.0  # double rounding would give 0


def _q_grid():
    """float32 q over [0, 9.75]: dense, plus 0, the smallest subnormal, 1e-30, 1e-7, the
    cut-off 9 and its float32 neighbours, and 9.5."""
    nine = F32(9.0)
    special = [0.0, 1e-45, 1e-30, 1e-7, nine, np.nextafter(nine, F32(0)), np.nextafter(nine, F32(10)), 9.5]
    return np.concatenate([np.linspace(0.0, 9.75, 2045), special]).astype(F32)


def test_horner_twin_equals_kernels_exp_half_neg():
    """Checks that the Horner twin is the product's scalar ``kernels._exp_half_neg`` (the span
    path of the backward kernel) bit for bit on the q grid, so the HORNER intrinsics below are
    compared with exactly that function."""
    q = _q_grid()
    got = np.array([kernels._exp_half_neg(qi) for qi in q], F32)
    assert_bits_equal(got, exp_horner(q), "kernels._exp_half_neg vs Horner twin")


def test_span_weights16():
    """span_weights16 (tiled span path): w[lane] = exp(-q/2), q = q0 + t (q1 + t q2) in float32,
    t = t0 + lane, and 0 where t >= nf; the 16 slots after the vector stay untouched.
    Inputs: the q grid on every lane (q1 = q2 = 0, so q = q0 exactly: q near 0 and up to 9.75),
    then random anchored spans (t0 = 16 m + anchor offset, nf from t0 to past the vector)."""
    rng = np.random.default_rng(2)
    grid = _q_grid()
    kr = 400
    t0 = np.concatenate([np.zeros(len(grid)), 16.0 * rng.integers(0, 3, kr) + rng.integers(0, 16, kr)])
    nf = np.concatenate([np.full(len(grid), 16.0), t0[len(grid):] + rng.integers(-1, 20, kr)])
    a, b, c = _conics(rng, kr)
    dx0 = rng.uniform(-4, 0, kr) - t0[len(grid):]  # dx of t = 0
    dy = rng.uniform(-3, 3, kr)
    q0 = np.concatenate([grid, a * dx0 * dx0 + 2.0 * b * dx0 * dy + c * dy * dy])
    q1 = np.concatenate([np.zeros(len(grid)), 2.0 * (a * dx0 + b * dy)])
    q2 = np.concatenate([np.zeros(len(grid)), a])
    t0, nf, q0, q1, q2 = (v.astype(F32) for v in (t0, nf, q0, q1, q2))
    w = np.full((len(t0), 2 * LANES), SENTINEL, F32)
    _run_span16(w, t0, q0, q1, q2, nf)

    lane = np.arange(LANES, dtype=F32)
    want = np.full_like(w, SENTINEL)
    for k in range(len(t0)):
        t = t0[k] + lane
        q = q0[k] + t * (q1[k] + t * q2[k])
        want[k, :LANES] = np.where(t < nf[k], exp_horner(q), F32(0.0))
    assert_bits_equal(w, want, "span_weights16")
    assert_bits_equal(w[: len(grid), :LANES], np.repeat(exp_horner(grid)[:, None], LANES, 1), "q grid")


@njit
def _run_span_rgb16(dst, off, plane, cols, t0, q0, q1, q2, nf):
    for k in range(off.shape[0]):
        simd.span_weights_rgb16(dst, off[k], plane, cols[k, 0], cols[k, 1], cols[k, 2], t0[k], q0[k], q1[k], q2[k],
                                nf[k])


@njit
def _run_span_axpy16(dst, off, plane, cols, t0, q0, q1, q2, nf):
    w = np.empty(LANES, np.float32)
    for k in range(off.shape[0]):
        simd.span_weights16(w, t0[k], q0[k], q1[k], q2[k], nf[k])
        for ch in range(3):
            simd.axpy16(dst, off[k] + ch * plane, cols[k, ch], w)


def test_span_weights_rgb16_is_span_weights_and_three_axpy():
    """span_weights_rgb16 (the tiled forward's wide RGB spans) must give the bits of the pair it
    replaced, span_weights16 then axpy16 per channel (old + c w, unfused), on 300 random anchored
    spans added in order into one buffer at random offsets (each call reads the earlier ones'
    sums), masked lanes (t >= nf) included."""
    rng = np.random.default_rng(9)
    k, plane = 300, 90
    t0 = (16.0 * rng.integers(0, 3, k) + rng.integers(0, 16, k)).astype(F32)
    nf = (t0 + rng.integers(-1, 20, k)).astype(F32)
    a, b, c = _conics(rng, k)
    dx0 = rng.uniform(-4, 0, k) - t0
    dy = rng.uniform(-3, 3, k)
    q0 = (a * dx0 * dx0 + 2.0 * b * dx0 * dy + c * dy * dy).astype(F32)
    q1 = (2.0 * (a * dx0 + b * dy)).astype(F32)
    q2 = a.astype(F32)
    cols = _colours(rng, k)
    off = rng.integers(0, plane - LANES + 1, k)
    got = _buffer(rng, 3 * plane + LANES)
    before, want = got.copy(), got.copy()
    _run_span_rgb16(got, off, plane, cols, t0, q0, q1, q2, nf)
    _run_span_axpy16(want, off, plane, cols, t0, q0, q1, q2, nf)
    assert (got != before).mean() > 0.5  # the spans did add
    assert_bits_equal(got, want, "span_weights_rgb16")


@pytest.mark.parametrize("name", list(_COLUMNS))
def test_box_columns(name):
    """box_columns16 / 8 / 8x2 / 4x4: dx[lane] = (j0 + col + 0.5) - mx and adx = a dx in float64,
    col = lane, lane % 8 or lane % 4 (the column of each packed row); the slots after the vector
    stay untouched. j0 from -2^40 to 2^40 (sitofp exact), centres inside and outside the box."""
    run, col = _COLUMNS[name]
    n = len(col)
    rng = np.random.default_rng(3)
    k = 200
    j0 = rng.integers(-(2 ** 40), 2 ** 40, k)
    j0[: k // 2] = rng.integers(-50, 500, k // 2)
    mx = j0 + rng.uniform(-5.0, 20.0, k)
    a = rng.uniform(-1.0, 3.0, k)
    dx = np.full((k, 2 * LANES), F64(SENTINEL))
    adx = dx.copy()
    run(dx, adx, j0, mx, a)
    want_dx, want_adx = dx.copy(), adx.copy()
    for i in range(k):
        want_dx[i, :n], want_adx[i, :n] = columns_twin(j0[i], mx[i], a[i], col)
    assert_bits_equal(dx, want_dx, f"{name} dx")
    assert_bits_equal(adx, want_adx, f"{name} a dx")


@pytest.mark.parametrize("name", list(_ROW))
def test_box_weights_row(name):
    """box_weights16, box_weights8 (HORNER) and est_box_weights8 (FUSED): one box row's weights,
    q = (a dx + 2b dy) dx + c dy^2 in float64 (one fma64 when FUSED), exp(-q/2) of float32(q)
    (Horner / Estrin), 0 where q > cutoff or lane >= nj (nj from -1 to past the vector). Includes
    the SPECIAL calls (q == cutoff exactly on every lane: weight exp(-4.5), kept; the next float64
    up, NaN and inf: 0; q = 0 and tiny: 1);
    the slots after the vector stay untouched; and lanes where q is exactly the cut-off unfused
    but above it fused (:func:`_fma_boundary_lanes`: kept by HORNER, dropped by FUSED)."""
    run, n, fused = _ROW[name]
    rng = np.random.default_rng(4)
    k = 300
    j0, mx, a, nj, bk = _rows(rng, k, n, 1)
    dx, adx = _dx_lanes(j0, mx, a, np.arange(n))
    _plant_fma_boundary(dx, adx, bk, nj, [FMA_ROW], n)
    w = np.full((k, 2 * LANES), SENTINEL, F32)
    run(w, dx, adx, nj, bk[:, 0, 0].copy(), bk[:, 0, 1].copy(), CUT)
    want = w.copy()
    col = np.arange(n)
    for i in range(k):
        want[i, :n] = weights_twin(dx[i, :n], adx[i, :n], bk[i, 0, 0], bk[i, 0, 1], CUT, col < nj[i], fused)
    assert_bits_equal(w, want, name)
    _check_special(w[:, :n], fused)


@pytest.mark.parametrize("name", ["box_weights8", "est_box_weights8"])
def test_exp_polynomials_on_q_grid(name):
    """The exp polynomial of each op set on the q grid (0 to 9.75, via a = 2b dy = 0 so q = c dy^2
    exactly, cutoff 10): HORNER (box_weights8) equals the Horner twin and FUSED (est_box_weights8)
    the Estrin twin, bit for bit, on every lane. This is the only direct test of the Estrin
    polynomial near q = 0 and q = 9.5."""
    run, n, fused = _ROW[name]
    q = _q_grid().astype(F64)
    k = len(q)
    dx, adx = _dx_lanes(np.zeros(k, np.int64), np.full(k, 3.7), np.zeros(k), np.arange(n))
    w = np.full((k, 2 * LANES), SENTINEL, F32)
    run(w, dx, adx, np.full(k, n, np.int64), np.zeros(k), q, F64(10.0))
    twin = (exp_estrin if fused else exp_horner)(q.astype(F32))
    assert_bits_equal(w[:, :n], np.repeat(twin[:, None], n, 1), name)
    assert (w[:, n:] == SENTINEL).all()


@pytest.mark.parametrize("name", list(_ROW_RGB))
def test_box_weights_rgb_row(name):
    """box_weights_rgb16, box_weights_rgb8 (HORNER) and est_box_weights_rgb8 (FUSED): a row's
    weights as in test_box_weights_row, added to three channel rows dst[off + ch plane:][:n] as
    old + c w (one fma32 when FUSED). 300 calls at random offsets into one buffer, applied in
    order (so each reads the previous ones' results); zero colours, masked lanes (old + c 0,
    signed zeros included) and everything outside the n-lane windows end as the twin says (the
    fma64 cut-off lanes included), and a call with nj = 0 leaves a zero-free buffer untouched."""
    run, n, fused = _ROW_RGB[name]
    rng = np.random.default_rng(5)
    k = 300
    plane = 70
    j0, mx, a, nj, bk = _rows(rng, k, n, 1)
    dx, adx = _dx_lanes(j0, mx, a, np.arange(n))
    _plant_fma_boundary(dx, adx, bk, nj, [FMA_ROW], n)
    cols = _colours(rng, k)
    off = rng.integers(0, plane - n + 1, k)
    b, kk = bk[:, 0, 0].copy(), bk[:, 0, 1].copy()
    dst = _buffer(rng, 3 * plane + LANES)
    want = dst.copy()
    run(dst, off, plane, cols, dx, adx, nj, b, kk, CUT)
    col = np.arange(n)
    for i in range(k):
        wt = weights_twin(dx[i, :n], adx[i, :n], b[i], kk[i], CUT, col < nj[i], fused)
        for ch in range(3):
            s = slice(off[i] + ch * plane, off[i] + ch * plane + n)
            want[s] = acc_twin(want[s], cols[i, ch], wt, fused)
    assert_bits_equal(dst, want, name)

    clean = rng.uniform(0.5, 1.0, 3 * plane + LANES).astype(F32)
    before = clean.copy()
    z = np.zeros(1, np.int64)
    run(clean, z + 3, plane, cols[1:2], dx[4:5], adx[4:5], z, b[4:5], kk[4:5], CUT)
    assert_bits_equal(clean, before, f"{name}, nj = 0")


@pytest.mark.parametrize("name", list(_AXPY))
def test_axpy(name):
    """axpy16 / axpy8 / axpy4: dst[off:off + n] = old + c w[:n] (float32, unfused), 300 calls in
    order into one buffer at random offsets, c = 0 every fifth call (then dst is unchanged but for
    -0 + 0 = +0); nothing outside [off, off + n) changes, w[n:] (NaN) is not used."""
    run, n = _AXPY[name]
    rng = np.random.default_rng(6)
    k = 300
    dst = _buffer(rng, 100)
    off = rng.integers(0, len(dst) - n + 1, k)
    c = rng.normal(0, 1, k).astype(F32)
    c[::5] = 0.0
    w = np.full((k, LANES), np.nan, F32)
    w[:, :n] = rng.uniform(0, 1, (k, n)).astype(F32)
    want = dst.copy()
    run(dst, off, c, w)
    for i in range(k):
        s = slice(off[i], off[i] + n)
        want[s] = acc_twin(want[s], c[i], w[i, :n], False)
    assert_bits_equal(dst, want, name)


def _pair_weights_twin(dx, adx, nj, bk, fused):
    """Weights of two rows of 8 columns in 16 lanes (lanes 8r..8r+7: row r)."""
    lane = np.arange(16)
    row = lane // 8
    return weights_twin(dx, adx, bk[row, 0], bk[row, 1], CUT, lane % 8 < nj, fused)


@pytest.mark.parametrize("name", list(_PAIR))
def test_box_weights8x2(name):
    """box_weights8x2 (HORNER) and est_box_weights8x2 (FUSED): two rows of an 8-column box in one
    16-lane vector, lanes 8r + col of row r with that row's (2b dy, c dy^2); per lane the same
    weight as box_weights8 / est_box_weights8 would give (the twin is the same per-lane formula);
    columns >= nj are 0 in both halves; the slots after the vector stay untouched; the fma64
    cut-off lanes in both halves."""
    run, fused = _PAIR[name]
    rng = np.random.default_rng(7)
    k = 300
    j0, mx, a, nj, bk = _rows(rng, k, 8, 2)
    dx, adx = _dx_lanes(j0, mx, a, np.arange(16) % 8)
    _plant_fma_boundary(dx, adx, bk, nj, [FMA_ROW], 16)
    nj[FMA_ROW] = 8
    w = np.full((k, 2 * LANES), SENTINEL, F32)
    run(w, dx, adx, nj, bk.reshape(k, 4).copy(), CUT)
    want = w.copy()
    for i in range(k):
        want[i, :16] = _pair_weights_twin(dx[i], adx[i], nj[i], bk[i], fused)
    assert_bits_equal(w, want, name)
    _check_special(w[:, :16], fused)


@pytest.mark.parametrize("name", list(_PAIR_RGB))
def test_box_weights_rgb8x2(name):
    """box_weights_rgb8x2 (HORNER) and est_box_weights_rgb8x2 (FUSED): the pair's weights added to
    three channels of row 0 at dst[off:] and row 1 at dst[off + stride:], 8 lanes each (old + c w,
    fma32 when FUSED), 300 calls in order into one buffer; nothing else changes."""
    run, fused = _PAIR_RGB[name]
    rng = np.random.default_rng(8)
    k = 300
    stride, plane = 24, 90
    j0, mx, a, nj, bk = _rows(rng, k, 8, 2)
    dx, adx = _dx_lanes(j0, mx, a, np.arange(16) % 8)
    _plant_fma_boundary(dx, adx, bk, nj, [FMA_ROW], 16)
    nj[FMA_ROW] = 8
    cols = _colours(rng, k)
    off = rng.integers(0, plane - stride - 8 + 1, k)
    dst = _buffer(rng, 3 * plane + LANES)
    want = dst.copy()
    run(dst, off, stride, plane, cols, dx, adx, nj, bk.reshape(k, 4).copy(), CUT)
    for i in range(k):
        wt = _pair_weights_twin(dx[i], adx[i], nj[i], bk[i], fused)
        for r in range(2):
            for ch in range(3):
                s = slice(off[i] + r * stride + ch * plane, off[i] + r * stride + ch * plane + 8)
                want[s] = acc_twin(want[s], cols[i, ch], wt[8 * r : 8 * r + 8], fused)
    assert_bits_equal(dst, want, name)


def _quad_weights_twin(dx, adx, nj, nr, bk):
    """Weights of four rows of 4 columns in 16 lanes (lanes 4r..4r+3: row r; rows >= nr: 0)."""
    lane = np.arange(16)
    row = lane // 4
    return weights_twin(dx, adx, bk[row, 0], bk[row, 1], CUT, (lane % 4 < nj) & (row < nr), False)


def test_box_weights4x4_and_rgb():
    """box_weights4x4 and box_weights_rgb4x4 (HORNER, the tiled path's boxes under 4 columns):
    four rows of 4 columns per 16-lane vector; rows r >= nr (nr 0-4) weigh 0, and the rgb variant
    neither reads nor writes them (old + c w on rows r < nr only, three channels, 300 calls in
    order into one buffer); the weights' slots after the vector stay untouched."""
    rng = np.random.default_rng(9)
    k = 300
    j0, mx, a, nj, bk = _rows(rng, k, 4, 4)
    nr = (np.arange(k) // 7) % 5
    nr[: len(SPECIAL)] = 4
    dx, adx = _dx_lanes(j0, mx, a, np.arange(16) % 4)
    flat = bk.reshape(k, 8).copy()
    w = np.full((k, 2 * LANES), SENTINEL, F32)
    _run_quad(w, dx, adx, nj, nr, flat, CUT)
    want = w.copy()
    for i in range(k):
        want[i, :16] = _quad_weights_twin(dx[i], adx[i], nj[i], nr[i], bk[i])
    assert_bits_equal(w, want, "box_weights4x4")
    assert (w[0, :16] > 0.01).all() and (w[[1, 4, 5], :16] == 0.0).all() and (w[2, :16] == 1.0).all()

    stride, plane = 20, 100
    cols = _colours(rng, k)
    off = rng.integers(0, plane - 3 * stride - 4 + 1, k)
    dst = _buffer(rng, 3 * plane + LANES)
    want = dst.copy()
    _run_quad_rgb(dst, off, stride, plane, cols, dx, adx, nj, nr, flat, CUT)
    for i in range(k):
        wt = _quad_weights_twin(dx[i], adx[i], nj[i], nr[i], bk[i])
        for r in range(nr[i]):
            for ch in range(3):
                s = slice(off[i] + r * stride + ch * plane, off[i] + r * stride + ch * plane + 4)
                want[s] = acc_twin(want[s], cols[i, ch], wt[4 * r : 4 * r + 4], False)
    assert_bits_equal(dst, want, "box_weights_rgb4x4")


def _block_twin(dst, stride, plane, box, geo, aux, means, colours, scale, cutoff, x0, b0, b1, g0, g1):
    """est_box8_rgb_block as documented: Gaussians g0.. in order; one whose clipped box is empty
    is skipped; one whose box width aux[1, g] is not < 8 ends the run (returned); the others draw
    rows max(i0, b0)..min(i1, b1), 8 columns from j0 (weights FUSED, lanes >= nj weigh 0), each
    channel old + c w as fma32, c = float32(colour * amp) computed in float64."""
    col = np.arange(8)
    for g in range(g0, g1):
        i0, i1 = max(int(box[2, g]), b0), min(int(box[3, g]), b1)
        j0, j1 = int(box[0, g]), int(box[1, g])
        if i0 > i1 or j0 > j1:
            continue
        if not aux[1, g] < F32(8.0):
            return g
        mx, my = means[g, 0] * scale, means[g, 1] * scale
        amp = F64(aux[0, g])
        cols = [F32(F64(colours[g, ch]) * amp) for ch in range(3)]
        d, ad = columns_twin(j0, mx, geo[0, g], col)
        ok = col < j1 - j0 + 1
        for i in range(i0, i1 + 1):
            # The IR computes the second row of a pair as (i - 1) + 1.5: the same float64 as i + 0.5.
            dy = (F64(i) + 0.5) - my
            wt = weights_twin(d, ad, geo[1, g] * dy, (geo[2, g] * dy) * dy, cutoff, ok, True)
            o = (i - b0) * stride + (j0 - x0)
            for ch in range(3):
                s = slice(o + ch * plane, o + ch * plane + 8)
                dst[s] = fma32(cols[ch], wt, dst[s])
    return g1


@pytest.mark.parametrize("coltype", [F32, F64])
def test_est_box8_rgb_block(coltype):
    """est_box8_rgb_block (the banded path's run of small RGB boxes, FUSED) against its twin on a
    band (rows 10-21, columns from x0 = 5) with 60 Gaussians: boxes 1-8 columns wide, rows partly
    or wholly outside the band (clipped or skipped), empty boxes, zero colours, colours float32
    and float64. Called as banded._draw_band does (from g, then past each Gaussian it returns):
    it must return the same indices (a box width of exactly 8.0 and a NaN width end a run, an
    empty box of width 8 does not) and leave the same bits in the band buffer."""
    rng = np.random.default_rng(10 if coltype is F32 else 11)
    n, x0, w, b0, b1, scale = 60, 5, 40, 10, 21, 0.25
    stride = w + LANES
    plane = (b1 - b0 + 1) * stride + 40
    nj = rng.integers(1, 9, n)
    j0 = x0 + rng.integers(0, w - nj + 1)
    i0 = rng.integers(b0 - 6, b1 + 2, n)
    i0[[20, 45]] = b0 + 1  # in the band: these end a run
    i1 = i0 + rng.integers(0, 8, n)
    box = np.stack([j0, j0 + nj - 1, i0, i1]).astype(np.int32)
    box[1, 3] = box[0, 3] - 1  # empty: no columns
    a, b, c = _conics(rng, n)
    geo = np.stack([a, 2.0 * b, c])
    aux = np.stack([rng.uniform(0.2, 1.0, n), rng.uniform(1.0, 7.99, n)]).astype(F32)
    aux[1, [20, 45]] = [8.0, np.nan]  # not small: the run ends there
    box[:, 12] = [x0, x0 + 3, b1 + 1, b1 + 3]  # width 8 but below the band: skipped, not returned
    aux[1, 12] = 8.0
    centre = np.stack([j0 + nj / 2.0, i0 + (i1 - i0 + 1) / 2.0], -1) + rng.uniform(-1.5, 1.5, (n, 2))
    means = centre / scale
    colours = _colours(rng, n).astype(coltype)
    dst = _buffer(rng, 3 * plane + LANES)
    want = dst.copy()
    got_ret, want_ret = [], []
    for impl, buf, rets in ((_run_block, dst, got_ret), (_block_twin, want, want_ret)):
        g = 0
        while g < n:
            g = impl(buf, stride, plane, box, geo, aux, means, colours, scale, CUT, x0, b0, b1, g, n)
            rets.append(int(g))
            g += 1
    assert got_ret == want_ret == [20, 45, n]
    assert_bits_equal(dst, want, "est_box8_rgb_block")


def _tree_sum(v):
    """A float32 16-lane vector summed by halving (lanes k and k + n/2), as float64."""
    while len(v) > 1:
        v = v[: len(v) // 2] + v[len(v) // 2 :]
    return F64(v[0])


def _backward_twin(planes, y0, x0, i0, i1, j0, nj, mx, my, a, b2, c, ks, cutoff, ncols, chunked):
    """box{8,16}/wide_backward_rgb, lane by lane: 16 lanes hold 16 // ncols rows of ncols columns
    (from column j0 + chunk); per step the HORNER weight w, the gradients e of the three planes
    (a row past i1 reads row i and weighs 0), and nine float32 lane accumulators:
    e_k w (fma), s = (fma(e2, k2, fma(e1, k1, e0 k0))) w, s, t = s dx, fma(t, dx), u = s dy,
    fma(t, dy), fma(u, dy) with dx, dy float32; then each summed by halving. Returns the nine sums
    and the number of steps (float32 additions into each lane)."""
    lane = np.arange(16)
    col, rol = lane % ncols, lane // ncols
    nrows = 16 // ncols
    flat = planes.reshape(3, -1)
    rs = planes.shape[2]
    k0, k1, k2 = ks
    acc = np.zeros((9, 16), F32)

    def columns(cc):
        d, ad = columns_twin(j0 + cc, mx, a, col)
        return d, ad, d.astype(F32), col < nj - cc

    d, ad, dx, lane_ok = columns(0)
    i, cc, steps = i0, 0, 0
    while i <= i1:
        if chunked:
            d, ad, dx, lane_ok = columns(cc)
        ok = lane_ok & (i + rol <= i1)
        dys = np.array([(F64(i) + (0.5 + r)) - my for r in range(nrows)])
        w = weights_twin(d, ad, (b2 * dys)[rol], ((c * dys) * dys)[rol], cutoff, ok, False)
        dy = dys.astype(F32)[rol]
        e = []
        for ch in range(3):
            parts = []
            for r in range(nrows):
                row = i + r if i + r <= i1 else i
                o = ch * flat.shape[1] + (row - y0) * rs + (j0 - x0 + cc)
                parts.append(flat.ravel()[o : o + ncols])
            e.append(np.concatenate(parts))
        for ch in range(3):
            acc[ch] = fma32(e[ch], w, acc[ch])
        sw = fma32(e[2], k2, fma32(e[1], k1, e[0] * k0)) * w
        t = sw * dx
        u = sw * dy
        acc[3] = acc[3] + sw
        acc[4] = acc[4] + t
        acc[5] = fma32(t, dx, acc[5])
        acc[6] = acc[6] + u
        acc[7] = fma32(t, dy, acc[7])
        acc[8] = fma32(u, dy, acc[8])
        steps += 1
        if cc + ncols >= nj:
            i, cc = i + nrows, 0
        else:
            cc += ncols
    return np.array([_tree_sum(v) for v in acc]), steps


def _backward_float64(planes, y0, x0, i0, i1, j0, nj, mx, my, a, b2, c, ks, cutoff):
    """The nine sums of BOX_BACKWARD_SUMS over the box's pixels in float64 (each pixel's float32
    weight from the twin), and the same sums of the terms' magnitudes (|e_k| |k_k| in s)."""
    jj = np.arange(j0, j0 + nj)
    sums, mags = np.zeros(9), np.zeros(9)
    kv = np.array(ks, F64)[:, None]
    for i in range(i0, i1 + 1):
        d, ad = columns_twin(j0, mx, a, np.arange(nj))
        dy = (F64(i) + 0.5) - my
        w = weights_twin(d, ad, b2 * dy, (c * dy) * dy, cutoff, True, False).astype(F64)
        e = planes[:, i - y0, jj - x0].astype(F64)
        s, sa = (kv * e).sum(0) * w, (np.abs(kv) * np.abs(e)).sum(0) * w
        for m, (val, mag) in enumerate(zip(
                [e[0] * w, e[1] * w, e[2] * w, s, s * d, s * d * d, s * dy, s * d * dy, s * dy * dy],
                [np.abs(e[0]) * w, np.abs(e[1]) * w, np.abs(e[2]) * w, sa, sa * np.abs(d), sa * d * d,
                 sa * abs(dy), sa * np.abs(d * dy), sa * dy * dy])):
            sums[m] += val.sum()
            mags[m] += mag.sum()
    return sums, mags


def _backward_inputs(rng, ncols, chunked):
    """Gradient planes and 40 Gaussians' boxes for :func:`test_box_backward_sums`."""
    x0, y0, w, h = 3, 2, 40, 30
    planes = np.zeros((3, h, w + LANES), F32)
    planes[:, :, :w] = rng.normal(0, 1, (3, h, w))
    k = 40
    nj = (np.arange(k) % (40 if chunked else ncols)) + 1
    nrow = np.arange(k) % 10  # 0 rows: all sums 0
    j0 = x0 + rng.integers(0, w - nj + 1)
    i0 = y0 + rng.integers(0, h - nrow + 1)
    ii = np.stack([i0, i0 + nrow - 1, j0, nj], -1).astype(np.int64)
    a, b, c = _conics(rng, k)
    a, b, c = a / nj * 2.0, b / nj * 2.0, c / np.maximum(nrow, 1) * 2.0  # a few pixels past the cut-off
    mx = j0 + nj * rng.uniform(0.2, 0.8, k)
    my = i0 + nrow * rng.uniform(0.2, 0.8, k)
    return planes, x0, y0, ii, (mx, my, a, b, c), _colours(rng, k)


@pytest.mark.parametrize("name", list(_COLOUR_SUMS))
def test_box_colour_sums_match_the_full_backward(name):
    """box8/box16/wide_colour_sums (the colour least squares' A^T r) skip the six moments: their
    three colour sums must be the full function's bit for bit (the same operations), the other six
    0, on the inputs of test_box_backward_sums."""
    run, full = _COLOUR_SUMS[name]
    _, ncols, chunked = _BACKWARD[full]
    planes, x0, y0, ii, (mx, my, a, b, c), cols = _backward_inputs(np.random.default_rng(5 + ncols + chunked),
                                                                     ncols, chunked)
    fl = np.stack([mx, my, a, 2.0 * b, c], -1)
    got, want = np.zeros((len(ii), 9)), np.zeros((len(ii), 9))
    run(planes, y0, x0, ii, fl, cols, CUT, got)
    _BACKWARD[full][0](planes, y0, x0, ii, fl, cols, CUT, want)
    assert np.abs(want[:, :3]).max() > 0
    assert_bits_equal(got[:, :3], want[:, :3], name)
    assert (got[:, 3:] == 0).all()


@pytest.mark.parametrize("name", list(_BACKWARD))
def test_box_backward_sums(name):
    """box8_backward_rgb (two rows of <= 8 columns per vector), box16_backward_rgb (one row of
    <= 16) and wide_backward_rgb (rows of any width, 16 columns at a time): the nine sums of
    BOX_BACKWARD_SUMS over 40 Gaussians' boxes (0 to 9 rows, widths 1 to the limit, some pixels
    beyond the cut-off) of random gradient planes [3, h, w + 16] with zero slack columns.
    1. Bit for bit against the lane-by-lane twin (same float32 operations and order).
    2. Against the plain float64 sums over the box's pixels (same float32 weights): this checks
       that the twin's (and so the intrinsic's) packing covers each pixel of the box once. Error
       bound, derived: per term at most 7 float32 roundings relative to its magnitude (e0 k0,
       two fmas, times w, float32 dx or dy, times dx or dy, the second float32 dx or dy; the
       last product is exact inside its fma), then `steps` float32 additions into each lane and
       4 halvings: gamma(steps + 11) of the summed magnitudes, gamma(m) = m u / (1 - m u),
       u = 2^-24; plus the float64 sums' own gamma64(pixels + 9)."""
    run, ncols, chunked = _BACKWARD[name]
    planes, x0, y0, ii, (mx, my, a, b, c), cols = _backward_inputs(np.random.default_rng(12 + ncols + chunked),
                                                                     ncols, chunked)
    k = len(ii)
    nj, nrow = ii[:, 3], ii[:, 1] - ii[:, 0] + 1
    fl = np.stack([mx, my, a, 2.0 * b, c], -1)
    out = np.zeros((k, 9))
    run(planes, y0, x0, ii, fl, cols, CUT, out)
    u = 2.0 ** -24
    for g in range(k):
        args = (planes, y0, x0, *ii[g], mx[g], my[g], a[g], 2.0 * b[g], c[g], tuple(cols[g]), CUT)
        twin, steps = _backward_twin(*args, ncols, chunked)
        assert_bits_equal(out[g], twin, f"{name}, Gaussian {g}")
        ref, mag = _backward_float64(*args)
        m = steps + 11
        npix = nj[g] * nrow[g] + 9
        bound = (m * u / (1 - m * u) + npix * 2.0 ** -53 / (1 - npix * 2.0 ** -53)) * mag
        assert (np.abs(out[g] - ref) <= bound).all(), (name, g, out[g] - ref, bound)
