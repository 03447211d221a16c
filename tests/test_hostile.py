"""Hostile files: a reader that trusts nothing (spec sections 3, 4, 6 and 7).

Each test forges or mutates a file the way an attacker or a damaged disk would and checks that the
reader refuses it with a :class:`LigFormatError` naming where (never a crash, a ``MemoryError`` or a
long run), or, for the ownership rule, that every output pixel is drawn. The files are built with
the container's own writer around chunks from :func:`encode_chunk`, so each breaks exactly one rule.
"""

from __future__ import annotations

import math
import struct
import zlib

import msgpack
import numpy as np
import pytest

import ligcodec
from ligcodec.codec.tile_writer import encode_chunk
from ligcodec.container import (MAX_TILE_WORK, PREFIX_SIZE, Header, Index, IndexEntry, Prefix, crc32,
                                write_lig)
from ligcodec.errors import LigFormatError
from ligcodec.model import Model, tile_grid, tile_output_span
from ligcodec.render import Gaussians
from ligcodec.render.contract import output_size


def _header(width, height, tile, levels=1, chol_step=(1 / 16, 1 / 8, 1 / 16), colour_step=1 / 128, channels=3):
    return Header(width=width, height=height, channels=channels, bit_depth=8, tile=tile, levels=levels,
                  colour_transform="ycocg" if channels >= 3 else "none", pos_step=1 / 8,
                  chol_step=list(chol_step), colour_step=[[colour_step] * channels] * levels)


def _chunk(n, l11=16, shear=0, l22=16, colour=10, x=None, y=None):
    """``n`` Gaussians at 1/8-px positions ``x``, ``y`` (default: a diagonal), with constant
    covariance indices and colour indices."""
    x = np.arange(n) * 8 if x is None else np.asarray(x)
    y = np.arange(n) * 8 if y is None else np.asarray(y)
    qc = np.stack([np.full(n, l11), np.full(n, shear), np.full(n, l22)], 1)
    return encode_chunk(x, y, qc, np.full((n, 3), colour)), n


def _write(path, header, chunks):
    with open(path, "wb") as f:
        write_lig(f, header, chunks)
    return path


def _read_all(path):
    with ligcodec.open(path) as img:
        img.read()
        img.read(0.25)


def test_one_gaussian_with_an_overflowing_factor_is_refused(tmp_path, capsys):
    """SCENARIO: one forged Gaussian (a file of ~200 bytes) whose log l11 dequantises to 44 with a
    non-zero shear: exp(44) overflows float32, and the renderer's span arithmetic turned it into a
    garbage index (exit 139 before).
    EXPECTED RESULT: open() works, every read and `info --check` refuse it with a LigFormatError
    that names the tile and level and the limit; the process survives."""
    path = _write(tmp_path / "x.lig", _header(64, 64, 64), [[_chunk(1, l11=704, shear=9)]])
    with pytest.raises(LigFormatError, match=r"tile 0, level 0: .*log-scale"):
        _read_all(path)
    from ligcodec.cli import main

    assert main(["info", str(path), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ligcodec: error: tile 0, level 0")


@pytest.mark.parametrize("step", [3.0, 15.0])
def test_crc_valid_header_with_a_huge_chol_step_is_refused(tmp_path, step):
    """SCENARIO: a real file whose header is re-packed with chol_step[0] = 3 or 15 (CRC fixed), so
    ordinary covariance indices dequantise to e^60 and more.
    EXPECTED RESULT: a LigFormatError naming a tile; never a crash."""
    rng = np.random.default_rng(0)
    img = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    src = tmp_path / "real.lig"
    ligcodec.encode(img, src, gaussians=60, effort=1, workers=1)
    data = bytearray(src.read_bytes())
    _, _, _, _, hsize, _ = struct.unpack_from("<8sBBHII", data)
    h = msgpack.unpackb(bytes(data[PREFIX_SIZE:PREFIX_SIZE + hsize]))
    h["chol_step"][0] = step
    hb = msgpack.packb(h)
    rest = data[PREFIX_SIZE + hsize:]
    out = Prefix(len(hb), crc32(hb)).pack() + hb + rest
    forged = tmp_path / "forged.lig"
    forged.write_bytes(out)
    with pytest.raises(LigFormatError, match="tile"):
        _read_all(forged)


def test_index_entries_sharing_one_chunk_are_refused(tmp_path):
    """SCENARIO: a CRC-valid 16384^2 file whose 4,096 index entries all point at one chunk (each
    claiming its Gaussians), so that 100 KB would decode to millions of Gaussians (MemoryError
    before).
    EXPECTED RESULT: open() refuses the overlapping chunks with a LigFormatError naming the index
    entries, before anything is decoded."""
    tile, side = 256, 16384
    header = _header(side, side, tile)
    payload, n = _chunk(20)
    hb = header.pack()
    k = (side // tile) ** 2
    at = PREFIX_SIZE + len(hb) + 8 + 24 * k
    entries = [IndexEntry(at, len(payload), crc32(payload), n) for _ in range(k)]
    path = tmp_path / "shared.lig"
    path.write_bytes(Prefix(len(hb), crc32(hb)).pack() + hb + Index(entries).pack() + payload)
    with pytest.raises(LigFormatError, match="overlap"):
        ligcodec.open(path)


def test_claimed_counts_above_the_chunk_bytes_are_refused(tmp_path):
    """SCENARIO: a 448-byte-class file whose one 4096-px tile claims 2^24 Gaussians for a chunk of
    a few dozen bytes (3 GB and 27 s before), and one claiming twice its byte length.
    EXPECTED RESULT: open() refuses both from the index alone (each Gaussian takes at least one
    byte, spec section 3)."""
    for count in (1 << 24, None):
        payload, n = _chunk(20)
        count = count or 2 * len(payload)
        header = _header(4096, 4096, 4096)
        hb = header.pack()
        at = PREFIX_SIZE + len(hb) + 8 + 24
        path = tmp_path / f"count{count}.lig"
        path.write_bytes(Prefix(len(hb), crc32(hb)).pack() + hb
                         + Index([IndexEntry(at, len(payload), crc32(payload), count)]).pack() + payload)
        with pytest.raises(LigFormatError, match="Gaussians in a chunk of"):
            ligcodec.open(path)


def test_drawing_work_bomb_is_refused(tmp_path):
    """SCENARIO: a 4096-px tile holding more Gaussians than MAX_TILE_WORK, each larger than the
    tile: every one would be drawn over all 16.7 M pixels (minutes of work from a few KB).
    EXPECTED RESULT: a LigFormatError about drawing work, quickly; the same chunk with fewer
    Gaussians than the limit reads."""
    n = MAX_TILE_WORK + 8
    big = 16 * 9  # log l = 9: sigma 8,100 px
    path = _write(tmp_path / "bomb.lig", _header(4096, 4096, 4096), [[_chunk(n, l11=big, l22=big)]])
    with pytest.raises(LigFormatError, match="draw more than"):
        with ligcodec.open(path) as img:
            img.read(1 / 64)
    ok = _write(tmp_path / "ok.lig", _header(512, 512, 512), [[_chunk(MAX_TILE_WORK // 2, l11=big, l22=big)]])
    with ligcodec.open(ok) as img:
        assert img.read(0.25).shape == (128, 128, 3)


def test_real_files_respect_the_limits(data_dir, tmp_path):
    """SCENARIO: real photos encoded at low, default and top quality, default and progressive.
    EXPECTED RESULT: they decode (the new reader limits refuse no file ligcodec writes), and the
    drawing work of every chunk is far below MAX_TILE_WORK."""
    from PIL import Image

    img = np.asarray(Image.open(data_dir / "kodak" / "kodim05.png"))[:200, :300]
    for kw in (dict(quality=5), dict(quality=100), dict(bpp=1, progressive=True)):
        path = tmp_path / "x.lig"
        ligcodec.encode(img, path, effort=1, workers=1, **kw)
        with ligcodec.open(path) as lig:
            lig.read()
            h = lig.header
            for lvl in range(h.levels):
                for t in range(h.n_tiles):
                    _, chol, _, _ = lig.model.gather([t], [lvl])
                    work = np.minimum(9 * math.pi * np.exp(chol[:, 0] + chol[:, 2]), h.tile**2).sum() / h.tile**2
                    assert work < MAX_TILE_WORK / 2, (kw, lvl, t, work)


def test_ownership_covers_every_output_pixel_once():
    """SCENARIO: the spec's tile-ownership rule over image sides 1..1000, tiles of 16 and 256,
    and scales 0.01..1 (a fractional width * scale used to leave the last column to no tile: a
    black edge at scales 0.1, 0.2, 0.35 of a 512-px image, and img[::5, ::5]).
    EXPECTED RESULT: the tiles' output spans partition [0, output side) exactly."""
    scales = sorted({0.01, 0.1, 0.2, 0.25, 0.35, 1 / 3, 0.5, 0.77, 1.0} | {1 / k for k in range(2, 13)})
    for tile in (16, 256):
        for side in list(range(1, 300)) + list(range(300, 1001, 7)) + [512, 1000]:
            for s in scales:
                out = output_size(side, 1, s)[0]
                nt = math.ceil(side / tile)
                spans = [tile_output_span(t * tile, min((t + 1) * tile, side), s, side) for t in range(nt)]
                covered = [j for lo, hi in spans for j in range(lo, hi)]
                assert covered == list(range(out)), (tile, side, s)


@pytest.mark.parametrize("scale", [0.01, 0.1, 0.2, 0.35])
def test_no_black_edge_at_fractional_scales(scale):
    """SCENARIO: a 512^2 model of flat grey (one wide Gaussian per tile, 64-px tiles) read at scales
    where 512 * scale has a fractional part <= 0.5.
    EXPECTED RESULT: the last row and column are as bright as their neighbours (they were 0)."""
    levels = [[Gaussians(np.array([[(x0 + x1) / 2, (y0 + y1) / 2]]), np.array([[6.0, 0.0, 6.0]]),
                         np.full((1, 3), 0.5, np.float32)) for _, x0, y0, x1, y1 in tile_grid(512, 512, 64)]]
    out = Model(512, 512, 3, 64, levels).render(scale)
    assert out.shape[0] == math.ceil(512 * scale)
    assert out[-1].min() > 0.4 and out[:, -1].min() > 0.4


def test_strided_read_has_no_black_edge(tmp_path):
    """SCENARIO: img[::5, ::5] of a real 512-px-wide file (512 / 5 = 102.4: a partial last pixel).
    EXPECTED RESULT: the last row and column hold the image, not zeros."""
    rng = np.random.default_rng(1)
    img = np.full((96, 512, 3), 128, np.uint8) + (rng.random((96, 512, 3)) * 20).astype(np.uint8)
    path = tmp_path / "x.lig"
    ligcodec.encode(img, path, gaussians=300, effort=1, workers=1)
    with ligcodec.open(path) as lig:
        small = lig[::5, ::5]
    assert small.shape == (20, 103, 3)
    assert small[:, -1].min() > 60 and small[-1].min() > 60


def test_corrupt_header_crc_still_refused(tmp_path):
    """SCENARIO: a forged file whose header bytes were changed without fixing the CRC.
    EXPECTED RESULT: the CRC check still refuses it first (the new limits add checks, never
    remove one)."""
    path = _write(tmp_path / "x.lig", _header(64, 64, 64), [[_chunk(2)]])
    data = bytearray(path.read_bytes())
    data[PREFIX_SIZE + 3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(LigFormatError, match="CRC"):
        ligcodec.open(path)
    assert zlib.crc32(b"") == 0  # (crc32 of an empty chunk is 0: empty chunks carry CRC 0)


def test_kernels_never_index_outside_their_buffers():
    """SCENARIO: Gaussians that bypass the reader's limits (a Model built in memory) with
    log l11 = 44, log l22 = -5 and shear 1000: a row's span then starts 2e19 px to the right of
    the window, beyond int64, and the old float-to-int conversion gave a negative index (a
    segfault, measured on the previous kernels). Also NaN and inf factors.
    EXPECTED RESULT: a child process renders them at scales 1, 1/2 and 1/4 and exits 0 (run in a
    child so that a regression fails this test instead of killing the test run)."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from ligcodec.model import Model\n"
        "from ligcodec.render import Gaussians\n"
        "chol = np.array([[44.0, 1000 * np.exp(-5.0), -5.0], [np.nan, 1.0, 0.0], [np.inf, -np.inf, 0.0],"
        " [60.0, 1e30, -20.0]])\n"
        "for c in chol:\n"
        "    g = Gaussians(np.array([[32.0, 32.0]]), c[None], np.ones((1, 3), np.float32))\n"
        "    for s in (1.0, 0.5, 0.25):\n"
        "        Model(64, 64, 3, 64, [[g]]).render(s)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]


def test_wide_streams_cannot_make_a_reader_build_huge_tables(tmp_path):
    """SCENARIO: chunks of 2 Gaussians whose every stream spans 60,001 values (a forged 900 KB
    file of 12,800 such chunks made the reader build six billion table entries: minutes). In a
    2.2 file the spec codes streams wider than TABLE_BASE + TABLE_PER_GAUSSIAN n uniformly; the
    same bytes in a file marked 2.1 ask for 65,536-value tables.
    EXPECTED RESULT: the 2.2 file decodes with uniform models (its Gaussians are the ones
    written); the 2.1 one is refused for holding more table values than its bytes allow."""
    from ligcodec.codec.tile import LAYOUT_24, decode_chunk

    x, y = np.array([0, 1]), np.array([0, 1])
    qc = np.array([[-300, -30000, -300], [300, 30000, 300]])
    qk = np.array([[-30000] * 3, [30000] * 3])
    payload = encode_chunk(x, y, qc, qk)
    got = decode_chunk(payload, 2, 3, "t")
    assert np.array_equal(got[2], qc) and np.array_equal(got[3], qk)
    header = _header(64, 64, 64, chol_step=(1 / 64, 1 / 4096, 1 / 64), colour_step=1 / 4096)
    path = _write(tmp_path / "wide.lig", header, [[(payload, 2)]])
    with ligcodec.open(path) as img:
        img.read()
    # The same streams in a 2.x chunk (positions as qx, dqy), in a file marked 2.1.
    old = _write(tmp_path / "old.lig", header, [[(encode_chunk(x, y, qc, qk, layout=LAYOUT_24), 2)]])
    data = bytearray(old.read_bytes())
    data[8:10] = b"\x02\x01"  # version 2.1: the legacy table rule
    legacy = tmp_path / "legacy.lig"
    legacy.write_bytes(bytes(data))
    with ligcodec.open(legacy) as img:
        with pytest.raises(LigFormatError, match=r"^tile 0, level 0: chunk at byte \d+: its tables hold \d+ values"):
            img.read()


def test_render_in_groups_changes_no_pixel(monkeypatch, tmp_path):
    """SCENARIO: a real file read at 1, 1/2 and 1/3 (and a region) with the per-call Gaussian cap
    lowered so that every tile is gathered and drawn in a group of its own (what bounds the
    memory of a small read of a gigapixel image).
    EXPECTED RESULT: the same pixels, bit for bit, as one group."""
    import ligcodec.model

    rng = np.random.default_rng(3)
    img = (rng.random((100, 140, 3)) * 255).astype(np.uint8)
    path = tmp_path / "x.lig"
    from ligcodec.fit.tiles import FitConfig

    ligcodec.encode(img, path, gaussians=400, effort=1, workers=1, config=FitConfig(tile=32))
    with ligcodec.open(path) as lig:
        want = [lig.read(s) for s in (1.0, 0.5, 1 / 3)] + [lig.read(1.0, (7, 9, 50, 40))]
    monkeypatch.setattr(ligcodec.model, "GROUP_GAUSSIANS", 1)
    with ligcodec.open(path) as lig:
        got = [lig.read(s) for s in (1.0, 0.5, 1 / 3)] + [lig.read(1.0, (7, 9, 50, 40))]
    for a, b in zip(want, got):
        assert np.array_equal(a, b)


def _with_header(path, out, **changes):
    """``path``'s bytes with header entries replaced (``None`` removes one), the header CRC and
    length fixed: a file that breaks only the header rule under test."""
    data = path.read_bytes()
    size = struct.unpack_from("<I", data, 12)[0]
    d = msgpack.unpackb(data[PREFIX_SIZE : PREFIX_SIZE + size])
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    head = msgpack.packb(d)
    prefix = data[:12] + struct.pack("<II", len(head), crc32(head))
    out.write_bytes(prefix + head + data[PREFIX_SIZE + size :])
    return out


@pytest.mark.parametrize("changes, what", [
    ({"colour_matrix": None}, "colour_matrix must be given"),
    ({"colour_matrix": [[1.0, 0.0, 0.0], [0.0, float("nan"), 0.0], [0.0, 0.0, 1.0]]}, "finite numbers within"),
    ({"colour_matrix": [[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]}, "finite numbers within"),
    ({"colour_matrix": [[1.0, 0.0], [0.0, 1.0]]}, "3 rows of 3"),
    ({"colour_transform": "ycocg"}, "only then"),
    ({"channels": 1, "colour_step": [[0.01]]}, "not allowed with 1 channel"),
])
def test_bad_colour_matrix_is_refused(tmp_path, changes, what):
    """SCENARIO: a 2.4 file whose colours are coded in a matrix basis, its header re-packed (CRC
    fixed) with the matrix missing, holding a NaN, an entry above MAX_MATRIX_ENTRY or two rows of
    two, with the matrix kept under "ycocg", or with one channel.
    EXPECTED RESULT: open() refuses it with a LigFormatError naming the header and the rule; the
    spec-only reader refuses it too."""
    from ligcodec.codec import colour
    from tests.spec_reader import read_lig

    src = tmp_path / "good.lig"
    h = _header(32, 32, 32)
    h.colour_transform, h.colour_matrix = "matrix", [list(r) for r in colour.klt_matrix(np.diag([3.0, 2.0, 1.0]))]
    _write(src, h, [[_chunk(4)]])
    with ligcodec.open(src) as img:
        assert img.header.colour_transform == "matrix"
        img.read()
    bad = _with_header(src, tmp_path / "bad.lig", **changes)
    with pytest.raises(LigFormatError, match=rf"header at byte 20: .*{what}"):
        ligcodec.open(bad)
    with pytest.raises(ValueError):
        read_lig(bad)
