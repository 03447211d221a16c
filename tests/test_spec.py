"""spec/lig-format.md is enough to decode a file: ``tests/spec_reader.py`` was written from the spec
alone (numpy, msgpack, constriction; it never imports or copies ligcodec), and these tests check
that it decodes files written by ligcodec to the same Gaussians and the same pixels."""

from __future__ import annotations

import numpy as np
import pytest

import ligcodec

from .spec_reader import read_lig, render_full, to_samples


def _image(h, w, channels, depth, seed):
    """Smooth gradients, a few soft blobs and some texture: something a fit has to work at."""
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
    img = np.stack(planes, -1) * (2**depth - 1)
    img = np.round(img).astype(np.uint8 if depth == 8 else np.uint16)
    return img[..., 0] if channels == 1 else img


# (height, width, channels, bit depth, progressive): 2x1 tiles of 256 with a partial one, grey
# 16-bit, RGBA, and a progressive file (format 2.1's level0_scale).
CASES = [(200, 300, 3, 8, False), (80, 96, 1, 16, False), (80, 96, 4, 8, False), (80, 96, 3, 8, True)]


@pytest.mark.parametrize("h, w, channels, depth, progressive", CASES)
def test_spec_reader_decodes_like_ligcodec(tmp_path, h, w, channels, depth, progressive):
    """SCENARIO: ligcodec encodes an image; the spec-only reader decodes the file.
    EXPECTED RESULT: every chunk holds the same Gaussians as ligcodec decodes (positions and colours
    to float rounding, the covariance factor to 1e-12: the two take exp() from different
    libraries), and the spec's rendering rules give ligcodec's pixels to one code value, the
    rounding of a sample within float error of a half (ligcodec sums in float32, the reader in
    float64)."""
    img = _image(h, w, channels, depth, seed=h + channels)
    path = tmp_path / "x.lig"
    ligcodec.encode(img, path, gaussians=400, effort=1, workers=1, progressive=progressive)
    dec = read_lig(path)
    hd = dec["header"]
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
                # ligcodec keeps colours in float32: its rounding is the tolerance.
                np.testing.assert_allclose(ref["colours"], colours, rtol=1e-6, atol=1e-7)
        assert total == sum(len(c["means"]) for c in dec["chunks"].values()) > 0
        ours = lig.read()
    theirs = to_samples(render_full(dec), depth)
    diff = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.01


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
