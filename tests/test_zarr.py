"""ligcodec.zarr_store: a .lig as a read-only zarr v3 / OME-NGFF 0.5 store rendered on demand."""

import asyncio
import json
import pickle

import numpy as np
import pytest

zarr = pytest.importorskip("zarr", minversion="3")
da = pytest.importorskip("dask.array")

import ligcodec
from bench.ometiff_memory import encode_seed, forge_lig
from ligcodec.zarr_store import aszarr


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """1100 x 700 RGB, 3 pyramid levels (1, 2, 4), partial edge tiles: a real 256-px tile forged
    over a 5 x 3 grid."""
    tmp = tmp_path_factory.mktemp("zarr")
    encode_seed(tmp / "seed.lig", gaussians=300)
    forge_lig(tmp / "seed.lig", tmp / "big.lig", 1100, 700)
    with ligcodec.open(tmp / "big.lig") as img:
        yield img


@pytest.fixture(scope="module")
def grey16(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zarr16")
    y, x = np.mgrid[0:70, 0:90]
    a = (32768 + 30000 * np.sin(x / 9.0) * np.cos(y / 7.0)).astype(np.uint16)
    ligcodec.encode(a, tmp / "g16.lig", gaussians=120, effort=1, workers=1)
    with ligcodec.open(tmp / "g16.lig") as img:
        yield img


def _run(coro):
    return asyncio.run(coro)


def _collect(agen):
    async def go():
        return [k async for k in agen]

    return _run(go())


def test_group_metadata_is_ome_ngff_05(big):
    store = aszarr(big)
    g = zarr.open_group(store, mode="r")
    assert sorted(g.array_keys()) == ["0", "1", "2"]
    ome = g.attrs["ome"]
    assert ome["version"] == "0.5"
    (ms,) = ome["multiscales"]
    assert [a["name"] for a in ms["axes"]] == ["c", "y", "x"]
    assert [a["type"] for a in ms["axes"]] == ["channel", "space", "space"]
    for lvl, ds in enumerate(ms["datasets"]):
        assert ds["path"] == str(lvl)
        assert ds["coordinateTransformations"] == [{"type": "scale", "scale": [1.0, 2.0**lvl, 2.0**lvl]}]
        a = g[str(lvl)]
        w, h = big.level_dimensions[lvl]
        assert a.shape == (3, h, w) and a.dtype == np.uint8 and a.chunks == (3, 256, 256)
    assert [c["label"] for c in ome["omero"]["channels"]] == ["red", "green", "blue"]
    assert big.level_dimensions == ((1100, 700), (550, 350), (275, 175))


def test_dask_region_equals_getitem(big):
    """The acceptance check, in the numpy layout (axes='yxc') and in OME's (c, y, x)."""
    ref = big[100:420, 200:730]
    a = da.from_zarr(aszarr(big, axes="yxc"), component="0")
    assert a.shape == big.shape
    np.testing.assert_array_equal(a[100:420, 200:730].compute(), ref)
    c = da.from_zarr(aszarr(big), component="0")
    np.testing.assert_array_equal(np.moveaxis(c[:, 100:420, 200:730].compute(), 0, -1), ref)


def test_levels_equal_strided_reads(big):
    for lvl, step in ((1, 2), (2, 4)):
        cyx = da.from_zarr(aszarr(big), component=str(lvl)).compute()
        yxc = da.from_zarr(aszarr(big, axes="yxc"), component=str(lvl)).compute()
        ref = big[::step, ::step]
        np.testing.assert_array_equal(np.moveaxis(cyx, 0, -1), ref)
        np.testing.assert_array_equal(yxc, ref)


def test_yxc_has_no_ome_metadata(big):
    g = zarr.open_group(aszarr(big, axes="yxc"), mode="r")
    assert "ome" not in g.attrs  # NGFF orders channel before space; yxc is the numpy layout
    assert g["0"].shape == (700, 1100, 3) and g["0"].metadata.dimension_names == ("y", "x", "c")


def test_sixteen_bit_grey(grey16):
    g = zarr.open_group(aszarr(grey16), mode="r")
    a = g["0"]
    assert a.dtype == np.uint16 and a.shape == (1, 70, 90)
    np.testing.assert_array_equal(a[0], grey16.read()[:, :, 0])
    assert g.attrs["ome"]["omero"]["channels"][0]["window"]["max"] == 65535


def test_store_api(big):
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
    from zarr.core.buffer import default_buffer_prototype

    s = aszarr(big)
    proto = default_buffer_prototype()
    assert s.read_only and not s.supports_writes and not s.supports_deletes and s.supports_listing
    assert _run(s.exists("zarr.json")) and _run(s.exists("2/zarr.json")) and _run(s.exists("0/c/0/2/4"))
    for bad in ("0/c/0/3/0", "0/c/1/0/0", "3/zarr.json", "3/c/0/0/0", "0/c/0/01/0", ".zgroup", "0/c/0/0"):
        assert not _run(s.exists(bad)), bad
        assert _run(s.get(bad, proto)) is None, bad
    assert _collect(s.list_dir("")) == ["zarr.json", "0", "1", "2"]
    assert _collect(s.list_dir("0/")) == ["zarr.json", "c"]
    assert _collect(s.list_dir("0/c/0")) == ["0", "1", "2"]
    assert _collect(s.list_dir("0/c/0/1")) == ["0", "1", "2", "3", "4"]
    keys = _collect(s.list())
    assert len(keys) == 1 + 3 + 15 + 6 + 2 and len(set(keys)) == len(keys)
    assert _collect(s.list_prefix("2/")) == ["2/zarr.json", "2/c/0/0/0", "2/c/0/0/1"]
    # sizes come from the metadata: no render
    assert _run(s.getsize("0/c/0/0/0")) == 3 * 256 * 256
    whole = _run(s.get("1/c/0/1/2", proto)).to_bytes()
    assert len(whole) == 3 * 256 * 256
    assert _run(s.get("1/c/0/1/2", proto, RangeByteRequest(10, 20))).to_bytes() == whole[10:20]
    assert _run(s.get("1/c/0/1/2", proto, OffsetByteRequest(1000))).to_bytes() == whole[1000:]
    assert _run(s.get("1/c/0/1/2", proto, SuffixByteRequest(7))).to_bytes() == whole[-7:]
    assert json.loads(_run(s.get("zarr.json", proto)).to_bytes())["node_type"] == "group"
    with pytest.raises(ValueError):
        _run(s.set("0/c/0/0/0", proto.buffer.from_bytes(b"x")))
    with pytest.raises(ValueError):
        s.with_read_only(False)
    assert s.with_read_only(True) == s


def test_pickles_by_path(big):
    s = aszarr(big, chunk=128)
    t = pickle.loads(pickle.dumps(s))
    assert t is not s and t._img is not big
    a = zarr.open_array(t, path="1", mode="r")
    assert a.chunks == (3, 128, 128)
    np.testing.assert_array_equal(np.moveaxis(a[:, 128:256, 0:128], 0, -1), big.read(0.5, (0, 128, 128, 128)))
    t.close()
    assert t._img._reader.closed and not big._reader.closed


def test_store_from_path_and_bad_arguments(big):
    from ligcodec import LigInputError

    s = aszarr(ligcodec.open(big.path), owns=True)
    assert zarr.open_group(s, mode="r")["2"].shape == (3, 175, 275)
    s.close()
    assert s._img._reader.closed
    with pytest.raises(LigInputError):
        aszarr(big.path)  # a path: open it first (ligcodec.open(path).aszarr())
    with pytest.raises(LigInputError):
        aszarr(big, axes="xyc")
    with pytest.raises(LigInputError):
        aszarr(big, chunk=8)


def test_ome_zarr_models_validate(big):
    models = pytest.importorskip("ome_zarr_models")
    from ome_zarr_models.v05.image import Image

    img = models.open_ome_zarr(zarr.open_group(aszarr(big), mode="r"))
    assert isinstance(img, Image)
    assert [d.path for d in img.attributes.ome.multiscales[0].datasets] == ["0", "1", "2"]


def test_ome_zarr_reader_accepts_it(big, tmp_path):
    """ome-zarr-py reads paths and fsspec/local stores only, so the store's keys are copied to a
    directory (as a server would serve them) and read back with its Reader."""
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader
    from zarr.core.buffer import default_buffer_prototype

    s = aszarr(big)
    root = tmp_path / "big.ome.zarr"

    async def copy():
        async for k in s.list():
            p = root / k
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes((await s.get(k, default_buffer_prototype())).to_bytes())

    _run(copy())
    nodes = list(Reader(parse_url(str(root)))())
    node = nodes[0]
    assert any(isinstance(sp, Multiscales) for sp in node.specs)
    assert [d.shape for d in node.data] == [(3, 700, 1100), (3, 350, 550), (3, 175, 275)]
    assert node.metadata["channel_names"] == ["red", "green", "blue"]
    np.testing.assert_array_equal(np.moveaxis(np.asarray(node.data[2]), 0, -1), big[::4, ::4])
