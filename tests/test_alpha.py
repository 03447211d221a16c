"""Alpha: fully opaque and fully transparent source pixels decode exactly (spec section 8)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ligcodec
from ligcodec.codec.alpha import OPAQUE, PARTIAL, TRANSPARENT, mask_chunk, read_mask
from ligcodec.errors import LigFormatError
from tests.spec_reader import apply_alpha_full, read_lig, render_full, to_samples


def _rgba(h=150, w=230, depth=8, channels=4):
    """A photo-like RGB ramp with hard-edged alpha: an opaque disc, a transparent band, a soft
    gradient band (neither 0 nor top) and single opaque pixels inside the transparent band."""
    top = 255 if depth == 8 else 65535
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x / w, y / h, (x + y) / (w + h)], -1)
    a = np.zeros((h, w))
    a[(x - 0.26 * w) ** 2 + (y - 0.47 * h) ** 2 < (0.3 * min(h, w)) ** 2] = 1.0
    b0, b1 = int(0.65 * w), int(0.83 * w)
    a[:, b0:b1] = np.linspace(0.1, 0.9, b1 - b0)[None, :]
    a[h // 15 : h - h // 15 : 17, int(0.52 * w) : int(0.61 * w) : 7] = 1.0
    img = np.concatenate([rgb, a[..., None]], -1) if channels == 4 else np.stack([rgb[..., 0], a], -1)
    return np.round(img * top).astype(np.uint8 if depth == 8 else np.uint16)


def _footprint_classes(alpha, top, s, oh, ow):
    """Per output pixel: 1 if its whole footprint is opaque, 0 if all transparent, else -1 (the
    spec's footprint: [floor(j/s), ceil((j+1)/s)) clipped to the image)."""
    h, w = alpha.shape
    out = np.full((oh, ow), -1)
    for i in range(oh):
        r0 = min(math.floor(round(i / s, 6)), h - 1)
        r1 = max(min(math.ceil(round((i + 1) / s, 6)), h), r0 + 1)
        for j in range(ow):
            c0 = min(math.floor(round(j / s, 6)), w - 1)
            c1 = max(min(math.ceil(round((j + 1) / s, 6)), w), c0 + 1)
            block = alpha[r0:r1, c0:c1]
            if (block == top).all():
                out[i, j] = 1
            elif (block == 0).all():
                out[i, j] = 0
    return out


@pytest.mark.parametrize("depth,channels", [(8, 4), (16, 2)])
def test_opaque_and_transparent_pixels_decode_exactly(tmp_path, depth, channels):
    """SCENARIO: an RGBA (and a 16-bit grey+alpha) image with hard alpha edges, encoded at a
    modest budget (the Gaussians ring at the edges: opaque pixels decoded as low as 209 before).
    EXPECTED RESULT: at scales 1, 1/2, 1/3 and 1/4 (64-px tiles, so the footprints cross tile
    borders), every output pixel whose source footprint is all opaque reads exactly the top
    value and every all-transparent one exactly 0; the soft band keeps its rendered values."""
    img = _rgba(depth=depth, channels=channels)
    top = 255 if depth == 8 else 65535
    path = tmp_path / "a.lig"
    from ligcodec.fit.tiles import FitConfig

    ligcodec.encode(img, path, gaussians=500, effort=1, workers=1, config=FitConfig(tile=64))
    with ligcodec.open(path) as lig:
        assert lig.header.alpha_mask
        for s in (1.0, 0.5, 1 / 3, 0.25):
            out = lig.read(s)
            cls = _footprint_classes(img[..., -1], top, s, *out.shape[:2])
            assert (out[..., -1][cls == 1] == top).all(), s
            assert (out[..., -1][cls == 0] == 0).all(), s
            assert (cls == -1).any() and (cls == 1).any() and (cls == 0).any()
        # A region read is the same window of the full read, mask included.
        full = lig.read(0.5)
        assert np.array_equal(lig.read(0.5, (20, 10, 70, 40)), full[10:50, 20:90])


def test_spec_reader_applies_the_mask_like_ligcodec(tmp_path):
    """SCENARIO: the spec-only reader decodes an RGBA file, section 8 included.
    EXPECTED RESULT: its full-resolution samples equal ligcodec's within one code value, and
    exactly on the masked alpha samples."""
    img = _rgba(96, 120)
    path = tmp_path / "a.lig"
    ligcodec.encode(img, path, gaussians=300, effort=1, workers=1)
    dec = read_lig(path)
    theirs = apply_alpha_full(dec, to_samples(render_full(dec), 8))
    ours = ligcodec.decode(path)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    exact = (img[..., 3] == 0) | (img[..., 3] == 255)
    assert np.array_equal(ours[..., 3][exact], theirs[..., 3][exact])
    assert np.array_equal(ours[..., 3][exact], img[..., 3][exact])


def test_mask_chunks_round_trip_and_stay_small():
    """SCENARIO: mask chunks of a constant opaque tile, a tile with no exact pixel, and a mixed
    256^2 tile.
    EXPECTED RESULT: one byte, zero bytes, and a compressed map that reads back to the classes."""
    a = np.full((256, 256), 255, np.uint8)
    assert mask_chunk(a, 255) == bytes([OPAQUE])
    assert mask_chunk(np.full((8, 8), 7, np.uint8), 255) == b""
    a[:100] = 0
    a[200:, 50:60] = 128
    c = mask_chunk(a, 255)
    assert len(c) < 200
    m = read_mask(c, 256, 256, "t")
    assert (m[:100] == TRANSPARENT).all() and (m[200:, 50:60] == PARTIAL).all() and m[150, 0] == OPAQUE


def test_forged_mask_chunks_are_refused():
    """SCENARIO: a zlib bomb (a stream far longer than its tile), a short stream, a bad mode
    byte, a class value of 7, and garbage after the stream.
    EXPECTED RESULT: LigFormatError each; decompression never produces more than the tile."""
    import zlib

    bomb = b"\x03" + zlib.compress(bytes(10_000_000), 9)
    for data in (bomb, b"\x03" + zlib.compress(bytes(10)), b"\x09", b"\x01\x01",
                 b"\x03" + zlib.compress(bytes([7]) * 64), b"\x03" + zlib.compress(bytes(64)) + b"xx"):
        with pytest.raises(LigFormatError):
            read_mask(data, 8, 8, "t")


def test_truncated_alpha_section_is_refused(tmp_path):
    """SCENARIO: an RGBA file cut inside its alpha footer.
    EXPECTED RESULT: open() works (the Gaussians are intact) and a read says the mask is
    truncated or corrupt, with a LigFormatError."""
    path = tmp_path / "a.lig"
    ligcodec.encode(_rgba(40, 40), path, gaussians=50, effort=1, workers=1)
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    with ligcodec.open(path) as lig:
        with pytest.raises(LigFormatError, match="alpha"):
            lig.read()
