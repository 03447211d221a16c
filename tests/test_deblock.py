"""The border filter of spec section 6 (format 2.3, header ``deblock = [K, T]``)."""

import dataclasses
import math

import msgpack
import numpy as np
import pytest

import ligcodec
from ligcodec.container import Header
from ligcodec.errors import LigFormatError
from ligcodec.render.deblock import deblock, filter_width, halo
from tests.test_fit import smooth_image


def _step_image(jump, h=8, w=32, base=0.5):
    """A flat image with a jump of ``jump`` starting at column 16 (a tile border)."""
    a = np.full((h, w, 1), base, np.float32)
    a[:, 16:] += jump
    return a


def test_a_small_jump_becomes_a_ramp():
    """SCENARIO: a flat image with a jump of 0.02 at a border, threshold 0.05, K = 4.
    EXPECTED RESULT: the step across the border becomes the mean of the steps beside it (0), and
    the 0.02 is spread as steps of 0.0025 over the 4 pixels on either side; pixels further away
    and the image's mean are unchanged."""
    a = deblock(_step_image(0.02), [16], [], 4, 0.05)
    want = np.r_[[0.5] * 12, 0.5025, 0.505, 0.5075, 0.51, 0.51, 0.5125, 0.515, 0.5175, [0.52] * 12]
    assert np.allclose(a[:, :, 0], want[None], atol=1e-6)
    assert a[0, 0, 0] == np.float32(0.5) and a[0, -1, 0] == np.float32(0.52)
    assert math.isclose(float(a.mean(dtype=np.float64)), float(_step_image(0.02).mean(dtype=np.float64)), abs_tol=1e-6)


@pytest.mark.parametrize("threshold", [1e-300, 1e300])
def test_thresholds_beyond_float32_are_what_their_limits_give(threshold):
    """SCENARIO: a header's threshold T (any finite T >= 0 is valid) that float32, the filter's
    arithmetic, rounds to 0 or cannot hold (found by bench/fuzz.py: a flipped header byte).
    EXPECTED RESULT: no warning (it divided by zero, and an overflow would warn too); a T that
    rounds to 0 leaves the image as it is (every fade is 0), one past float32's range filters like
    float32's largest value (every fade is 1)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = deblock(_step_image(0.02), [16], [], 4, threshold)
    if threshold < 1:
        assert np.array_equal(a, _step_image(0.02))
    else:
        assert np.array_equal(a, deblock(_step_image(0.02), [16], [], 4, float(np.finfo(np.float32).max)))
        assert not np.array_equal(a, _step_image(0.02))


def test_an_edge_of_the_image_is_left_alone():
    """SCENARIO: jumps of 2T and more at a border (an edge in the picture, not a coding error),
    and one of 1.5T. EXPECTED RESULT: 2T and more are untouched; 1.5T is half corrected (the fade
    between T and 2T), so the filter has no cliff where float rounding could flip a decision."""
    for jump in (0.1, 0.3, -0.1):
        a = _step_image(jump)
        assert np.array_equal(deblock(a.copy(), [16], [], 4, 0.05), a)
    a = deblock(_step_image(0.075), [16], [], 4, 0.05)
    assert math.isclose(float(a[0, 16, 0] - a[0, 15, 0]), 0.075 / 2, rel_tol=1e-4)


def test_rows_after_columns_and_out_of_reach_borders():
    """SCENARIO: a jump across a horizontal border, a border too close to the array's edge to
    measure, K = 2. EXPECTED RESULT: the horizontal border is smoothed like a vertical one; the
    border at column 1 (its step needs column -1) is left as it is."""
    a = _step_image(0.02).transpose(1, 0, 2).copy()  # the jump now starts at row 16
    out = deblock(a, [], [16], 2, 0.05)
    assert np.allclose(out[12:20, 0, 0], [0.5, 0.5, 0.505, 0.51, 0.51, 0.515, 0.52, 0.52], atol=1e-6)
    b = np.zeros((4, 8, 1), np.float32)
    b[:, 1:] = 0.01
    assert np.array_equal(deblock(b.copy(), [1], [], 2, 0.05), b)


def test_width_and_halo_by_scale():
    """SCENARIO: K = 4 at scales from 1/8 to 2. EXPECTED RESULT: half-width min(K, floor(K s)):
    none below 1/4, and a read renders k + 2 pixels around its region."""
    assert [filter_width(4, s) for s in (0.125, 0.2, 0.25, 0.5, 0.75, 1.0, 2.0)] == [0, 0, 1, 2, 3, 4, 4]
    assert [halo(k) for k in (0, 1, 4)] == [0, 3, 6]


@pytest.mark.parametrize("value", [[0, 0.1], [17, 0.1], [4, -0.1], [4, float("nan")], [4, float("inf")],
                                   [True, 0.1], [4.0, 0.1], [4], "4,0.1", [4, "x"], [4, False]])
def test_bad_deblock_values_are_refused(value):
    """SCENARIO: a header holding a deblock value outside the spec (section 2).
    EXPECTED RESULT: the reader refuses it with a LigFormatError naming deblock (and the writer
    refuses to write it)."""
    h = Header(64, 64, 3, 8, 16, 1, "ycocg", 0.125, [0.1, 0.1, 0.1], [[0.01] * 3])
    d = msgpack.unpackb(h.pack(), raw=False)
    d["deblock"] = value
    with pytest.raises(LigFormatError, match="deblock"):
        Header.parse(msgpack.packb(d, use_bin_type=True))
    with pytest.raises(ligcodec.LigInputError, match="deblock"):
        dataclasses.replace(h, deblock=value).pack()


def test_encoder_writes_the_filter_and_reads_apply_it(tmp_path):
    """SCENARIO: an encode of a 300x200 image with 128-px tiles.
    EXPECTED RESULT: the header holds deblock = [4, T > 0]; a full read differs from the same file
    read without the filter only near tile borders; region reads at several scales are the same
    windows of full reads, bit for bit (the halo)."""
    path = tmp_path / "a.lig"
    from ligcodec.fit import FitConfig

    ligcodec.encode(smooth_image(200, 300), path, gaussians=400, effort=1, workers=1, config=FitConfig(tile=128))
    with ligcodec.open(path) as img:
        K, T = img.header.deblock
        assert K == 4 and T > 0
        full = img.read()
        img.model.deblock = None
        plain = img.read()
        img.model.deblock = (K, T)
        changed = np.nonzero(np.any(full != plain, axis=2))
        near = lambda v: np.minimum(v % 128, 128 - v % 128) <= K  # noqa: E731
        assert changed[0].size and np.all(near(changed[0]) | near(changed[1]))
        rng = np.random.default_rng(0)
        for s in (1.0, 0.5, 0.3, 2.0):
            whole = img.read(s)
            H, W = whole.shape[:2]
            for _ in range(6):
                x0, y0 = int(rng.integers(0, W - 1)), int(rng.integers(0, H - 1))
                w, h = int(rng.integers(1, W - x0 + 1)), int(rng.integers(1, H - y0 + 1))
                assert np.array_equal(img.read(s, (x0, y0, w, h)), whole[y0 : y0 + h, x0 : x0 + w]), (s, x0, y0)


def test_header_round_trip():
    h = Header(64, 64, 3, 8, 16, 1, "ycocg", 0.125, [0.1, 0.1, 0.1], [[0.01] * 3], deblock=[4, 0.02])
    assert Header.parse(h.pack()).deblock == [4, 0.02]
    assert Header.parse(dataclasses.replace(h, deblock=None).pack()).deblock is None


@pytest.mark.parametrize("strip_pixels", [1, 300 * 40, 300 * 150])
def test_strips_carry_rows_instead_of_drawing_a_halo(tmp_path, monkeypatch, strip_pixels):
    """SCENARIO: reads of a 2.3 file cut into strips of one or more rows of tiles (LigImage.read
    of a large image), whose last rows wait for the next strip instead of drawing a halo.
    EXPECTED RESULT: bit for bit the pixels of the same read in one strip, at every scale, for
    the whole image and for regions that start and end off the tile grid."""
    from ligcodec import image as image_mod
    from ligcodec.fit import FitConfig

    path = tmp_path / "a.lig"
    ligcodec.encode(smooth_image(200, 300), path, gaussians=400, effort=1, workers=1, config=FitConfig(tile=64))
    with ligcodec.open(path) as img:
        want = {}
        for s in (1.0, 0.5, 0.3, 2.0):
            for region in (None, (5, 3, 170, 190)):
                want[s, region] = img.read(s, region if s == 1 else None)
    monkeypatch.setattr(image_mod, "STRIP_PIXELS", strip_pixels)
    with ligcodec.open(path) as img:
        cut = 0
        for (s, region), v in want.items():
            cut += len(img._strips(s, 0, v.shape[0], v.shape[1])) > 1
            assert np.array_equal(img.read(s, region if s == 1 else None), v), (s, region)
        assert cut == len(want) if strip_pixels == 1 else cut >= 2


def test_step_tally_in_bands_is_the_whole_image_measure(rng):
    """The encoder reads images in bands of rows that overlap by one; the tally over the bands is
    the seam measure of the whole image (each step counted once)."""
    from ligcodec.codec.seams import StepTally, seam_ratio

    img = rng.integers(0, 256, (203, 150, 3)).astype(np.uint8)
    img[:, 64:] //= 2  # a step at the column border at 64
    whole = seam_ratio(img, 64)
    t = StepTally()
    for y0 in range(0, 203, 50):
        y1 = min(203, y0 + 51)
        t.add(img[y0:y1], 64, y0, last=y1 == 203)
    assert t.ratio() == pytest.approx(whole, rel=1e-12)
    a = img.astype(np.float64)
    dx, dy = np.abs(np.diff(a, axis=1)), np.abs(np.diff(a, axis=0))
    border = np.concatenate([dx[:, 63::64].ravel(), dy[63::64].ravel()])
    inner = (dx.sum() + dy.sum() - border.sum()) / (dx.size + dy.size - border.size)
    assert whole == pytest.approx(border.mean() / inner, rel=1e-12)


def test_encoder_chooses_the_threshold_that_matches_the_source(tmp_path):
    """SCENARIO: a smooth 300x200 image with 64-px tiles, encoded at effort 1 (a smooth image's
    tiles disagree by more than the fixed 2.75 x RMS error threshold lets the filter remove).
    EXPECTED RESULT: the header's T is above the fixed one; the decoded seam measure with it is
    closer to the source's than with the fixed one, and at least as close as with every multiple of
    the RMS error on the search's grid (T may lie between two of them: the search narrows there)."""
    from ligcodec.codec.seams import MULTIPLES, START, seam_ratio
    from ligcodec.fit import FitConfig

    src = np.round(smooth_image(200, 300) * 255).astype(np.uint8)
    path = tmp_path / "s.lig"
    r = ligcodec.encode(src, path, gaussians=300, effort=1, workers=1, config=FitConfig(tile=64))
    rmse = 10 ** (-r.psnr / 20)  # the coded RMS error the thresholds are multiples of
    source = seam_ratio(src, 64)
    with ligcodec.open(path) as img:
        K, T = img.header.deblock
        chosen = abs(seam_ratio(img.read(), 64) / source - 1)
        errs = []
        for t in [round(x * rmse, 7) for x in MULTIPLES]:
            img.model.deblock = (K, t)
            errs.append(abs(seam_ratio(img.read(), 64) / source - 1))
        # 1e-6: T and the grid's thresholds are rounded to 7 decimals, which moves the ratio by
        # less than that, where the search compared them unrounded.
        assert T > round(MULTIPLES[START] * rmse, 7) and chosen <= min(errs) + 1e-6, (T, chosen, errs)
        assert chosen < errs[START]  # better than the fixed threshold


@pytest.mark.parametrize("crossing", [1.3, 6.6, 2.8, 30.0, 0.5])
def test_threshold_search_narrows_between_the_grids_multiples(crossing):
    """:func:`ligcodec.codec.seams.search` on an excess that falls steeply in log threshold and
    crosses 0 at ``crossing``: between two multiples of the grid (1.3, 6.6) it interpolates until
    within :data:`CLOSE`, in at most :data:`NARROW_STEPS` more evaluations; next to a multiple (2.8)
    it keeps that multiple; outside the grid (30, 0.5) it keeps the grid's end."""
    import math

    from ligcodec.codec.seams import CLOSE, MULTIPLES, NARROW_STEPS, search

    seen = []

    def line(m):
        return 0.8 * math.log(crossing / m)  # +0.21 at 1.0 and -0.24 at 1.75 for 1.3: a third apart

    def excess(m):
        seen.append(m)
        return line(m)

    m = search(excess)
    on_grid = [x for x in seen if x in MULTIPLES]
    assert len(seen) == len(set(seen)) and len(seen) - len(on_grid) <= NARROW_STEPS
    if MULTIPLES[0] <= crossing <= MULTIPLES[-1]:
        assert abs(line(m)) <= CLOSE, (m, seen)
        assert (m in MULTIPLES) == (len(seen) == len(on_grid))
    else:
        assert m == (MULTIPLES[-1] if crossing > MULTIPLES[-1] else MULTIPLES[0]) and seen == on_grid
    if crossing == 2.8:
        assert m == 2.75 and seen == [2.75, 4.0]  # the walk's step past the crossing, no narrowing


@pytest.mark.parametrize("crossing, start, expect", [(4.2, 2, 4), (3.6, 2, 4), (0.4, 2, 0), (1.6, 2, 2), (9, 2, 6),
                                                     (-3, 2, 0), (2.0, 2, 2)])
def test_threshold_search_walks_towards_the_source(crossing, start, expect):
    """The search over thresholds (:func:`ligcodec.codec.seams.walk`) on a decreasing excess that
    crosses 0 at ``crossing``: it goes up or down from the start, stops after the crossing, keeps
    the closest, and stays in range when the crossing is outside it."""
    from ligcodec.codec.seams import walk

    seen = []

    def excess(i):
        seen.append(i)
        return (crossing - i) / 10

    assert walk(excess, start, 7) == expect
    assert seen[0] == start and len(seen) == len(set(seen)) and len(seen) <= abs(expect - start) + 2
