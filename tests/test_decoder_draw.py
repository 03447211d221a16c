"""The decoder's one-call tiled renderer (render/decoder.py) against a per-tile dense reference."""

import numpy as np
import pytest

from ligcodec.model import Model, tile_grid, tile_output_span
from ligcodec.render import Gaussians, render_reference
from ligcodec.render.contract import output_size
from tests.conftest import random_gaussians

W, H, T = 150, 100, 64


def _model(rng, channels=3, levels=2):
    lv = []
    for li in range(levels):
        tiles = []
        for t, x0, y0, x1, y1 in tile_grid(W, H, T):
            g = random_gaussians(rng, 60, x1 - x0, y1 - y0, channels, sigma=(0.5, 6.0) if li else (2.0, 9.0))
            # Some sit outside their tile: they are clipped to it.
            tiles.append(Gaussians(g.means + [x0, y0], g.chol, g.colours))
        lv.append(tiles)
    return Model(W, H, channels, T, lv)


def _reference(m, s):
    ow, oh = output_size(W, H, s)
    out = np.zeros((oh, ow, m.channels), np.float64)
    for t, x0, y0, x1, y1 in tile_grid(W, H, T):
        cx0, cx1 = tile_output_span(x0, x1, s, W)
        cy0, cy1 = tile_output_span(y0, y1, s, H)
        for lvl in m.levels:
            full = render_reference(lvl[t], (W, H), scale=s)
            out[cy0:cy1, cx0:cx1] += full[cy0:cy1, cx0:cx1]
    return out


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.3])
def test_tiled_render_matches_per_tile_reference(rng, channels, scale):
    m = _model(rng, channels)
    got = m.render(scale)
    ref = _reference(m, scale)
    # float32 accumulation of ~100 terms per pixel and the polynomial exp (rel. error ~5e-7):
    # 1e-5 of the image's range covers both with margin.
    np.testing.assert_allclose(got, ref, atol=1e-5 * np.abs(ref).max(), rtol=0)


@pytest.mark.parametrize("scale", [1.0, 0.75, 0.25])
def test_region_is_bit_identical_to_window_of_full_read(rng, scale):
    """Region reads equal the same window of a full read exactly, not just to rounding."""
    m = _model(rng)
    full = m.render(scale)
    oh, ow = full.shape[:2]
    for _ in range(12):
        x, y = int(rng.integers(0, ow - 1)), int(rng.integers(0, oh - 1))
        w, h = int(rng.integers(1, ow - x + 1)), int(rng.integers(1, oh - y + 1))
        assert np.array_equal(m.render(scale, (x, y, w, h)), full[y : y + h, x : x + w]), (x, y, w, h)
