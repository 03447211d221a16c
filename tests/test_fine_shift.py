"""The finer starting steps of ``bpp=`` files expected at high fidelity
(:func:`ligcodec.codec.ratecontrol.fine_shift`)."""

import numpy as np
import pytest

from ligcodec.codec import encoder, ratecontrol
from ligcodec.codec.encoder import EFFORT_STEP_SHIFT, encode_settings
from ligcodec.codec.ratecontrol import FINE_SHIFT, encode, fine_shift
from ligcodec.source import open_source
from tests.test_large import _config, _image


def _noise(h=192, w=256, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_fine_shift_follows_the_expected_fidelity():
    """SCENARIO: a smooth generated image and uniform noise, both at 1 bpp.
    EXPECTED RESULT: the smooth image (expected far above FINE_FULL_DB) starts its steps the full
    FINE_SHIFT finer; noise (expected near 10 dB) keeps the effort's base steps."""
    settings = encode_settings(config=_config())
    assert fine_shift(open_source(_image()), 1.0, settings) == FINE_SHIFT
    assert fine_shift(open_source(_noise()), 1.0, settings) == 0


def test_fine_shift_ramps_between_its_bounds(monkeypatch):
    """SCENARIO: the expected PSNR placed (through the proxy's model) a quarter of the way up the ramp.
    EXPECTED RESULT: a quarter of FINE_SHIFT, rounded."""
    settings = encode_settings(config=_config())
    a, b = ratecontrol.FIDELITY_MODEL
    want_db = ratecontrol.FINE_FROM_DB + 0.25 * (ratecontrol.FINE_FULL_DB - ratecontrol.FINE_FROM_DB)
    proxy = 10 ** (-(want_db - b) / a / 20)
    monkeypatch.setattr(ratecontrol, "_count_and_proxy", lambda *args: (100, proxy))
    assert fine_shift(open_source(_noise()), 1.0, settings) == round(0.25 * FINE_SHIFT)


@pytest.mark.parametrize("effort", [1, 7])
def test_bpp_encode_of_a_smooth_image_starts_from_finer_steps(tmp_path, effort, monkeypatch):
    """SCENARIO: a smooth generated image encoded at 1 bpp.
    EXPECTED RESULT: its first coding round uses the effort's base shift less FINE_SHIFT, and the
    rate loop's range is centred there; a gaussians= encode keeps the effort's base shift."""
    monkeypatch.setattr(encoder, "RECOUNT_MISS", float("inf"))
    kw = dict(config=_config(), workers=1, effort=effort, steps=20)
    r = encode(_image(), tmp_path / "a.lig", bpp=1.0, **kw)
    assert r.rounds[0][0][0] == EFFORT_STEP_SHIFT[effort] - FINE_SHIFT
    r = encode(_image(), tmp_path / "b.lig", gaussians=200, **kw)
    assert r.rounds[0][0][0] == EFFORT_STEP_SHIFT[effort]


def test_bpp_must_be_a_positive_number(tmp_path):
    """SCENARIO: bpp given as a string, zero, or infinity. EXPECTED RESULT: a one-line LigInputError."""
    from ligcodec import LigInputError

    for bad in ("1", 0, float("inf")):
        with pytest.raises(LigInputError, match="bpp must be a number > 0"):
            encode(_image(), tmp_path / "x.lig", bpp=bad, config=_config(), workers=1)
