"""A fuzzer for the ``.lig`` decoder: mutants of real files and forged decode bombs, each decoded
the way a viewer does in a disposable worker process, every outcome classified and counted.

    python bench/fuzz.py --mutants 100000            # the acceptance run (~25 min a worker on a fixed decoder)
    python bench/fuzz.py --quick                     # 300 mutants + every forged bomb
    python bench/fuzz.py --bombs-only                # the forged bombs alone
    python bench/fuzz.py --replay /tmp/ligcodec-fuzz/failures     # re-run saved failures (or one file)
    python bench/fuzz.py --replay FILE --inline      # in this process: full tracebacks, no protection

The requirement it checks: every file of at most 1 MB decodes or is refused with a ``LigError``,
never a crash, a hang (``--time-limit``, 10 s a file), another exception or a warning, within
1 GB of RSS (``--mem-limit-mb``) and 2 s per output megapixel (``--budget-per-mp``; a read of any
size gets at least ``--min-budget`` s, the fixed cost of opening a file and starting numba code).

Pieces:

* **Seed corpus**: real files encoded once (effort 1, a few hundred Gaussians) from crops of the
  images in ../shared/data (synthetic images where it is absent): 8- and 16-bit; grey, grey+alpha,
  RGB, RGBA; 1 and 2 levels, progressive, tiles of 16 to 256 px. Cached in ``WORKDIR/seeds-vN``.
* **Mutators** (:data:`STRUCTURED`, :data:`RAW`): structured ones edit a parsed file (header
  values re-packed into msgpack, index entries, stream tables, the Gaussians' symbols themselves,
  chunks shared by many entries, the alpha mask section of format 2.2: its zlib class maps, table
  and footer) and re-lay it out with every CRC recomputed, so the mutant gets
  past the integrity checks into the decoder; raw ones flip bits, overwrite bytes with boundary
  values, truncate, extend and splice, with or without fixing the CRCs afterwards.
* **Forged bombs** (:func:`forge_bombs`, :data:`BOMB_NAMES`): files built from the spec that
  claim far more than their bytes (one chunk shared by 4,096 entries, a 4096-px tile of 2^24
  Gaussians, constant streams that code any number of Gaussians in no ANS bit, the same padded to
  one byte a Gaussian, 12,800 chunks each asking for seven 65,536-symbol tables), single Gaussians
  whose dequantised Cholesky factor overflows, underflows or turns into NaN, real files with one
  hostile header value (``chol_step[0]`` = 3 or 15, huge steps), and alpha masks (a 940 MB zlib
  stream in 0.9 MB, class maps over 4096-px tiles), every CRC valid.
* **Harness**: a persistent worker process (``--worker``) reads file paths from a pipe and does
  what a viewer does: ``ligcodec.open``, ``read()`` at scale 1, at 1/4 and a level-0 preview at
  1/8 (a 1024 x 1024 region where the output is larger than 1 MP), then ``ligcodec info -v
  --check``. The parent watches it: a signal is a crash, the time limit a timeout, RSS over the
  limit (polled every 20 ms, and the worker's own ``VmHWM``, reset per file through
  ``/proc/self/clear_refs``) over-memory. Warnings are recorded per operation. A crashed, killed
  or bloated worker is replaced.
* **Report**: counts per kind and per class (refusals per normalised message prefix), the forged
  bombs one by one, throughput; every failure (crash, timeout, over-memory, other exception,
  over-budget, warning, wrong output shape) saved under ``WORKDIR/failures/<kind>/`` with a
  ``.json`` saying how it was made, for ``--replay``. The exit code is 1 if any case failed.

Mutant ``i`` of ``--seed S`` is the same bytes whatever the number of workers or the order.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import math
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import numpy as np  # noqa: E402

DATA = Path(os.environ.get("LIGCODEC_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_WORKDIR = Path(os.environ.get("LIGCODEC_FUZZ_DIR", "/tmp/ligcodec-fuzz"))

# ------------------------------------------------------------------------------ the limits
TIME_LIMIT = 10.0  # s per file, all operations together
MEM_LIMIT = 1 << 30  # bytes of RSS
BUDGET_PER_MP = 2.0  # s per output megapixel, per read
MIN_BUDGET = 1.0  # s: every operation gets at least this
MAX_FILE = 1 << 20  # mutants are cut to this size
REGION = 1024  # reads whose output exceeds REGION^2 pixels read a REGION x REGION window
QUICK_MUTANTS = 300

#: Outcome kinds, worst first; the first ones fail the run.
FAIL_KINDS = ("crash", "timeout", "over-memory", "exception", "bad-output", "over-budget", "warning",
              "fuzzer-error")
KINDS = FAIL_KINDS + ("refused", "ok")

# ------------------------------------------------------------------- the format, spec-level
# Written from spec/lig-format.md, not imported: mutants must be able to hold what ligcodec's
# writer refuses (and a fuzzer should not share the decoder's reading of the spec).
MAGIC = bytes.fromhex("894C49470D0A1A0A")
PREFIX = struct.Struct("<8sBBHII")
INDEX_HEAD = struct.Struct("<II")
ENTRY = struct.Struct("<QIIII")
ALPHA_TAG = b"LIGALPHA"  # section 8: the alpha mask's footer
ALPHA_ENTRY = struct.Struct("<QII")
MAX_SYMBOL = (1 << 23) - 1
TABLE_MAX = 1 << 16
MAX_COUNT = 1 << 24
REQUIRED = ("width", "height", "channels", "bit_depth", "tile", "levels", "colour_transform",
            "pos_step", "chol_step", "colour_step")


def crc32(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def unzigzag(v: int) -> int:
    return v >> 1 if not v & 1 else -((v + 1) >> 1)


def read_table(chunk: bytes, channels: int):
    """The stream table of a format-4 chunk's first part: ``(prefix, [[lo, hi, loc, k] per stream],
    end)``, or None if it does not parse (varints of any length accepted: this is for mutating, not
    checking). ``prefix`` is the part count and lengths before the table, kept as they are; stream
    0 is the positions' grid entry, given as ``[x0, W - 1, y0, s]``; ``end`` is where the table
    ends in the chunk."""
    pos, out = 0, []

    def var():
        nonlocal pos
        v = shift = 0
        while True:
            if pos >= len(chunk) or shift > 63:
                raise ValueError
            b = chunk[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    try:
        if not chunk or not 1 <= chunk[0] <= 16:
            return None
        pos = 1
        for _ in range(chunk[0] - 1):  # the part lengths
            var()
        prefix = chunk[:pos]
        for i in range(5 + channels):
            if i == 0:
                x0, wm1, y0 = unzigzag(var()), var(), unzigzag(var())
                out.append([x0, wm1, y0, chunk[pos]])
            else:
                loc = unzigzag(var())
                lo, hi = loc - var(), loc + var()
                if pos >= len(chunk):
                    raise ValueError
                out.append([lo, hi, loc, chunk[pos]])
            pos += 1
    except (ValueError, IndexError):
        return None
    return prefix, out, pos


def write_table(streams, prefix: bytes = b"\x01") -> bytes:
    """Inverse of :func:`read_table` (a one-part chunk unless ``prefix`` says otherwise); ``loc``
    is clamped into ``[lo, hi]`` (the layout cannot say otherwise), ``hi < lo`` becomes ``hi =
    lo`` and a negative ``W - 1`` 0."""
    out = bytearray(prefix)
    for i, (lo, hi, loc, k) in enumerate(streams):
        if i == 0:
            out += uvarint(zigzag(lo)) + uvarint(max(hi, 0)) + uvarint(zigzag(loc)) + bytes([k & 0xFF])
        else:
            hi = max(hi, lo)
            loc = min(max(loc, lo), hi)
            out += uvarint(zigzag(loc)) + uvarint(loc - lo) + uvarint(hi - loc) + bytes([k & 0xFF])
    return bytes(out)


def const_chunk(channels: int, qx=0, qy=0, q=(0, 0, 0), colour=0, k=0) -> bytes:
    """A one-part chunk whose every stream is constant: any number of identical Gaussians for a
    stream table alone and no ANS word. ``colour``: one value or one per channel. The positions'
    grid is one column wide at ``x0 = qx``, ``y0 = 0``, and ``qy`` the constant raster gap: with
    ``qy != 0`` Gaussian j sits at ``(qx, (j + 1) qy)``."""
    cols = [colour] * channels if np.isscalar(colour) else list(colour)
    return write_table([[qx, 0, 0, 0], [qy, qy, qy, k]] + [[v, v, v, k] for v in q] + [[c, c, c, k] for c in cols])


def padded(table: bytes, n: int) -> bytes:
    """``table`` followed by ANS words (never read by constant streams) up to ``n`` bytes or more."""
    words = max(1, -(-(n - len(table)) // 4))
    return table + b"\x01\x00\x00\x00" * words


def header_dict(width, height, channels, tile, levels=1, bit_depth=8, pos_step=0.5, chol_step=(0.1, 0.1, 0.1),
                colour_step=0.02, **extra) -> dict:
    d = {"width": width, "height": height, "channels": channels, "bit_depth": bit_depth, "tile": tile,
         "levels": levels, "colour_transform": "ycocg" if channels >= 3 else "none", "pos_step": pos_step,
         "chol_step": list(chol_step), "colour_step": [[colour_step] * channels for _ in range(levels)],
         "encoder": {"fuzz": "forged"}, "metadata": {}}
    d.update(extra)
    return d


@dataclass
class Entry:
    """An index entry. ``ref`` names the blob it points at (offset, length and CRC follow from the
    layout); ``ref=None`` keeps the literal ``offset``/``length`` (the CRC is then recomputed from
    the bytes there when they lie inside the file, unless ``keep_crc``)."""

    count: int
    ref: int | None
    offset: int = 0
    length: int = 0
    crc: int = 0
    reserved: int = 0
    keep_crc: bool = False


@dataclass
class LigParts:
    """A ``.lig`` file taken apart for editing; :meth:`pack` lays it out again with fresh CRCs.

    ``alpha`` (format 2.2, spec section 8): ``None``, or the alpha mask section, whose entries
    (one per tile) point at ``alpha_blobs`` like the index's at ``blobs``; it is laid out after
    the chunks and ``tail`` with its table CRC, footer tag and table offset fixed unless told."""

    header_raw: bytes
    entries: list
    blobs: list
    major: int = 4  # the format ligcodec writes (4.0): forged chunks come from its encode_chunk
    minor: int = 0
    flags: int = 0
    k_field: int | None = None  # None: len(entries)
    header_size_field: int | None = None  # None: len(header_raw)
    fix_header_crc: bool = True
    fix_index_crc: bool = True
    fix_chunk_crc: bool = True
    tail: bytes = b""  # bytes between the chunks and the alpha section (or the end)
    alpha: list | None = None  # [Entry] per tile (count unused)
    alpha_blobs: list = field(default_factory=list)
    alpha_k_field: int | None = None
    fix_alpha_crc: bool = True
    alpha_tag: bytes = ALPHA_TAG
    alpha_at_delta: int = 0  # added to the footer's table offset

    @property
    def header(self) -> dict | None:
        try:
            d = msgpack.unpackb(self.header_raw, raw=False, strict_map_key=False)
        except Exception:
            return None
        return d if isinstance(d, dict) else None

    def set_header(self, d: dict):
        self.header_raw = msgpack.packb(d, use_bin_type=True)

    @classmethod
    def build(cls, header: dict, chunks, alpha=None, **kw) -> "LigParts":
        """From a header dict, ``[(blob, count)]`` in index order and ``alpha``: mask chunks per tile."""
        if alpha is not None:
            kw.update(alpha=[Entry(0, i) for i in range(len(alpha))], alpha_blobs=list(alpha))
        return cls(msgpack.packb(header, use_bin_type=True), [Entry(n, i) for i, (_, n) in enumerate(chunks)],
                   [b for b, _ in chunks], **kw)

    @classmethod
    def parse(cls, data: bytes) -> "LigParts":
        """A valid file (a seed). Entries pointing at the same bytes share one blob."""
        _, major, minor, flags, hsize, _ = PREFIX.unpack_from(data)
        at = 20 + hsize
        k, _ = INDEX_HEAD.unpack_from(data, at)
        entries, blobs = _parse_entries(data, at + 8, k, ENTRY, lambda t: (t[0], t[1], t[3], t[4]))
        end = max([e.offset + e.length for e in entries] + [at + 8 + 24 * k])
        for e in entries:
            e.offset = e.length = 0
        parts = cls(bytes(data[20:at]), entries, blobs, major, minor, flags)
        if len(data) >= end + 24 and data[-16:-8] == ALPHA_TAG:
            (table_at,) = struct.unpack_from("<Q", data, len(data) - 8)
            n, _ = INDEX_HEAD.unpack_from(data, table_at)
            parts.alpha, parts.alpha_blobs = _parse_entries(data, table_at + 8, n, ALPHA_ENTRY,
                                                            lambda t: (t[0], t[1], 0, 0))
            parts.tail = bytes(data[end:min([e.offset for e in parts.alpha] + [table_at])])
            for e in parts.alpha:
                e.offset = e.length = 0
        else:
            parts.tail = bytes(data[end:])
        return parts

    def layout(self) -> tuple[bytes, dict]:
        """``(file bytes, {"hsize", "index_at", "k", "chunks_at", "alpha_at"})``."""
        h = self.header_raw
        index_at = 20 + len(h)
        chunks_at = index_at + 8 + 24 * len(self.entries)
        placed, body = _place(self.entries, self.blobs, chunks_at)
        data = bytearray(PREFIX.pack(MAGIC, self.major, self.minor, self.flags,
                                     len(h) if self.header_size_field is None else self.header_size_field,
                                     crc32(h) if self.fix_header_crc else crc32(h) ^ 1))
        data += h + b"\0" * (8 + 24 * len(self.entries)) + body + self.tail
        alpha_at = None
        if self.alpha is not None:
            a_placed, a_body = _place(self.alpha, self.alpha_blobs, len(data))
            data += a_body
            alpha_at = len(data)
            data += b"\0" * (8 + 16 * len(self.alpha)) + self.alpha_tag[:8].ljust(8, b"\0")
            data += struct.pack("<Q", (alpha_at + self.alpha_at_delta) & (2**64 - 1))
        rows = _rows(self.entries, placed, self.blobs, data, self.fix_chunk_crc)
        table = b"".join(ENTRY.pack(off, length, crc, count & 0xFFFFFFFF, res & 0xFFFFFFFF)
                         for off, length, crc, count, res in rows)
        icrc = crc32(table) if self.fix_index_crc else crc32(table) ^ 1
        k = len(rows) if self.k_field is None else self.k_field
        data[index_at:index_at + 8 + len(table)] = INDEX_HEAD.pack(k & 0xFFFFFFFF, icrc) + table
        if self.alpha is not None:
            rows = _rows(self.alpha, a_placed, self.alpha_blobs, data, True)
            table = b"".join(ALPHA_ENTRY.pack(off, length, crc) for off, length, crc, _, _ in rows)
            acrc = crc32(table) if self.fix_alpha_crc else crc32(table) ^ 1
            k = len(rows) if self.alpha_k_field is None else self.alpha_k_field
            data[alpha_at:alpha_at + 8 + len(table)] = INDEX_HEAD.pack(k & 0xFFFFFFFF, acrc) + table
        return bytes(data), {"hsize": len(h), "index_at": index_at, "k": len(self.entries), "chunks_at": chunks_at,
                             "alpha_at": alpha_at}

    def pack(self) -> bytes:
        return self.layout()[0]


def _parse_entries(data, at, k, struct_, fields):
    """Entries of a table at ``at`` (``fields(row) = (offset, length, count, reserved)``), with the
    blobs they point at (one blob for entries pointing at the same bytes)."""
    entries, blobs, where = [], [], {}
    for i in range(k):
        off, length, count, res = fields(struct_.unpack_from(data, at + struct_.size * i))
        if (off, length) not in where:
            where[(off, length)] = len(blobs)
            blobs.append(bytes(data[off:off + length]))
        entries.append(Entry(count, where[(off, length)], offset=off, length=length, reserved=res))
    return entries, blobs


def _place(entries, blobs, pos):
    """Offsets of the blobs the entries use, laid out from ``pos`` in order of first use."""
    placed, order = {}, []
    for e in entries:
        if e.ref is not None and e.ref not in placed:
            placed[e.ref] = pos
            order.append(e.ref)
            pos += len(blobs[e.ref])
    return placed, b"".join(blobs[r] for r in order)


def _rows(entries, placed, blobs, data, fix):
    """``(offset, length, crc, count, reserved)`` per entry: a blob's place and CRC, or a literal
    offset and length with the CRC of what lies there (where it lies inside the file)."""
    rows = []
    for e in entries:
        if e.ref is not None:
            off, length = placed[e.ref], len(blobs[e.ref])
            crc = crc32(blobs[e.ref]) if fix and not e.keep_crc else e.crc
        else:
            off, length, crc = e.offset, e.length, e.crc
            if fix and not e.keep_crc and off + length <= len(data):
                crc = crc32(data[off:off + length])
        rows.append((off & (2**64 - 1), length & 0xFFFFFFFF, crc & 0xFFFFFFFF, e.count, e.reserved))
    return rows


def check_crcs(data: bytes) -> list[str]:
    """The CRCs of a file that do not hold (header, index, each chunk inside the file); a file
    too broken to find them in gives ``["layout"]``."""
    try:
        _, _, _, _, hsize, hcrc = PREFIX.unpack_from(data)
        at = 20 + hsize
        k, icrc = INDEX_HEAD.unpack_from(data, at)
        table = data[at + 8:at + 8 + 24 * k]
        if len(table) != 24 * k:
            return ["layout"]
    except struct.error:
        return ["layout"]
    bad = [] if crc32(data[20:at]) == hcrc else ["header"]
    if crc32(table) != icrc:
        bad.append("index")
    for i in range(k):
        off, length, crc, _, _ = ENTRY.unpack_from(table, 24 * i)
        if off + length <= len(data) and crc32(data[off:off + length]) != crc:
            bad.append(f"chunk {i}")
    if len(data) >= 16 and data[-16:-8] == ALPHA_TAG:
        (at,) = struct.unpack_from("<Q", data, len(data) - 8)
        try:
            n, acrc = INDEX_HEAD.unpack_from(data, at)
        except struct.error:
            return bad + ["alpha layout"]
        table = data[at + 8:at + 8 + 16 * n]
        if crc32(table) != acrc:
            bad.append("alpha table")
        for i in range(len(table) // 16):
            off, length, crc = ALPHA_ENTRY.unpack_from(table, 16 * i)
            if off + length <= len(data) and crc32(data[off:off + length]) != crc:
                bad.append(f"alpha chunk {i}")
    return bad


def fix_index_crc(data: bytearray, info: dict):
    """Recompute the index CRC of a laid-out file after its table bytes were edited."""
    a = info["index_at"]
    data[a + 4:a + 8] = struct.pack("<I", crc32(bytes(data[a + 8:a + 8 + 24 * info["k"]])))


# ------------------------------------------------------------------------------ seed corpus
CORPUS_VERSION = 4  # 4: format 4.0 seeds


@dataclass
class SeedSpec:
    name: str
    source: str  # a file under DATA
    box: tuple  # x, y, w, h crop
    mode: str  # PIL mode after conversion: L, LA, RGB, RGBA
    depth: int
    levels: int
    progressive: bool
    tile: int
    gaussians: int
    metadata: dict = field(default_factory=dict)


SEEDS = [
    SeedSpec("rgb8_l1_t64", "kodak/kodim01.png", (200, 100, 160, 128), "RGB", 8, 1, False, 64, 250),
    SeedSpec("rgb8_l2_t32", "kodak/kodim05.png", (300, 200, 96, 96), "RGB", 8, 2, False, 32, 200),
    SeedSpec("rgb8_prog_t64", "kodak/kodim23.png", (250, 150, 200, 150), "RGB", 8, 2, True, 64, 300),
    SeedSpec("rgba8_l2_t48", "medium/aerial_uscsipi_2_2_01.png", (400, 400, 144, 96), "RGBA", 8, 2, False, 48, 200),
    SeedSpec("grey8_l1_t64", "large/photo_ici_cathedral_gray8.png", (800, 1200, 160, 120), "L", 8, 1, False, 64,
             200, {"fuzz": "seed", "list": [1, 2, 3]}),
    SeedSpec("greya8_prog_t32", "large/photo_ici_cathedral_gray8.png", (1000, 1500, 128, 96), "LA", 8, 2, True, 32,
             200),
    SeedSpec("bilevel8_l2_t128", "large/doc_typewriter_bilevel.png", (1200, 900, 200, 150), "L", 8, 2, False, 128,
             250),
    SeedSpec("histo8_l2_t256", "large/histo_openslide_CMU-1-Small-Region_HE.png", (900, 1300, 256, 256), "RGB", 8,
             2, False, 256, 400),
    SeedSpec("aerial8_l1_strip", "medium/aerial_uscsipi_2_2_04.png", (100, 500, 300, 100), "RGB", 8, 1, False, 64,
             200),
    SeedSpec("sat8_l2_t16", "large/sat_nasa_bluemarble_day_5400x2700.jpg", (2000, 800, 64, 48), "RGB", 8, 2, False,
             16, 120),
    SeedSpec("rgb16_l1_t64", "kodak/kodim13.png", (100, 100, 128, 128), "RGB", 16, 1, False, 64, 200),
    SeedSpec("grey16_l2_t64", "medium/histo_visium_mouse_brain_coronal_HE.png", (700, 800, 160, 128), "L", 16, 2,
             False, 64, 200),
    SeedSpec("rgba16_prog_t32", "medium/micro_vectra_multiplexIF_3ch.png", (800, 600, 128, 128), "RGBA", 16, 2,
             True, 32, 250),
    SeedSpec("greya16_l1_t64", "medium/photo_wiki_006.png", (500, 300, 128, 96), "LA", 16, 1, False, 64, 150),
    SeedSpec("rgb16_prog_t64", "large/photo_unsplash_janice_gill.jpg", (900, 900, 192, 128), "RGB", 16, 2, True,
             64, 300),
    SeedSpec("tiny8_17x9", "kodak/kodim03.png", (300, 300, 17, 9), "L", 8, 1, False, 16, 20),
]


def seed_image(spec: SeedSpec) -> np.ndarray:
    """The crop as ``[h, w, C]`` uint8/uint16: alpha is a smooth ramp (real crops have none); a 16-bit
    image is the 8-bit one times 257 plus low-order noise, so that every bit of the samples varies.
    Synthetic (gradients, discs and noise) where the data directory is missing."""
    x, y, w, h = spec.box
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    path = DATA / spec.source
    if path.is_file():
        from PIL import Image

        with Image.open(path) as im:
            base = np.asarray(im.convert("RGB").crop((x, y, x + w, y + h)), np.float64)
    else:
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        base = np.stack([200 * xx + 30, 180 * yy + 40, 120 * (1 + np.sin(9 * xx * yy)) + 5], -1)
        for _ in range(6):
            cx, cy, r = rng.uniform(0, 1, 3)
            base[(xx - cx) ** 2 + (yy - cy) ** 2 < (0.2 * r) ** 2] = rng.uniform(0, 255, 3)
        base = np.clip(base + rng.normal(0, 6, base.shape), 0, 255)
    grey = base @ np.array([0.299, 0.587, 0.114])
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = 255.0 * (0.25 + 0.75 * (xx + yy) / max(w + h - 2, 1))
    chans = {"L": [grey], "LA": [grey, alpha], "RGB": list(np.moveaxis(base, -1, 0)),
             "RGBA": list(np.moveaxis(base, -1, 0)) + [alpha]}[spec.mode]
    a = np.stack(chans, -1)
    if spec.depth == 16:
        return np.clip(np.round(a * 257 + rng.uniform(-128, 128, a.shape)), 0, 65535).astype(np.uint16)
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def build_corpus(workdir: Path, specs=SEEDS, log=print) -> list[Path]:
    """Encode the seed files once into ``workdir/seeds-vN`` (kept: later runs reuse them)."""
    import ligcodec
    from ligcodec.fit.tiles import FitConfig

    d = Path(workdir) / f"seeds-v{CORPUS_VERSION}"
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for spec in specs:
        p = d / f"{spec.name}.lig"
        if not p.is_file():
            t = time.perf_counter()
            tmp = d / f"{spec.name}.{os.getpid()}.tmp.lig"  # concurrent builders do not collide
            ligcodec.encode(seed_image(spec), tmp, gaussians=spec.gaussians, effort=1, workers=1, seed=1,
                            config=FitConfig(tile=spec.tile, levels=spec.levels), progressive=spec.progressive,
                            metadata=spec.metadata or None)
            tmp.replace(p)
            log(f"  seed {p.name}: {p.stat().st_size} bytes in {time.perf_counter() - t:.1f} s")
        out.append(p)
    return out


# --------------------------------------------------------------------------- forged bombs
def _bomb_from_seed(seed: bytes, edit) -> bytes:
    parts = LigParts.parse(seed)
    h = parts.header
    edit(parts, h)
    parts.set_header(h)
    return parts.pack()


def _shared(header: dict, blob: bytes, count: int) -> bytes:
    """Every index entry points at the same chunk."""
    nx = math.ceil(header["width"] / header["tile"])
    ny = math.ceil(header["height"] / header["tile"])
    k = header["levels"] * nx * ny
    return LigParts(msgpack.packb(header, use_bin_type=True), [Entry(count, 0) for _ in range(k)], [blob]).pack()


def _one_gaussian(q, chol_step=(1.0, 1.0, 1.0), colour=10, size=64, channels=3, pos=None) -> bytes:
    """A ``size`` x ``size`` image of one tile holding one Gaussian of indices ``q = (q0, q1, q2)``."""
    from ligcodec.codec.tile_writer import encode_chunk

    c = pos if pos is not None else size // 2
    blob = encode_chunk(np.array([c]), np.array([c]), np.array([q], np.int64),
                        np.full((1, channels), colour, np.int64))
    return LigParts.build(header_dict(size, size, channels, size, pos_step=1.0, chol_step=chol_step),
                          [(blob, 1)]).pack()


#: Names of :func:`forge_bombs`' files (tests parametrise over them without forging).
BOMB_NAMES = (
    "shared_chunk_index_16k", "huge_tile_2p24", "giant_dims_2p24", "covering_gaussians_4096", "many_tiles_shared",
    "max_levels_shared", "table_build_bomb", "uniform_wide_streams", "covering_gaussians_padded",
    "dense_tile_padded", "table_build_distinct", "all_const_streams", "chol_l11_44_shear", "chol_l11_44_noshear",
    "chol_l11_100_shear", "chol_l22_44_shear", "chol_l11_710", "chol_l22_710_noshear", "chol_l11_neg745",
    "chol_both_neg44_shear", "chol_max_symbols", "far_means", "huge_colour", "chol_step0_3", "chol_step0_15",
    "chol_step1_1e6", "chol_step2_15", "pos_step_1e300", "pos_step_denormal", "colour_step_1e300",
    "colour_step_1e38", "level0_scale_tiny", "level0_scale_near1", "real_chunks_huge_image", "alpha_zlib_bomb",
    "alpha_class_maps_4096", "alpha_mask_tile_2p24",
)


def forge_bombs(seeds: dict) -> dict:
    """``{name: (bytes, what is forged)}``. ``seeds``: ``{seed name: bytes}`` of the corpus (the
    bombs that edit a real file use ``rgb8_l1_t64``, ``rgb8_prog_t64`` and ``sat8_l2_t16``)."""
    from ligcodec.codec.tile_writer import encode_chunk

    out = {}

    def add(name, what, data):
        out[name] = (data, what)

    # --- claims the bytes cannot back: allocation and time bombs
    add("shared_chunk_index_16k", "16384^2 px, 4,096 index entries all pointing at one constant chunk of "
        "65,536 Gaussians (2^28 Gaussians from ~100 KB)",
        _shared(header_dict(16384, 16384, 1, 256), const_chunk(1, 10, 10, (1, 0, 1), 5), 65536))
    add("huge_tile_2p24", "one 4096-px tile claiming 2^24 Gaussians, all streams constant (a few hundred bytes)",
        LigParts.build(header_dict(4096, 4096, 3, 4096),
                       [(const_chunk(3, 100, 100, (10, 0, 10), 3), 1 << 24)]).pack())
    add("giant_dims_2p24", "2^24 x 2^24 px in one 2^24-px tile of 2^24 constant Gaussians",
        LigParts.build(header_dict(1 << 24, 1 << 24, 1, 1 << 24), [(const_chunk(1, 0, 0, (20, 0, 20), 3), 1 << 24)]
                       ).pack())
    add("covering_gaussians_4096", "one 4096-px tile of 65,536 identical Gaussians of sigma ~1500 px: each "
        "covers the whole tile (render time ~ Gaussians x pixels)",
        LigParts.build(header_dict(4096, 4096, 3, 4096, pos_step=1.0, chol_step=(0.01, 0.01, 0.01)),
                       [(const_chunk(3, 2048, 2048, (731, 0, 731), 1), 65536)]).pack())
    add("many_tiles_shared", "3200^2 px of 16-px tiles: 40,000 entries share one chunk of 256 constant Gaussians",
        _shared(header_dict(3200, 3200, 3, 16), const_chunk(3, 8, 8, (5, 0, 5), 2), 256))
    add("max_levels_shared", "4096^2 px, 8 levels of 64-px tiles: 32,768 entries share one chunk of 4,096 "
        "Gaussians",
        _shared(header_dict(4096, 4096, 1, 64, levels=8), const_chunk(1, 32, 32, (10, 0, 10), 1), 4096))
    wide = [[0, 3, 0, 0]] + [[0, TABLE_MAX - 1, 0, 255]] * 8  # 65,536-symbol tables in every stream
    add("table_build_bomb", "16384^2 px RGBA, 4,096 entries share one 1-Gaussian chunk whose every stream has a "
        "65,536-symbol geometric table (tables cost O(symbols) to build, per chunk)",
        _shared(header_dict(16384, 16384, 4, 256), write_table(wide) + struct.pack("<I", 0x9E3779B9), 1))
    add("uniform_wide_streams", "one 256-px tile of 65,536 Gaussians, every stream uniform over "
        "[-MAX_SYMBOL, MAX_SYMBOL] and no ANS word: all symbols decode to -MAX_SYMBOL",
        LigParts.build(header_dict(256, 256, 3, 256), [(write_table([[-MAX_SYMBOL, MAX_SYMBOL, 0, 0]] * 8), 65536)]
                       ).pack())
    # --- the same claims backed by one byte per Gaussian (a reader may bound Gaussians by bytes):
    # padding words after the table are never read (the spec does not require every word used)
    add("covering_gaussians_padded", "one 4096-px tile of 1,000,000 identical Gaussians of sigma ~1500 px "
        "(each covers the tile) on its top edge, constant streams padded to one byte per Gaussian (~1 MB)",
        LigParts.build(header_dict(4096, 4096, 3, 4096, pos_step=1.0, chol_step=(0.01, 0.01, 0.01)),
                       [(padded(const_chunk(3, 2048, 0, (731, 0, 731), 1), 1_000_000), 1_000_000)]).pack())
    add("dense_tile_padded", "one 1024-px tile of 1,000,000 small Gaussians (constant streams, one byte each)",
        LigParts.build(header_dict(1024, 1024, 4, 1024, pos_step=1.0, chol_step=(0.1, 0.1, 0.1)),
                       [(padded(const_chunk(4, 512, 0, (5, 0, 5), 1), 1_000_000), 1_000_000)]).pack())
    tbl = write_table(wide[:8]) + struct.pack("<I", 0x9E3779B9)  # RGB: 8 streams
    add("table_build_distinct", "16384 x 12800 px of 128-px tiles: 12,800 distinct 1-Gaussian chunks whose 7 "
        "coded streams each have a 65,536-symbol table (~1 MB; ~6e9 table entries to build)",
        LigParts.build(header_dict(16384, 12800, 3, 128), [(tbl, 1)] * 12800).pack())
    seed = seeds["rgb8_l1_t64"]

    def all_const(parts, h):
        n = h["tile"] ** 2
        parts.blobs = [const_chunk(h["channels"], 5, 5, (10, 0, 10), 3) for _ in parts.blobs]
        for e in parts.entries:
            e.count = n

    add("all_const_streams", "a real file whose every chunk is a constant stream table claiming tile^2 Gaussians",
        _bomb_from_seed(seed, all_const))

    # --- Gaussians whose covariance overflows, underflows or is NaN (the render kernel's inputs)
    for name, q, what in [
        ("chol_l11_44_shear", (44, 1, 0), "log l11 = 44 with shear l21/l22 = 1"),
        ("chol_l11_44_noshear", (44, 0, 0), "log l11 = 44 without shear"),
        ("chol_l11_100_shear", (100, 5, 3), "log l11 = 100, l21/l22 = 5"),
        ("chol_l22_44_shear", (0, 3, 44), "log l22 = 44, l21/l22 = 3"),
        ("chol_l11_710", (710, 1, 0), "log l11 = 710: exp overflows to inf"),
        ("chol_l22_710_noshear", (0, 0, 710), "log l22 = 710, l21/l22 = 0: l21 = 0 x inf = NaN"),
        ("chol_l11_neg745", (-745, 1, 0), "log l11 = -745: exp underflows to 0 (singular covariance)"),
        ("chol_both_neg44_shear", (-44, -7, -44), "log l11 = log l22 = -44 with shear: det underflows"),
        ("chol_max_symbols", (MAX_SYMBOL, MAX_SYMBOL, MAX_SYMBOL), "every Cholesky index at MAX_SYMBOL"),
    ]:
        add(name, f"one Gaussian, {what}", _one_gaussian(q))
    add("far_means", "one Gaussian at qx = qy = MAX_SYMBOL with pos_step 1e300 (mean = inf)",
        LigParts.build(header_dict(64, 64, 3, 64, pos_step=1e300),
                       [(encode_chunk(np.array([MAX_SYMBOL]), np.array([-MAX_SYMBOL]), np.zeros((1, 3), np.int64),
                                      np.full((1, 3), 9, np.int64)), 1)]).pack())
    add("huge_colour", "one Gaussian with colour index MAX_SYMBOL and colour_step 1e300 (colour = inf)",
        LigParts.build(header_dict(64, 64, 3, 64, colour_step=1e300),
                       [(encode_chunk(np.array([32]), np.array([32]), np.zeros((1, 3), np.int64),
                                      np.array([[MAX_SYMBOL, -MAX_SYMBOL, 1]])), 1)]).pack())

    # --- a real file with one header value changed, CRC-valid
    def header_edit(key, value, index=None):
        def edit(parts, h):
            if index is None:
                h[key] = value
            else:
                h[key][index] = value
        return edit

    for name, key, value, index, what in [
        ("chol_step0_3", "chol_step", 3.0, 0, "chol_step[0] = 3"),
        ("chol_step0_15", "chol_step", 15.0, 0, "chol_step[0] = 15"),
        ("chol_step1_1e6", "chol_step", 1e6, 1, "chol_step[1] = 1e6 (shear)"),
        ("chol_step2_15", "chol_step", 15.0, 2, "chol_step[2] = 15"),
        ("pos_step_1e300", "pos_step", 1e300, None, "pos_step = 1e300"),
        ("pos_step_denormal", "pos_step", 5e-324, None, "pos_step = 5e-324"),
        ("colour_step_1e300", "colour_step", [1e300] * 3, 0, "colour_step[0] = 1e300 (inf colours)"),
        ("colour_step_1e38", "colour_step", [4e38] * 3, 0, "colour_step[0] = 4e38 (float32 overflow)"),
    ]:
        add(name, f"a real RGB file with {what}, CRC-valid", _bomb_from_seed(seed, header_edit(key, value, index)))
    prog = seeds["rgb8_prog_t64"]
    add("level0_scale_tiny", "a progressive file with level0_scale = 5e-324",
        _bomb_from_seed(prog, header_edit("level0_scale", 5e-324)))
    add("level0_scale_near1", "a progressive file with level0_scale = 1 - 2^-53",
        _bomb_from_seed(prog, header_edit("level0_scale", 1 - 2.0**-53)))

    def grow(parts, h):  # the 16-px tiles of a real file claimed by a 2^24-px image: K must still match
        h["width"] = h["height"] = 1 << 24
        h["tile"] = 1 << 22
        old, n = parts.entries, len(parts.entries) // h["levels"]
        parts.entries = []
        for lvl in range(h["levels"]):  # each entry its own copy of a chunk of its level (no overlaps)
            for t in range(16):
                e = old[lvl * n + t % n]
                parts.blobs.append(parts.blobs[e.ref])
                parts.entries.append(Entry(e.count, len(parts.blobs) - 1))

    add("real_chunks_huge_image", "a real file's chunks re-used in a 2^24 x 2^24 image of 2^22-px tiles",
        _bomb_from_seed(seeds["sat8_l2_t16"], grow))

    # --- the alpha mask (format 2.2, section 8)
    def alpha_file(size, tile, masks, height=None, **kw):
        height = height or size
        tiles = math.ceil(size / tile) * math.ceil(height / tile)
        chunks = [(encode_chunk(np.array([t % 7]), np.array([0]), np.array([[20, 0, 20]]), np.array([[5, 9]])), 1)
                  for t in range(tiles)]  # distinct chunks, one Gaussian each (no overlap)
        return LigParts.build(header_dict(size, height, 2, tile, pos_step=1.0, alpha_mask=True), chunks, masks, **kw)

    add("alpha_zlib_bomb", "a 4096-px grey+alpha tile whose alpha mask is a 0.9 MB zlib stream of 940 MB "
        "(a reader must stop at the tile's w x h + 1 bytes)", alpha_file(4096, 4096, [_zlib_bomb()]).pack())
    sq = (np.arange(4096) // 64 % 3).astype(np.uint8)
    classes = ((sq[:, None] + sq[None, :]) % 3).tobytes()  # 64-px squares of the 3 classes
    cmap = bytes([3]) + zlib.compress(classes, 6)
    add("alpha_class_maps_4096", "16384 x 8192 px grey+alpha of 4096-px tiles, every tile's alpha mask a class "
        "map (64-px squares of transparent / opaque / partial), distinct chunks (~{} KB in all): a valid file whose "
        "masks cover 16.7 Mpx each".format(8 * len(cmap) // 1024),
        alpha_file(16384, 4096, [cmap] * 8, height=8192).pack())
    add("alpha_mask_tile_2p24", "a 2^24-px grey+alpha tile whose alpha mask is a class map (zlib) of a 64 x 64 "
        "tile: a reader must refuse it without allocating 2^48 bytes",
        alpha_file(1 << 24, 1 << 24, [bytes([3]) + zlib.compress(bytes([2]) * 4096)]).pack())
    return out


def _zlib_bomb(megabytes: int = 940) -> bytes:
    """``3`` + zlib of ``megabytes`` MB of zeros (~1 KB a MB), cached: it takes seconds to make."""
    cache = DEFAULT_WORKDIR / "cache" / f"zlib-zeros-{megabytes}.bin"
    if cache.is_file():
        return cache.read_bytes()
    c, out, block = zlib.compressobj(6), bytearray([3]), bytes(1 << 20)
    for _ in range(megabytes):
        out += c.compress(block)
    out += c.flush()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(out)
    tmp.replace(cache)
    return bytes(out)


# ------------------------------------------------------------------------------- mutators
INTS = [0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 255, 256, 4095, 4096, 65535, 65536, 2**24 - 1, 2**24,
        2**24 + 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, -1, -2**31, -2**63]
FLOATS = [0.0, -0.0, -1.0, 5e-324, 1e-300, 1e-30, 1e-6, 1e-3, 0.25, 0.5, 1 - 2**-53, 1.0, 2.0, 3.0, 15.0, 44.0,
          100.0, 1e6, 1e30, 3.5e38, 1e300, 1.7976931348623157e308, math.inf, -math.inf, math.nan]
COUNTS = [0, 1, 2, 3, 255, 256, 4095, 4096, 65535, 65536, 65537, 2**20, 2**24 - 1, 2**24, 2**24 + 1, 2**31,
          2**32 - 1]
WRONG_TYPES = [None, True, "8", b"\x08", [], [1], {}, {"a": 1}, 1.5]
INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0x81, 0xFE, 0xFF, 0x10, 0x20, 0x40, 0xC0, 0xC3, 0xCB, 0xD3, 0xDF]
INTERESTING_WORDS = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFF, 0x800000,
                     0xFFFFFF, 0x1000000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


class Ctx:
    """What a mutation may use: the seeds (bytes and parsed), a random generator, and the
    symbols of the seeds' chunks (decoded lazily, from pristine seed bytes only)."""

    def __init__(self, seeds: list[tuple[str, bytes]], rng: random.Random):
        self.seeds = seeds
        self.rng = rng
        self._parsed = {}

    def parsed(self, i: int) -> LigParts:
        if i not in self._parsed:
            self._parsed[i] = LigParts.parse(self.seeds[i][1])
        return copy.deepcopy(self._parsed[i])


_SYMBOLS: dict = {}


def seed_symbols(seed: bytes, blob_index: int):
    """``(qx, qy, qc, qk)`` of a seed's blob (cached; the seeds are valid files)."""
    key = (hashlib.blake2b(seed, digest_size=8).digest(), blob_index)
    if key not in _SYMBOLS:
        from ligcodec.codec.tile import chunk_layout, decode_chunk

        parts = LigParts.parse(seed)
        e = next(e for e in parts.entries if e.ref == blob_index)
        _SYMBOLS[key] = decode_chunk(parts.blobs[blob_index], e.count, parts.header["channels"], "seed",
                                     chunk_layout(parts.major, parts.minor))
    return _SYMBOLS[key]


def _pick_entry(rng, parts):
    return rng.randrange(len(parts.entries)) if parts.entries else None


def _num_like(rng, v):
    """A value for a header number: boundary values, a scaled current value, or a wrong type."""
    r = rng.random()
    if r < 0.08:
        return rng.choice(WRONG_TYPES)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return rng.choice(INTS + FLOATS)
    if isinstance(v, int):
        if r < 0.6:
            return rng.choice(INTS)
        if r < 0.7:
            return float(v)
        return max(-2**63, min(2**64 - 1, rng.choice([v + 1, v - 1, 2 * v, v // 2, v * 16, -v])))
    if r < 0.6:
        return rng.choice(FLOATS)
    return v * rng.choice([0.5, 2.0, 10.0, 0.1, 1e3, 1e-3, 1e10, -1.0, 1 + 2**-52])


def _h_value(rng, parts, ctx):
    """A header value replaced (re-packed msgpack, CRC and chunk offsets fixed)."""
    h = parts.header
    if h is None:
        return None
    key = rng.choice(REQUIRED + ("level0_scale", "level0_scale", "encoder", "metadata"))
    v = h.get(key)
    if key == "chol_step" and isinstance(v, list) and v and rng.random() < 0.8:
        i = rng.randrange(len(v))
        v[i] = rng.choice([3.0, 15.0, 44.0, 0.5] + FLOATS) if rng.random() < 0.7 else _num_like(rng, v[i])
        desc = f"chol_step[{i}] = {v[i]!r}"
    elif key == "colour_step" and isinstance(v, list) and v and rng.random() < 0.8:
        lvl = rng.randrange(len(v))
        if isinstance(v[lvl], list) and v[lvl] and rng.random() < 0.8:
            c = rng.randrange(len(v[lvl]))
            v[lvl][c] = _num_like(rng, v[lvl][c])
            desc = f"colour_step[{lvl}][{c}] = {v[lvl][c]!r}"
        else:
            v[lvl] = rng.choice([[], [1.0], [1.0] * 5, 1.0, None])
            desc = f"colour_step[{lvl}] = {v[lvl]!r}"
    elif key == "colour_transform":
        v = rng.choice(["ycocg", "none", "YCoCg", "", "rgb", 0, None])
        desc = f"colour_transform = {v!r}"
    elif key in ("encoder", "metadata"):
        v = rng.choice([None, 0, [], "x" * 100, {"bits_per_gaussian": [1, 2]}, {"bits_per_gaussian": [{"x": "y"}]},
                        {"bits_per_gaussian": "abc"}, {"fit": None, "gaussians": -1}, {"a": {"b": {"c": [[[[]]]]}}},
                        {"": b"\xff" * 10}])
        desc = f"{key} = {str(v)[:40]}"
    elif key in ("chol_step", "colour_step"):
        v = rng.choice([[], [1.0], [1.0, 1.0], [1.0] * 4, [[1.0]], "abc", None, 1.0])
        desc = f"{key} = {v!r}"
    else:
        v = _num_like(rng, v if v is not None else 0.5)
        desc = f"{key} = {v!r}"
    h[key] = v
    parts.set_header(h)
    return "h_value " + desc


def _resize_entries(parts, k):
    """Make the index ``k`` entries long by repeating or dropping entries (keeps K consistent)."""
    if not parts.entries or k > 45000:
        return False
    old = parts.entries
    parts.entries = [copy.copy(old[i % len(old)]) for i in range(k)]
    return True


def _h_regrid(rng, parts, ctx):
    """Width, height and tile changed together, and the index resized to match ``levels x tiles``
    so the mutant gets past the K check (counts stay: a smaller tile may make them too many)."""
    h = parts.header
    if h is None or not all(isinstance(h.get(k), int) for k in ("width", "height", "tile", "levels")):
        return None
    tile = rng.choice([16, 17, 31, 32, 64, 100, 256, 4096, 2**20, 2**24, h["tile"]])
    w = rng.choice([1, 2, 15, 16, 17, 255, 1000, 4096, 65536, 2**24, h["width"], h["width"] * 2, h["width"] // 3 + 1])
    ht = rng.choice([1, 2, 15, 16, 17, 255, 1000, 4096, 65536, 2**24, h["height"], h["height"] * 3])
    nx, ny = math.ceil(w / tile), math.ceil(ht / tile)
    if h["levels"] * nx * ny > 45000:
        return None
    h.update(width=w, height=ht, tile=tile)
    parts.set_header(h)
    _resize_entries(parts, h["levels"] * nx * ny)
    return f"h_regrid {w}x{ht} tile {tile}"


def _h_levels(rng, parts, ctx):
    """``levels`` changed, with ``colour_step`` and the index resized to match."""
    h = parts.header
    if h is None or not isinstance(h.get("levels"), int) or not isinstance(h.get("colour_step"), list):
        return None
    old = max(1, h["levels"])
    lv = rng.choice([1, 2, 3, 8, 9, 0])
    h["levels"] = lv
    cs = h["colour_step"]
    h["colour_step"] = [cs[i % len(cs)] for i in range(lv)] if cs else []
    if lv < 2 and rng.random() < 0.7:
        h.pop("level0_scale", None)
    parts.set_header(h)
    _resize_entries(parts, len(parts.entries) // old * max(lv, 0))
    return f"h_levels {lv}"


def _h_channels(rng, parts, ctx):
    """``channels`` changed, with ``colour_step`` and ``colour_transform`` made consistent with it
    (the chunks keep their old stream count)."""
    h = parts.header
    if h is None or not isinstance(h.get("colour_step"), list) or not isinstance(h.get("levels"), int):
        return None
    if not 0 <= h["levels"] <= 64:  # an earlier edit made levels huge: a list that long is no test
        return None
    c = rng.choice([1, 2, 3, 4, 5, 0])
    h["channels"] = c
    h["colour_step"] = [[0.02] * c for _ in range(max(h["levels"], 0))]
    h["colour_transform"] = "ycocg" if c >= 3 and rng.random() < 0.7 else "none"
    parts.set_header(h)
    return f"h_channels {c}"


def _h_delete(rng, parts, ctx):
    h = parts.header
    if not h:
        return None
    key = rng.choice(sorted(h, key=str))
    del h[key]
    parts.set_header(h)
    return f"h_delete {key}"


def _h_extra(rng, parts, ctx):
    """An unknown key, a non-string key, or ``level0_scale`` where there was none."""
    h = parts.header
    if h is None:
        return None
    choice = rng.randrange(3)
    if choice == 0:
        h["zz_unknown"] = rng.choice([1, "x" * 1000, [1] * 100, {"a": None}])
    elif choice == 1:
        h[7] = "int key"
    else:
        h["level0_scale"] = rng.choice([0.25, 0.5, 0.125, 1e-9, 0.999])
    parts.set_header(h)
    return f"h_extra {choice}"


def _h_bytes(rng, parts, ctx):
    """Raw edits of the msgpack bytes, the header CRC fixed."""
    h = bytearray(parts.header_raw)
    if not h:
        return None
    descs = []
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(h))
        r = rng.random()
        if r < 0.4:
            h[i] ^= 1 << rng.randrange(8)
            descs.append(f"flip@{i}")
        elif r < 0.8:
            h[i] = rng.choice(INTERESTING_BYTES)
            descs.append(f"set@{i}")
        elif r < 0.9:
            del h[i:i + rng.randint(1, 8)]
            descs.append(f"del@{i}")
        else:
            h[i:i] = bytes(rng.choice(INTERESTING_BYTES) for _ in range(rng.randint(1, 8)))
            descs.append(f"ins@{i}")
    parts.header_raw = bytes(h) or b"\xc0"
    return "h_bytes " + ",".join(descs)


def _prefix(rng, parts, ctx):
    """Version, flags or the header length field (no CRC covers the prefix)."""
    r = rng.randrange(4)
    if r == 0:
        parts.major = rng.choice([0, 1, 2, 3, 5, 255])  # 2, 3: older chunk layouts read these chunks amiss
    elif r == 1:
        parts.minor = rng.choice([0, 2, 255])
    elif r == 2:
        parts.flags = rng.choice([1, 0x8000, 0xFFFF])
    else:
        n = len(parts.header_raw)
        parts.header_size_field = rng.choice([0, 1, n - 1, n + 1, n + 8, 2**24, 2**24 + 1, 2**32 - 1])
    return f"prefix {r} major {parts.major} minor {parts.minor} flags {parts.flags} hsize {parts.header_size_field}"


def _i_count(rng, parts, ctx):
    """Gaussian counts of index entries set to boundary values."""
    if not parts.entries:
        return None
    h = parts.header or {}
    t = h.get("tile") if isinstance(h.get("tile"), int) else 64
    descs = []
    for _ in range(rng.choice([1, 1, 2, 5])):
        i = _pick_entry(rng, parts)
        e = parts.entries[i]
        e.count = rng.choice(COUNTS + [e.count + 1, max(e.count - 1, 0), 2 * e.count, t * t, t * t + 1, t * t - 1])
        descs.append(f"{i}:{e.count}")
    return "i_count " + ",".join(descs)


def _i_share(rng, parts, ctx):
    """Many entries point at one chunk (the shared-chunk bomb), its count kept or raised."""
    if not parts.entries:
        return None
    src = parts.entries[_pick_entry(rng, parts)]
    frac = rng.choice([1.0, 1.0, 0.5, 0.1])
    h = parts.header or {}
    t = h.get("tile") if isinstance(h.get("tile"), int) else 64
    count = rng.choice([src.count, src.count, t * t, min(t * t, MAX_COUNT)])
    n = 0
    for e in parts.entries:
        if rng.random() < frac:
            e.ref, e.count = src.ref, count
            n += 1
    return f"i_share blob {src.ref} count {count} x{n}"


def _i_offlen(rng, parts, ctx):
    """An entry's offset/length set literally (CRC of what lies there recomputed)."""
    if not parts.entries:
        return None
    i = _pick_entry(rng, parts)
    e = parts.entries[i]
    size = len(parts.pack())
    hs = 20 + len(parts.header_raw)
    e.offset = rng.choice([0, 8, 20, hs, hs + 8, size, size - 1, size - 4, size // 2, 2**32, 2**63, 2**64 - 1])
    e.length = rng.choice([0, 1, 3, 4, 5, 8, 16, 64, size, 2**31, 2**32 - 1, max(size - e.offset, 0)
                           if e.offset < size else 0])
    e.ref = None
    e.keep_crc = rng.random() < 0.1
    return f"i_offlen {i} offset {e.offset} length {e.length}"


def _i_shuffle(rng, parts, ctx):
    """Entries swapped (their counts with them, or not)."""
    if len(parts.entries) < 2:
        return None
    i, j = rng.sample(range(len(parts.entries)), 2)
    a, b = parts.entries[i], parts.entries[j]
    if rng.random() < 0.5:
        parts.entries[i], parts.entries[j] = b, a
    else:
        a.ref, b.ref = b.ref, a.ref
    return f"i_shuffle {i} {j}"


def _i_k(rng, parts, ctx):
    """The K field, or the number of entries, off by some."""
    if rng.random() < 0.5:
        parts.k_field = rng.choice([0, 1, len(parts.entries) - 1, len(parts.entries) + 1, 2**32 - 1, 2**31])
        return f"i_k field {parts.k_field}"
    if parts.entries and rng.random() < 0.5:
        del parts.entries[rng.randrange(len(parts.entries))]
        return "i_k drop entry"
    if parts.entries:
        parts.entries.append(copy.copy(rng.choice(parts.entries)))
    return "i_k extra entry"


def _i_reserved(rng, parts, ctx):
    if not parts.entries:
        return None
    e = parts.entries[_pick_entry(rng, parts)]
    e.reserved = rng.choice([1, 2**31, 2**32 - 1])
    return f"i_reserved {e.reserved}"


def _i_bad_crc(rng, parts, ctx):
    """One CRC left wrong on purpose (header, index or a chunk)."""
    r = rng.randrange(3)
    if r == 0:
        parts.fix_header_crc = False
    elif r == 1:
        parts.fix_index_crc = False
    elif parts.entries:
        e = parts.entries[_pick_entry(rng, parts)]
        e.keep_crc, e.crc = True, rng.getrandbits(32)
    return f"bad_crc {r}"


def _channels(parts):
    h = parts.header or {}
    c = h.get("channels")
    return c if isinstance(c, int) and 0 <= c <= 8 else 3


def _pick_blob(rng, parts):
    refs = sorted({e.ref for e in parts.entries if e.ref is not None})
    return rng.choice(refs) if refs else None


def _c_table(rng, parts, ctx):
    """A value of a chunk's stream table changed: range at +-MAX_SYMBOL and just past it, widths
    at TABLE_MAX, the scale byte, a constant stream; the ANS words kept."""
    b = _pick_blob(rng, parts)
    if b is None:
        return None
    t = read_table(parts.blobs[b], _channels(parts))
    if t is None:
        return None
    prefix, streams, end = t
    descs = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        s = rng.randrange(len(streams))
        lo, hi, loc, k = streams[s]
        r = rng.randrange(9)
        if r == 0:
            lo = rng.choice([-MAX_SYMBOL, -MAX_SYMBOL - 1, -2**27, lo - 1, lo + 1, hi])
        elif r == 1:
            hi = rng.choice([MAX_SYMBOL, MAX_SYMBOL + 1, 2**27, hi + 1, hi - 1, lo])
        elif r == 2:
            hi = lo + rng.choice([TABLE_MAX - 1, TABLE_MAX, TABLE_MAX + 1, 1, 2 * MAX_SYMBOL])
        elif r == 3:
            k = rng.choice([0, 1, 7, 8, 9, 128, 254, 255])
        elif r == 4:
            loc = rng.choice([lo, hi, (lo + hi) // 2])
        elif r == 5:
            lo = hi = loc = rng.choice([loc, 0, MAX_SYMBOL, -MAX_SYMBOL, 44, 100, 710])
        elif r == 6:
            off = rng.choice([44, 100, 710, -745, 1000, MAX_SYMBOL // 2])
            lo, hi, loc = lo + off, hi + off, loc + off
        elif r == 7:
            lo, hi = -MAX_SYMBOL, MAX_SYMBOL
        else:
            lo, hi, loc = lo * 1000, hi * 1000, loc * 1000
        streams[s] = [lo, hi, loc, k]
        descs.append(f"s{s}:[{lo},{hi}]@{loc}k{k}")
    parts.blobs[b] = write_table(streams, prefix) + parts.blobs[b][end:]
    return f"c_table blob {b} " + " ".join(descs)


def _c_bytes(rng, parts, ctx):
    """Bytes of a chunk edited (its CRC fixed): in the stream table or in the ANS words."""
    b = _pick_blob(rng, parts)
    if b is None or not parts.blobs[b]:
        return None
    d = bytearray(parts.blobs[b])
    descs = []
    for _ in range(rng.choice([1, 1, 2, 4])):
        i = rng.randrange(len(d)) if rng.random() < 0.5 else rng.randrange(min(len(d), 40))
        if rng.random() < 0.5:
            d[i] ^= 1 << rng.randrange(8)
        else:
            d[i] = rng.choice(INTERESTING_BYTES)
        descs.append(str(i))
    parts.blobs[b] = bytes(d)
    return f"c_bytes blob {b} @" + ",".join(descs)


def _c_resize(rng, parts, ctx):
    """A chunk cut or extended (its CRC fixed; offsets re-laid)."""
    b = _pick_blob(rng, parts)
    if b is None:
        return None
    d = parts.blobs[b]
    r = rng.randrange(4)
    if r == 0 and d:
        d = d[:rng.randrange(len(d))]
    elif r == 1:
        t = read_table(d, _channels(parts))
        d = d[:t[2]] if t else d[:1]
    elif r == 2:
        d = d + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 7)))
    else:
        d = d + struct.pack("<I", rng.choice(INTERESTING_WORDS)) * rng.randint(1, 64)
    parts.blobs[b] = d
    return f"c_resize blob {b} {r} -> {len(d)}"


def _c_words(rng, parts, ctx):
    """A chunk's ANS words replaced: none, zeros, 0xFFFFFFFF, random, a zero last word."""
    b = _pick_blob(rng, parts)
    if b is None:
        return None
    t = read_table(parts.blobs[b], _channels(parts))
    if t is None:
        return None
    n = rng.choice([0, 1, 2, 3, 16, 1000])
    r = rng.randrange(4)
    if r == 0:
        words = b"\0" * (4 * n)
    elif r == 1:
        words = b"\xff" * (4 * n)
    elif r == 2:
        words = bytes(rng.getrandbits(8) for _ in range(4 * n))
    else:
        words = bytes(rng.getrandbits(8) for _ in range(4 * n)) + b"\0\0\0\0"
    parts.blobs[b] = parts.blobs[b][:t[2]] + words
    return f"c_words blob {b} kind {r} n {n}"


def _c_const(rng, parts, ctx):
    """A chunk replaced by constant streams (no ANS word at all) claiming many Gaussians."""
    b = _pick_blob(rng, parts)
    if b is None:
        return None
    h = parts.header or {}
    t = h.get("tile") if isinstance(h.get("tile"), int) else 64
    q0 = rng.choice([0, 5, 20, 44, 100, 710, -745, MAX_SYMBOL])
    q = (q0, rng.choice([0, 1, -5]), rng.choice([0, 5, q0]))
    parts.blobs[b] = const_chunk(_channels(parts), rng.choice([0, 5, -3, MAX_SYMBOL]), rng.choice([0, 5, -MAX_SYMBOL]),
                                 q, rng.choice([1, 100, MAX_SYMBOL]))
    count = rng.choice([1, 1000, t * t, min(t * t, MAX_COUNT), 65536])
    for e in parts.entries:
        if e.ref == b:
            e.count = count
    return f"c_const blob {b} count {count} q0 {q0}"


def _c_foreign(rng, parts, ctx):
    """A chunk replaced by one from another seed (another channel count, steps, tile size)."""
    b = _pick_blob(rng, parts)
    if b is None:
        return None
    other = ctx.parsed(rng.randrange(len(ctx.seeds)))
    e2 = rng.choice(other.entries)
    parts.blobs[b] = other.blobs[e2.ref]
    for e in parts.entries:
        if e.ref == b:
            e.count = e2.count
    return f"c_foreign blob {b} <- count {e2.count}"


def _g_edit(rng, parts, ctx, seed_index=None):
    """Gaussians of a seed chunk given extreme symbols (log l11 / l22 near exp's overflow, shear,
    far positions, huge colours) and re-encoded: a well-formed chunk with hostile values."""
    from ligcodec.codec.tile_writer import encode_chunk

    if seed_index is None or parts.header is None:
        return None
    seed = ctx.seeds[seed_index][1]
    pristine = ctx.parsed(seed_index)
    refs = sorted({e.ref for e in pristine.entries if e.count > 0})
    if not refs:
        return None
    b = rng.choice(refs)
    try:
        qx, qy, qc, qk = (a.copy() for a in seed_symbols(seed, b))
    except Exception:
        return None
    h = pristine.header
    s0, s1, s2 = h["chol_step"]
    n = len(qx)
    idx = rng.sample(range(n), min(n, rng.choice([1, 1, 3, n])))
    target = rng.choice([44, 50, 88, 100, 355, 709, 710, 1000, -44, -100, -745])
    field_ = rng.randrange(6)
    for j in idx:
        if field_ == 0:
            qc[j, 0] = round(target / s0)
            qc[j, 1] = rng.choice([0, 1, -1, 100])
        elif field_ == 1:
            qc[j, 2] = round(target / s2)
            qc[j, 1] = rng.choice([0, 1, -3])
        elif field_ == 2:
            qc[j, 1] = rng.choice([1, -1, 10**6, -(10**6), MAX_SYMBOL])
        elif field_ == 3:
            qc[j, 0] = round(target / s0)
            qc[j, 2] = round(target / s2)
            qc[j, 1] = rng.choice([1, -1, 7])
        elif field_ == 4:
            qx[j] = rng.choice([MAX_SYMBOL, -MAX_SYMBOL, 10**6])
            qy[j] = rng.choice([MAX_SYMBOL, -MAX_SYMBOL, 10**6])
        else:
            qk[j, rng.randrange(qk.shape[1])] = rng.choice([MAX_SYMBOL, -MAX_SYMBOL, 10**5])
    clip = lambda a: np.clip(a, -MAX_SYMBOL // 2, MAX_SYMBOL // 2)  # noqa: E731 (deltas stay in range)
    try:
        blob = encode_chunk(clip(qx), clip(qy), clip(qc), clip(qk))
    except Exception:
        return None
    # The mutant must be this seed: put the blob in place of the same one.
    if len(parts.blobs) != len(pristine.blobs):
        return None
    parts.blobs[b] = blob
    return f"g_edit blob {b} field {field_} target {target} x{len(idx)}"


def _tile_size(h: dict, t: int) -> tuple[int, int]:
    """``(w, h)`` of tile ``t`` (section 2), capped to keep forged masks small."""
    try:
        nx = math.ceil(h["width"] / h["tile"])
        tx, ty = t % nx, t // nx
        w = min(h["width"], (tx + 1) * h["tile"]) - tx * h["tile"]
        ht = min(h["height"], (ty + 1) * h["tile"]) - ty * h["tile"]
    except Exception:  # noqa: BLE001 - a mutated header: any size will do
        return 64, 64
    return (w, ht) if 0 < w * ht <= 1 << 22 else (64, 64)


def _mask_variants(rng, w: int, h: int, old: bytes) -> tuple[str, bytes]:
    """A hostile alpha mask chunk for a ``w`` x ``h`` tile (spec section 8)."""
    n = w * h
    z = lambda raw: bytes([3]) + zlib.compress(raw, 6)  # noqa: E731
    classes = bytes(rng.choice((0, 1, 2)) for _ in range(min(n, 4096))) * (n // 4096 + 1)
    choices = {
        "empty": b"", "all0": b"\0", "all1": b"\1", "all2": b"\2", "two": b"\0\0", "map-nothing": b"\3",
        "map": z(classes[:n]), "short": z(classes[:n - 1]), "long": z(classes[:n] + b"\2"),
        "class3": z(bytes([3]) * n), "class255": z(b"\xff" + classes[1:n]), "junk-after": z(classes[:n]) + b"junk",
        "truncated": z(classes[:n])[:-3], "not-zlib": b"\3" + bytes(rng.getrandbits(8) for _ in range(16)),
        "mode4": b"\4" + z(classes[:n])[1:], "x50": z(bytes(n * min(50, max(1, (1 << 24) // n)))),
        "flip": bytes(old[:1]) + bytes(b ^ (1 << rng.randrange(8)) if i == 0 else b
                                       for i, b in enumerate(old[1:2])) + old[2:],
        "two-streams": z(classes[:n // 2]) + zlib.compress(classes[:n - n // 2]),
    }
    name = rng.choice(sorted(choices))
    return name, choices[name]


def _a_chunk(rng, parts, ctx):
    """An alpha mask chunk replaced (CRC fixed): wrong sizes, classes, modes, trailing data."""
    h = parts.header
    if parts.alpha is None or not parts.alpha or h is None:
        return None
    t = rng.randrange(len(parts.alpha))
    e = parts.alpha[t]
    old = parts.alpha_blobs[e.ref] if e.ref is not None else b""
    name, blob = _mask_variants(rng, *_tile_size(h, t), old)
    parts.alpha_blobs.append(blob)
    e.ref = len(parts.alpha_blobs) - 1
    return f"a_chunk tile {t} {name}"


def _a_table(rng, parts, ctx):
    """The alpha mask table or footer damaged, or its entries shared, swapped or literal."""
    if parts.alpha is None:
        return None
    r = rng.randrange(8)
    if r == 0:
        parts.alpha_k_field = rng.choice([0, len(parts.alpha) + 1, max(len(parts.alpha) - 1, 0), 2**32 - 1])
    elif r == 1:
        parts.fix_alpha_crc = False
    elif r == 2:
        parts.alpha_tag = rng.choice([b"LIGALPHB", b"ligalpha", b"\0" * 8])
    elif r == 3:
        parts.alpha_at_delta = rng.choice([-1, 1, -16, 8, -(2**40), 2**40])
    elif r == 4 and parts.alpha:
        ref = rng.choice(parts.alpha).ref
        for e in parts.alpha:
            e.ref = ref
    elif r == 5 and len(parts.alpha) > 1:
        i, j = rng.sample(range(len(parts.alpha)), 2)
        parts.alpha[i], parts.alpha[j] = parts.alpha[j], parts.alpha[i]
    elif r == 6 and parts.alpha:
        e = parts.alpha[rng.randrange(len(parts.alpha))]
        e.ref, e.offset, e.length = None, rng.choice([0, 20, 100, 2**33]), rng.choice([0, 1, 100, 2**31])
    else:
        parts.alpha = None  # the header still says alpha_mask
    return f"a_table {r}"


def _a_header(rng, parts, ctx):
    """``alpha_mask`` set, cleared or given a wrong value; or a mask section added to a file."""
    h = parts.header
    if h is None:
        return None
    r = rng.randrange(3)
    if r == 0:
        h["alpha_mask"] = rng.choice([True, False, 1, "yes", None, [True]])
    elif r == 1:
        h.pop("alpha_mask", None)
    else:
        h["alpha_mask"] = True
        try:
            nx, ny = math.ceil(h["width"] / h["tile"]), math.ceil(h["height"] / h["tile"])
        except Exception:  # noqa: BLE001
            nx = ny = 1
        n = nx * ny if 0 < nx * ny <= 45000 else 1
        masks = [_mask_variants(rng, *_tile_size(h, t), b"")[1] if rng.random() < 0.2 else b"" for t in range(min(n, 64))]
        parts.alpha_blobs = masks + [b""]
        parts.alpha = [Entry(0, t if t < len(masks) else len(masks)) for t in range(n)]
    parts.set_header(h)
    return f"a_header {r} {h.get('alpha_mask')!r}"


STRUCTURED = [  # (mutator, weight)
    (_h_value, 14), (_h_regrid, 5), (_h_levels, 2), (_h_channels, 2), (_h_delete, 1), (_h_extra, 2),
    (_h_bytes, 5), (_prefix, 2), (_i_count, 8), (_i_share, 5), (_i_offlen, 4), (_i_shuffle, 2), (_i_k, 2),
    (_i_reserved, 1), (_i_bad_crc, 2), (_c_table, 12), (_c_bytes, 12), (_c_resize, 4), (_c_words, 5),
    (_c_const, 5), (_c_foreign, 3), (_g_edit, 10), (_a_chunk, 4), (_a_table, 2), (_a_header, 2),
]


# raw mutators: on the packed bytes, after the structure (``info``: where the parts lie)
def _r_flip(rng, data, info, ctx):
    for _ in range(rng.choice([1, 1, 2, 8])):
        i = _offset(rng, data, info)
        data[i] ^= 1 << rng.randrange(8)
    return "r_flip"


def _offset(rng, data, info):
    """Uniform, or within the prefix, header and index half of the time."""
    if rng.random() < 0.5:
        return rng.randrange(len(data) or 1)
    return rng.randrange(min(len(data), info["chunks_at"]) or 1)


def _r_set(rng, data, info, ctx):
    i = _offset(rng, data, info)
    size = rng.choice([1, 1, 2, 4, 8])
    v = rng.choice(INTERESTING_WORDS + [2**64 - 1, 2**63]) & ((1 << (8 * size)) - 1)
    data[i:i + size] = v.to_bytes(size, "little")[:max(0, len(data) - i)]
    return f"r_set @{i}/{size}={v:#x}"


def _r_truncate(rng, data, info, ctx):
    cuts = [0, 1, 7, 8, 12, 19, 20, 27, 20 + info["hsize"], 24 + info["hsize"], 28 + info["hsize"],
            info["chunks_at"], info["chunks_at"] + 1, len(data) - 1, len(data) - 4, rng.randrange(len(data) + 1)]
    n = min(rng.choice(cuts), len(data))
    del data[n:]
    return f"r_truncate {n}"


def _r_extend(rng, data, info, ctx):
    n = rng.choice([1, 4, 100, 4096, 200000])
    data += (b"\0" * n) if rng.random() < 0.5 else bytes(rng.getrandbits(8) for _ in range(min(n, 4096))) * (
        max(1, n // 4096))
    return f"r_extend {n}"


def _r_insdel(rng, data, info, ctx):
    i = _offset(rng, data, info)
    n = rng.choice([1, 2, 4, 24, 100])
    if rng.random() < 0.5:
        del data[i:i + n]
        return f"r_delete @{i}/{n}"
    data[i:i] = bytes(rng.getrandbits(8) for _ in range(n))
    return f"r_insert @{i}/{n}"


def _r_splice(rng, data, info, ctx):
    other = ctx.seeds[rng.randrange(len(ctx.seeds))][1]
    i, j = rng.randrange(len(data) + 1), rng.randrange(len(other) + 1)
    data[i:] = other[j:]
    return f"r_splice {i} {j}"


def _r_index_fixcrc(rng, data, info, ctx):
    """Bytes of the index table edited and the index CRC fixed."""
    if not info["k"]:
        return None
    a = info["index_at"] + 8
    for _ in range(rng.choice([1, 2, 4])):
        i = a + rng.randrange(24 * info["k"])
        if i >= len(data):
            return None
        data[i] = rng.choice(INTERESTING_BYTES) if rng.random() < 0.6 else data[i] ^ (1 << rng.randrange(8))
    fix_index_crc(data, info)
    return "r_index_fixcrc"


RAW = [(_r_flip, 4), (_r_set, 4), (_r_truncate, 3), (_r_extend, 1), (_r_insdel, 2), (_r_splice, 2),
       (_r_index_fixcrc, 6)]


def _weighted(rng, table):
    return rng.choices([f for f, _ in table], [w for _, w in table])[0]


def make_mutant(seeds: list[tuple[str, bytes]], seed: int, i: int) -> tuple[bytes, dict]:
    """Mutant ``i`` of run ``seed``: ``(bytes, {"seed_file", "ops"})``, deterministic."""
    rng = random.Random(f"ligfuzz:{seed}:{i}")
    ctx = Ctx(seeds, rng)
    si = rng.randrange(len(seeds))
    parts = ctx.parsed(si)
    ops = []
    n_struct = rng.choice([0, 1, 1, 1, 2, 2, 3])
    n_raw = 0 if n_struct and rng.random() < 0.75 else rng.choice([1, 1, 2])
    for _ in range(20):
        if len(ops) >= n_struct:
            break
        fn = _weighted(rng, STRUCTURED)
        try:
            d = fn(rng, parts, ctx, si) if fn is _g_edit else fn(rng, parts, ctx)
        except (ValueError, TypeError, OverflowError, struct.error, IndexError, MemoryError):
            d = None  # MemoryError: an edit that would build a huge structure (levels = 2^31, ...)
        if d:
            ops.append(d)
    try:
        data, info = parts.layout()
    except (OverflowError, struct.error, ValueError):  # an unrepresentable edit: drop the structure
        data, info = LigParts.parse(seeds[si][1]).layout()
        ops.append("(structure dropped)")
    data = bytearray(data)
    for _ in range(20):
        if len(ops) >= n_struct + n_raw and ops:
            break
        if not data:  # truncated to nothing: the only raw edit left is to add bytes
            ops.append(_r_extend(rng, data, info, ctx))
            continue
        d = _weighted(rng, RAW)(rng, data, info, ctx)
        if d:
            ops.append(d)
    return bytes(data[:MAX_FILE]), {"seed_file": seeds[si][0], "ops": ops}


# ------------------------------------------------------------------- the worker (child side)
def _status_bytes(key: str, pid="self") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reset_peak():
    """Reset this process's VmHWM to its current RSS (Linux 4.0+), so it measures one case."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _viewer_ops(path: str, region_max: int):
    """The operations a viewer performs, as ``(name, callable, output megapixels)`` (the callable
    returns ``(array or None, expected shape)``). ``img`` is created by the first."""
    import ligcodec
    from ligcodec.render.contract import output_size

    state = {}

    def open_():
        state["img"] = ligcodec.open(path)
        return None, None

    def window(scale, centre):
        img = state["img"]
        ow, oh = output_size(img.header.width, img.header.height, scale)
        if ow * oh <= region_max * region_max:
            return None, ow, oh
        w, h = min(ow, region_max), min(oh, region_max)
        x, y = ((ow - w) // 2, (oh - h) // 2) if centre else (0, 0)
        return (x, y, w, h), w, h

    def read(scale, centre, levels=None):
        def run():
            img = state["img"]
            region, w, h = window(scale, centre)
            a = img.read(scale, region, levels)
            return a, ((h, w, img.header.channels), img.dtype)
        return run

    def mp(scale):
        def f():
            img = state.get("img")
            if img is None:
                return 0.0
            try:
                _, w, h = window(scale, False)
            except Exception:
                return 0.0
            return w * h / 1e6
        return f

    def check():
        from ligcodec import cli

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cli.cli.main(args=["info", "-v", "--check", path], prog_name="ligcodec", standalone_mode=False)
        return None, None

    def check_mp():
        img = state.get("img")
        return img.header.width * img.header.height / 1e6 if img is not None else 0.0

    return state, [("open", open_, lambda: 0.0), ("read1", read(1.0, False), mp(1.0)),
                   ("read_quarter", read(0.25, True), mp(0.25)), ("preview", read(0.125, False, [0]), mp(0.125)),
                   ("check", check, check_mp)]


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return (s.splitlines() or [""])[0][:500]


def run_case(path: str, region_max: int = REGION, progress=None) -> dict:
    """Decode ``path`` like a viewer; every operation's outcome, time and warnings, the peak RSS."""
    from ligcodec.errors import LigError

    _reset_peak()
    t_case = time.perf_counter()
    state, ops = _viewer_ops(path, region_max)
    results, warns = [], []
    for name, fn, mp in ops:
        if name != "open" and "img" not in state:
            break
        if progress:
            progress(name)
        r = {"op": name}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = time.perf_counter()
            try:
                arr, expect = fn()
                r["outcome"] = "ok"
                if expect is not None:
                    shape, dtype = expect
                    if arr.shape != shape or arr.dtype != dtype:
                        r["outcome"] = "bad-output"
                        r["msg"] = f"shape {arr.shape} {arr.dtype}, expected {shape} {dtype}"
            except LigError as e:
                r.update(outcome="refused", type=type(e).__name__, msg=_first_line(e))
            except Exception as e:  # noqa: BLE001 - the point: anything else is a finding
                r.update(outcome="exception", type=type(e).__name__, msg=_first_line(e),
                         tb="".join(traceback.format_exception(type(e), e, e.__traceback__))[-4000:])
            r["seconds"] = time.perf_counter() - t
            arr = None
        try:
            r["mp"] = mp()
        except Exception:  # noqa: BLE001
            r["mp"] = 0.0
        for w in caught:
            warns.append({"op": name, "category": w.category.__name__, "msg": str(w.message).splitlines()[0][:300],
                          "where": f"{Path(w.filename).name}:{w.lineno}"})
        results.append(r)
    img = state.get("img")
    if img is not None:
        with contextlib.suppress(Exception):
            img.close()
    out = {"ops": results, "warnings": warns, "hwm": _status_bytes("VmHWM"), "rss": _status_bytes("VmRSS"),
           "seconds": time.perf_counter() - t_case}
    if img is not None:
        h = img.header
        out["image"] = {"width": h.width, "height": h.height, "channels": h.channels, "tile": h.tile,
                        "levels": h.levels}
    return out


def _selftest(what: str):
    """Misbehaviours the tests use to check the harness catches each kind."""
    if what == "segv":
        import ctypes

        ctypes.string_at(0)
    elif what == "sleep":
        time.sleep(3600)
    elif what == "alloc":  # 64 MiB at a time up to 4 GiB: the parent kills it on the way
        held = []
        for _ in range(64):
            held.append(np.ones(1 << 23))
            time.sleep(0.01)
        time.sleep(3600)
    elif what == "raise":
        raise RuntimeError("selftest")
    elif what == "warn":
        warnings.warn("selftest", RuntimeWarning)
    return None


def worker_main(warm: str | None, region_max: int):
    """``--worker``: read JSON requests from stdin, answer on the original stdout (fd 1 is
    pointed at stderr so that nothing else can write into the protocol)."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    import faulthandler

    faulthandler.enable()
    if warm:  # load numba's cached machine code before the first timed case
        with contextlib.suppress(Exception):
            run_case(warm, region_max)

    def send(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    send({"ready": os.getpid()})
    for line in sys.stdin:
        req = json.loads(line)
        print(f"=== case {req.get('path') or req.get('selftest')}", file=sys.stderr, flush=True)
        if "selftest" in req:
            send({"op": "selftest"})
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    _selftest(req["selftest"])
                    r = {"op": "selftest", "outcome": "ok", "seconds": 0.0, "mp": 0.0}
                except Exception as e:  # noqa: BLE001
                    r = {"op": "selftest", "outcome": "exception", "type": type(e).__name__, "msg": _first_line(e),
                         "seconds": 0.0, "mp": 0.0}
            send({"result": {"ops": [r], "warnings": [{"op": "selftest", "category": w.category.__name__,
                                                       "msg": str(w.message), "where": ""} for w in caught],
                             "hwm": _status_bytes("VmHWM"), "rss": _status_bytes("VmRSS"), "seconds": 0.0}})
            continue
        send({"result": run_case(req["path"], region_max, progress=lambda op: send({"op": op}))})


# ---------------------------------------------------------------- the harness (parent side)
@dataclass
class Limits:
    time_limit: float = TIME_LIMIT
    mem_limit: int = MEM_LIMIT
    budget_per_mp: float = BUDGET_PER_MP
    min_budget: float = MIN_BUDGET
    region: int = REGION


class Worker:
    """One persistent decoding process, restarted after a crash, a kill or memory bloat."""

    def __init__(self, workdir: Path, name: str, threads: int = 1, warm: Path | None = None,
                 limits: Limits = Limits()):
        self.workdir, self.name, self.threads, self.warm, self.limits = Path(workdir), name, threads, warm, limits
        self.proc = None
        self.log_path = self.workdir / f"{name}.stderr"
        self.starts = 0

    def start(self):
        env = dict(os.environ, NUMBA_NUM_THREADS=str(self.threads), PYTHONFAULTHANDLER="1",
                   OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.log = open(self.log_path, "ab")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--region", str(self.limits.region)]
        if self.warm:
            cmd += ["--warm", str(self.warm)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
                                     cwd=str(ROOT))
        self.buf = b""
        self.starts += 1
        msg = self._read_msg(time.monotonic() + 300)
        if not msg or "ready" not in msg:
            self.stop()
            raise RuntimeError(f"worker {self.name} did not start; see {self.log_path}")

    def stop(self):
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.proc.kill()
            with contextlib.suppress(Exception):
                self.proc.wait(10)
            for f in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(Exception):
                    f.close()
            self.proc = None
            self.log.close()

    def _read_msg(self, deadline, on_poll=None):
        """The next JSON line; None at EOF or deadline (``on_poll`` may return a reason to stop)."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], min(0.02, left))
            if r:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return None
                self.buf += chunk
            if on_poll is not None:
                stop = on_poll()
                if stop:
                    return {"stop": stop}
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def run(self, request: dict) -> dict:
        """Send one case; the worker's result, or a crash/timeout/over-memory record."""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.stop()
            self.start()
        log_at = self.log_path.stat().st_size
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        t0 = time.monotonic()
        deadline = t0 + self.limits.time_limit
        op, peak = None, 0
        pid = self.proc.pid

        def poll():
            nonlocal peak
            rss = _status_bytes("VmRSS", pid)
            peak = max(peak, rss)
            return "over-memory" if rss > self.limits.mem_limit else None

        while True:
            msg = self._read_msg(deadline, poll)
            if msg is None or "stop" in msg:
                if msg is None and time.monotonic() < deadline:
                    try:
                        rc = self.proc.wait(5)
                    except subprocess.TimeoutExpired:
                        rc = None
                    kind = "crash"
                else:
                    kind = msg["stop"] if msg else "timeout"
                    rc = None
                self.stop()
                return {"kind": kind, "op": op, "returncode": rc, "seconds": time.monotonic() - t0,
                        "peak_rss": peak, "stderr": _tail(self.log_path, log_at)}
            if "op" in msg:
                op = msg["op"]
            elif "result" in msg:
                res = msg["result"]
                res["peak_rss"] = max(peak, res.get("hwm", 0))
                if res.get("rss", 0) > self.limits.mem_limit // 2:  # bloated: start afresh next time
                    self.stop()
                return res


def _tail(path: Path, at: int, n: int = 6000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(at)
            return f.read()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


_NUM = re.compile(r"(?<![A-Za-z_0-9.])[-+]?(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)")


def normalise(msg: str, path: str | None = None) -> str:
    """A message with its numbers, quoted values and lists replaced, to group similar ones."""
    msg = (msg or "").strip().splitlines()[0] if msg else ""
    if path:
        msg = msg.replace(path, "<file>")
    # quoted values go, quoted names ('int', 'items') stay: they tell exceptions apart
    msg = re.sub(r"'[^']*'|\"[^\"]*\"", lambda m: m.group() if re.fullmatch(r"'[A-Za-z_][\w.]*'", m.group())
                 else "'_'", msg)
    msg = re.sub(r"\b\d+x\d+\b", "#x#", msg)
    for _ in range(3):
        msg = re.sub(r"\[[^\[\]]*\]", "[_]", msg)
        msg = re.sub(r"\([^()]*\)", "(_)", msg)
    msg = re.sub(r"\b[0-9a-f]{8,}\b", "#", msg)
    msg = _NUM.sub("#", msg)
    return msg[:100]


def _crash_site(stderr: str) -> str:
    """``file:function`` of the innermost Python frame faulthandler printed."""
    m = re.search(r"(?:Current thread|Thread) [^\n]*\n\s*File \"([^\"]+)\", line \d+ in (\S+)", stderr)
    return f" at {Path(m.group(1)).name}:{m.group(2)}" if m else ""


def classify(res: dict, limits: Limits, path: str | None = None) -> tuple[str, str]:
    """``(kind, class)`` of a case: the worst thing that happened in it."""
    kind = res.get("kind")
    if kind == "crash":
        rc = res.get("returncode")
        sig = (signal.Signals(-rc).name if rc is not None and rc < 0 and -rc in signal.Signals._value2member_map_
               else f"exit {rc}")
        return kind, f"crash {sig} in {res.get('op')}{_crash_site(res.get('stderr', ''))}"
    if kind in ("timeout", "over-memory"):
        return kind, f"{kind} in {res.get('op')}"
    ops = res.get("ops", [])
    for r in ops:
        if r["outcome"] == "exception":
            return "exception", f"{r['type']}: {normalise(r['msg'], path)} (in {r['op']})"
    if res.get("peak_rss", 0) > limits.mem_limit:
        return "over-memory", "over-memory (completed)"
    for r in ops:
        if r["outcome"] == "bad-output":
            return "bad-output", f"bad-output in {r['op']}"
    for r in ops:
        if r["seconds"] > budget(r, limits):
            return "over-budget", f"over-budget in {r['op']}"
    for w in res.get("warnings", []):
        return "warning", f"{w['category']}: {normalise(w['msg'], path)} (in {w['op']} at {w['where']})"
    for r in ops:
        if r["outcome"] == "refused":
            return "refused", f"{r['type']}: {normalise(r['msg'], path)}"
    return "ok", "ok"


def budget(op: dict, limits: Limits) -> float:
    return max(limits.min_budget, limits.budget_per_mp * op.get("mp", 0.0))


def warm_file(workdir: Path) -> Path:
    """A small valid file (one RGB Gaussian) whose decode loads every kernel a read uses: workers
    decode it before their first timed case, so numba's start-up never counts against a budget."""
    p = Path(workdir) / "warm.lig"
    p.write_bytes(_one_gaussian((20, 0, 20), chol_step=(0.1, 0.1, 0.1)))
    return p


class Harness:
    """Workers, the tally and the saved failures. ``warm``: the file workers decode before their
    first case (default :func:`warm_file`)."""

    def __init__(self, workdir: Path, workers: int = 1, threads: int = 1, limits: Limits = Limits(),
                 keep: int | None = None, warm: Path | None = None, save: bool = True):
        self.workdir = Path(workdir)
        self.limits = limits
        self.keep = keep
        self.save = save
        (self.workdir / "run").mkdir(parents=True, exist_ok=True)
        warm = warm or warm_file(self.workdir / "run")
        self.workers = [Worker(self.workdir / "run", f"w{i}", threads, warm, limits) for i in range(workers)]
        self.lock = threading.Lock()
        self.counts: dict = {}  # (kind, class) -> count
        self.examples: dict = {}  # (kind, class) -> [paths]
        self.records: list = []

    def close(self):
        for w in self.workers:
            w.stop()

    def run_one(self, worker: Worker, data: bytes | None, meta: dict, path: Path | None = None) -> dict:
        """Decode ``data`` (written to the worker's scratch file) or the file ``path``."""
        if path is None:
            path = self.workdir / "run" / f"{worker.name}.lig"
            path.write_bytes(data)
        res = worker.run({"path": str(path)})
        kind, cls = classify(res, self.limits, str(path))
        if kind == "over-budget":  # timing on a shared machine is noisy: it must happen twice
            res2 = worker.run({"path": str(path)})
            kind2, cls2 = classify(res2, self.limits, str(path))
            if kind2 != "over-budget":
                res, kind, cls = res2, kind2, cls2
        rec = {"kind": kind, "class": cls, **meta, "result": res}
        saved = None
        with self.lock:
            key = (kind, cls)
            self.counts[key] = self.counts.get(key, 0) + 1
            examples = self.examples.setdefault(key, [])
            if kind in FAIL_KINDS and self.save and (self.keep is None or len(examples) < self.keep):
                saved = self._save(path, rec)
                examples.append(str(saved))
            self.records.append({k: v for k, v in rec.items() if k != "result"}
                                | {"seconds": res.get("seconds", 0.0), "saved": str(saved) if saved else None})
        rec["saved"] = str(saved) if saved else None
        return rec

    def _save(self, path: Path, rec: dict) -> Path:
        data = path.read_bytes()
        d = self.workdir / "failures" / rec["kind"]
        d.mkdir(parents=True, exist_ok=True)
        tag = hashlib.blake2b(rec["class"].encode(), digest_size=3).hexdigest()
        name = rec.get("name") or f"m{rec.get('index', 0)}"
        out = d / f"{tag}-{name}-{hashlib.blake2b(data, digest_size=4).hexdigest()}.lig"
        out.write_bytes(data)
        out.with_suffix(".json").write_text(json.dumps(rec, indent=1, default=str))
        return out

    def run_many(self, cases, total: int | None = None, progress=None):
        """``cases``: an iterator of ``(data, meta)``, shared by the worker threads."""
        it = iter(cases)
        it_lock = threading.Lock()
        done = [0]

        def loop(worker):
            while True:
                with it_lock:
                    try:
                        data, meta = next(it)
                    except StopIteration:
                        return
                    except Exception:  # noqa: BLE001 - a bug of the fuzzer: counted, never silent
                        self.fuzzer_error(traceback.format_exc())
                        continue
                try:
                    rec = self.run_one(worker, data, meta)
                except Exception:  # noqa: BLE001
                    self.fuzzer_error(traceback.format_exc())
                    continue
                with it_lock:
                    done[0] += 1
                    if progress:
                        progress(done[0], total, rec)

        threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def fuzzer_error(self, tb: str):
        """The fuzzer itself failed on a case (a mutator or the harness): counted as a failure."""
        print(f"fuzzer error:\n{tb}", file=sys.stderr, flush=True)
        line = tb.strip().splitlines()[-1]
        with self.lock:
            key = ("fuzzer-error", normalise(line))
            self.counts[key] = self.counts.get(key, 0) + 1

    @property
    def failures(self) -> int:
        return sum(n for (k, _), n in self.counts.items() if k in FAIL_KINDS)


# ------------------------------------------------------------------------------ reporting
def report(h: Harness, seconds: float, n_mutants: int, n_bombs: int, bombs: list[dict], out=print) -> dict:
    total = sum(h.counts.values())
    by_kind = {k: sum(n for (kk, _), n in h.counts.items() if kk == k) for k in KINDS}
    out(f"\n{n_mutants} mutants + {n_bombs} forged bombs = {total} files in {seconds:.1f} s "
        f"({total / max(seconds, 1e-9):.1f} files/s, {len(h.workers)} worker(s))")
    out("\nkind          files")
    for k in KINDS:
        if by_kind[k]:
            out(f"{k:<13} {by_kind[k]:>5}")
    fails = sorted(((n, k, c) for (k, c), n in h.counts.items() if k in FAIL_KINDS),
                   key=lambda t: (KINDS.index(t[1]), -t[0]))
    if fails:
        out("\nfailure classes:")
        for n, k, c in fails:
            ex = h.examples.get((k, c), [])
            out(f"  {n:>5}  {k:<11} {c}")
            if ex:
                out(f"         e.g. {ex[0]}")
    ref = sorted(((n, c) for (k, c), n in h.counts.items() if k == "refused"), reverse=True)
    if ref:
        out("\nrefusals (LigError) by message:")
        for n, c in ref:
            out(f"  {n:>5}  {c}")
    if bombs:
        out("\nforged bombs:")
        for b in bombs:
            out(f"  {b['name']:<26} {b['kind']:<11} {b['class'][:90]}")
    summary = {"seconds": seconds, "mutants": n_mutants, "bombs": n_bombs, "files": total, "by_kind": by_kind,
               "classes": [{"kind": k, "class": c, "count": n, "examples": h.examples.get((k, c), [])}
                           for (k, c), n in sorted(h.counts.items(), key=lambda t: -t[1])],
               "bomb_results": bombs, "failures": h.failures}
    return summary


# --------------------------------------------------------------------------------- driver
def load_seeds(workdir: Path, log=print) -> list[tuple[str, bytes]]:
    return [(p.stem, p.read_bytes()) for p in build_corpus(workdir, log=log)]


def write_bombs(workdir: Path, seeds: list[tuple[str, bytes]]) -> dict:
    """Forge the bombs into ``workdir/bombs``: ``{name: (path, what)}``."""
    d = Path(workdir) / "bombs"
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (data, what) in forge_bombs(dict(seeds)).items():
        p = d / f"{name}.lig"
        p.write_bytes(data)
        out[name] = (p, what)
    return out


def mutants(seeds, seed: int, indices):
    """``(bytes, meta)`` of the mutants ``indices`` of run ``seed``."""
    for i in indices:
        data, meta = make_mutant(seeds, seed, i)
        yield data, {"index": i, "seed": seed, **meta}


def fuzz(args) -> int:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir {workdir}")
    fails = workdir / "failures"
    if fails.exists():  # this run's failures alone; the last run's stay in failures.prev
        prev = workdir / "failures.prev"
        if prev.exists():
            shutil.rmtree(prev)
        fails.rename(prev)
    seeds = load_seeds(workdir)
    limits = Limits(args.time_limit, args.mem_limit_mb << 20, args.budget_per_mp, args.min_budget)
    h = Harness(workdir, args.workers, args.threads, limits, args.keep)
    t0 = time.perf_counter()
    bombs = []
    try:
        if not args.no_bombs:
            for name, (p, what) in write_bombs(workdir, seeds).items():
                rec = h.run_one(h.workers[0], None, {"name": name, "what": what}, path=p)
                bombs.append({"name": name, "path": str(p), "kind": rec["kind"], "class": rec["class"], "what": what,
                              "seconds": rec["result"].get("seconds", 0.0), "saved": rec["saved"]})
                print(f"  bomb {name:<26} {rec['kind']:<11} {rec['class'][:80]}", flush=True)
        n = 0 if args.bombs_only else args.mutants
        last = [time.perf_counter()]

        def progress(done, total, rec):
            if rec["kind"] in FAIL_KINDS:
                print(f"  [{done}/{total}] {rec['kind']}: {rec['class'][:100]}  ({'; '.join(rec['ops'])[:120]})",
                      flush=True)
            if time.perf_counter() - last[0] > 30:
                last[0] = time.perf_counter()
                print(f"  {done}/{total} mutants, {h.failures} failures, {time.perf_counter() - t0:.0f} s", flush=True)

        h.run_many(mutants(seeds, args.seed, range(args.start, args.start + n)), n, progress)
    finally:
        h.close()
    seconds = time.perf_counter() - t0
    summary = report(h, seconds, n, len(bombs), bombs)
    (workdir / "report.json").write_text(json.dumps(summary | {"records": h.records}, indent=1, default=str))
    print(f"\nreport: {workdir / 'report.json'}; failures saved under {workdir / 'failures'}")
    return 1 if h.failures else 0


def replay(args) -> int:
    """Re-run saved cases (a file, or every .lig under a directory); print what happens."""
    target = Path(args.replay)
    paths = sorted(target.rglob("*.lig")) if target.is_dir() else [target]
    limits = Limits(args.time_limit, args.mem_limit_mb << 20, args.budget_per_mp, args.min_budget)
    bad = 0
    if args.inline:
        for p in paths:
            res = run_case(str(p), limits.region)
            kind, cls = classify(res, limits, str(p))
            bad += kind in FAIL_KINDS
            print(f"{p}: {kind}: {cls}")
            for r in res["ops"]:
                print(f"  {r['op']:<13} {r['outcome']:<10} {r['seconds']:.3f} s {r.get('type', '')} "
                      f"{r.get('msg', '')}")
                if r.get("tb"):
                    print("    " + r["tb"].replace("\n", "\n    "))
            for w in res["warnings"]:
                print(f"  warning in {w['op']}: {w['category']}: {w['msg']} ({w['where']})")
        return 1 if bad else 0
    workdir = Path(args.workdir) / "replay"
    h = Harness(workdir, 1, args.threads, limits, save=False)
    try:
        for p in paths:
            rec = h.run_one(h.workers[0], None, {"name": p.stem}, path=p)
            res = rec["result"]
            bad += rec["kind"] in FAIL_KINDS
            print(f"{p}: {rec['kind']}: {rec['class']}  (peak RSS {res.get('peak_rss', 0) / 2**20:.0f} MiB)")
            for r in res.get("ops", []):
                print(f"  {r['op']:<13} {r['outcome']:<10} {r['seconds']:.3f} s (budget {budget(r, limits):.1f} s) "
                      f"{r.get('type', '')} {r.get('msg', '')[:200]}")
                if r.get("tb") and args.verbose:
                    print("    " + r["tb"].replace("\n", "\n    "))
            for w in res.get("warnings", []):
                print(f"  warning in {w['op']}: {w['category']}: {w['msg']} ({w['where']})")
            if res.get("stderr") and args.verbose:
                print("  stderr:\n    " + res["stderr"][-3000:].replace("\n", "\n    "))
    finally:
        h.close()
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mutants", type=int, default=None,
                    help=f"mutants to try (default 2000; --quick {QUICK_MUTANTS})")
    ap.add_argument("--seed", type=int, default=0, help="run seed: mutant i of seed S is always the same file")
    ap.add_argument("--start", type=int, default=0, help="first mutant index (to continue or split a run)")
    ap.add_argument("--workers", type=int, default=1, help="decoding processes (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="numba threads per worker (default 1)")
    ap.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="seeds, bombs, failures, report (kept)")
    ap.add_argument("--time-limit", type=float, default=TIME_LIMIT, help="s per file before it is a timeout")
    ap.add_argument("--mem-limit-mb", type=int, default=MEM_LIMIT >> 20, help="RSS limit of a worker, MiB")
    ap.add_argument("--budget-per-mp", type=float, default=BUDGET_PER_MP, help="s per output megapixel per read")
    ap.add_argument("--min-budget", type=float, default=MIN_BUDGET, help="s every operation may take at least")
    ap.add_argument("--keep", type=int, default=None, help="failures saved per class (default: every one)")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_MUTANTS} mutants + the bombs")
    ap.add_argument("--no-bombs", action="store_true")
    ap.add_argument("--bombs-only", action="store_true")
    ap.add_argument("--replay", metavar="PATH", help="re-run a saved case, or every .lig under a directory")
    ap.add_argument("--inline", action="store_true", help="with --replay: decode in this process (tracebacks)")
    ap.add_argument("--verbose", "-v", action="store_true", help="with --replay: tracebacks and worker stderr")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--warm", help=argparse.SUPPRESS)
    ap.add_argument("--region", type=int, default=REGION, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.warm, args.region)
        return 0
    if args.mutants is None:
        args.mutants = QUICK_MUTANTS if args.quick else 2000
    if args.replay:
        return replay(args)
    return fuzz(args)


if __name__ == "__main__":
    sys.exit(main())
