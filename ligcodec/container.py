"""The ``.lig`` container: one class per section of spec/lig-format.md.

Reading is lenient where the spec allows (unknown header keys, higher minor versions) and strict
everywhere else: every size and offset is checked against the file before anything is allocated,
and each rejection is a :class:`~ligcodec.errors.LigFormatError` naming the byte offset, tile and
level. Writing is strict: it refuses values the spec does not allow.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass, field

import msgpack

from .errors import LigFormatError, LigInputError
from .limits import MAX_LEVELS, MAX_SIDE

MAGIC = bytes.fromhex("894C49470D0A1A0A")
VERSION_MAJOR = 4
VERSION_MINOR = 0
#: The oldest major version read (2.x: the positions as ``qx``, ``dqy``; 3.x: chunks in one part; spec section 4).
OLDEST_MAJOR = 2
PREFIX_SIZE = 20
INDEX_ENTRY_SIZE = 24
MAX_HEADER_SIZE = 16 * 1024 * 1024
MAX_GAUSSIANS_PER_CHUNK = 16 * 1024 * 1024
#: 2.3: the largest half-width ``K`` of the border filter (section 6): a region read renders
#: ``K + 2`` pixels around it.
MAX_DEBLOCK_WIDTH = 16
#: 2.4: the largest entry of ``colour_matrix`` in magnitude (an orthonormal matrix's are <= 1).
MAX_MATRIX_ENTRY = 2
#: Limits that bound what a read costs, whatever a file claims (spec sections 3, 4 and 7): every
#: Gaussian takes at least this many bytes of its chunk, so a reader never decodes more Gaussians
#: than it reads bytes ...
MIN_CHUNK_BYTES_PER_GAUSSIAN = 1
#: ... their log-scales, shear, positions and amplitudes stay where float arithmetic is exact
#: enough and finite (e^20 px is 30 times the largest image side) ...
MAX_LOG_SCALE = 20
MAX_AMPLITUDE = 65536
MAX_POSITION = float(1 << 24)
#: ... and one chunk draws at most this many times its tile's pixels (sum of min(ellipse area,
#: tile area) over its Gaussians; real chunks measured 15-20).
MAX_TILE_WORK = 64

_PREFIX = struct.Struct("<8sBBHII")
#: Section 8: the alpha mask's entry table and the footer that finds it.
ALPHA_TAG = b"LIGALPHA"
_ALPHA_ENTRY = struct.Struct("<QII")
_ALPHA_FOOTER = struct.Struct("<8sQ")
_INDEX_HEAD = struct.Struct("<II")
_ENTRY = struct.Struct("<QIIII")


def crc32(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


#: Signatures of image files people pass to the decoder by mistake.
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
                (b"II+\x00", "BigTIFF"), (b"MM\x00+", "BigTIFF"), (b"GIF8", "GIF"), (b"BM", "BMP"),
                (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"))


def _image_kind(data: bytes):
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _IMAGE_MAGIC if data.startswith(magic)), None)


@dataclass
class Prefix:
    """Section 1: magic, version, flags, header length and CRC (20 bytes)."""

    header_size: int
    header_crc: int
    major: int = VERSION_MAJOR
    minor: int = VERSION_MINOR
    flags: int = 0

    def pack(self) -> bytes:
        return _PREFIX.pack(MAGIC, self.major, self.minor, self.flags, self.header_size, self.header_crc)

    @classmethod
    def parse(cls, data: bytes, file_size: int) -> "Prefix":
        if file_size == 0:
            raise LigFormatError("the file is empty (0 bytes); it is not a .lig file")
        if len(data) < 8 or data[:8] != MAGIC:
            kind = _image_kind(data)
            hint = f"it is a {kind} image (to compress it: ligcodec encode)" if kind else "not a .lig file"
            raise LigFormatError(f"bad magic at byte 0: {data[:8].hex()} (expected {MAGIC.hex()}); {hint}")
        if len(data) < PREFIX_SIZE:
            raise LigFormatError(f"truncated file: {file_size} bytes, the fixed prefix alone needs {PREFIX_SIZE}")
        _, major, minor, flags, hsize, hcrc = _PREFIX.unpack_from(data)
        if major > VERSION_MAJOR:
            raise LigFormatError(
                f"format version {major}.{minor} at byte 8 was written by a newer ligcodec; this one reads "
                f"{OLDEST_MAJOR}.x-{VERSION_MAJOR}.x — upgrade ligcodec"
            )
        if major < OLDEST_MAJOR:
            raise LigFormatError(
                f"format version {major}.{minor} at byte 8 is an earlier, pre-release layout that this ligcodec "
                f"no longer reads; re-encode the image" if major >= 1 else f"invalid format version {major}.{minor} at byte 8"
            )
        if not 1 <= hsize <= MAX_HEADER_SIZE:
            raise LigFormatError(f"header length {hsize} at byte 12 is outside 1..{MAX_HEADER_SIZE}")
        if PREFIX_SIZE + hsize + _INDEX_HEAD.size > file_size:
            raise LigFormatError(f"truncated file: header of {hsize} bytes at byte {PREFIX_SIZE} runs past the end ({file_size} bytes)")
        return cls(hsize, hcrc, major, minor, flags)


_REQUIRED = ("width", "height", "channels", "bit_depth", "tile", "levels", "colour_transform",
             "pos_step", "chol_step", "colour_step")


@dataclass
class Header:
    """Section 2: the msgpack header."""

    width: int
    height: int
    channels: int
    bit_depth: int
    tile: int
    levels: int
    colour_transform: str
    pos_step: float
    chol_step: list
    colour_step: list  # [L][C]
    encoder: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    #: 2.1: level 0 alone is the image at every scale up to this (a progressive encode fitted it
    #: as a standalone reduced image), so such reads need only level-0 bytes. None: every level
    #: at every scale.
    level0_scale: float | None = None
    #: 2.2: the file ends with an alpha mask (section 8).
    alpha_mask: bool = False
    #: 2.3: ``[K, T]``, the border filter of section 6 (half-width in full-res pixels, threshold in
    #: units of the full sample range). None: no filter.
    deblock: list | None = None
    #: 2.4: with ``colour_transform == "matrix"``, the inverse colour transform (3 x 3, row-major;
    #: section 5).
    colour_matrix: list | None = None

    @property
    def grid(self) -> tuple[int, int]:
        return math.ceil(self.width / self.tile), math.ceil(self.height / self.tile)

    @property
    def n_tiles(self) -> int:
        nx, ny = self.grid
        return nx * ny

    def validate(self, err=LigFormatError, where="header") -> "Header":
        def bad(msg):
            raise err(f"{where}: {msg}")

        for k in ("width", "height", "channels", "bit_depth", "tile", "levels"):
            if not isinstance(getattr(self, k), int) or isinstance(getattr(self, k), bool):
                bad(f"{k} must be an integer, got {getattr(self, k)!r}")
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            bad(f"image size {self.width}x{self.height} outside 1..{MAX_SIDE}")
        if not 1 <= self.channels <= 4:
            bad(f"channels {self.channels} outside 1..4")
        if self.bit_depth not in (8, 16):
            bad(f"bit_depth {self.bit_depth} is not 8 or 16")
        if not 16 <= self.tile <= MAX_SIDE:
            bad(f"tile {self.tile} outside 16..{MAX_SIDE}")
        if not 1 <= self.levels <= MAX_LEVELS:
            bad(f"levels {self.levels} outside 1..{MAX_LEVELS}")
        ct = self.colour_transform
        if ct not in ("ycocg", "matrix", "none") or (ct != "none" and self.channels < 3):
            bad(f"colour_transform {ct!r} is not allowed with {self.channels} channel(s)")
        m = self.colour_matrix
        if (ct == "matrix") != (m is not None):
            bad(f"colour_matrix must be given with colour_transform 'matrix' and only then, got {m!r}")
        if m is not None and not (isinstance(m, (list, tuple)) and len(m) == 3
                                  and all(isinstance(r, (list, tuple)) and len(r) == 3 for r in m)
                                  and all(_num(v) and abs(v) <= MAX_MATRIX_ENTRY for r in m for v in r)):
            bad(f"colour_matrix {m!r} must be 3 rows of 3 finite numbers within +/-{MAX_MATRIX_ENTRY}")
        if not _pos(self.pos_step):
            bad(f"pos_step {self.pos_step!r} must be a finite number > 0")
        if not (isinstance(self.chol_step, (list, tuple)) and len(self.chol_step) == 3 and all(map(_pos, self.chol_step))):
            bad(f"chol_step {self.chol_step!r} must be three finite numbers > 0")
        cs = self.colour_step
        if not (isinstance(cs, (list, tuple)) and len(cs) == self.levels
                and all(isinstance(r, (list, tuple)) and len(r) == self.channels and all(map(_pos, r)) for r in cs)):
            bad(f"colour_step must be {self.levels} lists of {self.channels} finite numbers > 0")
        v = self.level0_scale
        if v is not None and not (_pos(v) and v < 1 and self.levels >= 2):
            bad(f"level0_scale {v!r} must be a number in (0, 1), and only with 2 or more levels")
        if self.alpha_mask is not False and not (self.alpha_mask is True and self.channels in (2, 4)):
            bad(f"alpha_mask {self.alpha_mask!r} must be true, and only with 2 or 4 channels")
        d = self.deblock
        if d is not None and not (isinstance(d, (list, tuple)) and len(d) == 2 and isinstance(d[0], int)
                                  and not isinstance(d[0], bool) and 1 <= d[0] <= MAX_DEBLOCK_WIDTH
                                  and (_pos(d[1]) or (d[1] == 0 and not isinstance(d[1], bool)))):
            bad(f"deblock {d!r} must be [K, T]: an integer K in 1..{MAX_DEBLOCK_WIDTH} and a finite number T >= 0")
        return self

    def pack(self) -> bytes:
        """The header's msgpack bytes. Every byte counts at low rates (a Kodak file at 0.25 bpp is
        12 KB), so an empty ``metadata`` is left out and the steps are written as float32 where
        that is exact (the encoder rounds them so: :func:`steps_as_float32`), 4 bytes less each."""
        self.validate(LigInputError, "refusing to write header")
        d = {k: getattr(self, k) for k in _REQUIRED}
        d["encoder"] = self.encoder
        if self.metadata:
            d["metadata"] = self.metadata
        if self.level0_scale is not None:
            d["level0_scale"] = float(self.level0_scale)
        if self.alpha_mask:
            d["alpha_mask"] = True
        if self.deblock is not None:
            d["deblock"] = [int(self.deblock[0]), float(self.deblock[1])]
        if self.colour_matrix is not None:
            d["colour_matrix"] = [[float(v) for v in r] for r in self.colour_matrix]
        out = [_map_head(len(d))]
        for k, v in d.items():
            exact32 = k in _STEP_KEYS and all(_is_float32(x) for x in _flat(v))
            out.append(msgpack.packb(k, use_bin_type=True))
            out.append(msgpack.packb(v, use_bin_type=True, use_single_float=exact32))
        return b"".join(out)

    @classmethod
    def parse(cls, data: bytes) -> "Header":
        try:
            d = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=MAX_HEADER_SIZE)
        except Exception as e:  # msgpack raises several unrelated types on garbage
            raise LigFormatError(f"header at byte {PREFIX_SIZE} is not valid msgpack: {e}") from None
        if not isinstance(d, dict):
            raise LigFormatError(f"header at byte {PREFIX_SIZE} is a {type(d).__name__}, not a map")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise LigFormatError(f"header at byte {PREFIX_SIZE} lacks required keys {missing}")
        extra = {k: d[k] for k in ("encoder", "metadata") if isinstance(d.get(k), dict)}
        # An invalid value is rejected by validate(), not ignored.
        for k in ("level0_scale", "alpha_mask", "deblock", "colour_matrix"):
            if k in d:
                extra[k] = d[k]
        h = cls(**{k: d[k] for k in _REQUIRED}, **extra)
        return h.validate(LigFormatError, f"header at byte {PREFIX_SIZE}")


_STEP_KEYS = ("pos_step", "chol_step", "colour_step", "colour_matrix")


def _map_head(n: int) -> bytes:
    """msgpack's map header for ``n`` entries (the entries follow, packed one by one)."""
    return bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)


def _flat(v):
    return [y for x in v for y in _flat(x)] if isinstance(v, (list, tuple)) else [v]


def _is_float32(x) -> bool:
    try:
        return isinstance(x, float) and math.isfinite(x) and steps_as_float32(x) == x
    except OverflowError:  # beyond float32's range
        return False


def steps_as_float32(values):
    """``values`` (a number or nested lists) rounded to the nearest float32, as Python floats: the
    steps an encoder uses, so that :meth:`Header.pack` can write them in 5 bytes, not 9."""
    if isinstance(values, (list, tuple)):
        return [steps_as_float32(v) for v in values]
    return struct.unpack("<f", struct.pack("<f", float(values)))[0]


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _pos(v) -> bool:
    return _num(v) and v > 0


@dataclass
class IndexEntry:
    offset: int
    length: int
    crc: int
    count: int


def max_chunk_count(tile: int) -> int:
    """Most Gaussians one chunk may hold (section 3): one per pixel of a full tile, and at most
    ``MAX_GAUSSIANS_PER_CHUNK``. It bounds what decoding a chunk allocates by the pixels it covers."""
    return min(MAX_GAUSSIANS_PER_CHUNK, tile * tile)


@dataclass
class Index:
    """Section 3: one entry per (level, tile), level-major."""

    entries: list

    def pack(self) -> bytes:
        body = b"".join(_ENTRY.pack(e.offset, e.length, e.crc, e.count, 0) for e in self.entries)
        return _INDEX_HEAD.pack(len(self.entries), crc32(body)) + body

    @classmethod
    def parse(cls, head: bytes, read, at: int, expected: int, file_size: int,
              max_count: int = MAX_GAUSSIANS_PER_CHUNK) -> "Index":
        k, crc = _INDEX_HEAD.unpack(head)
        if k != expected:
            raise LigFormatError(f"index at byte {at} has {k} entries; levels x tiles = {expected}")
        size = k * INDEX_ENTRY_SIZE
        if at + _INDEX_HEAD.size + size > file_size:
            raise LigFormatError(f"truncated file: index of {k} entries at byte {at} runs past the end ({file_size} bytes)")
        body = read(at + _INDEX_HEAD.size, size)
        if crc32(body) != crc:
            raise LigFormatError(f"index at byte {at} is corrupt (CRC mismatch)")
        entries = []
        for i in range(k):
            off, length, c, count, _ = _ENTRY.unpack_from(body, i * INDEX_ENTRY_SIZE)
            if off + length > file_size:
                raise LigFormatError(f"index entry {i} at byte {at + 8 + i * INDEX_ENTRY_SIZE}: chunk [{off}, {off + length}) "
                                     f"runs past the end of the file ({file_size} bytes); the file is truncated")
            if count > max_count:
                raise LigFormatError(f"index entry {i} at byte {at + 8 + i * INDEX_ENTRY_SIZE}: {count} Gaussians "
                                     f"exceeds the limit {max_count} (one per pixel of a tile, at most "
                                     f"{MAX_GAUSSIANS_PER_CHUNK})")
            if count * MIN_CHUNK_BYTES_PER_GAUSSIAN > length:
                raise LigFormatError(f"index entry {i} at byte {at + 8 + i * INDEX_ENTRY_SIZE}: {count} Gaussians "
                                     f"in a chunk of {length} bytes; each takes at least "
                                     f"{MIN_CHUNK_BYTES_PER_GAUSSIAN} byte(s), so the file is corrupt or forged")
            entries.append(IndexEntry(off, length, c, count))
        _check_no_overlap(entries, at + _INDEX_HEAD.size)
        return cls(entries)


def _check_no_overlap(entries, table_at: int) -> None:
    """Two non-empty chunks never share bytes (section 3): a file cannot make a reader decode
    the same bytes many times over."""
    spans = sorted((e.offset, e.offset + e.length, i) for i, e in enumerate(entries) if e.length)
    for (a0, a1, i), (b0, _, j) in zip(spans, spans[1:]):
        if b0 < a1:
            raise LigFormatError(f"index entries {i} and {j} at bytes {table_at + i * INDEX_ENTRY_SIZE} and "
                                 f"{table_at + j * INDEX_ENTRY_SIZE}: chunks [{a0}, {a1}) and [{b0}, ...) overlap; "
                                 "the file is corrupt or forged")


class LigReader:
    """Random access to a ``.lig`` file: header and index on open, chunks on demand.

    ``bytes_read`` counts every byte read from the file (tests use it to show that a reduced-scale
    decode reads only level-0 chunks).
    """

    def __init__(self, path):
        self.path = path
        self._f = open(path, "rb")
        try:
            self._f.seek(0, 2)
            self.file_size = self._f.tell()
            self.bytes_read = 0
            self._alpha = None
            self.prefix = Prefix.parse(self._read(0, min(PREFIX_SIZE, self.file_size)), self.file_size)
            raw = self._read(PREFIX_SIZE, self.prefix.header_size)
            if crc32(raw) != self.prefix.header_crc:
                raise LigFormatError(f"header at byte {PREFIX_SIZE} is corrupt (CRC mismatch)")
            self.header = Header.parse(raw)
            at = PREFIX_SIZE + self.prefix.header_size
            self.index = Index.parse(self._read(at, _INDEX_HEAD.size), self._read, at,
                                     self.header.levels * self.header.n_tiles, self.file_size,
                                     max_chunk_count(self.header.tile))
        except BaseException:
            self._f.close()
            raise

    def _read(self, offset: int, size: int) -> bytes:
        # pread, not seek + read: reads from several threads (a tile server) share the handle.
        parts, got = [], 0
        while got < size:
            part = os.pread(self._f.fileno(), size - got, offset + got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        data = b"".join(parts)
        self.bytes_read += len(data)
        if len(data) != size:
            raise LigFormatError(f"truncated file: wanted {size} bytes at byte {offset}, got {len(data)}")
        return data

    def entry(self, level: int, tile: int) -> IndexEntry:
        return self.index.entries[level * self.header.n_tiles + tile]

    def alpha_chunk(self, tile: int) -> bytes:
        """Tile ``tile``'s alpha mask chunk (section 8), CRC-checked; the table is read on first use."""
        if not self.header.alpha_mask:
            raise LigInputError(f"{self.path} has no alpha mask")
        if self._alpha is None:
            self._alpha = _parse_alpha_table(self._read, self.file_size, self.header.n_tiles)
        off, length, crc = self._alpha[tile]
        data = self._read(off, length) if length else b""
        if crc32(data) != crc:
            raise LigFormatError(f"alpha mask of tile {tile} at byte {off} is corrupt (CRC mismatch)")
        return data

    def chunk(self, level: int, tile: int) -> bytes:
        e = self.entry(level, tile)
        data = self._read(e.offset, e.length) if e.length else b""
        if crc32(data) != e.crc:
            raise LigFormatError(f"chunk of tile {tile}, level {level} at byte {e.offset} is corrupt (CRC mismatch)")
        return data

    @property
    def closed(self) -> bool:
        return self._f.closed

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _parse_alpha_table(read, file_size: int, n_tiles: int) -> list:
    """Section 8's footer and entry table: ``[(offset, length, crc)]`` per tile."""
    if file_size < _ALPHA_FOOTER.size:
        raise LigFormatError("the header announces an alpha mask, but the file is too short to end with one")
    tag, at = _ALPHA_FOOTER.unpack(read(file_size - _ALPHA_FOOTER.size, _ALPHA_FOOTER.size))
    end = file_size - _ALPHA_FOOTER.size
    size = 8 + _ALPHA_ENTRY.size * n_tiles
    if tag != ALPHA_TAG or at + size != end:
        raise LigFormatError(f"alpha mask footer at byte {end}: tag {tag!r} and table offset {at} do not describe a "
                             f"table of {n_tiles} entries ending there; the file is truncated or corrupt")
    k, crc = _INDEX_HEAD.unpack(read(at, 8))
    body = read(at + 8, size - 8)
    if k != n_tiles or crc32(body) != crc:
        raise LigFormatError(f"alpha mask table at byte {at} is corrupt ({k} entries for {n_tiles} tiles, or a CRC "
                             "mismatch)")
    out = [_ALPHA_ENTRY.unpack_from(body, i * _ALPHA_ENTRY.size) for i in range(k)]
    for i, (off, length, _) in enumerate(out):
        if off + length > at:
            raise LigFormatError(f"alpha mask entry {i} at byte {at + 8 + i * _ALPHA_ENTRY.size}: chunk [{off}, "
                                 f"{off + length}) does not lie before the table at byte {at}")
    return out


def _write_alpha(fileobj, offset: int, masks) -> int:
    """Section 8 at ``offset``: the mask chunks, their table and the footer. Returns the end."""
    entries = []
    for m in masks:
        fileobj.write(m)
        entries.append(_ALPHA_ENTRY.pack(offset, len(m), crc32(m)))
        offset += len(m)
    body = b"".join(entries)
    fileobj.write(_INDEX_HEAD.pack(len(masks), crc32(body)) + body + _ALPHA_FOOTER.pack(ALPHA_TAG, offset))
    return offset + _alpha_table_size(len(masks))


def _alpha_table_size(n: int) -> int:
    """Bytes of section 8's table and footer for ``n`` mask chunks."""
    return _INDEX_HEAD.size + _ALPHA_ENTRY.size * n + _ALPHA_FOOTER.size


def _first_chunk_offset(header_size: int, n_chunks: int) -> int:
    """Where the first chunk starts: after the prefix, the header and the index."""
    return PREFIX_SIZE + header_size + _INDEX_HEAD.size + INDEX_ENTRY_SIZE * n_chunks


def lig_size(header: Header, chunks, alpha=None) -> int:
    """The size of the file :func:`write_lig` would write for these arguments, without writing it
    (the encoder's rate loop weighs a coding round before keeping it)."""
    n = sum(len(level) for level in chunks)
    size = _first_chunk_offset(len(header.pack()), n) + sum(len(payload) for level in chunks for payload, _ in level)
    if header.alpha_mask and alpha is not None:
        size += sum(map(len, alpha)) + _alpha_table_size(len(alpha))
    return size


def write_lig(fileobj, header: Header, chunks, alpha=None) -> int:
    """Write a complete file: ``chunks[level][tile] = (payload, count)``, and with
    ``header.alpha_mask`` the mask chunks ``alpha[tile]`` (section 8). Returns its size.

    A payload is bytes, or a reference into another file (the encoder's journal) with ``len()``,
    ``crc``, ``path`` and ``read(f)``: those are copied one at a time, never all held in memory."""
    hbytes = header.pack()
    if len(hbytes) > MAX_HEADER_SIZE:
        raise LigInputError(f"header of {len(hbytes)} bytes exceeds {MAX_HEADER_SIZE}; shorten the metadata")
    flat = [c for level in chunks for c in level]
    if len(flat) != header.levels * header.n_tiles:
        raise LigInputError(f"{len(flat)} chunks given for {header.levels} levels x {header.n_tiles} tiles")
    offset = _first_chunk_offset(len(hbytes), len(flat))
    entries = []
    for payload, count in flat:
        if count > max_chunk_count(header.tile):
            raise LigInputError(f"a chunk of {count} Gaussians exceeds {max_chunk_count(header.tile)} (one per pixel "
                                f"of a {header.tile}-px tile, at most {MAX_GAUSSIANS_PER_CHUNK}); use fewer Gaussians")
        if count * MIN_CHUNK_BYTES_PER_GAUSSIAN > len(payload):
            raise LigInputError(f"a chunk of {count} Gaussians in {len(payload)} bytes breaks the spec's "
                                f"{MIN_CHUNK_BYTES_PER_GAUSSIAN} byte(s) per Gaussian")
        crc = crc32(payload) if isinstance(payload, (bytes, bytearray, memoryview)) else payload.crc
        entries.append(IndexEntry(offset, len(payload), crc, count))
        offset += len(payload)
    fileobj.write(Prefix(len(hbytes), crc32(hbytes)).pack())
    fileobj.write(hbytes)
    fileobj.write(Index(entries).pack())
    sources = {}
    try:
        for payload, _ in flat:
            if isinstance(payload, (bytes, bytearray, memoryview)):
                fileobj.write(payload)
                continue
            if payload.path not in sources:
                sources[payload.path] = open(payload.path, "rb")
            data = payload.read(sources[payload.path])
            if len(data) != len(payload) or crc32(data) != payload.crc:
                raise LigFormatError(f"{payload.path}: stored chunk at byte {payload.offset} is damaged; "
                                     "delete it and encode again")
            fileobj.write(data)
    finally:
        for f in sources.values():
            f.close()
    if header.alpha_mask:
        if alpha is None or len(alpha) != header.n_tiles:
            raise LigInputError(f"the header announces an alpha mask: give {header.n_tiles} mask chunks")
        return _write_alpha(fileobj, offset, alpha)
    return offset
