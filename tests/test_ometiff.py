"""ligcodec.ometiff: tiled pyramidal OME-TIFF written band by band."""

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")

import ligcodec
from bench.ometiff_memory import encode_seed, forge_lig
from ligcodec.image import LigImage
from ligcodec.ometiff import write_ome_pyramid


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """1100 x 700 RGB (3 pyramid levels), forged from one real 256-px tile."""
    tmp = tmp_path_factory.mktemp("ometiff")
    encode_seed(tmp / "seed.lig", gaussians=300)
    forge_lig(tmp / "seed.lig", tmp / "big.lig", 1100, 700)
    return tmp / "big.lig"


def _levels(path):
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome and len(tf.series) == 1
        s = tf.series[0]
        return tf.ome_metadata, [(lvl.shape, lvl.keyframe.tile, lvl.keyframe.compression, lvl.asarray())
                                 for lvl in s.levels], len(tf.pages[0].subifds or ())


def test_pyramid_levels_shapes_and_pixels(big, tmp_path):
    out = tmp_path / "big.ome.tif"
    with ligcodec.open(big) as img:
        sizes = write_ome_pyramid(img, out)
        assert sizes == list(img.level_dimensions) == [(1100, 700), (550, 350), (275, 175)]
        xml, levels, n_sub = _levels(out)
        assert n_sub == 2  # reduced levels are SubIFDs of the first page
        assert [lv[0] for lv in levels] == [(700, 1100, 3), (350, 550, 3), (175, 275, 3)]
        for i, (_, tile, comp, data) in enumerate(levels):
            assert tile == (256, 256) and comp == 8  # zlib (ADOBE_DEFLATE)
            np.testing.assert_array_equal(data, img.read(1 / 2**i))
    assert 'SizeX="1100"' in xml and 'SizeC="3"' in xml and 'Name="big.lig"' in xml
    assert not (tmp_path / "big.ome.tif.partial").exists()


def test_bands_never_hold_a_level(big, tmp_path, monkeypatch):
    """Every read is one band of tile rows (or a part of one), never a whole level."""
    regions = []
    orig = LigImage.read

    def read(self, scale=1.0, region=None, levels=None):
        regions.append((scale, region))
        return orig(self, scale, region, levels)

    monkeypatch.setattr(LigImage, "read", read)
    write_ome_pyramid(big, tmp_path / "x.ome.tif", tile=128, compression=None)
    assert regions and all(r is not None and r[3] <= 128 for _, r in regions)
    assert {s for s, _ in regions} == {1.0, 0.5, 0.25}
    rows = sorted((r[1], r[3]) for s, r in regions if s == 1.0)
    assert rows[0] == (0, 128) and rows[-1] == (640, 60) and len(rows) == 6


@pytest.mark.parametrize("key", ["grey16", "rgba8"])
def test_grey16_and_rgba(tmp_path, key):
    y, x = np.mgrid[0:200, 0:520]
    if key == "grey16":
        a = (32768 + 30000 * np.sin(x / 11.0) * np.cos(y / 13.0)).astype(np.uint16)
    else:
        a = np.stack([np.sin(x / 9.0) * 100 + 128, np.cos(y / 8.0) * 100 + 128, (x + y) % 256,
                      np.where(x > 200, 255, 0)], -1).astype(np.uint8)
    p = tmp_path / f"{key}.lig"
    ligcodec.encode(a, p, gaussians=150, effort=1, workers=1)
    out = tmp_path / f"{key}.ome.tif"
    write_ome_pyramid(p, out, tile=128, compression="zstd")
    with ligcodec.open(p) as img:
        _, levels, n_sub = _levels(out)
        assert n_sub == 1 and len(levels) == 2
        for i, (shape, tile, _, data) in enumerate(levels):
            ref = img.read(1 / 2**i)
            assert shape == (ref.shape[:2] if key == "grey16" else ref.shape) and tile == (128, 128)
            np.testing.assert_array_equal(data, ref[:, :, 0] if key == "grey16" else ref)
    with tifffile.TiffFile(out) as tf:
        page = tf.pages[0]
        assert page.dtype == a.dtype
        if key == "rgba8":
            assert page.photometric == tifffile.PHOTOMETRIC.RGB and page.extrasamples == (2,)  # unassociated


def test_small_image_has_one_level(tmp_path):
    p = tmp_path / "s.lig"
    ligcodec.encode(np.full((20, 30), 100, np.uint8), p, gaussians=10, effort=1, workers=1)
    out = tmp_path / "s.ome.tif"
    assert write_ome_pyramid(p, out) == [(30, 20)]
    _, levels, n_sub = _levels(out)
    assert n_sub == 0 and levels[0][0] == (20, 30)


def test_bad_arguments_leave_no_file(big, tmp_path):
    out = tmp_path / "bad.ome.tif"
    with pytest.raises(ligcodec.LigInputError):
        write_ome_pyramid(big, out, tile=100)
    with pytest.raises(ValueError, match="COMPRESSION"):  # tifffile's error
        write_ome_pyramid(big, out, compression="no-such-codec")
    assert not out.exists() and not (tmp_path / "bad.ome.tif.partial").exists()
