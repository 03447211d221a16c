"""The numba rasteriser against the dense reference, region/scale semantics, and bad input."""

import numpy as np
import pytest

from ligcodec import LigError, LigInputError, LigSizeError
from ligcodec.render import Gaussians, kernels, render, render_reference
from ligcodec.render.contract import aa_variance, output_size, project
from tests.conftest import random_gaussians

# The kernels accumulate in float32 and evaluate exp(-q/2) by a polynomial with <= ~5e-7 relative
# error; with tens of overlapping terms the error stays far below 1e-5 of the image's peak value.
RTOL_PEAK = 1e-5


def assert_close_to_reference(out, ref):
    assert out.shape == ref.shape
    peak = max(np.abs(ref).max(), 1e-30)
    err = np.abs(out - ref).max() / peak
    assert err < RTOL_PEAK, f"max error {err:.2e} of peak"


@pytest.mark.parametrize(
    "width,height,n,channels,scale",
    [
        (37, 29, 60, 3, 1.0),
        (100, 80, 400, 1, 1.0),
        (64, 64, 150, 4, 0.25),
        (50, 70, 80, 2, 2.0),
        (130, 70, 300, 3, 0.5),
        (200, 150, 500, 5, 0.3),
        (90, 61, 700, 1, 0.25),
        (77, 93, 300, 2, 0.125),
        (1, 1, 3, 3, 1.0),
        (7, 13, 20, 1, 1.0),
    ],
)
def test_forward_matches_reference(rng, width, height, n, channels, scale):
    g = random_gaussians(rng, n, width, height, channels)
    assert_close_to_reference(render(g, (width, height), scale=scale), render_reference(g, (width, height), scale))


def test_wide_and_thin_gaussians_match_reference(rng):
    """Needles at all angles and very wide blobs stress the per-row span computation."""
    n = 200
    means = rng.uniform(0, 96, (n, 2))
    scales = np.stack([rng.uniform(0.05, 0.4, n), rng.uniform(5, 40, n)], 1)
    g = Gaussians.from_scale_rotation(means, scales, rng.uniform(0, np.pi, n), rng.normal(size=(n, 3)))
    for s in (1.0, 0.5, 0.25, 1.7):
        assert_close_to_reference(render(g, (96, 96), scale=s), render_reference(g, (96, 96), s))


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.37, 0.25, 0.1, 1.5])
def test_region_equals_window_of_full_render(rng, scale):
    g = random_gaussians(rng, 800, 300, 200, 3)
    full = render(g, (300, 200), scale=scale)
    ow, oh = output_size(300, 200, scale)
    for _ in range(12):
        w = int(rng.integers(1, ow + 1))
        h = int(rng.integers(1, oh + 1))
        x = int(rng.integers(0, ow - w + 1))
        y = int(rng.integers(0, oh - h + 1))
        part = render(g, (300, 200), scale=scale, region=(x, y, w, h))
        # Bit for bit: span polynomials are anchored on the tile grid, not at the region's edge.
        assert np.array_equal(part, full[y : y + h, x : x + w]), (x, y, w, h)


def test_region_touches_only_gaussians_that_reach_it(rng):
    g = random_gaussians(rng, 500, 512, 512, 1, sigma=(0.5, 2))
    params, _ = kernels.project(g.means, g.chol, g.colours, 1.0, 0.0, 9.0)
    region = (100, 200, 50, 40)
    boxes = kernels.gaussian_boxes(params, *region)
    start, ids = kernels.bin_tiles(boxes, 100 // 64, 200 // 64, 2, 2, 64, 64)
    touched = set(ids.tolist())
    reach = {i for i in range(len(g)) if render(g.take([i]), (512, 512), region=region).any()}
    assert reach <= touched
    # Nothing far away is visited: every touched Gaussian's 3-sigma box meets the region.
    d = np.sqrt(np.maximum(g.covariance()[:, 0], g.covariance()[:, 2])) * 3 + 1
    for i in touched:
        mx, my = g.means[i]
        assert 100 - d[i] <= mx <= 150 + d[i] and 200 - d[i] <= my <= 240 + d[i]


@pytest.mark.parametrize("tile", [(256, 32), (64, 64), (48, 20), (1, 1)])
def test_parallel_binning_equals_serial(rng, tile):
    """bin_gaussians (chunked, parallel) gives the serial counting sort for any chunk count."""
    g = random_gaussians(rng, 700, 300, 200, 1, sigma=(0.3, 6))
    params, _ = kernels.project(g.means, g.chol, g.colours, 0.8, aa_variance(0.8), 9.0)
    tw, th = tile
    for x0, y0, w, h in [(0, 0, 240, 160), (37, 21, 100, 77), (239, 159, 1, 1)]:
        boxes = kernels.gaussian_boxes(params, x0, y0, w, h)
        tx0, ty0 = x0 // tw, y0 // th
        ntx, nty = (x0 + w - 1) // tw - tx0 + 1, (y0 + h - 1) // th - ty0 + 1
        start, ids = kernels.bin_tiles(boxes, tx0, ty0, ntx, nty, tw, th)
        for chunks in (1, 3, 16, 5000):
            b2, s2, i2 = kernels.bin_gaussians(params, x0, y0, w, h, tw, th, chunks)
            assert np.array_equal(b2, boxes) and np.array_equal(s2, start) and np.array_equal(i2, ids)


def test_fused_projection_and_binning_equal_separate_calls(rng):
    g = random_gaussians(rng, 900, 300, 200, 4, sigma=(0.3, 6))
    for s, region in [(1.0, (0, 0, 300, 200)), (0.37, (5, 3, 90, 60)), (2.0, (100, 50, 333, 211))]:
        args = (g.means, g.chol, g.colours, s, aa_variance(s), 9.0)
        params, cols = kernels.project(*args)
        p2, c2, boxes, start, ids = kernels.project_and_bin(*args, *region, 64, 32, 7)
        assert np.array_equal(p2, params) and np.array_equal(c2, cols)
        b3, s3, i3 = kernels.bin_gaussians(params, *region, 64, 32, 3)
        assert np.array_equal(boxes, b3) and np.array_equal(start, s3) and np.array_equal(ids, i3)


def test_small_and_large_paths_match_reference(rng):
    """Boxes just under/over 8 and 16 columns switch kernel paths; all must match the reference."""
    n = 300
    means = rng.uniform(0, 80, (n, 2))
    scales = rng.uniform(0.2, 3.2, (n, 2))  # 3-sigma box widths around 8 and 16 px at scale 1
    g = Gaussians.from_scale_rotation(means, scales, rng.uniform(0, np.pi, n), rng.normal(size=(n, 3)))
    for s in (1.0, 0.5, 0.25):
        assert_close_to_reference(render(g, (80, 80), scale=s), render_reference(g, (80, 80), s))


def _codec_ordered(rng, n, size, channels=3):
    """Gaussians sorted by strips of 16 rows, spatially coherent like the codec's tile order:
    the banded path's bands then skip whole blocks of them."""
    g = random_gaussians(rng, n, size, size, channels, sigma=(0.3, 6))
    order = np.lexsort((g.means[:, 0], g.means[:, 1] // 16))
    return g.take(order)


def test_reduced_path_matches_reference_and_tiled_path(rng):
    """SCENARIO: 6000 codec-ordered Gaussians (12 blocks of 512), where render() takes the banded
    path of render/banded.py at every scale. EXPECTED RESULT: it matches the reference (below
    scale 1, where the dense reference fits in memory) and the tiled machinery (rasterize on
    projected params, itself tested against the reference) to float rounding."""
    from ligcodec.render.raster import project as project_params
    from ligcodec.render.raster import rasterize

    g = _codec_ordered(rng, 6000, 400)
    for s in (2.0, 1.0, 0.5, 0.25, 0.1):
        out = render(g, (400, 400), scale=s)
        if s < 1:  # (the dense reference of a 400^2 render at scale 1 would need 16 GB)
            assert_close_to_reference(out, render_reference(g, (400, 400), s))
        ow, oh = output_size(400, 400, s)
        tiled = rasterize(*project_params(g, s), (0, 0, ow, oh))
        # Same per-pixel operations; only the log-Cholesky exp differs (libm vs. a polynomial,
        # ~1e-16 relative), so the two agree far inside the reference tolerance.
        np.testing.assert_allclose(out, tiled, rtol=0, atol=1e-6 * np.abs(tiled).max())


@pytest.mark.parametrize("channels", [3, 4])  # RGB small boxes take their own intrinsic
def test_reduced_path_does_not_depend_on_bands_or_threads(rng, channels):
    """SCENARIO: the same reduced-scale render cut into 1, 3 and 7 bands drawn by 1-3 workers, and
    render() with 1 thread and all threads. EXPECTED RESULT: identical bits (each pixel sums its
    Gaussians in index order)."""
    import numba

    from ligcodec.render import banded
    from ligcodec.render.gaussians import LOG_SCALE_LIMIT

    g = _codec_ordered(rng, 3000, 300, channels=channels)
    s, (w, h) = 0.25, output_size(300, 300, 0.25)  # (the same code serves scale 1: see above)
    k = aa_variance(s)
    geo, aux, box, rows, ok = banded.setup(g.means, g.chol, s, k, 9.0, LOG_SCALE_LIMIT, 0, 0, w, h, 3)
    assert ok
    outs = []
    for nb, workers in ((1, 1), (3, 2), (7, 3)):
        out = np.empty((h, w, channels), np.float32)
        outs.append(banded.forward(geo, aux, box, rows, g.means, g.chol, g.colours, s, k, 9.0, 0, 0, w, h, nb,
                                    workers, out))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = render(g, (300, 300), scale=s)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(one, render(g, (300, 300), scale=s))
    assert np.array_equal(one, outs[0])


def test_path_choice_depends_on_order_and_scale_not_region(rng):
    """SCENARIO: the same Gaussians shuffled and in codec order, at scale 1 and 1/4, full and
    windowed. EXPECTED RESULT: shuffled at scale 1 renders exactly as the tiled machinery does;
    every other case takes the banded path (close to the tiled result, not bit-equal); a window
    always equals the same window of the full render."""
    from ligcodec.render.raster import project as project_params
    from ligcodec.render.raster import rasterize

    ordered = _codec_ordered(rng, 4000, 300)
    shuffled = ordered.take(rng.permutation(len(ordered)))
    for g, s, tiled_expected in ((shuffled, 1.0, True), (ordered, 1.0, False), (shuffled, 0.25, False)):
        ow, oh = output_size(300, 300, s)
        full = render(g, (300, 300), scale=s)
        tiled = rasterize(*project_params(g, s), (0, 0, ow, oh))
        assert np.array_equal(full, tiled) == tiled_expected, (s, tiled_expected)
        np.testing.assert_allclose(full, tiled, rtol=0, atol=1e-6 * np.abs(tiled).max())
        x, y, w, h = ow // 3, oh // 5, ow // 2, oh // 2
        assert np.array_equal(render(g, (300, 300), scale=s, region=(x, y, w, h)), full[y : y + h, x : x + w])


def test_vectorised_exp_matches_numpy():
    from numba import njit

    from ligcodec.render.banded import _exp

    x = np.concatenate([np.linspace(-60, 60, 100001), [0.0, -0.0, 1e-300, 50.0, -50.0]])
    got = njit(lambda v: np.array([_exp(t) for t in v]))(x)
    np.testing.assert_allclose(got, np.exp(x), rtol=4e-15, atol=0)


def test_output_size_is_ceil_of_scaled_size():
    assert output_size(1024, 768, 0.25) == (256, 192)
    assert output_size(1001, 3, 0.25) == (251, 1)
    assert output_size(10, 10, 2.0) == (20, 20)
    assert output_size(3, 3, 1e-9) == (1, 1)


def test_reduced_scale_preserves_energy(rng):
    """Anti-aliased render at scale s has s^2 times the full render's sum (each Gaussian's integral)."""
    g = random_gaussians(rng, 300, 256, 256, 3, sigma=(2, 4), margin=-20)
    g = Gaussians(g.means, g.chol, np.abs(g.colours))  # positive, so the sums cannot cancel
    full = render(g, (256, 256)).astype(np.float64).sum(axis=(0, 1))
    for s in (0.5, 0.25, 0.125):
        small = render(g, (256, 256), scale=s).astype(np.float64).sum(axis=(0, 1))
        # Truncating at 3 sigma loses ~1.1% of the mass of each Gaussian, a little more once the
        # AA filter widens it, so the sums agree to ~1%, not exactly.
        np.testing.assert_allclose(small / (s * s), full, rtol=0.02)


@pytest.mark.parametrize("n", [2, 4])
def test_reduced_scale_is_close_to_area_downsampling(rng, n):
    """The AA variance (1 - s^2)/12 is chosen to match box averaging; with gsplat's 0.3 the RMS
    gap here is ~20 % of the spread, with no filter ~14 % at n=4."""
    g = random_gaussians(rng, 2000, 256, 256, 1, sigma=(1.5, 4), margin=-10)
    full = render(g, (256, 256))[..., 0]
    box = full.reshape(256 // n, n, 256 // n, n).mean(axis=(1, 3))
    small = render(g, (256, 256), scale=1 / n)[..., 0]
    assert np.sqrt(((small - box) ** 2).mean()) < 0.04 * box.std()


def test_aa_filter_fades_out_at_scale_one():
    assert aa_variance(1.0) == 0 and aa_variance(2.0) == 0
    assert 0 < aa_variance(0.9) < aa_variance(0.5) < aa_variance(0.1) <= 1 / 12


def test_projection_numba_matches_contract(rng):
    g = random_gaussians(rng, 100, 50, 50, 3)
    for s in (1.0, 0.3, 2.0):
        params, cols = kernels.project(g.means, g.chol, g.colours, s, aa_variance(s), 9.0)
        means, conic, cols2 = project(g.means, g.chol.astype(np.float64), g.colours.astype(np.float64), s)
        np.testing.assert_allclose(params[:, :2], means, rtol=1e-12)
        np.testing.assert_allclose(params[:, 2:5], conic, rtol=1e-9)
        np.testing.assert_allclose(cols, cols2, rtol=1e-6)
        np.testing.assert_allclose(kernels.params_from_conic(means, conic, 9.0), params, rtol=1e-9)


def test_render_is_deterministic(rng):
    g = random_gaussians(rng, 3000, 300, 300, 3)
    assert np.array_equal(render(g, (300, 300)), render(g, (300, 300)))


# ------------------------------------------------------------------------------- edge cases
def test_empty_set_renders_zeros():
    out = render(Gaussians.empty(2), (5, 4))
    assert out.shape == (4, 5, 2) and not out.any()


def test_gaussians_outside_the_image_contribute_nothing():
    g = Gaussians.from_scale_rotation([[-100, 5], [5, 500]], [[2, 2], [2, 2]], [0, 0], [[1.0], [1.0]])
    assert not render(g, (10, 10)).any()


def test_huge_and_tiny_gaussians_are_defined():
    means = [[5.0, 5.0], [5.5, 5.5], [3.2, 7.9]]
    chol = [[40.0, 0.0, 40.0], [-40.0, 0.0, -40.0], [-45.0, 1e3, -45.0]]
    g = Gaussians(means, chol, np.ones((3, 1), np.float32))
    out = render(g, (10, 10))
    assert np.isfinite(out).all()
    # The huge one is ~1 everywhere; the point-like one at an exact pixel centre adds 1 there.
    np.testing.assert_allclose(out[0, 0, 0], 1.0, rtol=1e-5)
    np.testing.assert_allclose(out[5, 5, 0], 2.0, rtol=1e-5)
    assert np.isfinite(render(g, (10, 10), scale=0.1)).all()


@pytest.mark.parametrize("field", ["means", "chol", "colours"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters_are_rejected(rng, field, value):
    g = random_gaussians(rng, 10, 20, 20)
    arr = getattr(g, field).copy()
    arr[7, 0] = value
    bad = Gaussians(**{**{"means": g.means, "chol": g.chol, "colours": g.colours}, field: arr})
    for scale in (1.0, 0.25):  # the reduced-scale path validates in its projection pass
        with pytest.raises(LigInputError, match=f"{field} of Gaussian 7"):
            render(bad, (20, 20), scale=scale)


def test_degenerate_covariances_are_rejected():
    for scale in (1.0, 0.25):
        with pytest.raises(LigInputError, match="degenerate"):
            render(Gaussians([[1, 1]], [[60.0, 0, 0]], [[1.0]]), (4, 4), scale=scale)
    for cov in ([0, 0, 1], [1, 1, 1], [-1, 0, 1], [1, 2, 1], [np.nan, 0, 1]):
        with pytest.raises(LigInputError, match="positive definite"):
            Gaussians.from_covariance([[1, 1]], [cov], [[1.0]])


def test_shape_mismatches_are_rejected():
    with pytest.raises(LigInputError):
        Gaussians(np.zeros((3, 2)), np.zeros((2, 3)), np.zeros((3, 1)))
    with pytest.raises(LigInputError):
        Gaussians(np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((3, 1)))
    with pytest.raises(LigInputError):
        Gaussians(np.zeros((3, 2)), np.zeros((3, 3)), np.zeros((3, 0)))


@pytest.mark.parametrize(
    "region", [(0, 0, 0, 5), (0, 0, 5, 0), (-1, 0, 2, 2), (0, 0, 11, 1), (9, 9, 2, 2), (0, 0, 1.5, 2), "abc", (1, 2)]
)
def test_bad_regions_are_rejected(region):
    with pytest.raises(LigError):
        render(Gaussians.empty(1), (10, 10), region=region)


@pytest.mark.parametrize("scale", [0, -0.5, np.nan, np.inf, "x", None])
def test_bad_scales_are_rejected(scale):
    with pytest.raises(LigInputError):
        render(Gaussians.empty(1), (10, 10), scale=scale)


@pytest.mark.parametrize("size", [(0, 10), (10, -1), (1 << 25, 10), (2.5, 3), (1 << 20, 1 << 20)])
def test_bad_or_absurd_sizes_are_rejected_without_allocating(size):
    with pytest.raises(LigSizeError):
        render(Gaussians.empty(1), size)


def test_absurd_scale_is_rejected():
    with pytest.raises(LigSizeError):
        render(Gaussians.empty(1), (1000, 1000), scale=1e6)
