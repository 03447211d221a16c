"""spec/lig-format.md is enough to decode a file: ``tests/spec_reader.py`` was written from the spec
alone (numpy, msgpack, constriction; it never imports or copies ligcodec), and these tests check
that it decodes files written by ligcodec to the same Gaussians and the same pixels."""

from __future__ import annotations

import numpy as np
import pytest

import ligcodec

from .spec_reader import apply_alpha_full, read_lig, render_full, to_samples


def _image(h, w, channels, depth, seed, tinted=False):
    """Smooth gradients, a few soft blobs and some texture: something a fit has to work at.
    ``tinted``: one such plane along a colour direction far from YCoCg's axes, plus a little noise
    (the encoder then codes colours in a matrix basis, 2.4)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    planes = []
    for _ in range(channels):
        p = 0.3 + 0.3 * np.sin(rng.uniform(2, 9) * x + rng.uniform(0, 6)) * np.cos(rng.uniform(2, 9) * y)
        for _ in range(4):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.15)
            p += rng.uniform(-0.3, 0.3) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        p += rng.normal(0, 0.02, p.shape)
        planes.append(np.clip(p, 0, 1))
    if tinted:
        tint = 1.5 * np.array([0.8, -0.5, 0.33])[:channels]
        noise = rng.normal(0, 0.001, (h, w, channels))
        planes = list(np.moveaxis(np.clip(0.5 + (planes[0][..., None] - 0.3) * tint + noise, 0, 1), -1, 0))
    img = np.stack(planes, -1) * (2**depth - 1)
    img = np.round(img).astype(np.uint8 if depth == 8 else np.uint16)
    return img[..., 0] if channels == 1 else img


# (height, width, channels, bit depth, progressive): 2x1 tiles of 256 with a partial one, grey
# 16-bit, RGBA, and a progressive file (format 2.1's level0_scale).
CASES = [(200, 300, 3, 8, False, False), (80, 96, 1, 16, False, False), (80, 96, 4, 8, False, False),
         (80, 96, 3, 8, True, False), (120, 160, 3, 16, False, True)]


# ---------------------------------------------------------------------------------------------
# How far ligcodec's float32 render may be from the reader's float64 one, per sample.
#
# The two sum the same terms colour_i * exp(-q_i / 2) over the Gaussians whose q_i <= 9; the
# reader in float64 (its own error is ~1e-16 of the terms, taken as 0), ligcodec in float32 with
# a polynomial exp. With u = 2^-24 (float32's unit roundoff), S = sum_i |colour_i| exp(-q_i / 2)
# and N the number of terms of the sample, ligcodec's error is at most
#
#     (W + C_RTOL + N u) S  +  C_ATOL sum_i exp(-q_i / 2)  +  (terms with |q - 9| <= Q_SLACK)
#
# - W = TERM_ERR, one term's relative error (to first order: products of two of these errors,
#   ~(150 u)^2 ~ 1e-10, are negligible):
#   * EXP_ERR = 73 u, the float32 exp(-q/2) of render/simd.py (degree-6 Taylor polynomial of
#     e^x at x = -q/32, then squared four times): truncation |x|^7 / 7! e^|x| <= 3.7e-8 relative
#     at q <= 9, times 16 for the squarings: <= 5.9e-7 <= 10 u; float32 rounding: <= 3 u in the
#     Horner steps (|x| <= 0.29, so the last two, near 1, dominate), doubled by each squaring,
#     which adds u itself: 16 * 3 + 15 = 63 u. (Measured on a dense q grid: truncation 5.65e-7,
#     Horner 1.1 u, all of it 34.6 u at most; kernels.py's "~5e-7" is the truncation alone.)
#   * Q_ERR / 2 = 76.5 u: the weight's relative error from an absolute error in q. Pixels of a
#     wide Gaussian get q = q0 + t (q1 + t q2) in float32 along a row span from its first
#     pixel. Every pixel of the span has 0 <= q <= 9, so |q0| <= 9, q2 t^2 <= 36 (q at the
#     span's midpoint is >= 0) and |q1 t| <= 45; the six roundings give |dq| <= u (|q0| + |q1 t|
#     + 2 q2 t^2 + 2 |q - q0| + |q|) <= 153 u. (Small Gaussians round a float64 q once: 4.5 u.)
#     (Measured on 20000 random Gaussians and spans: 111 u at most.)
#   * u for the product colour * weight.
# - C_RTOL, C_ATOL: ligcodec's float32 colours are those of the reader to within rtol 1e-6 and
#   atol 1e-7 (asserted below, chunk by chunk).
# - N u S: float32 summation of N terms, in any order or grouping (per tile, per level): each of
#   the < N additions errs by at most u times a partial sum, itself at most S.
# - Q_SLACK: both decide q <= 9 in float64 (ligcodec from the span's geometry or from q itself),
#   so only a term within float64 rounding of the cut-off could be in one sum and not the other;
#   such terms (|q - 9| <= 1e-6, far above that rounding) count in full.
#
# The bound is worst-case (every rounding error the same sign): the errors measured on this
# file's cases stay under 21 u S on both AVX-512 and AVX2 builds (at most 0.11 of the bound),
# against (150.5 + 16.8 + N) u S allowed, N <= 32 here. Nothing in it depends on the instruction
# set, or on how many samples happen to lie near a rounding boundary. At 16 bits it is ~0.6 code
# values (1.2 at most), so there the float comparison carries the test, not the integer one.
U32 = 2.0**-24
EXP_ERR = 73 * U32
Q_ERR = 153 * U32
TERM_ERR = EXP_ERR + Q_ERR / 2 + U32
C_RTOL, C_ATOL = 1e-6, 1e-7
Q_SLACK = 1e-6
CUTOFF_Q = 9.0


def _error_budget(decoded, batch=64):
    """``[H, W, C]`` float64: the bound above, from the reader's decoded Gaussians (the same pixel
    ownership and q as ``render_full``: pixel centres, each tile's own pixels, all levels summed,
    so N and S count every level's terms)."""
    h = decoded["header"]
    W, H, C, T = (h[k] for k in ("width", "height", "channels", "tile"))
    nx = -(-W // T)
    s = np.zeros((H, W, C))  # S: sum |colour| weight
    g_sum = np.zeros((H, W, 1))  # sum weight
    edge = np.zeros((H, W, C))  # sum |colour| weight of the terms at the cut-off
    count = np.zeros((H, W, 1))  # N
    for (_level, tile), ch in decoded["chunks"].items():
        n = len(ch["means"])
        if n == 0:
            continue
        tx, ty = tile % nx, tile // nx
        x0, x1 = tx * T, min((tx + 1) * T, W)
        y0, y1 = ty * T, min((ty + 1) * T, H)
        py, px = np.mgrid[y0:y1, x0:x1]
        cx = (px + 0.5).ravel()
        cy = (py + 0.5).ravel()
        a = np.exp(ch["chol"][:, 0])
        b = ch["chol"][:, 1]
        d = np.exp(ch["chol"][:, 2])
        mag = np.abs(ch["colours"])
        sums = [np.zeros((cx.size, k)) for k in (C, 1, C, 1)]
        for k in range(0, n, batch):
            sl = slice(k, k + batch)
            dx = cx[:, None] - ch["means"][None, sl, 0]
            dy = cy[:, None] - ch["means"][None, sl, 1]
            z1 = dx / a[None, sl]
            z2 = (dy - b[None, sl] * z1) / d[None, sl]
            q = z1 * z1 + z2 * z2
            g = np.where(q <= CUTOFF_Q + Q_SLACK, np.exp(-0.5 * q), 0.0)
            sums[0] += g @ mag[sl]
            sums[1] += g.sum(1, keepdims=True)
            sums[2] += np.where(np.abs(q - CUTOFF_Q) <= Q_SLACK, g, 0.0) @ mag[sl]
            sums[3] += (g > 0).sum(1, keepdims=True)
        for total, part in zip((s, g_sum, edge, count), sums):
            total[y0:y1, x0:x1] += part.reshape(y1 - y0, x1 - x0, -1)
    return (TERM_ERR + C_RTOL + count * U32) * s + C_ATOL * g_sum + edge


def _over_bound(ours_float, decoded, raw=None):
    """Samples where ligcodec's float render (``LigImage.read_float``) and the reader's (clamped
    the same way, section 8's alpha mask applied) are further apart than :func:`_error_budget`.
    Also returns both scaled to code values (``x * (2^bit_depth - 1)``) and the bound so scaled.
    ``raw``: ``render_full(decoded)`` if already at hand."""
    top = 2 ** decoded["header"]["bit_depth"] - 1
    ours = ours_float.astype(np.float64) * top  # exact: 24 + 16 bits
    raw = render_full(decoded) if raw is None else raw
    theirs = apply_alpha_full(decoded, np.clip(raw, 0.0, 1.0) * top)
    bound = _error_budget(decoded) * top
    return np.abs(ours - theirs) > bound, ours, theirs, bound


@pytest.mark.parametrize("h, w, channels, depth, progressive, tinted", CASES)
def test_spec_reader_decodes_like_ligcodec(tmp_path, h, w, channels, depth, progressive, tinted):
    """SCENARIO: ligcodec encodes an image; the spec-only reader decodes the file.
    EXPECTED RESULT: every chunk holds the same Gaussians as ligcodec decodes (positions and colours
    to float rounding, the covariance factor to 1e-12: the two take exp() from different
    libraries); the spec's rendering rules give ligcodec's float render (before rounding) to
    within the worst-case float32 error bound derived above, sample by sample; and the integer
    samples differ by at most one code value, and only where that bound (plus the float32 scaling
    in ``LigImage.read``) reaches a rounding boundary (ligcodec sums in float32, the reader in
    float64, so a value within float error of a half may round either way). No tolerance counts
    how many samples differ: that number depends on how many happen to lie near a half, which
    changes with the file (an AVX2 build encodes other bytes than an AVX-512 one: in the 16-bit
    case 1.15 % of the samples differ on AVX2, 0.96 % on AVX-512). The tinted case's colours are
    coded in a matrix basis (2.4), the others' in YCoCg or as they are."""
    img = _image(h, w, channels, depth, seed=h + channels, tinted=tinted)
    path = tmp_path / "x.lig"
    ligcodec.encode(img, path, gaussians=400, effort=1, workers=1, progressive=progressive)
    dec = read_lig(path)
    hd = dec["header"]
    assert hd["colour_transform"] == ("matrix" if tinted else "ycocg" if channels >= 3 else "none")
    assert (hd["width"], hd["height"], hd["channels"], hd["bit_depth"]) == (w, h, channels, depth)
    assert hd.get("level0_scale") == (0.25 if progressive else None)
    with ligcodec.open(path) as lig:
        model = lig.model
        total = 0
        for level in range(hd["levels"]):
            for t in range(model.n_tiles):
                means, chol, colours, _ = model.gather([t], [level])
                ref = dec["chunks"].get((level, t))
                if ref is None:
                    assert len(means) == 0, (level, t)
                    continue
                total += len(means)
                np.testing.assert_allclose(ref["means"], means, rtol=0, atol=1e-9)
                np.testing.assert_allclose(ref["chol"], chol, rtol=1e-12, atol=1e-12)
                # ligcodec keeps colours in float32: its rounding is the tolerance (C_RTOL, C_ATOL).
                np.testing.assert_allclose(ref["colours"], colours, rtol=C_RTOL, atol=C_ATOL)
        assert total == sum(len(c["means"]) for c in dec["chunks"].values()) > 0
        ours_float = lig.read_float()
        ours = lig.read()

    raw = render_full(dec)
    over, ours_scaled, theirs_scaled, bound = _over_bound(ours_float, dec, raw)
    if over.any():
        ratio = np.abs(ours_scaled - theirs_scaled)[over] / bound[over]
        where = np.argwhere(over)[0].tolist()
        raise AssertionError(f"{over.sum()} samples differ by more than the float32 error bound "
                             f"(worst {ratio.max():.3g} x the bound; the first at {where})")

    theirs = apply_alpha_full(dec, to_samples(raw, depth))
    diff = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
    assert diff.max() <= 1
    # Where the samples differ, a half lies between the two float values, so ligcodec's value
    # (scaled as LigImage.read scales it: one more float32 rounding, at most u of top) is within
    # the bound of it.
    to_half = np.abs(ours_scaled - (np.floor(ours_scaled) + 0.5))
    far = (diff > 0) & (to_half > bound + U32 * (2**depth - 1))
    assert not far.any(), f"{far.sum()} samples round differently though not within the error bound of a half"


@pytest.fixture(scope="module")
def encoded_rgb(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "x.lig"
    ligcodec.encode(_image(80, 96, 3, 8, seed=83), path, gaussians=400, effort=1, workers=1)
    with ligcodec.open(path) as lig:
        ours_float = lig.read_float()
    return path, ours_float


@pytest.mark.parametrize("mutation", ["colour", "position", "missing"])
def test_error_bound_still_catches_a_wrong_gaussian(encoded_rgb, mutation):
    """SCENARIO: the float comparison of the test above, with one Gaussian of the reader's decode
    changed: a colour off by 1e-3 (a quarter of an 8-bit code value), the centre moved by 0.02
    px, or the Gaussian left out.
    EXPECTED RESULT: the unchanged decode is within the error bound everywhere; each changed one
    exceeds it somewhere. The bound is far tighter than a real decoding mistake, which the integer
    samples alone would mostly not show."""
    path, ours_float = encoded_rgb
    dec = read_lig(path)
    assert not _over_bound(ours_float, dec)[0].any()
    # The Gaussian whose colour changes fastest across x: the largest |colour| / l11, among those
    # centred a pixel or more inside the image (one tile here, so tile-local is image coordinates)
    # and at least half a pixel across in x: a needle on the border, or one between two columns of
    # pixel centres, may show on no pixel at all (the fit's log scales go down to -3, 0.05 px).
    h, w = dec["header"]["height"], dec["header"]["width"]
    key, i = max(
        ((k, j) for k, ch in dec["chunks"].items() for j in range(len(ch["means"]))
         if 1 <= ch["means"][j, 0] <= w - 2 and 1 <= ch["means"][j, 1] <= h - 2
         and ch["chol"][j, 0] >= np.log(0.5)),
        key=lambda kj: np.abs(dec["chunks"][kj[0]]["colours"][kj[1]]).max()
        / np.exp(dec["chunks"][kj[0]]["chol"][kj[1], 0]),
    )
    ch = dec["chunks"][key]
    if mutation == "colour":
        ch["colours"][i, 0] += 1e-3
    elif mutation == "position":
        ch["means"][i, 0] += 0.02
    else:
        keep = np.arange(len(ch["means"])) != i
        for name in ("means", "chol", "colours"):
            ch[name] = ch[name][keep]
    assert _over_bound(ours_float, dec)[0].any()


def test_spec_pseudocode_decoder_matches_constriction(tmp_path):
    """SCENARIO: the same file decoded with constriction and with a plain-Python transcription of
    section 4's table and ANS pseudo-code.
    EXPECTED RESULT: identical integer symbols in every chunk, so the pseudo-code alone is a
    complete description of the entropy coder."""
    path = tmp_path / "x.lig"
    ligcodec.encode(_image(80, 96, 3, 8, seed=5), path, gaussians=200, effort=1, workers=1)
    a = read_lig(path)
    b = read_lig(path, backend="spec", strict=True)
    assert a["chunks"].keys() == b["chunks"].keys()
    for key in a["chunks"]:
        qa, qb = a["chunks"][key]["q"], b["chunks"][key]["q"]
        assert qa.keys() == qb.keys()
        for name in qa:
            np.testing.assert_array_equal(np.asarray(qa[name]), np.asarray(qb[name]), err_msg=f"{key} {name}")
