"""ligcodec.pillow: PIL.Image.open() of .lig files, with draft() and reduce() rendering reduced scales."""

import io

import numpy as np
import pytest
from PIL import Image

import ligcodec
import ligcodec.pillow
from bench.ometiff_memory import encode_seed, forge_lig
from ligcodec.image import LigImage


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """1100 x 700 RGB, forged from one real 256-px tile (partial edge tiles)."""
    tmp = tmp_path_factory.mktemp("pillow")
    encode_seed(tmp / "seed.lig", gaussians=300)
    forge_lig(tmp / "seed.lig", tmp / "big.lig", 1100, 700)
    return tmp / "big.lig"


def _image(channels, dtype, h=40, w=52):
    y, x = np.mgrid[0:h, 0:w]
    planes = [np.sin(x / 6.0 + k) * np.cos(y / 5.0 - k) * 0.45 + 0.5 for k in range(channels)]
    if channels in (2, 4):
        planes[-1] = np.where(x > w // 3, 1.0, 0.0)  # alpha: opaque / transparent halves
    a = np.stack(planes, -1)
    peak = 65535 if dtype == np.uint16 else 255
    return np.round(a * peak).astype(dtype)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pillow_modes")
    out = {}
    for channels, dtype in ((1, np.uint8), (2, np.uint8), (4, np.uint8), (1, np.uint16), (2, np.uint16),
                           (3, np.uint16)):
        p = tmp / f"c{channels}_{np.dtype(dtype).itemsize * 8}.lig"
        ligcodec.encode(_image(channels, dtype), p, gaussians=80, effort=1, workers=1)
        out[channels, np.dtype(dtype).itemsize * 8] = p
    return out


def _scales(monkeypatch):
    """Record the scale of every LigImage.read."""
    seen = []
    orig = LigImage.read

    def read(self, scale=1.0, region=None, levels=None):
        seen.append(scale)
        return orig(self, scale, region, levels)

    monkeypatch.setattr(LigImage, "read", read)
    return seen


def test_registered(big):
    assert Image.registered_extensions()[".lig"] == "LIG"
    assert Image.MIME["LIG"] == "image/x-lig"
    with Image.open(big) as im:
        assert im.format == "LIG" and im.get_format_mimetype() == "image/x-lig"
        assert im.mode == "RGB" and im.size == (1100, 700)
        assert im.info["bit_depth"] == 8


def test_load_equals_read(big):
    with Image.open(big) as im, ligcodec.open(big) as img:
        im.load()
        np.testing.assert_array_equal(np.asarray(im), img.read())


@pytest.mark.parametrize("key,mode", [((1, 8), "L"), ((2, 8), "LA"), ((4, 8), "RGBA"), ((1, 16), "I;16"),
                                      ((2, 16), "LA"), ((3, 16), "RGB")])
def test_modes(files, key, mode):
    with Image.open(files[key]) as im, ligcodec.open(files[key]) as img:
        assert im.mode == mode and im.size == (52, 40) and im.info["bit_depth"] == key[1]
        ref = img.read()
        got = np.asarray(im)
        if mode == "I;16":
            np.testing.assert_array_equal(got, ref[:, :, 0])
        elif key[1] == 16:  # 16-bit colour: reduced to 8 bits by round(v / 257)
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, np.round(ref / 257.0).astype(np.uint8))
        else:
            np.testing.assert_array_equal(got.reshape(ref.shape), ref)


def test_sixteen_bit_rule_is_round_half_up():
    from ligcodec.pillow import _to_mode

    v = np.arange(65536, dtype=np.uint16).reshape(-1, 1, 1).repeat(3, -1)
    got = np.frombuffer(_to_mode(v, "RGB"), np.uint8).reshape(-1, 3)[:, 0]
    np.testing.assert_array_equal(got, np.floor(np.arange(65536) / 257 + 0.5).astype(np.uint8))
    assert (got[np.arange(256) * 257] == np.arange(256)).all()  # inverts v8 * 257


def test_reduce_renders_at_the_reduced_scale(big, monkeypatch):
    seen = _scales(monkeypatch)
    with Image.open(big) as im, ligcodec.open(big) as img:
        r = im.reduce(4)
        assert r.size == (275, 175) and r.mode == "RGB"
        assert set(seen) == {0.25}  # nothing at full resolution
        assert im.tile  # the image itself is still not loaded
        np.testing.assert_array_equal(np.asarray(r), img.read(0.25))
        # a box on multiples of the factor: the matching region at that scale
        seen.clear()
        r = im.reduce(3, (3, 6, 300, 700))
        assert r.size == (99, 232) and set(seen) == {1 / 3}
        np.testing.assert_array_equal(np.asarray(r), img.read(1 / 3, (1, 2, 99, 232)))


def test_reduce_unaligned_or_loaded_falls_back_to_pillow(big):
    with Image.open(big) as im:
        a = im.reduce(2, (1, 0, 100, 100))  # box not on multiples of 2: Pillow's own reduce
        assert a.size == (50, 50)
        im.load()
        b = im.reduce(4)  # loaded: Pillow's box average of the loaded pixels
        assert b.size == (275, 175)
        np.testing.assert_array_equal(np.asarray(b), np.asarray(Image.Image.reduce(im, 4)))


@pytest.mark.parametrize("req,factor", [((1100, 700), 1), ((550, 350), 2), ((500, 340), 2), ((276, 175), 2), ((274, 175), 4),
                                        ((275, 175), 4), ((100, 10), 8), ((1, 1), 512), (None, 1)])
def test_draft_picks_largest_power_of_two(big, req, factor, monkeypatch):
    with Image.open(big) as im, ligcodec.open(big) as img:
        mode, box = im.draft(None, req)
        assert mode == "RGB" and box == (0, 0, 1100 / factor, 700 / factor)
        assert im.size == (-(-1100 // factor), -(-700 // factor))
        if req:
            assert im.size[0] >= req[0] and im.size[1] >= req[1]
        seen = _scales(monkeypatch)
        im.load()
        assert set(seen) <= {1 / factor}
        np.testing.assert_array_equal(np.asarray(im), img.read(1 / factor))
        assert im.draft(None, (10, 10)) is None  # after load


def test_draft_then_reduce_and_thumbnail(big, monkeypatch):
    with Image.open(big) as im, ligcodec.open(big) as img:
        im.draft("RGB", (550, 350))
        r = im.reduce(2)  # scale 1/2 of the drafted 1/2
        np.testing.assert_array_equal(np.asarray(r), img.read(0.25))
    seen = _scales(monkeypatch)
    with Image.open(big) as im:
        im.thumbnail((128, 128))  # Pillow drafts to >= 2x the size (reducing_gap 2): scale 1/2
        assert im.size == (128, 81) and set(seen) == {0.5}


def test_file_objects(big):
    data = big.read_bytes()
    with Image.open(io.BytesIO(data)) as im, ligcodec.open(big) as img:
        assert im.size == (1100, 700)
        np.testing.assert_array_equal(np.asarray(im.reduce(8)), img.read(1 / 8))
    with open(big, "rb") as f, Image.open(f) as im:
        im.load()
        assert im.size == (1100, 700)


def test_closing(big):
    with Image.open(big) as im:
        lig = im._lig
    assert lig._reader.closed
    im = Image.open(big)
    im.load()  # the .lig is closed once the pixels are in
    assert im._lig._reader.closed
    im.close()


def test_other_files_are_not_claimed(tmp_path):
    p = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(p)
    with Image.open(p) as im:
        assert im.format == "PNG"
    with pytest.raises(ligcodec.LigFormatError):  # a .lig, but corrupt: says what is wrong
        Image.open(io.BytesIO(b"\x89LIG\r\n\x1a\n" + b"\0" * 40))
