"""bench/quant_tiles.py measures variants against the encoder's own quantiser, so its base coding
must be the encoder's (no Kodak data needed: a synthetic tile)."""

import numpy as np

from bench import quant_tiles
from ligcodec.codec.quantise import QuantSteps, _render_local, quantise_level
from tests.conftest import random_gaussians


def test_base_variant_codes_as_the_encoder_does(rng):
    """SCENARIO: a tile of random Gaussians quantised by the bench's variant code with no variant,
    and by the encoder's quantise_level. EXPECTED RESULT: the same indices for every attribute, so a
    variant's measured gain is against what the encoder really writes."""
    g = random_gaussians(rng, 80, 40, 40, 3, sigma=(1.0, 4.0), margin=0)
    target = _render_local(g, (40, 40, 3), 1.0) + rng.normal(0, 0.02, (40, 40, 3)).astype(np.float32)
    steps = QuantSteps(chol_step=(1 / 8, 1 / 4, 1 / 8), colour_step=[[1 / 64] * 3, [1 / 64] * 3])
    want = quantise_level(g, target, 1.0, steps, 1, "ycocg", lsq_iters=40)
    got, extra = quant_tiles.quantise_variant(g, target, 1.0, steps, 1, "base", 0)
    assert extra == 0
    for a in ("qx", "qy", "qc", "qk"):
        np.testing.assert_array_equal(getattr(got, a), getattr(want, a), err_msg=a)


def test_gain_is_measured_against_the_curve_at_the_same_size():
    """SCENARIO: a point on, above and below a base curve, between and beyond its samples.
    EXPECTED RESULT: its dB difference from the curve interpolated (or extended) log-linearly in bytes."""
    curve = [(30.0, 1000.0), (31.0, 2000.0), (31.5, 4000.0)]
    assert abs(quant_tiles.gain_vs_curve(curve, (31.0, 2000.0))) < 1e-12
    assert abs(quant_tiles.gain_vs_curve(curve, (30.7, 1414.2136)) - 0.2) < 1e-6
    assert abs(quant_tiles.gain_vs_curve(curve, (31.6, 8000.0)) - (-0.4)) < 1e-9
    assert abs(quant_tiles.gain_vs_curve(curve, (29.0, 500.0)) - 0.0) < 1e-9


def test_klt_variant_codes_in_an_orthonormal_colour_basis(rng):
    """SCENARIO: a tile whose colours vary mostly along one RGB direction, quantised by the bench's
    ``klt`` variant with a fine step. EXPECTED RESULT: the basis is orthonormal with its first
    column along that direction; the first coded channel carries most of the spread; the
    dequantised colours are the indices times the step, rotated back to RGB."""
    g = random_gaussians(rng, 60, 40, 40, 3, sigma=(1.0, 4.0), margin=0)
    direction = np.array([0.8, 0.5, 0.33])
    direction /= np.linalg.norm(direction)
    g.colours[:] = (rng.normal(0, 0.3, (60, 1)) * direction + rng.normal(0, 0.01, (60, 3))).astype(np.float32)
    target = _render_local(g, (40, 40, 3), 1.0)
    v = quant_tiles.klt_basis(target)
    np.testing.assert_allclose(v.T @ v, np.eye(3), atol=1e-6)  # float32 entries, as the header stores them
    assert abs(v[:, 0] @ direction) > 0.99
    steps = QuantSteps(chol_step=(1 / 8, 1 / 4, 1 / 8), colour_step=[[1 / 512] * 3, [1 / 512] * 3])
    got, _ = quant_tiles.quantise_variant(g, target, 1.0, steps, 1, "klt", 1.0)
    spread = got.qk.std(0)
    assert spread[0] > 5 * max(spread[1], spread[2])
    np.testing.assert_allclose(got.gaussians.colours, (got.qk / 512) @ v.T, atol=1e-5)
