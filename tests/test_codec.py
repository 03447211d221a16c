"""The .lig codec: round trips, determinism, byte-level reading, and corrupt files."""

import math
import re
import struct
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ligcodec
from ligcodec import LigError, LigFormatError, LigIndexError, LigInputError
from ligcodec import container
from ligcodec.container import Header
from ligcodec.fit.optimise import psnr
from tests.test_fit import smooth_image

FAST = dict(steps=30, lsq_iters=10, workers=1)
ROOT = Path(__file__).resolve().parents[1]


def _encode(tmp_path, img, name="x.lig", **kw):
    path = tmp_path / name
    r = ligcodec.encode(img, path, **{**dict(gaussians=150), **FAST, **kw})
    return path, r


@pytest.fixture(scope="module")
def lig_file(tmp_path_factory):
    """A small two-level, multi-tile RGB file shared by the read-only tests."""
    tmp = tmp_path_factory.mktemp("lig")
    img = (smooth_image(40, 70) * 255).astype(np.uint8)
    path = tmp / "small.lig"
    ligcodec.encode(img, path, gaussians=200, config=ligcodec.fit.FitConfig(tile=32), **FAST)
    return path, img


@pytest.mark.parametrize("channels,dtype", [(1, np.uint8), (3, np.uint8), (4, np.uint8), (3, np.uint16), (1, np.uint16)])
def test_round_trip(tmp_path, channels, dtype):
    peak = np.iinfo(dtype).max
    img = (smooth_image(30, 45, channels) * peak).astype(dtype)
    path, r = _encode(tmp_path, img[:, :, 0] if channels == 1 else img)
    out = ligcodec.decode(path)
    assert out.dtype == dtype and out.shape == (30, 45, channels)
    p = psnr(out / peak, img / peak)
    # The encoder's own estimate (float samples) matches the decoder (rounded to the bit depth)
    # unless the quality is so high that the rounding itself dominates.
    assert p > 25 and (abs(p - r.psnr) < 0.5 or min(p, r.psnr) > 40)
    assert r.bytes == path.stat().st_size


def test_same_input_options_seed_give_identical_bytes(tmp_path, lig_file):
    _, img = lig_file
    kw = dict(gaussians=200, config=ligcodec.fit.FitConfig(tile=32), **FAST)
    a = tmp_path / "a.lig"
    b = tmp_path / "b.lig"
    ligcodec.encode(img, a, **kw)
    ligcodec.encode(img, b, **{**kw, "workers": 2})  # a process pool gives the same bytes
    assert a.read_bytes() == b.read_bytes() == lig_file[0].read_bytes()
    c = tmp_path / "c.lig"
    ligcodec.encode(img, c, seed=1, **kw)
    assert c.read_bytes() != a.read_bytes()
    assert np.array_equal(ligcodec.decode(a), ligcodec.decode(a))


def test_region_and_scale_reads(lig_file):
    path, img = lig_file
    with ligcodec.open(path) as im:
        assert im.shape == (40, 70, 3) and im.dimensions == (70, 40) and im.dtype == np.uint8
        full = im.read()
        assert np.array_equal(im.read(region=(10, 5, 30, 20)), full[5:25, 10:40])
        assert im.read(scale=0.5).shape == (20, 35, 3)
        assert np.array_equal(np.asarray(im), full)
        padded = im.read_region((60, 30), 0, (20, 20))
        assert padded.shape == (20, 20, 3)
        assert np.array_equal(padded[:10, :10], full[30:40, 60:70]) and not padded[10:, :].any()
        assert im.level_count == 1 and im.get_best_level_for_downsample(8) == 0
        with pytest.raises(LigInputError, match="read\\(scale"):
            im.read_region((0, 0), 1, (8, 8))


def test_numpy_style_indexing(lig_file):
    path, _ = lig_file
    with ligcodec.open(path) as im:
        full = im.read()
        assert np.array_equal(im[5:25, 10:40], full[5:25, 10:40])
        assert np.array_equal(im[-10:, :7], full[-10:, :7])
        assert np.array_equal(im[3, 4], full[3, 4]) and np.array_equal(im[:, 9, 1], full[:, 9, 1])
        quarter = im[::4, ::4]
        assert quarter.shape == full[::4, ::4].shape == (10, 18, 3)
        assert np.array_equal(quarter, im.read(scale=0.25))  # rendered at 1/4, not subsampled
        assert np.array_equal(im[8:24:2, 10:30:2], im.read(scale=0.5, region=(5, 4, 10, 8)))
        assert np.array_equal(im[..., 1], full[..., 1]) and np.array_equal(im[2:9, ..., 1:], full[2:9, :, 1:])
        assert (len(im), im.ndim, im.size) == (40, 3, full.size)
        for bad in [(slice(None, None, 2), slice(None, None, 4)), (slice(None, None, -1),), ([1, 2],),
                    (slice(1, None, 2), slice(None, None, 2))]:  # a start off the step's grid
            with pytest.raises(LigError):
                im[bad]
        # Out of range: an IndexError, as numpy raises, that is also a LigError.
        for bad in [(50,), (slice(None), slice(None), 3), (0, ..., ...), (0, 0, 0, 0)]:
            with pytest.raises(LigIndexError):
                im[bad]
    with pytest.raises(LigInputError, match="closed"):
        im.read()


def test_concurrent_reads_from_threads(lig_file):
    from concurrent.futures import ThreadPoolExecutor

    path, _ = lig_file
    regions = [(x, y, 20, 15) for x in (0, 17, 40) for y in (0, 11, 25)] * 3
    with ligcodec.open(path, cache_tiles=2) as im:  # a tiny cache forces decodes to race
        expected = [im.read(region=r) for r in regions]
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda r: im.read(region=r), regions))
    assert all(np.array_equal(a, b) for a, b in zip(expected, got))


def test_preview_reads_only_level0_bytes(lig_file):
    path, _ = lig_file
    with ligcodec.open(path) as im:
        before = im.bytes_read
        im.read(scale=0.25, levels=[0])
        level0_end = im._reader.entry(1, 0).offset
        assert im.bytes_read - before <= level0_end
        assert im.bytes_read <= level0_end
        im.read(scale=0.25)
        assert im.bytes_read > level0_end


@pytest.mark.parametrize("levels", [[], [2], [-1], [0, 0], ["x"], 3])
def test_bad_levels_are_rejected(lig_file, levels):
    """SCENARIO: a read asking for no level, a level the file lacks, a repeated one or junk.
    EXPECTED RESULT: a LigInputError saying which levels exist, no traceback from inside."""
    path, _ = lig_file
    with ligcodec.open(path) as im, pytest.raises(ligcodec.LigInputError, match="levels"):
        im.read(levels=levels)


def test_failed_encode_leaves_no_file(tmp_path):
    target = tmp_path / "out.lig"
    with pytest.raises(LigError):
        ligcodec.encode(np.zeros((4, 4, 3), np.float32) * np.nan, target, **FAST)
    with pytest.raises(LigError):
        ligcodec.encode(smooth_image(8, 8), target, gaussians=10, bpp=1.0, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_spec_constants_match_code():
    text = (ROOT / "spec" / "lig-format.md").read_text()
    block = re.search(r"```\n(MAGIC = .*?)```", text, re.S).group(1)
    consts = dict(line.split(" = ") for line in block.strip().splitlines())
    assert bytes.fromhex(consts["MAGIC"]) == container.MAGIC
    for name in ("VERSION_MAJOR", "VERSION_MINOR", "OLDEST_MAJOR", "PREFIX_SIZE", "INDEX_ENTRY_SIZE", "MAX_HEADER_SIZE",
                 "MAX_GAUSSIANS_PER_CHUNK", "MIN_CHUNK_BYTES_PER_GAUSSIAN", "MAX_LOG_SCALE", "MAX_AMPLITUDE",
                 "MAX_TILE_WORK", "MAX_DEBLOCK_WIDTH"):
        assert int(consts[name]) == getattr(container, name), name
    from ligcodec.codec import tile

    for name in ("MAX_SYMBOL", "TABLE_MAX", "TABLE_BASE", "TABLE_PER_GAUSSIAN", "LEGACY_TABLE_PER_BYTE", "MAX_GAP_SHIFT",
                 "MAX_PARTS"):
        assert int(consts[name]) == getattr(tile, name), name


def _spec_geometric(lo, hi, loc, k):
    """The geometric table's weights written from spec section 4 alone, in plain Python floats."""
    c = 1 / math.sqrt(math.sqrt(math.sqrt(2.0)))
    cj = [1.0]
    for _ in range(7):
        cj.append(cj[-1] * c)
    r = 1 - cj[k % 8] * 2.0 ** -(k // 8)
    p = [1.0]
    for _ in range(max(loc - lo, hi - loc)):
        p.append(p[-1] * r)
    p = [0.0 if v < 2.0**-64 else v for v in p]
    return [p[abs(lo + i - loc)] for i in range(hi - lo + 1)]


@pytest.mark.parametrize("lo,hi,loc,k", [(-3, 5, 0, 0), (-3, 5, 0, 1), (0, 40, 3, 17), (-500, 2000, 7, 60),
                                         (-10, 10, -10, 255), (-7000, 100, 0, 9)])
def test_geometric_table_follows_spec(lo, hi, loc, k):
    """The entropy model's weights equal, bit for bit, a plain-Python reading of the spec (so any
    reader that follows it builds the same fixed-point table; a one-ulp difference would make
    the ANS decoder read garbage)."""
    from ligcodec.codec.tile import geometric_probabilities

    ours = geometric_probabilities(lo, hi, loc, k)
    assert ours.tobytes() == np.array(_spec_geometric(lo, hi, loc, k), np.float64).tobytes()


@pytest.mark.parametrize("n,channels", [(1, 3), (7, 1), (300, 3), (50, 4)])
def test_chunk_round_trip(n, channels):
    """Stream tables of varints: negative, constant, wide and single-valued streams survive, and
    so does a stream wider than TABLE_MAX (coded uniformly) reaching +-MAX_SYMBOL."""
    from ligcodec.codec.tile import MAX_SYMBOL, decode_chunk
    from ligcodec.codec.tile_writer import encode_chunk

    rng = np.random.default_rng(n)
    qx = rng.integers(-40, 2100, n)
    qy = np.sort(rng.integers(-20, 2100, n))
    qc = np.stack([rng.integers(-60, 90, n), np.zeros(n, np.int64) + 5, rng.laplace(0, 300, n).astype(np.int64)], 1)
    qk = rng.laplace(0, 20, (n, channels)).astype(np.int64)
    qk[:, 0] += 1 << 20
    if n > 1:
        qk[0, -1], qk[-1, -1] = -MAX_SYMBOL, MAX_SYMBOL
    order = np.lexsort((qx, qy))
    qx, qy, qc, qk = qx[order], qy[order], qc[order], qk[order]
    data = encode_chunk(qx, qy, qc, qk)
    out = decode_chunk(data, n, channels, "t")
    for a, b in zip(out, (qx, qy, qc, qk)):
        assert np.array_equal(a, b)


def test_chunk_table_rejections():
    """SCENARIO: one part (a 3.x chunk) cut short, padded, or behind a long or out-of-range varint.
    EXPECTED RESULT: LigFormatError saying which."""
    from ligcodec.codec.tile import LAYOUT_GAPS, decode_chunk
    from ligcodec.codec.tile_writer import encode_part

    qk = np.arange(30).reshape(10, 3)
    data = encode_part(np.arange(10), np.arange(10), qk, qk)
    with pytest.raises(LigFormatError, match="too short"):
        decode_chunk(data[:5], 10, 3, "t", LAYOUT_GAPS)
    with pytest.raises(LigFormatError, match="whole 32-bit words"):
        decode_chunk(data + b"\0", 10, 3, "t", LAYOUT_GAPS)
    with pytest.raises(LigFormatError, match="varint"):
        decode_chunk(b"\xff" * 8 + data, 10, 3, "t", LAYOUT_GAPS)
    with pytest.raises(LigFormatError, match="range"):
        decode_chunk(b"\x80\x80\x80\x7f" + data[1:], 10, 3, "t", LAYOUT_GAPS)


def _sorted_symbols(n, seed=0):
    """``(qx, qy, qc, qk)`` of ``n`` Gaussians sorted as the coder takes them."""
    rng = np.random.default_rng(seed)
    qx, qy = rng.integers(0, 700, n), rng.integers(0, 500, n)
    order = np.lexsort((qx, qy))
    qc = rng.laplace(0, 30, (n, 3)).astype(np.int64)
    return qx[order], qy[order], qc, rng.laplace(0, 40, (n, 3)).astype(np.int64)


@pytest.mark.parametrize("n", [1, 3, 2047, 2048, 5001])
def test_parts_round_trip(n):
    """A format-4 chunk is cut into the parts ligcodec writes (1 or 2 below SPLIT_GAUSSIANS, 2 or
    4 from it: whichever is fewer bytes), and decodes to the same symbols alone and in the batch
    kernel."""
    from ligcodec.codec.tile import chunk_parts, decode_chunk
    from ligcodec.codec.tile_writer import SPLIT_GAUSSIANS, encode_chunk, encode_part

    qx, qy, qc, qk = _sorted_symbols(n, n)
    data = encode_chunk(qx, qy, qc, qk)
    parts = chunk_parts(data, n, "t")
    assert len(parts) in ((2, 4) if n >= SPLIT_GAUSSIANS else (1, 2))
    assert sum(m for _, m in parts) == n
    assert len(data) <= 1 + len(encode_part(qx, qy, qc, qk)) or n >= SPLIT_GAUSSIANS
    for a, b in zip(decode_chunk(data, n, 3, "t"), (qx, qy, qc, qk)):
        assert np.array_equal(a, b)
    means, _, _, first, status, _ = _batch([data, data], [n, n], 3, chol_step=0.01)
    assert list(status) == [0, 0]
    assert np.array_equal(means[first[1]:, 0], qx + 0.5) and np.array_equal(means[:first[1], 1], qy + 0.5)


def test_part_problem_offsets_are_the_chunks():
    """SCENARIO: a two-part chunk whose second part's stream table starts with a varint of more
    than 4 bytes. EXPECTED RESULT: the message gives the varint's offset in the chunk, alone and in
    the batch kernel."""
    from ligcodec.codec.tile import chunk_problem, decode_chunk
    from ligcodec.codec.tile_writer import encode_part

    qx, qy, qc, qk = _sorted_symbols(10)
    first = encode_part(qx[:5], qy[:5], qc[:5], qk[:5])
    bad = bytes([2, len(first)]) + first + b"\xff" * 8 + encode_part(qx[5:], qy[5:], qc[5:], qk[5:])
    message = f"varint at chunk byte {2 + len(first)} is longer than 4 bytes"
    with pytest.raises(LigFormatError, match=message):
        decode_chunk(bad, 10, 3, "t")
    *_, status, detail = _batch([bad], [10], 3, chol_step=0.01)
    assert status[0] != 0 and chunk_problem(detail[0], len(bad)) == message


def test_attribute_bits_use_the_parts_own_grid():
    """SCENARIO: a part whose positions grid is narrower than the writer's (``W`` 60 -> 20: the
    same coded gaps, other decoded positions; its first Gaussian then decodes two rows down), read
    by ``info --verbose``'s bit count.
    EXPECTED RESULT: the same bits per attribute as the writer's part (the same symbols under the
    same models). The count once recomputed the gaps on a grid taken from the decoded positions,
    which for such a part indexed its tables out of range (found by bench/fuzz.py)."""
    from ligcodec.codec.tile import LAYOUT_GAPS, attribute_bits
    from ligcodec.codec.tile_writer import encode_part

    rng = np.random.default_rng(3)
    qx = np.r_[50, 0, 59, rng.integers(0, 60, 197)]
    qy = np.r_[0, 1, 1, rng.integers(1, 40, 197)]
    order = np.lexsort((qx, qy))
    _, _, qc, qk = _sorted_symbols(200)
    part = encode_part(qx[order], qy[order], qc, qk)
    assert part[:2] == bytes([0, 59])  # zz(x0) = 0, W - 1 = 59: one-byte varints
    forged = part[:1] + bytes([19]) + part[2:]
    want = attribute_bits(part, 200, 3, "t", LAYOUT_GAPS)
    got = attribute_bits(forged, 200, 3, "t", LAYOUT_GAPS)
    assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-9 for k in want)


def test_chunk_must_be_sorted_across_its_parts():
    """SCENARIO: a chunk to encode whose two halves are each sorted by (qy, qx) but not the whole.
    EXPECTED RESULT: ValueError (strict writing: the spec stores the whole chunk sorted)."""
    from ligcodec.codec.tile_writer import encode_chunk

    qx, qy, qc, qk = _sorted_symbols(4096)
    swap = np.r_[2048:4096, 0:2048]
    with pytest.raises(ValueError, match="sorted"):
        encode_chunk(qx[swap], qy[swap], qc, qk)


@pytest.mark.parametrize("head,n,message", [
    (b"\x00", 10, "0 parts for 10 Gaussians"),
    (b"\x11", 40, "17 parts for 40 Gaussians"),
    (b"\x0b", 10, "11 parts for 10 Gaussians"),
    (b"\x02\xff\x01", 10, "lengths add up to 255 bytes"),
    (b"\x02\xff\xff\xff\xff\x01", 10, "varint at chunk byte 1 is longer"),
    (b"\x02", 10, "too short"),
])
def test_parts_rejections(head, n, message):
    """SCENARIO: a format-4 chunk whose part count is 0, above MAX_PARTS or above its Gaussians,
    whose part lengths run past its end, or whose length varint is too long or cut off.
    EXPECTED RESULT: LigFormatError saying which, alone and in the batch kernel (a status, the
    same words), and the chunk's other neighbours in the batch still decode."""
    from ligcodec.codec.batch import OK
    from ligcodec.codec.tile import chunk_problem, decode_chunk
    from ligcodec.codec.tile_writer import encode_part

    qx, qy, qc, qk = _sorted_symbols(n)
    bad = head + encode_part(qx, qy, qc, qk)[:0 if head == b"\x02" else None]
    with pytest.raises(LigFormatError, match=message):
        decode_chunk(bad, n, 3, "t")
    good = b"\x01" + encode_part(qx, qy, qc, qk)
    _, _, _, _, status, detail = _batch([good, bad, good], [n, n, n], 3, chol_step=0.01)
    assert status[0] == status[2] == OK and status[1] != OK
    assert message in chunk_problem(detail[1], len(bad))


def _batch(chunks, counts, channels, colour_step=1.0, ycocg=False, tile=256, chol_step=1.0, layout=None):
    """``decode_chunks`` on ``chunks`` (format 4 chunks unless ``layout`` says otherwise):
    ``(means, chol, colours, first, status, detail)``."""
    from ligcodec.codec.batch import decode_chunks
    from ligcodec.codec.colour import YCOCG_INVERSE
    from ligcodec.codec.tile import LAYOUT_PARTS

    lens = np.array([len(c) for c in chunks], np.int64)
    ends = np.cumsum(lens)
    first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n, k = int(first[-1]), len(chunks)
    means, chol, cols = np.empty((n, 2)), np.empty((n, 3)), np.empty((n, channels), np.float32)
    status = np.full(k, -1, np.int8)
    detail = np.full((k, 4), -1, np.int64)
    decode_chunks(np.frombuffer(b"".join(chunks), np.uint8), ends - lens, ends, np.asarray(counts, np.int64), first,
                  np.zeros((k, 2), np.int64), 1.0, np.full(3, chol_step), np.full((k, channels), colour_step),
                  np.asarray(YCOCG_INVERSE if ycocg else np.eye(3), np.float64), ycocg,
                  tile, LAYOUT_PARTS if layout is None else layout, means, chol, cols, status, detail)
    return means, chol, cols, first, status, detail


def test_batch_decoder_matches_chunk_decoder():
    """SCENARIO: chunks of different sizes (one empty, one with a uniform-coded wide stream)
    decoded together by the parallel batch kernel.
    EXPECTED RESULT: each chunk's rows hold exactly what the per-chunk decoder gives, dequantised
    with unit steps (positions q + 0.5, covariance indices as they are) and colour step 2^-8 (exact
    in float32 for every symbol, so the widest stream stays within the amplitude limit)."""
    from ligcodec.codec.tile import MAX_SYMBOL, decode_chunk
    from ligcodec.codec.tile_writer import encode_chunk

    rng = np.random.default_rng(5)
    chunks, counts, refs = [], [], []
    for n in (37, 0, 1, 300):
        qx, qy = rng.integers(-40, 300, n), rng.integers(-20, 300, n)
        order = np.lexsort((qx, qy))  # sorted by (qy, qx), as the codec stores them
        qx, qy = qx[order], qy[order]
        qc = np.stack([rng.integers(-20, 5, n), rng.integers(-5, 5, n), np.zeros(n, np.int64)], 1)
        qk = rng.laplace(0, 20, (n, 3)).astype(np.int64)
        if n > 1:
            qk[0, 2], qk[-1, 2] = -MAX_SYMBOL, MAX_SYMBOL
        data = encode_chunk(qx, qy, qc, qk)
        chunks.append(data)
        counts.append(n)
        refs.append(decode_chunk(data, n, 3, "t") if n else None)
    means, chol, cols, first, status, _ = _batch(chunks, counts, 3, colour_step=2.0**-8)
    assert (status == 0).all()
    for i, ref in enumerate(refs):
        if ref is None:
            continue
        a, b = first[i], first[i + 1]
        qx, qy, qc, qk = ref
        assert np.array_equal(means[a:b], np.stack([qx + 0.5, qy + 0.5], 1))
        # l22 index 0: exp(0) = 1, so the shear column is its index exactly.
        assert np.array_equal(chol[a:b], qc.astype(np.float64))
        assert np.array_equal(cols[a:b], (qk * 2.0**-8).astype(np.float32))


def test_batch_decoder_flags_bad_chunks():
    """SCENARIO: truncated, padded, over-long-varint and out-of-range chunks beside a good one.
    EXPECTED RESULT: the bad ones get a non-OK status (and a detail the reader words as its
    message); the good one decodes."""
    from ligcodec.codec.tile_writer import encode_chunk

    qk = np.arange(30).reshape(10, 3)
    data = encode_chunk(np.arange(10), np.arange(10), qk // 4, qk)
    bad = [data[:5], data + b"\0", b"\xff" * 8 + data, b"\x80\x80\x80\x7f" + data[1:], data[:-4] + b"\0\0\0\0"]
    *_, status, _ = _batch([data] + bad + [b"x"], [10] * (1 + len(bad)) + [0], 3)
    assert status[0] == 0 and (status[1:] != 0).all()


def test_batch_decoder_enforces_the_spec_limits():
    """SCENARIO: well-formed chunks whose dequantised Gaussians break one limit of spec section 4
    each: a log-scale of 44 (it overflowed float32 and crashed the renderer), an amplitude above
    MAX_AMPLITUDE, and 300 Gaussians each covering the whole tile (a drawing-work bomb).
    EXPECTED RESULT: BAD_GEOMETRY, BAD_AMPLITUDE and TOO_MUCH_WORK; the same chunks with the
    limits respected decode OK."""
    from ligcodec.codec import batch
    from ligcodec.codec.tile_writer import encode_chunk

    def chunk(n, l11, colour):
        qc = np.stack([np.full(n, l11), np.ones(n, np.int64), np.full(n, 2)], 1)
        return encode_chunk(np.arange(n), np.arange(n), qc, np.full((n, 3), colour))

    cases = [(chunk(1, 44, 1), 1), (chunk(1, 3, 70000), 1), (chunk(300, 12, 1), 300),
             (chunk(1, 19, 65536), 1), (chunk(60, 12, 1), 60)]
    *_, status, _ = _batch([c for c, _ in cases], [n for _, n in cases], 3)
    assert list(status) == [batch.BAD_GEOMETRY, batch.BAD_AMPLITUDE, batch.TOO_MUCH_WORK, batch.OK, batch.OK]


def test_file_reads_match_the_chunk_decoder(lig_file):
    """Every tile the lazy image decodes (batch kernel) equals the per-chunk decoder's symbols
    dequantised by spec section 5's formulas in numpy, followed by the numpy colour inverse; the
    covariance's exp is the one shared routine."""
    from ligcodec.codec import colour
    from ligcodec.codec.tile import decode_chunk, dequantise_chol

    path, _ = lig_file
    with ligcodec.open(path) as im:
        h, r = im.header, im._reader
        for lvl in range(h.levels):
            for t in range(h.n_tiles):
                e = r.entry(lvl, t)
                qx, qy, qc, qk = decode_chunk(r.chunk(lvl, t), e.count, h.channels, "t")
                x0, y0 = im._origins[t]
                m = np.stack([x0 + (qx + 0.5) * h.pos_step, y0 + (qy + 0.5) * h.pos_step], 1)
                k = qk * np.asarray(h.colour_step[lvl], np.float64)
                g = im.model.levels[lvl][t]
                assert np.array_equal(g.means, m) and np.array_equal(g.chol, dequantise_chol(qc, h.chol_step))
                assert np.array_equal(g.colours, colour.inverse(k, h.colour_transform))


def _wide_chunk():
    """2 Gaussians whose every stream but qx spans 60,001 values: uniform-coded in a 2.2 file, too
    many table values for its bytes in a 2.1 one."""
    from ligcodec.codec import tile, tile_writer

    qc = np.array([[-300, -30000, -300], [300, 30000, 300]])
    qk = np.array([[-30000] * 3, [30000] * 3])
    return tile_writer.encode_chunk(np.array([0, 1]), np.array([0, 1]), qc, qk, layout=tile.LAYOUT_24)


def _rejections():
    """``{detail code: (chunk, n, layout, what the message says)}``, one forged chunk for each way
    a chunk's table or words can be refused."""
    from ligcodec.codec import tile, tile_writer

    qk = np.arange(30).reshape(10, 3)
    data = tile_writer.encode_part(np.arange(10), np.arange(10), qk // 4, qk)
    words = len(data) - tile.stream_table(data, 10, 3, "t")[1]
    new, old, parts = tile.LAYOUT_GAPS, tile.LAYOUT_21, tile.LAYOUT_PARTS
    # Positions entry: x0 0, width 1, y0 0, then a shift byte; the high parts' entry after it.
    grid = b"\x00\x00\x00"
    # Width 1: the second Gaussian's raster index 2^24 passes the bound (2 MAX_SYMBOL + 1) x 1.
    gaps = tile_writer.encode_part(np.array([0, 0]), np.array([0, 1 << 24]), np.zeros((2, 3), np.int64),
                            np.zeros((2, 3), np.int64))
    return {
        tile.SHORT_TABLE: (data[:5], 10, new, "chunk of 5 bytes is too short for its stream table"),
        tile.LONG_VARINT: (b"\xff" * 8 + data, 10, new, "varint at chunk byte 0 is longer than 4 bytes"),
        tile.BAD_RANGE: (grid + b"\x00" + b"\x80\x80\x80\x7f\x00\x00\x00" + data, 10, new,
                         "stream 1 has an invalid range [133169152, 133169152]"),
        tile.BAD_GRID: (b"\x80\x80\x80\x7f" + data[1:], 10, new, "positions grid x0 133169152, width"),
        tile.BAD_SHIFT: (grid + b"\x15" + data[4:], 10, new, "position gap shift 21 is above 20"),
        tile.BAD_GAP: (gaps, 2, new, "Gaussian 1's position gap (high part"),
        tile.LEGACY_TABLES: (_wide_chunk(), 2, old, "its tables hold 241208 values for 70 bytes, above"),
        tile.RAGGED_WORDS: (data + b"\0", 10, new,
                            f": {words + 1} bytes after the stream table are not whole 32-bit words"),
        tile.ZERO_WORD: (data[:-4] + b"\0" * 4, 10, new, "the ANS words end in a zero word"),
        tile.BYTES_FOR_EMPTY: (b"xyz", 0, new, "3 bytes for 0 Gaussians"),
        tile.BAD_PART_COUNT: (b"\x00" + data, 10, parts, "0 parts for 10 Gaussians"),
        tile.PART_LENGTHS: (b"\x02\xff\x01" + data, 10, parts, "its parts' lengths add up to 255 bytes, past the"),
    }


def test_every_chunk_rejection_names_where_and_what():
    """SCENARIO: one forged chunk for each way the decoder refuses a chunk's stream table or
    words (too short, a varint over 4 bytes, a range outside +-MAX_SYMBOL, a positions grid out of
    range, a gap shift above MAX_GAP_SHIFT, a gap past the raster bound, a 2.1 chunk whose tables
    hold too many values, bytes that are not whole words, a last word of 0, bytes for 0
    Gaussians, a format-4 part count of 0, part lengths past the end), decoded alone (``decode_chunk``, ``stream_table``) and in the batch kernel.
    EXPECTED RESULT: LigFormatError, its message starting with the ``where`` given and saying what
    is wrong with the numbers; the batch kernel flags the same chunk with the same detail; every
    detail code is covered."""
    from ligcodec.codec import tile
    from ligcodec.codec.tile import chunk_problem, decode_chunk, stream_table

    where = "tile 7, level 1"
    cases = _rejections()
    assert set(cases) == {tile.SHORT_TABLE, tile.LONG_VARINT, tile.BAD_RANGE, tile.BAD_GRID, tile.BAD_SHIFT,
                          tile.BAD_GAP, tile.LEGACY_TABLES, tile.RAGGED_WORDS, tile.ZERO_WORD, tile.BYTES_FOR_EMPTY,
                          tile.BAD_PART_COUNT, tile.PART_LENGTHS}
    for code, (data, n, layout, what) in cases.items():
        with pytest.raises(LigFormatError) as e:
            decode_chunk(data, n, 3, where, layout)
        msg = str(e.value)
        assert msg.startswith(where + ": ") and what in msg and "\n" not in msg, (code, msg)
        if code in (tile.SHORT_TABLE, tile.LONG_VARINT, tile.BAD_RANGE, tile.BAD_GRID, tile.BAD_SHIFT):
            # the table itself is malformed
            with pytest.raises(LigFormatError, match=re.escape(f"{where}: {msg[len(where) + 2:]}")):
                stream_table(data, n, 3, where, layout)
        *_, status, detail = _batch([data], [n], 3, layout=layout)
        assert status[0] != 0 and detail[0, 0] == code, code
        assert f"{where}: {chunk_problem(detail[0], len(data))}" == msg


def test_chunk_decoder_and_batch_kernel_agree_on_mutants():
    """SCENARIO: a chunk and a few hundred mutants of it (bytes flipped, inserted, dropped, the
    chunk cut short or padded, other Gaussian counts), each decoded alone (``decode_chunk``) and
    in one batch (``decode_chunks``, unit steps).
    EXPECTED RESULT: both accept or both refuse each one; refused, with the same message;
    accepted, with the same symbols (the batch's rows are their dequantisation with unit steps).
    The stream table read alone ends where the ANS words begin."""
    from ligcodec.codec.tile import chunk_parts, chunk_problem, decode_chunk, stream_table
    from ligcodec.codec.tile_writer import encode_chunk

    rng = np.random.default_rng(16)
    n = 40
    qx, qy = rng.integers(0, 60, n), rng.integers(0, 60, n)
    order = np.lexsort((qx, qy))
    qx, qy = qx[order], qy[order]
    qc = np.stack([rng.integers(-20, 5, n), rng.integers(-5, 5, n), np.zeros(n, np.int64)], 1)
    qk = rng.laplace(0, 20, (n, 3)).astype(np.int64)
    data = encode_chunk(qx, qy, qc, qk)
    part, m = chunk_parts(data, n, "t")[0]
    params, pos = stream_table(part, m, 3, "t")
    assert len(params) == 8 and (len(part) - pos) % 4 == 0 and [p[0] for p in params][:2] == [1, 2]
    cases = [(data, n), (data, n - 1), (data, 0), (b"", 0), (b"", n)]
    for _ in range(300):
        b = bytearray(data)
        op = rng.integers(0, 4)
        i = int(rng.integers(0, len(b)))
        if op == 0:
            b[i] ^= 1 << int(rng.integers(0, 8))
        elif op == 1:
            b.insert(i, int(rng.integers(0, 256)))
        elif op == 2:
            del b[i]
        else:
            b = b[:i]
        cases.append((bytes(b), n))
    means, _, cols, first, status, detail = _batch([c for c, _ in cases], [m for _, m in cases], 3,
                                                      colour_step=2.0**-8, tile=1 << 20)
    outcomes = set()
    for c, (chunk, m) in enumerate(cases):
        try:
            q = decode_chunk(chunk, m, 3, "t")
        except LigFormatError as e:
            outcomes.add("refused")
            assert status[c] in (1, 2) and str(e) == f"t: {chunk_problem(detail[c], len(chunk))}", (c, str(e))
            continue
        if status[c] != 0:  # the symbols decode, but their Gaussians break a limit of spec section 4
            outcomes.add("limits")
            assert status[c] >= 3
            continue
        outcomes.add("decoded")
        a, z = first[c], first[c + 1]
        assert np.array_equal(means[a:z], np.stack([q[0] + 0.5, q[1] + 0.5], 1))
        assert np.array_equal(cols[a:z], (q[3] * 2.0**-8).astype(np.float32))
    assert outcomes >= {"refused", "decoded"}


# --------------------------------------------------------------------------- corrupt files
def _decode_all(path):
    with ligcodec.open(path) as im:
        return im.read()


def _corrupt(tmp_path, data, name="bad.lig"):
    p = tmp_path / name
    p.write_bytes(bytes(data))
    return p


def test_zero_length_file(tmp_path):
    """SCENARIO: an empty file. EXPECTED RESULT: LigFormatError saying it is empty."""
    with pytest.raises(LigFormatError, match="empty"):
        _decode_all(_corrupt(tmp_path, b""))


def test_wrong_magic(tmp_path, lig_file):
    """SCENARIO: a PNG renamed to .lig. EXPECTED RESULT: LigFormatError 'bad magic at byte 0'."""
    data = bytearray(lig_file[0].read_bytes())
    data[1:4] = b"PNG"
    with pytest.raises(LigFormatError, match="magic at byte 0"):
        _decode_all(_corrupt(tmp_path, data))


def test_future_version(tmp_path, lig_file):
    """SCENARIO: the next major version. EXPECTED RESULT: LigFormatError asking to upgrade, naming byte 8."""
    data = bytearray(lig_file[0].read_bytes())
    data[8] = container.VERSION_MAJOR + 1
    with pytest.raises(LigFormatError, match="byte 8.*newer"):
        _decode_all(_corrupt(tmp_path, data))


@pytest.mark.parametrize("major", [0, 1])
def test_past_version(tmp_path, lig_file, major):
    """SCENARIO: major version 0 (never valid) or 1 (the pre-release chunk layout, before the
    compact stream tables and table models). EXPECTED RESULT: LigFormatError naming byte 8."""
    data = bytearray(lig_file[0].read_bytes())
    data[8] = major
    with pytest.raises(LigFormatError, match="byte 8"):
        _decode_all(_corrupt(tmp_path, data))


def test_future_minor_version_is_read(tmp_path, lig_file):
    """SCENARIO: minor version 7 of the same major. EXPECTED RESULT: decoded like minor 0."""
    data = bytearray(lig_file[0].read_bytes())
    data[9] = 7
    assert np.array_equal(_decode_all(_corrupt(tmp_path, data)), _decode_all(lig_file[0]))


@pytest.mark.parametrize("cut", [5, 19, 25, 60, -1, -7])
def test_truncated(tmp_path, lig_file, cut):
    """SCENARIO: the file cut short at various points. EXPECTED RESULT: LigFormatError."""
    data = lig_file[0].read_bytes()
    with pytest.raises(LigFormatError):
        _decode_all(_corrupt(tmp_path, data[:cut]))


def test_bit_flips_name_the_section(tmp_path, lig_file):
    """SCENARIO: one flipped bit in the header, the index, a chunk.
    EXPECTED RESULT: LigFormatError naming header / index / the tile and level."""
    data = lig_file[0].read_bytes()
    hsize = struct.unpack_from("<I", data, 12)[0]
    index_at = 20 + hsize
    with ligcodec.open(lig_file[0]) as im:
        e = im._reader.entry(1, 2)
    for pos, pattern in [(25, "header"), (index_at + 10, "index"), (e.offset + e.length // 2, "tile 2, level 1")]:
        bad = bytearray(data)
        bad[pos] ^= 0x10
        with pytest.raises(LigFormatError, match=pattern):
            _decode_all(_corrupt(tmp_path, bad))


def test_header_lying_about_sizes_allocates_nothing_huge(tmp_path, lig_file):
    """SCENARIO: a header length of 2^32-1 and a forged index count.
    EXPECTED RESULT: LigFormatError before any large read."""
    data = bytearray(lig_file[0].read_bytes())
    forged = bytearray(data)
    forged[12:16] = struct.pack("<I", 0xFFFFFFFF)
    with pytest.raises(LigFormatError, match="header length"):
        _decode_all(_corrupt(tmp_path, forged, "a.lig"))
    hsize = struct.unpack_from("<I", data, 12)[0]
    forged = bytearray(data)
    forged[20 + hsize : 24 + hsize] = struct.pack("<I", 10**9)
    with pytest.raises(LigFormatError, match="entries"):
        _decode_all(_corrupt(tmp_path, forged, "b.lig"))


def test_index_count_above_one_per_pixel_is_rejected(tmp_path, lig_file):
    """SCENARIO: a crafted index (valid CRC) claims 2^24 Gaussians for one 32-px tile's chunk.
    EXPECTED RESULT: LigFormatError at open, naming the entry, before anything is allocated for
    it (a chunk holds at most one Gaussian per pixel of its tile)."""
    data = bytearray(lig_file[0].read_bytes())
    hsize = struct.unpack_from("<I", data, 12)[0]
    at = 20 + hsize
    k = struct.unpack_from("<I", data, at)[0]
    struct.pack_into("<I", data, at + 8 + 16, 1 << 24)
    struct.pack_into("<I", data, at + 4, container.crc32(bytes(data[at + 8 : at + 8 + k * container.INDEX_ENTRY_SIZE])))
    with pytest.raises(LigFormatError, match=r"index entry 0 at byte \d+: 16777216 Gaussians exceeds the limit 1024"):
        ligcodec.open(_corrupt(tmp_path, data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, 10**6))
def test_fuzz_mutated_files_never_crash(tmp_path, lig_file, edits, cut):
    """SCENARIO: random byte edits and truncations of a real file.
    EXPECTED RESULT: an image or a LigError, never another exception, hang or crash."""
    data = bytearray(lig_file[0].read_bytes())
    for pos, val in edits:
        data[pos % len(data)] = val
    data = data[: max(0, len(data) - cut % 64)] if cut % 3 == 0 else data
    p = _corrupt(tmp_path, data, "fuzz.lig")
    try:
        out = _decode_all(p)
        assert out.shape == (40, 70, 3)
    except LigError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), spread=st.sampled_from([0, 0.3, 2.0, 40.0, 3000.0, 5e5]))
def test_ans_decoder_matches_constriction(seed, n, spread):
    """SCENARIO: random streams, from constant to wider than TABLE_MAX, coded by constriction.
    EXPECTED RESULT: ligcodec's numba ANS decoder (the spec's reading of the coder and its
    models) returns exactly the symbols; a one-unit difference in any table would not."""
    from ligcodec.codec.tile import MAX_SYMBOL, decode_chunk
    from ligcodec.codec.tile_writer import encode_chunk

    rng = np.random.default_rng(seed)

    def col(scale):
        v = np.round(rng.laplace(rng.integers(-50, 50), max(scale, 1e-9), n)).astype(np.int64)
        return np.clip(v, -MAX_SYMBOL, MAX_SYMBOL)

    # Positions within a span a tile can have (format 3 codes their raster gaps, at most
    # MAX_SYMBOL x 2^MAX_GAP_SHIFT each); the other streams take every spread.
    qx = np.clip(col(min(spread, 3000.0) * 3), -MAX_SYMBOL, MAX_SYMBOL)
    qy = col(min(spread, 3000.0))
    qc = np.stack([col(spread), col(spread / 3), col(spread * 2)], 1)
    qk = np.stack([col(spread), col(1.0), col(spread * 7)], 1)
    order = np.lexsort((qx, qy))
    qx, qy, qc, qk = qx[order], qy[order], qc[order], qk[order]
    out = decode_chunk(encode_chunk(qx, qy, qc, qk), n, 3, "t")
    for a, b in zip(out, (qx, qy, qc, qk)):
        assert np.array_equal(a, b)


def test_colour_rounds_absorb_rounding_error(rng):
    """SCENARIO: a tile whose target is exactly a render of its Gaussians, colours quantised with
    a coarse step, all at once (1 round) or a group at a time with the rest re-solved (4 rounds).
    EXPECTED RESULT: the rounds leave a smaller image error than rounding everything at once."""
    from ligcodec.codec.quantise import QuantSteps, _render_local, quantise_level
    from tests.conftest import random_gaussians

    g = random_gaussians(rng, 120, 48, 48, 3, sigma=(1.0, 4.0), margin=0)
    g = type(g)(g.means, g.chol, np.abs(g.colours) * 0.3)
    target = _render_local(g, (48, 48, 3), 1.0)
    steps = QuantSteps(colour_step=[[1 / 16] * 3])
    err = {}
    for rounds in (1, 4):
        q = quantise_level(g, target, 1.0, steps, 0, "ycocg", lsq_iters=40, colour_rounds=rounds)
        err[rounds] = float(np.mean((_render_local(q.gaussians, target.shape, 1.0) - target) ** 2))
    assert err[4] < 0.8 * err[1], err


def test_refinement_for_the_grid_lowers_the_quantised_error():
    """SCENARIO: a fitted smooth tile (100 Gaussians, 300 steps), its covariances quantised with a
    coarse step, plainly or after 100 steps of quantisation-aware refinement (``refine``).
    EXPECTED RESULT: the refined tile has a smaller image error (measured 12 % smaller on AVX2; the
    bound leaves room for the fit's last bits to differ between instruction sets), at the same
    positions (they are not refined) and with the same count."""
    from ligcodec.codec.quantise import QuantSteps, _render_local, quantise_level
    from ligcodec.fit.optimise import FitSettings, fit_level

    from tests.test_fit import smooth_image

    img = smooth_image(64, 64, seed=4)
    g = fit_level(img, 100, settings=FitSettings(steps=300), seed=0)
    steps = QuantSteps(chol_step=(1 / 8, 1 / 4, 1 / 8), colour_step=[[1 / 512] * 3])
    err, qs = {}, {}
    for refine in (0, 100):
        q = qs[refine] = quantise_level(g, img, 1.0, steps, 0, "ycocg", lsq_iters=40, refine=refine)
        err[refine] = float(np.mean((_render_local(q.gaussians, img.shape, 1.0) - img) ** 2))
    assert err[100] < 0.97 * err[0], err
    assert np.array_equal(qs[0].qx, qs[100].qx) and np.array_equal(qs[0].qy, qs[100].qy)


def test_refinement_for_the_grid_keeps_plain_rounding_when_nothing_beats_it(rng):
    """SCENARIO: a tile whose target is exactly a render of its Gaussians: plain rounding of the
    covariances is already the best the refinement's steps find (Adam moves every parameter by about
    its learning rate, and the quantised loss is a step function, so most steps make it worse).
    EXPECTED RESULT: the refinement returns its best iterate, so the error is no larger than plain
    rounding's; a refinement that kept its last iterate was 20 % worse here."""
    from ligcodec.codec.quantise import QuantSteps, _render_local, quantise_level

    from tests.conftest import random_gaussians

    g = random_gaussians(rng, 120, 48, 48, 3, sigma=(1.0, 4.0), margin=0)
    g = type(g)(g.means, g.chol, np.abs(g.colours) * 0.3)
    target = _render_local(g, (48, 48, 3), 1.0)
    steps = QuantSteps(chol_step=(1 / 4, 1 / 2, 1 / 4), colour_step=[[1 / 256] * 3])
    err = {}
    for refine in (0, 100):
        q = quantise_level(g, target, 1.0, steps, 0, "ycocg", lsq_iters=40, refine=refine)
        err[refine] = float(np.mean((_render_local(q.gaussians, target.shape, 1.0) - target) ** 2))
    assert err[100] <= 1.01 * err[0], err


def test_lazy_model_levels_are_sequences(lig_file):
    """SCENARIO: the lazy model of an open file used like an in-memory Model: level counts, the
    total, iterating a level's tiles. EXPECTED RESULT: counts from the index equal the decoded
    tiles' lengths, and iteration stops at the last tile (it used to run past it into a KeyError)."""
    path, _ = lig_file
    with ligcodec.open(path) as im:
        m = im.model
        counts = m.level_counts()
        assert counts == [sum(len(g) for g in lvl) for lvl in m.levels] and m.n_gaussians == sum(counts) > 0
        assert len(list(m.levels[0])) == m.n_tiles
        with pytest.raises(IndexError):
            m.levels[0][m.n_tiles]


def test_best_level_for_downsample_follows_openslide():
    class Pyramid(ligcodec.LigImage):
        level_downsamples = (1.0, 2.0, 4.0, 8.0)

    im = object.__new__(Pyramid)  # only the pyramid is needed, not a file
    got = [im.get_best_level_for_downsample(d) for d in (0.5, 1, 1.9, 2, 3.99, 4, 100)]
    assert got == [0, 0, 0, 1, 1, 2, 3]


def test_one_gaussian_tiles_are_quantised_at_full_resolution(tmp_path):
    """SCENARIO: a tile whose budget is one Gaussian (here a single-pixel image; in real images the
    1-px strip of a 257-px wide one can be). The fit puts that Gaussian in level 0 at full
    resolution. EXPECTED RESULT: it is quantised for the full-resolution pixels: grey 123 decodes
    as 123 +- 1 (it was re-solved for the 2x-downsampled tile and came back as 133)."""
    for value in (123, 40, 250):
        path = tmp_path / "one.lig"
        ligcodec.encode(np.full((1, 1), value, np.uint8), path, effort=1, workers=1)
        assert abs(int(ligcodec.decode(path)[0, 0, 0]) - value) <= 1


# ----------------------------------------------------------------------------- progressive files
def _natural(h, w, seed=3):
    """Noise with a natural image's 1/f amplitude spectrum: detail at every scale, so that level 0
    alone cannot pass at 1/4 by accident (smooth test images are drawn well by any level 0)."""
    rng = np.random.default_rng(seed)
    amp = 1 / np.maximum(np.hypot(np.fft.rfftfreq(w)[None, :], np.fft.fftfreq(h)[:, None]), 1 / max(h, w))
    img = np.stack([np.fft.irfft2(amp * np.exp(2j * np.pi * rng.uniform(size=amp.shape)), (h, w))
                    for _ in range(3)], -1)
    return (np.clip(0.5 + 0.15 * (img - img.mean()) / img.std(), 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def progressive_pair(tmp_path_factory):
    """The same image encoded by default and with progressive=True (same budget and settings)."""
    tmp = tmp_path_factory.mktemp("progressive")
    img = _natural(96, 128)
    kw = dict(gaussians=800, config=ligcodec.fit.FitConfig(tile=64), steps=150, lsq_iters=10, workers=1)
    ligcodec.encode(img, tmp / "default.lig", **kw)
    ligcodec.encode(img, tmp / "progressive.lig", progressive=True, **kw)
    return tmp / "default.lig", tmp / "progressive.lig", img


def _level0_end(im):
    return im._reader.entry(1, 0).offset


def _level0_share(im):
    """Level 0's share of the chunk bytes."""
    lengths = [e.length for e in im._reader.index.entries]
    return sum(lengths[: im.header.n_tiles]) / sum(lengths)


def test_progressive_header(progressive_pair):
    """SCENARIO: a default and a progressive encode. EXPECTED RESULT: only the progressive file
    holds level0_scale (1/4), and both are format 3.0 (the CLI test checks what `info` says)."""
    default, prog, _ = progressive_pair
    with ligcodec.open(default) as a, ligcodec.open(prog) as b:
        assert a.header.level0_scale is None and b.header.level0_scale == 0.25
        assert a._reader.prefix.major == b._reader.prefix.major == container.VERSION_MAJOR == 4
        assert a._reader.prefix.minor == b._reader.prefix.minor == container.VERSION_MINOR == 0
        assert "fit" in b.header.encoder and b.header.encoder["fit"]["downsample"] == 4


def test_progressive_quarter_read_is_level0_alone(progressive_pair):
    """SCENARIO: reads of a progressive file at 1/4, 1/5, 1/2 and 1, counting the bytes read.
    EXPECTED RESULT: at scales <= 1/4 only level-0 bytes are read and the image is level 0 alone;
    at 1/2 and 1 every level is rendered."""
    _, prog, _ = progressive_pair
    for s in (0.25, 0.2):
        with ligcodec.open(prog) as im:
            got = im.read(scale=s)
            assert 0 < im.bytes_read <= _level0_end(im)
            assert np.array_equal(got, im.read(scale=s, levels=[0]))
            assert not np.array_equal(got, im.read(scale=s, levels=[0, 1]))
    for s in (0.5, 1.0):
        with ligcodec.open(prog) as im:
            got = im.read(scale=s)
            assert im.bytes_read > _level0_end(im)
            assert np.array_equal(got, im.read(scale=s, levels=[0, 1]))


def test_progressive_level0_stands_alone(progressive_pair):
    """SCENARIO: level 0 alone at 1/4, PSNR against the image area-averaged over 4x4 blocks, for
    the progressive and the default encode of the same image at the same budget.
    EXPECTED RESULT: the progressive level 0 was fitted for that read: far better than the default
    file's level 0 alone (measured +6.0 dB), with several times its share of the chunk bytes
    (measured 0.27 vs 0.06), and the full-resolution read costs less than 1.5 dB (measured 0.4).
    (On a tiny noise image with a short fit it stays 8 dB below both levels of the default file,
    against 2.9 dB on Kodak at 1 bpp and effort 7: BENCHMARKS.md measures the real trade-off.)"""
    from ligcodec.fit.tiles import downsample

    default, prog, img = progressive_pair
    ref = img.astype(np.float64) / 255
    quarter = downsample(ref, 4)
    with ligcodec.open(default) as a, ligcodec.open(prog) as b:
        both_default = psnr(a.read(0.25, levels=[0, 1]) / 255, quarter)
        l0_default = psnr(a.read(0.25, levels=[0]) / 255, quarter)
        l0_prog = psnr(b.read(0.25) / 255, quarter)
        full_default, full_prog = psnr(a.read() / 255, ref), psnr(b.read() / 255, ref)
        share_default, share_prog = _level0_share(a), _level0_share(b)
    print(f"1/4: default both {both_default:.2f}, default level 0 {l0_default:.2f}, progressive level 0 "
          f"{l0_prog:.2f}; full: default {full_default:.2f}, progressive {full_prog:.2f}; level-0 byte "
          f"share {share_default:.2f} / {share_prog:.2f}")
    assert l0_prog > l0_default + 3
    assert share_prog > max(0.2, 3 * share_default)
    assert full_prog > full_default - 1.5


def test_progressive_needs_two_levels(tmp_path):
    """SCENARIO: progressive=True with one level. EXPECTED RESULT: LigInputError, no file."""
    with pytest.raises(LigInputError, match="2 levels"):
        ligcodec.encode(smooth_image(20, 20), tmp_path / "x.lig", progressive=True,
                        config=ligcodec.fit.FitConfig(levels=1), **FAST)
    assert not (tmp_path / "x.lig").exists()


def test_progressive_psnr_target(tmp_path):
    """SCENARIO: a PSNR-targeted progressive encode (several passes). EXPECTED RESULT: the kept
    file is progressive too."""
    path = tmp_path / "x.lig"
    ligcodec.encode(_natural(48, 64), path, psnr=25, progressive=True, **FAST)
    with ligcodec.open(path) as im:
        assert im.header.level0_scale == 0.25


@pytest.mark.parametrize("value", [1.5, 0.0, -0.25, float("nan")])
def test_bad_level0_scale_is_rejected(tmp_path, progressive_pair, value):
    """SCENARIO: a progressive file whose header says level0_scale is 1.5, 0, -0.25 or NaN (header
    CRC fixed up). EXPECTED RESULT: LigFormatError at open naming the key and the header's offset."""

    data = bytearray(progressive_pair[1].read_bytes())
    at = data.index(msgpack.packb("level0_scale") + msgpack.packb(0.25))
    new = msgpack.packb("level0_scale") + msgpack.packb(value)  # float64 both: same length
    data[at : at + len(new)] = new
    hsize = struct.unpack_from("<I", data, 12)[0]
    struct.pack_into("<I", data, 16, container.crc32(bytes(data[20 : 20 + hsize])))
    with pytest.raises(LigFormatError, match=r"header at byte 20: level0_scale"):
        ligcodec.open(_corrupt(tmp_path, data))


def test_header_steps_are_float32_and_round_trip(tmp_path):
    """SCENARIO: an encode with the encoder's own (adaptive) steps, and headers packed with steps
    that float32 cannot hold. EXPECTED RESULT: the encoder's steps are float32 numbers and the
    header stores them in 5 bytes each (msgpack 0xca), with no empty ``metadata`` and no
    ``quant_lsq_iters`` (it follows from the effort); steps that float32 cannot hold are written
    as float64 and read back exactly; msgpack's own packing of the same map reads back the same."""
    img = (smooth_image(64, 96) * 255).astype(np.uint8)
    path = tmp_path / "a.lig"
    ligcodec.encode(img, path, bpp=1, workers=1)
    data = path.read_bytes()
    raw = msgpack.unpackb(data[20 : 20 + struct.unpack_from("<I", data, 12)[0]])
    assert "metadata" not in raw and set(raw["encoder"]) == {"gaussians", "seed", "effort"}
    with ligcodec.open(path) as im:
        h = im.header
        steps = [h.pos_step, *h.chol_step, *[c for r in h.colour_step for c in r]]
        assert all(float(np.float32(v)) == v for v in steps)
        assert h.pack().count(b"\xca") >= len(steps)  # float32 markers (the steps are not all 2^-k)
        assert Header.parse(h.pack()) == h
    odd = Header(64, 64, 3, 8, 16, 1, "ycocg", 0.1, [0.1, 0.2, 0.3], [[0.01, 0.02, 1 / 3]], metadata={"a": 1.1})
    back = Header.parse(odd.pack())
    assert back == odd
    assert Header.parse(msgpack.packb({k: getattr(odd, k) for k in ("width", "height", "channels", "bit_depth",
                                        "tile", "levels", "colour_transform", "pos_step", "chol_step",
                                        "colour_step")})).colour_step == odd.colour_step


def test_header_records_only_settings_beyond_the_effort(tmp_path):
    """SCENARIO: encodes at effort 1 and 7 with their own settings, and at effort 1 with one fit
    setting changed. EXPECTED RESULT: the header's ``encoder.fit`` entry is empty for the first two
    (the effort says it all; at 0.25 bpp on a Kodak image the old dump of the effort's settings
    and per-attribute bit counts was 2.5 % of the file) and holds just the changed setting for the
    third; ``info --verbose`` still reports bits per Gaussian by attribute, from the chunks."""
    from ligcodec.cli import main

    img = (smooth_image(64, 96) * 255).astype(np.uint8)
    for effort, extra, want in ((1, {}, {}), (7, {"steps": 30}, {"level": {"steps": 30}}),
                                (1, {"lr_chol": 0.07}, {"level": {"lr_chol": 0.07}})):
        path = tmp_path / f"e{effort}.lig"
        ligcodec.encode(img, path, gaussians=60, effort=effort, workers=1, **extra)
        with ligcodec.open(path) as im:
            assert im.header.encoder.get("fit", {}) == want
            assert "bits_per_gaussian" not in im.header.encoder
    assert main(["info", str(path), "--verbose"]) == 0


def test_format_2_files_still_read(tmp_path, lig_file):
    """SCENARIO: a 3.0 file's chunks rewritten in the 2.x layout (positions as qx, dqy; same
    header, same Gaussians) and the file marked 2.4, as the previous ligcodec wrote it.
    EXPECTED RESULT: ligcodec reads the same pixels from both, bit for bit; so does the spec-only
    reader (each file in its own layout)."""
    from ligcodec.codec.tile import LAYOUT_24, decode_chunk
    from ligcodec.codec.tile_writer import encode_chunk
    from ligcodec.container import LigReader, write_lig
    from tests.spec_reader import read_lig, render_full

    path = lig_file[0]
    with LigReader(path) as r:
        h = r.header
        assert (r.prefix.major, r.prefix.minor) == (4, 0)
        chunks = []
        for lvl in range(h.levels):
            row = []
            for t in range(h.n_tiles):
                data, n = r.chunk(lvl, t), r.entry(lvl, t).count
                row.append((encode_chunk(*decode_chunk(data, n, h.channels, "t"), layout=LAYOUT_24) if n else b"", n))
            chunks.append(row)
    old = tmp_path / "old.lig"
    with open(old, "wb") as f:
        write_lig(f, h, chunks)
    data = bytearray(old.read_bytes())
    data[8:10] = b"\x02\x04"
    old.write_bytes(bytes(data))
    with ligcodec.open(path) as a, ligcodec.open(old) as b:
        assert np.array_equal(a.read(), b.read()) and np.array_equal(a.read(0.5), b.read(0.5))
    assert np.array_equal(render_full(read_lig(path)), render_full(read_lig(old)))
