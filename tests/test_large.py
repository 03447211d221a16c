"""Large-image paths: lazy TIFF input, journalled and resumable encode, Dask, tiled TIFF output."""

import numpy as np
import pytest
import tifffile

import ligcodec
from ligcodec.cli import main
from ligcodec.codec.encoder import journal_path
from ligcodec.codec.ratecontrol import encode
from ligcodec.errors import LigError, LigFormatError, LigInputError, LigSizeError
from ligcodec.source import ArraySource, TiffSource, open_source
from tests.test_fit import smooth_image

# Small but multi-tile: 3 x 2 tiles of 64 px, with partial edge tiles.
H, W, TILE = 100, 150, 64
FAST = dict(gaussians=300, steps=15)


def _image(channels=3, dtype=np.uint8):
    img = smooth_image(H, W)
    peak = 255 if dtype == np.uint8 else 65535
    a = np.round(img * peak).astype(dtype)
    return np.concatenate([a, a[:, :, :1]], axis=2)[:, :, :channels] if channels == 4 else a[:, :, :channels]


def _config():
    from ligcodec.fit import FitConfig

    return FitConfig(tile=TILE)


@pytest.mark.parametrize("layout", ["tiled", "striped", "planar", "pyramid"])
def test_tiff_source_reads_windows_lazily_and_exactly(tmp_path, layout):
    a = _image()
    p = tmp_path / f"{layout}.tif"
    if layout == "tiled":
        tifffile.imwrite(p, a, tile=(32, 32), photometric="rgb", compression="zlib")
    elif layout == "striped":
        tifffile.imwrite(p, a, rowsperstrip=7, photometric="rgb")
    elif layout == "planar":
        tifffile.imwrite(p, np.moveaxis(a, 2, 0), photometric="rgb", planarconfig="separate")
    else:
        with tifffile.TiffWriter(p) as tw:
            tw.write(a, photometric="rgb", tile=(32, 32), subifds=1)
            tw.write(a[::2, ::2], photometric="rgb", tile=(32, 32), subfiletype=1)
    src = open_source(p)
    assert isinstance(src, TiffSource) and (src.width, src.height, src.channels) == (W, H, 3)
    np.testing.assert_array_equal(src.read(13, 7, 101, 90), a[7:90, 13:101])
    np.testing.assert_array_equal(ligcodec.source.read_image(p), a)


def test_streamed_tiff_encode_is_byte_identical_to_in_memory(tmp_path):
    """SCENARIO: the same pixels encoded from an array and from a tiled TIFF read lazily.
    EXPECTED RESULT: identical files (the source never changes the bytes)."""
    a = _image()
    p = tmp_path / "in.tif"
    tifffile.imwrite(p, a, tile=(32, 32), photometric="rgb")
    r1 = encode(a, tmp_path / "a.lig", config=_config(), workers=1, **FAST)
    r2 = encode(p, tmp_path / "b.lig", config=_config(), workers=2, **FAST)
    assert (tmp_path / "a.lig").read_bytes() == (tmp_path / "b.lig").read_bytes()
    assert r1.psnr == r2.psnr > 20
    assert not journal_path(tmp_path / "b.lig").exists()  # removed once the file is complete


def test_a_one_tile_encode_spawns_no_workers(tmp_path, monkeypatch):
    """SCENARIO: an image that is one tile, encoded with the default workers (one per core).
    EXPECTED RESULT: no pool is started (a spawned worker costs seconds of imports, and the lone
    tile takes every core in this process instead); the same bytes as one worker."""
    from ligcodec import runner

    def no_pool(workers):
        raise AssertionError(f"a pool of {workers} workers was started for one tile")

    a = _image()
    r1 = encode(a, tmp_path / "a.lig", workers=1, **FAST)
    monkeypatch.setattr(runner, "_new_pool", no_pool)
    r2 = encode(a, tmp_path / "b.lig", workers=0, **FAST)
    assert (tmp_path / "a.lig").read_bytes() == (tmp_path / "b.lig").read_bytes() and r1.psnr == r2.psnr


@pytest.mark.parametrize("stop_at", [2, 8])
def test_interrupted_encode_resumes_from_journal(tmp_path, stop_at):
    """SCENARIO: an encode is interrupted after 2 of 6 fits (pass 1), or after all fits and 2 of
    6 codings (pass 2), and its journal loses its last bytes (a torn write); the same encode is
    run again with resume.
    EXPECTED RESULT: no .lig after the interruption; the rerun does only the missing work and
    writes the same bytes as an uninterrupted encode."""
    a = _image()
    full = tmp_path / "full.lig"
    encode(a, full, config=_config(), workers=1, **FAST)
    out = tmp_path / "out.lig"

    def stop(done, total):  # progress counts both passes: 6 fits, then 6 codings
        if done == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode(a, out, config=_config(), workers=1, progress=stop, **FAST)
    assert not out.exists() and journal_path(out).exists()
    j = journal_path(out)
    j.write_bytes(j.read_bytes() + b"\x07" * 11)  # a torn third record
    seen = []
    encode(a, out, config=_config(), workers=1, resume=True, progress=lambda d, t: seen.append(d), **FAST)
    assert seen == list(range(stop_at, 13))  # resumed where it stopped, then the rest
    assert out.read_bytes() == full.read_bytes()
    assert not j.exists()


@pytest.mark.parametrize("stop_at", [2, 8])
def test_resume_refuses_an_input_changed_behind_its_key(tmp_path, stop_at):
    """SCENARIO: an encode of a TIFF is interrupted in pass 1 (2 tiles fitted) or pass 2 (2 tiles
    coded); the TIFF is then rewritten with other pixels but the same size and modification time
    (what `cp -p`, `rsync -t` or a coarse network clock can do), so the journal's key matches.
    EXPECTED RESULT: the resumed encode notices from the tiles' pixel digests and refuses, naming a
    tile, instead of mixing old and new tiles; no .lig is written."""
    import os

    src = tmp_path / "in.tif"
    a = _image()
    tifffile.imwrite(src, a, tile=(16, 16), photometric="rgb")
    st = os.stat(src)
    out = tmp_path / "out.lig"

    def stop(done, total):
        if done == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode(src, out, config=_config(), workers=1, progress=stop, **FAST)
    b = a.copy()
    b[: H // 2] = 255 - b[: H // 2]  # other pixels in the top tiles, the same file size
    tifffile.imwrite(src, b, tile=(16, 16), photometric="rgb")
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(src).st_size == st.st_size
    with pytest.raises(LigInputError, match="input changed.*tile"):
        encode(src, out, config=_config(), workers=1, resume=True, **FAST)
    assert not out.exists()


def test_journal_of_other_settings_is_refused_not_discarded(tmp_path):
    """SCENARIO: a journal left by an encode with another seed, then a resumed encode with this
    seed. EXPECTED RESULT: a clear refusal that keeps the journal (it may hold hours of tiles);
    with resume=False the journal is discarded and the output equals a fresh encode."""
    a = _image()
    out = tmp_path / "out.lig"
    with pytest.raises(KeyboardInterrupt):
        encode(a, out, config=_config(), workers=1, seed=5,
               progress=lambda d, t: (_ for _ in ()).throw(KeyboardInterrupt) if d == 3 else None, **FAST)
    j = journal_path(out)
    kept = j.read_bytes()
    with pytest.raises(LigInputError, match="different encode"):
        encode(a, out, config=_config(), workers=1, resume=True, **FAST)
    assert j.read_bytes() == kept and not out.exists()
    seen = []
    encode(a, out, config=_config(), workers=1, resume=False, progress=lambda d, t: seen.append(d), **FAST)
    assert seen[:2] == [0, 1]
    encode(a, tmp_path / "ref.lig", config=_config(), workers=1, **FAST)
    assert out.read_bytes() == (tmp_path / "ref.lig").read_bytes()
    # An empty journal (torn while its first record was written) holds nothing: started over silently.
    j.write_bytes(b"")
    encode(a, out, config=_config(), workers=1, resume=True, **FAST)
    assert out.read_bytes() == (tmp_path / "ref.lig").read_bytes()


def test_dask_local_cluster_gives_identical_bytes(tmp_path):
    """SCENARIO: tiles run on a real dask.distributed LocalCluster of 2 worker processes reading
    the TIFF themselves. EXPECTED RESULT: byte-identical to the local encode."""
    distributed = pytest.importorskip("distributed")
    a = _image()
    p = tmp_path / "in.tif"
    tifffile.imwrite(p, a, tile=(32, 32), photometric="rgb")
    encode(p, tmp_path / "local.lig", config=_config(), workers=1, **FAST)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        encode(p, tmp_path / "dask.lig", config=_config(), scheduler=cluster.scheduler_address, **FAST)
    assert (tmp_path / "dask.lig").read_bytes() == (tmp_path / "local.lig").read_bytes()


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_decode_to_tiled_tiff_matches_read(tmp_path, channels):
    a = _image(channels, np.uint16)
    lig = tmp_path / "x.lig"
    encode(a, lig, config=_config(), workers=1, **FAST)
    out = tmp_path / "x.tif"
    assert main(["decode", str(lig), "--scale", "0.75", "-o", str(out)]) == 0
    with tifffile.TiffFile(out) as tf:
        assert tf.pages[0].is_tiled
    got = ligcodec.source.read_image(out)
    with ligcodec.open(lig) as img:
        np.testing.assert_array_equal(got, img.read(0.75))
        assert got.dtype == np.uint16


def test_bad_tiffs_give_clear_errors(tmp_path):
    """SCENARIO: a corrupt TIFF, a float TIFF, a stack of 3 pages, an empty file.
    EXPECTED RESULT: LigError naming the file, no output and no journal left behind."""
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\xff" * 40)
    (tmp_path / "empty.tif").write_bytes(b"")
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((8, 8), np.float32))
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 8, 8, 5), np.uint8))
    for name in ("bad.tif", "empty.tif", "float.tif", "stack.tif"):
        out = tmp_path / "o.lig"
        with pytest.raises(LigError) as e:
            encode(tmp_path / name, out, **FAST)
        assert name in str(e.value)
        assert not out.exists() and not journal_path(out).exists()
    # Via the CLI: one line, exit 2.
    assert main(["encode", str(bad), str(tmp_path / "o.lig"), "-q"]) == 2


def test_tiff_channel_layouts_and_palettes(tmp_path):
    """SCENARIO: an OME-style planar CYX TIFF of 3 channels, a 5-channel one, and a palette
    (colour-mapped) TIFF. EXPECTED RESULT: CYX encodes as 3 channels in the right order; 5
    channels and a palette are refused with what to do, not encoded as something else."""
    a = _image()
    cyx = tmp_path / "cyx.ome.tif"
    tifffile.imwrite(cyx, np.moveaxis(a, 2, 0), metadata={"axes": "CYX"}, ome=True)
    with tifffile.TiffFile(cyx) as tf:
        assert tf.series[0].axes == "CYX"
    out = tmp_path / "cyx.lig"
    encode(cyx, out, config=_config(), workers=1, **FAST)
    ref = tmp_path / "ref.lig"
    encode(a, ref, config=_config(), workers=1, **FAST)
    assert np.array_equal(ligcodec.decode(out), ligcodec.decode(ref))
    five = tmp_path / "five.ome.tif"
    tifffile.imwrite(five, np.zeros((5, 16, 16), np.uint8), metadata={"axes": "CYX"}, ome=True)
    with pytest.raises(LigInputError, match="5 channels.*split"):
        encode(five, tmp_path / "f.lig", **FAST)
    pal = tmp_path / "pal.tif"
    idx = (np.arange(256, dtype=np.uint8).reshape(16, 16) % 16)
    cmap = (np.arange(3 * 256).reshape(3, 256) * 97 % 65536).astype(np.uint16)
    tifffile.imwrite(pal, idx, photometric="palette", colormap=cmap)
    with pytest.raises(LigInputError, match="palette.*RGB"):
        encode(pal, tmp_path / "p.lig", **FAST)


def test_tiff_with_damaged_tile_fails_cleanly(tmp_path):
    """SCENARIO: a tiled TIFF whose compressed tile bytes are overwritten with garbage.
    EXPECTED RESULT: a LigFormatError naming the pixels, and no .lig file."""
    a = _image()
    p = tmp_path / "in.tif"
    tifffile.imwrite(p, a, tile=(32, 32), photometric="rgb", compression="zlib")
    with tifffile.TiffFile(p) as tf:
        off = tf.pages[0].dataoffsets[3]
    data = bytearray(p.read_bytes())
    data[off : off + 64] = b"\x00\xff" * 32
    p.write_bytes(bytes(data))
    with pytest.raises(LigFormatError, match="damaged.*pixels"):
        encode(p, tmp_path / "o.lig", config=_config(), workers=1, **FAST)
    assert not (tmp_path / "o.lig").exists()


def test_size_limits_and_bad_arguments():
    class Huge(ArraySource):
        def __init__(self):
            self.width = self.height = 1 << 19
            self.channels, self.dtype = 3, np.dtype(np.uint8)

    with pytest.raises(LigSizeError, match="limit"):
        Huge().check()
    with pytest.raises(LigInputError, match="empty"):
        open_source(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(LigInputError, match="channels"):
        open_source(np.zeros((4, 5, 6), np.uint8))
    with pytest.raises(LigInputError):
        encode(_image(), "x.lig", scheduler=None, effort=0)


# ------------------------------------------------------------------ rate control (issue 4)
def test_quality_sets_density_monotonically():
    from ligcodec.codec.ratecontrol import DEFAULT_DENSITY, quality_density

    ds = [quality_density(q) for q in (1, 25, 50, 75, 100)]
    assert ds == sorted(ds) and quality_density(50) == DEFAULT_DENSITY
    assert quality_density(62.5) == pytest.approx(2 * DEFAULT_DENSITY)
    for bad in (0, 101, "x", float("nan")):
        with pytest.raises(LigInputError):
            quality_density(bad)


def test_psnr_search_keeps_smallest_file_reaching_target(tmp_path):
    """SCENARIO: a stand-in encoder whose PSNR grows 3 dB per doubling of the density and whose
    size grows with it. EXPECTED RESULT: the search reaches the target within the tolerance in
    a few passes, keeps the smallest passing file at the requested path, deletes the others."""
    from types import SimpleNamespace

    from ligcodec.codec.ratecontrol import encode_for_psnr

    calls = []

    def fake(src, path, density, **kw):
        calls.append(density)
        path.write_bytes(b"x" * int(density * 1e5))
        return SimpleNamespace(psnr=30 + 3 * np.log2(density / 0.03), bytes=int(density * 1e5), path=str(path))

    out = tmp_path / "o.lig"
    r = encode_for_psnr(_image(), out, 36.5, encode=fake, tolerance=0.2)
    assert 36.5 <= r.psnr <= 36.7 and r.passes == len(calls) <= 4
    assert out.stat().st_size == r.bytes and sorted(p.name for p in tmp_path.iterdir()) == ["o.lig"]
    with pytest.raises(LigInputError):
        encode_for_psnr(_image(), out, 30, encode=fake, bpp=1)


def test_psnr_target_real_encode(tmp_path):
    a = _image()
    r = encode(a, tmp_path / "p.lig", psnr=30, config=_config(), workers=1, steps=15)
    assert r.psnr >= 30 and 1 <= r.passes <= 4
    assert ligcodec.open(tmp_path / "p.lig").shape == a.shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.lig"]
    q = encode(a, tmp_path / "q.lig", quality=80, config=_config(), workers=1, steps=15)
    q2 = encode(a, tmp_path / "q2.lig", quality=20, config=_config(), workers=1, steps=15)
    assert q.gaussians > q2.gaussians and q.psnr > q2.psnr


def test_oversized_png_gets_a_size_error_not_a_bomb_traceback(tmp_path, monkeypatch):
    """SCENARIO: a PNG larger than the whole-image decode limit (lowered for the test).
    EXPECTED RESULT: LigSizeError that names the file and suggests a tiled TIFF."""
    from PIL import Image

    import ligcodec.limits

    p = tmp_path / "big.png"
    Image.fromarray(_image()).save(p)
    monkeypatch.setattr(ligcodec.limits, "MAX_IN_MEMORY_PIXELS", 1000)
    with pytest.raises(LigSizeError, match="tiled TIFF"):
        encode(p, tmp_path / "o.lig", **FAST)
    assert not (tmp_path / "o.lig").exists()


def test_16bit_colour_png_keeps_all_bits(tmp_path):
    """SCENARIO: a 16-bit RGB PNG (Pillow alone would read it as 8-bit). EXPECTED RESULT: read
    as uint16 with every bit, and written back as a 16-bit PNG."""
    import imagecodecs

    from ligcodec.io import write_image
    from ligcodec.source import read_image

    a = _image(3, np.uint16)
    p = tmp_path / "in.png"
    p.write_bytes(imagecodecs.png_encode(a))
    got = read_image(p)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, a)
    write_image(tmp_path / "out.png", a)
    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), a)


def test_subsample_is_read_once_per_source_and_never_shipped(tmp_path):
    """SCENARIO: the count model and the colour choice of several encode passes ask one TIFF
    source for the same subsample; the source is then pickled, as it is for a worker's task.
    EXPECTED RESULT: the file is read for it once; later calls return the same read-only array;
    the pickled source carries no subsample (and still reads the same pixels)."""
    import pickle

    from ligcodec.source import subsample

    img = (np.arange(300 * 200 * 3) % 251).astype(np.uint8).reshape(300, 200, 3)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, img, tile=(64, 64))
    src = open_source(path)
    calls = []
    read = src.read
    src.read = lambda *a: calls.append(a) or read(*a)
    first = subsample(src, 2)
    n = len(calls)
    assert n > 0 and subsample(src, 2) is first and len(calls) == n
    assert not first.flags.writeable
    np.testing.assert_array_equal(first, img[::2, ::2] / np.float32(255))
    del src.read
    back = pickle.loads(pickle.dumps(src))
    assert "_subsamples" not in back.__dict__
    np.testing.assert_array_equal(back.read(0, 0, 10, 10), img[:10, :10])
