"""The rate loop of ``bpp=`` encodes: pass 2 again with shifted quantiser steps while the file
misses its target size (:func:`ligcodec.codec.encoder.next_shift`), journalled so that a resumed
encode makes the same choices."""

import numpy as np
import pytest

from ligcodec import LigInputError
from ligcodec.codec import encoder, ratecontrol
from ligcodec.codec.encoder import RATE_MAX_SHIFT, RATE_ROUNDS, RATE_SIZE_PER_SHIFT, RATE_TOLERANCE, journal_path, next_shift
from ligcodec.codec.ratecontrol import encode
from tests.test_large import _config, _image


def test_next_shift_keeps_a_file_within_tolerance():
    assert next_shift([(12, 1000)], round(1000 * (1 + RATE_TOLERANCE * 0.9)), 12) is None
    assert next_shift([(12, 1000)], round(1000 / (1 + RATE_TOLERANCE * 0.9)), 12) is None


def test_next_shift_moves_by_the_prior_then_by_the_secant():
    # 5 % too small: finer steps (a lower shift) by 0.05 / RATE_SIZE_PER_SHIFT eighths of an octave.
    first = next_shift([(12, 1000)], 1050, 12)
    assert first == 12 - round(50 / (RATE_SIZE_PER_SHIFT * 1000))
    assert next_shift([(12, 1000)], 950, 12) == 12 + round(50 / (RATE_SIZE_PER_SHIFT * 1000))
    # The second move follows the two measured rounds: 40 bytes per 4 eighths.
    assert next_shift([(12, 1000), (8, 1040)], 1070, 12) == 8 - 3
    # A secant that says coarser steps gave a larger file (noise) is not trusted: the prior again.
    assert next_shift([(12, 1000), (8, 990)], 1030, 12) == 8 - round(40 / (RATE_SIZE_PER_SHIFT * 990))


def test_next_shift_stays_near_the_base_and_stops():
    # Far off: clipped to the base +- RATE_MAX_SHIFT (precision buys little far from the base).
    assert next_shift([(12, 1000)], 2000, 12) == 12 - RATE_MAX_SHIFT
    assert next_shift([(12, 1000)], 500, 12) == 12 + RATE_MAX_SHIFT
    # Already tried there: stop rather than code the same round again.
    assert next_shift([(12, 1000), (12 - RATE_MAX_SHIFT, 1500)], 2000, 12) is None
    # Out of rounds.
    hist = [(12 - k, 1000 + k) for k in range(RATE_ROUNDS + 1)]
    assert next_shift(hist, 5000, 12) is None


def _spy(monkeypatch):
    """Record each round's (shift, predicted size) as the encoder sees them."""
    seen = []
    real = encoder.next_shift

    def spy(history, target, base=0):
        seen.append(list(history))
        return real(history, target, base)

    monkeypatch.setattr(encoder, "next_shift", spy)
    return seen


def test_the_probe_lands_the_first_round(tmp_path, monkeypatch):
    """SCENARIO: a smooth generated 3 x 2 tile image encoded at 1.5 bpp, effort 1. The count model
    expects more bits per Gaussian than such an image needs, so the base steps land 5-10 % short.
    EXPECTED RESULT: the probe starts the rate loop at finer steps, and that first round lands
    within the loop's tolerance: the tiles are coded once."""
    seen = _spy(monkeypatch)
    a = _image()
    target = 1.5 * a.shape[0] * a.shape[1] / 8
    r = encode(a, tmp_path / "o.lig", bpp=1.5, config=_config(), workers=1, effort=1)
    assert len(seen) == 1 and seen[0][0][0] < encoder.EFFORT_STEP_SHIFT[1], seen
    assert abs(r.bytes / target - 1) <= RATE_TOLERANCE and r.rounds == [seen[0]]


def test_the_probe_rounds_as_a_coding_round_without_its_solves(data_dir):
    """SCENARIO: a fitted Kodak crop (two levels), quantised by the coding pass with no colour
    solves and no refinement, and probed at the same steps.
    EXPECTED RESULT: the probe's payload is the coded chunks' bytes exactly (the same rounding,
    order and coder: only the solves the probe leaves out make the two differ)."""
    from PIL import Image

    from ligcodec.codec.quantise import quantise_tile
    from ligcodec.codec.rateprobe import plain_payload
    from ligcodec.codec.tile_writer import encode_chunk
    from ligcodec.fit import FitConfig, FitSettings
    from ligcodec.fit.tiles import fit_tile

    img = np.asarray(Image.open(data_dir / "kodak" / "kodim23.png").convert("RGB"))[200:296, 300:428]
    target = (img / 255).astype(np.float32)
    cfg = FitConfig(level=FitSettings(steps=30))
    parts = fit_tile(target, 400, cfg, 0)
    steps = encoder.choose_steps(None, 0.03, 2, 3, 4, "ycocg")
    coded = quantise_tile(parts, target, 400, cfg, steps, "ycocg", lsq_iters=0)
    coded_bytes = sum(len(encode_chunk(q.qx, q.qy, q.qc, q.qk)) for q in coded)
    assert plain_payload(parts, [steps], "ycocg") == [coded_bytes]


def test_bpp_encode_moves_toward_its_target_and_predicts_its_size(tmp_path, monkeypatch):
    """SCENARIO: the image above, with the probe's calibration made 15 % wrong, so that its first
    coding lands short.
    EXPECTED RESULT: the later rounds come closer; the loop stops within its tolerance, out of
    rounds or at the edge of its range; the size it weighed for the last round is the file's. (One
    fit: the recount is tested below.)"""
    from ligcodec.codec import rateprobe

    monkeypatch.setattr(rateprobe, "CODED_OVER_PLAIN", 1.15)
    monkeypatch.setattr(encoder, "RECOUNT_MISS", float("inf"))
    seen = _spy(monkeypatch)
    a = _image()
    out = tmp_path / "o.lig"
    target = 1.5 * a.shape[0] * a.shape[1] / 8
    r = encode(a, out, bpp=1.5, config=_config(), workers=1, effort=1)
    hist = seen[-1]
    assert hist[-1][1] == out.stat().st_size == r.bytes
    miss = [abs(z / target - 1) for _, z in hist]
    assert len(hist) > 1 and miss[-1] < miss[0]
    base = encoder.EFFORT_STEP_SHIFT[1]
    assert (miss[-1] <= RATE_TOLERANCE or len(hist) > RATE_ROUNDS
            or abs(hist[-1][0] - base) == RATE_MAX_SHIFT), hist


@pytest.mark.parametrize("name", ["kodim05", "kodim23"])
def test_bpp_lands_within_5_percent_on_photo_crops(tmp_path, data_dir, name):
    """SCENARIO: 256 x 256 centre crops of two Kodak photos (one tile), effort 1, 0.5 and 2 bpp.
    EXPECTED RESULT: each file within ±5 % of its target size (#16's acceptance for ``--bpp``)."""
    from PIL import Image

    img = np.asarray(Image.open(data_dir / "kodak" / f"{name}.png").convert("RGB"))
    h, w = img.shape[:2]
    crop = np.ascontiguousarray(img[h // 2 - 128 : h // 2 + 128, w // 2 - 128 : w // 2 + 128])
    for bpp in (0.5, 2.0):
        r = encode(crop, tmp_path / f"{bpp}.lig", bpp=bpp, workers=1, effort=1)
        assert abs(r.bpp / bpp - 1) <= 0.05, (name, bpp, r.bpp)


def test_alpha_file_size_is_predicted(tmp_path, monkeypatch):
    """SCENARIO: an RGBA image with transparent pixels (alpha mask chunks, spec section 8).
    EXPECTED RESULT: the size the rate loop weighs includes the mask: it is the file's size."""
    seen = _spy(monkeypatch)
    a = _image(channels=4)
    a[:20, :30, 3] = 0
    out = tmp_path / "a.lig"
    encode(a, out, bpp=2.0, config=_config(), workers=1, effort=1)
    assert seen[-1][-1][1] == out.stat().st_size


@pytest.mark.parametrize("stop_round", [1, 2])
def test_rate_loop_resumes_in_its_round(tmp_path, monkeypatch, stop_round):
    """SCENARIO: a bpp= encode whose loop codes the tiles three times (tolerance forced to 0, range
    widened, the probe's calibration made 15 % wrong) is
    interrupted after 2 tiles of its second or third coding round, then resumed.
    EXPECTED RESULT: the rerun continues in that round (the journal's round record) and writes the
    same bytes as an uninterrupted encode."""
    from ligcodec.codec import rateprobe

    monkeypatch.setattr(encoder, "RATE_TOLERANCE", 0.0)
    monkeypatch.setattr(encoder, "RATE_MAX_SHIFT", 64)  # room for every round on this tiny image
    monkeypatch.setattr(rateprobe, "CODED_OVER_PLAIN", 1.15)  # a first round that misses
    monkeypatch.setattr(encoder, "RECOUNT_MISS", float("inf"))  # the rounds of one fit only
    a = _image()
    kw = dict(bpp=1.25, config=_config(), workers=1, effort=1)
    full = tmp_path / "full.lig"
    seen = _spy(monkeypatch)
    encode(a, full, **kw)
    assert len(seen[-1]) == RATE_ROUNDS + 1  # the loop ran every round
    out = tmp_path / "out.lig"
    stop_at = 12 + 6 * (stop_round - 1) + 2  # 6 fits, 6 codings per round

    def stop(done, total):
        if done == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode(a, out, progress=stop, **kw)
    assert not out.exists() and journal_path(out).exists()
    progress = []
    encode(a, out, resume=True, progress=lambda d, t: progress.append((d, t)), **kw)
    assert [d for d, _ in progress] == list(range(stop_at, 12 + 6 * RATE_ROUNDS + 1))
    assert progress[-1][0] == progress[-1][1]  # the total grew with the rounds
    assert out.read_bytes() == full.read_bytes()
    assert not journal_path(out).exists()


def _recount_spy(monkeypatch):
    """Record each recount's (Gaussians before, size of the first round, count after, rounds, size of
    the last round)."""
    calls = []
    real = encoder._recount

    def spy(job, journal, history, header, chunks, target):
        n = real(job, journal, history, header, chunks, target)
        if n is not None:
            calls.append((job.info["gaussians"], history[0][1], n, len(history), history[-1][1]))
        return n

    monkeypatch.setattr(encoder, "_recount", spy)
    return calls


def _overestimating_model(monkeypatch):
    """The count model made to expect 1.6x the bits per Gaussian that it does: too few Gaussians."""
    monkeypatch.setattr(ratecontrol, "BPG_MODEL", tuple(1.6 * c for c in ratecontrol.BPG_MODEL))


def test_a_count_that_misses_is_fitted_again(tmp_path, monkeypatch):
    """SCENARIO: a smooth generated 3 x 2 tile image at 1.5 bpp, effort 1, with a count model that
    expects 1.6x the bits per Gaussian it needs, so the first coding round lands far short, and the
    rate loop's finer steps still leave it more than RECOUNT_MISS short.
    EXPECTED RESULT: the probe starts at the finest steps the loop allows, and the loop stops there;
    the tiles are fitted once more with the count scaled up by the first round's miss; that fit's
    first round lands closer than the first did, and the file within ±5 % of its target; the result
    says it took two fits and the header's count is the new one."""
    import ligcodec

    _overestimating_model(monkeypatch)
    calls, seen = _recount_spy(monkeypatch), _spy(monkeypatch)
    a = _image()
    out = tmp_path / "o.lig"
    target = 1.5 * a.shape[0] * a.shape[1] / 8
    r = encode(a, out, bpp=1.5, config=_config(), workers=1, effort=1)
    assert len(calls) == 1, calls
    n0, size0, n1, rounds, last = calls[0]
    assert seen[0][0][0] == encoder.EFFORT_STEP_SHIFT[1] - RATE_MAX_SHIFT
    assert last < target * (1 - encoder.RECOUNT_MISS) and n1 > n0
    assert abs(seen[-1][0][1] / target - 1) < abs(size0 / target - 1)
    assert abs(r.bytes / target - 1) <= 0.05 and r.passes == 2
    with ligcodec.open(out) as f:
        assert f.header.encoder["gaussians"] == n1


def test_a_count_within_reach_is_not_fitted_again(tmp_path, monkeypatch):
    """SCENARIO: the same image with the recount threshold above the last round's miss.
    EXPECTED RESULT: one fit; the steps alone move the size (the rounds of one fit)."""
    _overestimating_model(monkeypatch)
    monkeypatch.setattr(encoder, "RECOUNT_MISS", 0.99)
    calls = _recount_spy(monkeypatch)
    r = encode(_image(), tmp_path / "o.lig", bpp=1.5, config=_config(), workers=1, effort=1)
    assert calls == [] and r.passes == 1


@pytest.mark.parametrize("stop_at", [2, 8])
def test_a_recount_resumes_in_its_fit(tmp_path, monkeypatch, stop_at):
    """SCENARIO: the recounted encode above interrupted after 2 tiles of the new count's fit, or
    after its 6 fits and 2 codings, then resumed.
    EXPECTED RESULT: the rerun continues from the journal's recount record: no second recount, its
    progress starts at the tiles done since the recount (no tile of the new count fitted again),
    and it writes the same bytes as an uninterrupted encode."""
    _overestimating_model(monkeypatch)
    a = _image()
    kw = dict(bpp=1.5, config=_config(), workers=1, effort=1)
    full = tmp_path / "full.lig"
    encode(a, full, **kw)
    out = tmp_path / "out.lig"
    calls, seen = _recount_spy(monkeypatch), []

    def stop(done, total):
        seen.append((done, total))
        if calls and done == stop_at:  # the recount restarts the progress at 0 of 12
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode(a, out, progress=stop, **kw)
    assert not out.exists() and journal_path(out).exists()
    assert seen[seen.index((0, 12), 1):] == [(d, 12) for d in range(stop_at + 1)]
    again, progress = _recount_spy(monkeypatch), []
    encode(a, out, resume=True, progress=lambda d, t: progress.append((d, t)), **kw)
    assert again == []
    assert progress[0] == (stop_at, 12)
    assert out.read_bytes() == full.read_bytes()
    assert not journal_path(out).exists()


def test_given_steps_are_not_moved(tmp_path, monkeypatch):
    """SCENARIO: bpp= with explicit quantiser steps (``quant=``).
    EXPECTED RESULT: one coding round, with exactly the user's steps in the header."""
    import ligcodec
    from ligcodec.codec.quantise import QuantSteps

    seen = _spy(monkeypatch)
    out = tmp_path / "q.lig"
    q = QuantSteps(pos_step=1 / 4)
    encode(_image(), out, bpp=1.5, quant=q, config=_config(), workers=1, effort=1)
    assert seen == []
    with ligcodec.open(out) as im:
        assert im.header.pos_step == 0.25 and list(im.header.chol_step) == list(q.chol_step)


def test_bpp_must_be_a_positive_number(tmp_path):
    """SCENARIO: bpp given as a string, zero, or infinity. EXPECTED RESULT: a one-line LigInputError
    that names the value (a string used to fail with a TypeError from the comparison)."""
    for bad in ("1", 0, float("inf")):
        with pytest.raises(LigInputError, match="bpp must be a number > 0"):
            encode(_image(), tmp_path / "x.lig", bpp=bad, config=_config(), workers=1)
