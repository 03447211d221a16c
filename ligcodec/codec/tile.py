"""One tile's bitstream (spec section 4): the format's rules and its reader.

The writer is :mod:`.tile_writer` (constriction, which reading then never imports). Since format
4 a chunk is cut into parts (:func:`part_count`, :func:`part_spans`), each with its own stream
table and ANS stack. Reading has one implementation, the numba kernels here: :func:`parse_table`
(a part's stream table) and :func:`decode_part` (the table, the ANS words and the positions),
which :func:`.batch.decode_chunks` runs in parallel over a read's parts, and
:func:`decode_symbols` over one chunk's. A rejected chunk gets a status and a detail (what is
wrong, with its numbers), which :func:`chunk_problem` words for the
:class:`~ligcodec.errors.LigFormatError`; :func:`decode_chunk` and :func:`stream_table` are their
thin wrappers for one chunk (tests, benches). The rule that picks a stream's model
(:func:`stream_kind`, :func:`table_limit`) is shared by the writer and the reader.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..errors import LigFormatError
from . import ans
from .dequant import dequantise_chol_rows

#: Symbols lie in ``[-MAX_SYMBOL, MAX_SYMBOL]``: a stream then has at most 2^24 - 1 distinct
#: values, what a 24-bit-precision model can code (and a tile never needs more).
MAX_SYMBOL = (1 << 23) - 1
#: Streams with more symbols than this (``hi - lo + 1``) are coded uniformly: the table model
#: costs O(symbols) to build, and a reader must not be made to build a giant one.
TABLE_MAX = 1 << 16
#: Since format 2.2 a table also holds at most ``TABLE_BASE + TABLE_PER_GAUSSIAN n`` values for a
#: chunk of ``n`` Gaussians (wider streams are coded uniformly): a chunk's tables then cost a fixed
#: multiple of its Gaussians, hence of its bytes, to build. 2.0/2.1 chunks keep ``TABLE_MAX``
#: alone, and a reader refuses one whose tables hold more than ``LEGACY_TABLE_BASE +
#: LEGACY_TABLE_PER_BYTE x length`` values (real ones held at most 13 per byte).
TABLE_BASE = 512
TABLE_PER_GAUSSIAN = 16
LEGACY_TABLE_BASE = 4096
LEGACY_TABLE_PER_BYTE = 64
VARINT_MAX_BYTES = 4  # 28 bits: enough for 2 * MAX_SYMBOL + 1
#: Format 3.0 codes the positions as gaps between the Gaussians' raster indices, each split
#: Rice-style into ``gap >> s`` (a geometric table) and the ``s`` low bits (uniform); ``s`` is at
#: most this (a uniform stream of 2^s values must fit the coder's 24-bit precision).
MAX_GAP_SHIFT = 20

#: Chunk layouts (spec section 4), from the file's version (:func:`chunk_layout`): 2.0/2.1 (the
#: table rule of :data:`TABLE_MAX` alone), 2.2-2.4 (positions as ``qx``, ``dqy``), 3.x (gaps),
#: 4.x (parts, each coded as a 3.x chunk).
LAYOUT_21, LAYOUT_24, LAYOUT_GAPS, LAYOUT_PARTS = 0, 1, 2, 3
#: Format 4 cuts a chunk into at most this many parts (and at most one per Gaussian).
MAX_PARTS = 16


def chunk_layout(major: int, minor: int) -> int:
    """The chunk layout of a file of format ``major.minor``."""
    if major >= 4:
        return LAYOUT_PARTS
    if major == 3:
        return LAYOUT_GAPS
    return LAYOUT_21 if minor < 2 else LAYOUT_24


@numba.njit(cache=True, nogil=True)
def part_layout(layout):
    """The layout of each part of a chunk of ``layout``: a 4.x part is coded as a 3.x chunk."""
    return LAYOUT_GAPS if layout == LAYOUT_PARTS else layout


#: Status of a chunk's decode (:func:`decode_symbols`; :mod:`.batch` adds the section-4 limits).
OK, BAD_TABLE, BAD_WORDS = 0, 1, 2
#: Why a chunk was refused: ``detail[0]`` of :func:`decode_symbols` and :func:`parse_table`, with
#: ``detail[1:4]`` the numbers :func:`chunk_problem` puts in the message.
SHORT_TABLE, LONG_VARINT, BAD_RANGE, LEGACY_TABLES = 1, 2, 3, 4
RAGGED_WORDS, ZERO_WORD, BYTES_FOR_EMPTY = 5, 6, 7
BAD_GRID, BAD_SHIFT, BAD_GAP = 8, 9, 10
BAD_PART_COUNT, PART_LENGTHS = 11, 12


@numba.njit(cache=True, nogil=True)
def table_limit(n, legacy=False):
    """Most values a stream of a chunk of ``n`` Gaussians may have for the geometric table."""
    return TABLE_MAX if legacy else min(TABLE_MAX, TABLE_BASE + TABLE_PER_GAUSSIAN * n)


@numba.njit(cache=True, nogil=True)
def stream_kind(i, lo, hi, limit):
    """Model kind of stream ``i`` (spec section 4), for the encoder and the decoder alike:
    constant, uniform (stream 0: ``qx``, or the gaps' low bits; streams wider than ``limit``,
    :func:`table_limit`) or the geometric table."""
    if lo == hi:
        return ans.CONST
    return ans.UNIFORM if i == 0 or hi - lo + 1 > limit else ans.TABLE


def dequantise_chol(qc, chol_step) -> np.ndarray:
    """``(log l11, l21, log l22)`` of the indices: ``q0 s0``, ``q1 s1 exp(q2 s2)``, ``q2 s2``."""
    cs = np.asarray(chol_step, np.float64)
    qc = np.asarray(qc)
    out = np.empty(qc.shape, np.float64)
    dequantise_chol_rows(np.ascontiguousarray(qc, np.int64), cs[0], cs[1], cs[2], out)
    return out


def geometric_probabilities(lo: int, hi: int, loc: int, k: int) -> np.ndarray:
    """Unnormalised probabilities of the symbols ``lo..hi`` under the geometric table
    (a discrete Laplace, :func:`ligcodec.codec.ans.geometric_weights`)."""
    out = np.empty(hi - lo + 1, np.float64)
    ans.geometric_weights(lo, hi, loc, k, out)
    return out


#: Attribute of each stream, for the bits-per-attribute report.
def stream_attribute(i: int) -> str:
    return "position" if i < 2 else "covariance" if i < 5 else "colour"


def raster_gaps(qx, qy, x0: int, width: int, y0: int | None = None) -> np.ndarray:
    """Differences of the raster indices ``(qy - y0) width + qx - x0`` (the first one's is its
    own index; ``y0`` the writer's, ``qy[0]``, unless given): >= 0 for Gaussians sorted by
    ``(qy, qx)``."""
    return np.diff((qy - (qy[0] if y0 is None else y0)) * width + (qx - x0), prepend=0)


@numba.njit(cache=True, nogil=True)
def _refuse(detail, code, a, b, c):
    """Record in ``detail`` why a chunk is refused: a code (:data:`SHORT_TABLE` ...) and three
    numbers (all four are written: ``detail`` need not come in zeroed)."""
    detail[0] = code
    detail[1] = a
    detail[2] = b
    detail[3] = c


@numba.njit(cache=True, nogil=True)
def _varint(data, pos, end, start, detail):
    """``(value, new pos)`` of the varint at ``data[pos:]``, or ``(-1, pos)`` with ``detail`` saying
    why not: it runs past ``end``, or is longer than :data:`VARINT_MAX_BYTES` (chunk at ``start``)."""
    v = 0
    for k in range(VARINT_MAX_BYTES):
        if pos + k >= end:
            _refuse(detail, SHORT_TABLE, 0, 0, 0)
            return -1, pos
        b = np.int64(data[pos + k])
        v |= (b & 0x7F) << (7 * k)
        if not b & 0x80:
            return v, pos + k + 1
    _refuse(detail, LONG_VARINT, pos - start, 0, 0)
    return -1, pos


@numba.njit(cache=True, nogil=True)
def _unzigzag(v):
    """Inverse of :func:`.tile_writer._zigzag`."""
    return v >> 1 if not v & 1 else -((v + 1) >> 1)


@numba.njit(cache=True, nogil=True)
def _entry(data, pos, end, start, detail):
    """A table entry of three varints and one byte: ``(a, b, c, byte, position after it)``, the
    position -1 with ``detail`` saying why. A varint that fails leaves ``pos`` where it was, so the
    reads after it fail the same way and ``detail`` keeps the first reason: one check suffices."""
    a, pos = _varint(data, pos, end, start, detail)
    b, pos = _varint(data, pos, end, start, detail)
    c, pos = _varint(data, pos, end, start, detail)
    if min(a, b, c) < 0:
        return a, b, c, 0, -1
    if pos >= end:
        _refuse(detail, SHORT_TABLE, 0, 0, 0)
        return a, b, c, 0, -1
    return a, b, c, np.int64(data[pos]), pos + 1


@numba.njit(cache=True, nogil=True)
def _gap_entry(data, pos, end, start, params, grid, detail):
    """Format 3's stream-0 entry (``zz(x0)``, ``width - 1``, ``zz(y0)``, shift byte) into
    ``grid [3]`` = ``(x0, width, y0)`` and ``params[0]`` (the low bits: uniform over ``0 ..
    2^s - 1``). Returns the position after it, or -1 with ``detail`` saying why."""
    zx, wm1, zy, shift, pos = _entry(data, pos, end, start, detail)
    if pos < 0:
        return -1
    x0, y0 = _unzigzag(zx), _unzigzag(zy)
    if max(abs(x0), abs(y0)) > MAX_SYMBOL or wm1 > 2 * MAX_SYMBOL:
        _refuse(detail, BAD_GRID, x0, wm1 + 1, y0)
        return -1
    if shift > MAX_GAP_SHIFT:
        _refuse(detail, BAD_SHIFT, shift, 0, 0)
        return -1
    grid[0], grid[1], grid[2] = x0, wm1 + 1, y0
    params[0, 0] = ans.CONST if shift == 0 else ans.UNIFORM
    params[0, 1] = 0
    params[0, 2] = (1 << shift) - 1
    params[0, 3] = shift  # read back by :func:`raster_positions`
    params[0, 4] = 0
    return pos


@numba.njit(cache=True, nogil=True)
def parse_table(data, start, end, n, nch, layout, params, grid, detail):
    """The stream table of the chunk ``data[start:end]`` (``n`` Gaussians, ``nch`` channels,
    ``layout`` as :func:`chunk_layout` gives) into ``params [5 + nch, 5]``: ``(kind, lo, hi, loc,
    k)`` per stream, kinds as in :func:`.ans.decode_streams` (format 3: stream 0 is the gaps' low
    bits, ``loc`` their shift, and ``grid [3]`` gets ``(x0, width, y0)``). Returns the position of
    the first ANS word, or -1 with ``detail`` saying why (:data:`SHORT_TABLE`,
    :data:`LONG_VARINT`, :data:`BAD_RANGE`, :data:`BAD_GRID`, :data:`BAD_SHIFT`)."""
    limit = table_limit(n, layout == LAYOUT_21)
    pos = start
    for i in range(5 + nch):
        if i == 0 and layout == LAYOUT_GAPS:
            pos = _gap_entry(data, pos, end, start, params, grid, detail)
            if pos < 0:
                return -1
            continue
        if i == 0:  # 2.x: (zz(lo), span); a failed first varint fails the second (see _entry)
            z, pos = _varint(data, pos, end, start, detail)
            below, pos = _varint(data, pos, end, start, detail)
            if min(z, below) < 0:
                return -1
            lo = _unzigzag(z)
            hi = lo + below
            loc = 0
            k = 0
        else:
            z, below, above, k, pos = _entry(data, pos, end, start, detail)
            if pos < 0:
                return -1
            loc = _unzigzag(z)
            lo = loc - below
            hi = loc + above
        if min(lo, hi) < -MAX_SYMBOL or max(lo, hi) > MAX_SYMBOL:
            _refuse(detail, BAD_RANGE, i, lo, hi)
            return -1
        params[i, 0] = stream_kind(i, lo, hi, limit)
        params[i, 1] = lo
        params[i, 2] = hi
        params[i, 3] = loc
        params[i, 4] = k
    return pos


@numba.njit(cache=True, nogil=True)
def check_empty(start, end, detail):
    """Status of a chunk of 0 Gaussians ``data[start:end]``: it must hold no bytes."""
    if end == start:
        return OK
    _refuse(detail, BYTES_FOR_EMPTY, 0, 0, 0)
    return BAD_TABLE


@numba.njit(cache=True, nogil=True)
def raster_positions(out, n, shift, grid, detail):
    """Format 3: turn rows 0 (the gaps' low bits) and 1 (their high part) of ``out`` into ``qx``,
    ``qy`` (spec section 4). False, with ``detail`` saying why, where a gap is negative or the
    raster index leaves the rows a stream may span (``2 MAX_SYMBOL + 1``)."""
    x0, width, y0 = grid[0], grid[1], grid[2]
    bound = (2 * MAX_SYMBOL + 1) * width  # < 2^48: no overflow below
    index = np.int64(0)
    for j in range(n):
        high = out[1, j]
        if high < 0 or high > bound >> shift:
            _refuse(detail, BAD_GAP, j, high, 0)
            return False
        index += (high << shift) + out[0, j]
        if index > bound:
            _refuse(detail, BAD_GAP, j, high, 0)
            return False
        out[1, j] = y0 + index // width
        out[0, j] = x0 + index % width
    return True


@numba.njit(cache=True, nogil=True)
def part_count(data, start, end, n, layout, detail):
    """The number of parts ``P`` of the chunk ``data[start:end]`` of ``n > 0`` Gaussians (spec
    section 4: its first byte in format 4, else 1), or -1 with ``detail`` saying why."""
    if layout != LAYOUT_PARTS:
        return 1
    if start >= end:
        _refuse(detail, SHORT_TABLE, 0, 0, 0)
        return -1
    p = np.int64(data[start])
    if p < 1 or p > min(MAX_PARTS, n):
        _refuse(detail, BAD_PART_COUNT, p, n, 0)
        return -1
    return p


@numba.njit(cache=True, nogil=True)
def part_spans(data, start, end, p, layout, spans, detail):
    """Byte ranges of the ``p`` parts (:func:`part_count`) of the chunk ``data[start:end]`` into
    ``spans[i] = (first byte, end)``. False, with ``detail`` saying why, where the lengths' varints
    or the lengths themselves run past the chunk's end."""
    if layout != LAYOUT_PARTS:
        spans[0, 0], spans[0, 1] = start, end
        return True
    pos = start + 1
    total = 0
    for i in range(p - 1):
        v, pos = _varint(data, pos, end, start, detail)
        if v < 0:
            return False
        spans[i, 1] = v  # the length for now; at most 15 varints of 28 bits: no overflow
        total += v
    if total > end - pos:
        _refuse(detail, PART_LENGTHS, total, end - pos, 0)
        return False
    for i in range(p - 1):
        spans[i, 0] = pos
        pos += spans[i, 1]
        spans[i, 1] = pos
    spans[p - 1, 0], spans[p - 1, 1] = pos, end
    return True


@numba.njit(cache=True, nogil=True)
def decode_part(data, start, end, n, nch, layout, out, detail):
    """Decode the part ``data[start:end]`` (uint8; ``n > 0`` Gaussians, ``nch`` channels; a whole
    chunk before format 4; ``layout`` as :func:`part_layout` gives) into ``out [5 + nch, n]``
    (int64), rows ``qx``, ``qy``, ``q0..q2``, ``c_0..``. Returns :data:`OK`, or a status with
    ``detail [4]`` saying why (:func:`chunk_problem`); ``out`` is then undefined."""
    params = np.empty((5 + nch, 5), np.int64)
    grid = np.zeros(3, np.int64)
    pos = parse_table(data, start, end, n, nch, layout, params, grid, detail)
    if pos < 0:
        return BAD_TABLE
    if layout == LAYOUT_21:
        values = 0
        for i in range(5 + nch):
            if params[i, 0] == ans.TABLE:
                values += params[i, 2] - params[i, 1] + 1
        if values > LEGACY_TABLE_BASE + LEGACY_TABLE_PER_BYTE * (end - start):
            _refuse(detail, LEGACY_TABLES, values, 0, 0)
            return BAD_TABLE
    if (end - pos) % 4:
        _refuse(detail, RAGGED_WORDS, end - pos, 0, 0)
        return BAD_TABLE
    nw = (end - pos) // 4
    words = np.empty(nw, np.uint32)
    for w in range(nw):
        b = pos + 4 * w
        words[w] = (np.uint32(data[b]) | (np.uint32(data[b + 1]) << np.uint32(8))
                    | (np.uint32(data[b + 2]) << np.uint32(16)) | (np.uint32(data[b + 3]) << np.uint32(24)))
    if ans.decode_streams(words, params[:, 0], params[:, 1], params[:, 2], params[:, 3], params[:, 4], n, out):
        _refuse(detail, ZERO_WORD, 0, 0, 0)
        return BAD_WORDS
    if layout == LAYOUT_GAPS:
        if not raster_positions(out, n, params[0, 3], grid, detail):
            return BAD_WORDS
        return OK
    for j in range(1, n):
        out[1, j] += out[1, j - 1]
    return OK


@numba.njit(cache=True, nogil=True)
def decode_symbols(data, start, end, n, nch, layout, detail):
    """Decode the chunk ``data[start:end]`` (uint8; ``n`` Gaussians, ``nch`` channels; ``layout``
    as :func:`chunk_layout` gives), part after part: ``(status, out [5 + nch, n])`` as
    :func:`decode_part` gives them for the whole chunk."""
    out = np.empty((5 + nch, n), np.int64)
    if n == 0:
        return check_empty(start, end, detail), out
    p = part_count(data, start, end, n, layout, detail)
    spans = np.empty((max(p, 1), 2), np.int64)
    if p < 0 or not part_spans(data, start, end, p, layout, spans, detail):
        return BAD_TABLE, out
    for i in range(p):
        a, b = i * n // p, (i + 1) * n // p
        part = np.empty((5 + nch, b - a), np.int64)
        st = decode_part(data, spans[i, 0], spans[i, 1], b - a, nch, part_layout(layout), part, detail)
        if st != OK:
            part_detail(detail, spans[i, 0] - start)
            return st, out
        out[:, a:b] = part
    return OK, out


@numba.njit(cache=True, nogil=True)
def part_detail(detail, offset):
    """Make ``detail``'s byte offset (of a part starting ``offset`` bytes into its chunk) the
    chunk's, as :func:`chunk_problem` words it."""
    if detail[0] == LONG_VARINT:
        detail[1] += offset


def chunk_problem(detail, nbytes: int) -> str:
    """What is wrong with a chunk of ``nbytes`` bytes that :func:`decode_symbols` or
    :func:`parse_table` refused with ``detail``, in words."""
    code, a, b, c = (int(v) for v in detail)
    if code == SHORT_TABLE:
        return f"chunk of {nbytes} bytes is too short for its stream table"
    if code == LONG_VARINT:
        return f"varint at chunk byte {a} is longer than {VARINT_MAX_BYTES} bytes"
    if code == BAD_RANGE:
        return f"stream {a} has an invalid range [{b}, {c}] (symbols lie in [-{MAX_SYMBOL}, {MAX_SYMBOL}])"
    if code == LEGACY_TABLES:
        return (f"its tables hold {a} values for {nbytes} bytes, above what a 2.1 file may (spec section 4); "
                "re-encode it with this ligcodec")
    if code == RAGGED_WORDS:
        return f"{a} bytes after the stream table are not whole 32-bit words"
    if code == ZERO_WORD:
        return "entropy decoding failed: the ANS words end in a zero word"
    if code == BYTES_FOR_EMPTY:
        return f"{nbytes} bytes for 0 Gaussians"
    if code == BAD_GRID:
        return (f"positions grid x0 {a}, width {b}, y0 {c} is out of range (|x0|, |y0| <= {MAX_SYMBOL}, "
                f"width <= {2 * MAX_SYMBOL + 1})")
    if code == BAD_SHIFT:
        return f"position gap shift {a} is above {MAX_GAP_SHIFT}"
    if code == BAD_PART_COUNT:
        return f"{a} parts for {b} Gaussians (1 to min({MAX_PARTS}, the Gaussians) allowed)"
    if code == PART_LENGTHS:
        return f"its parts' lengths add up to {a} bytes, past the {b} bytes that follow them"
    if code == BAD_GAP:
        return f"Gaussian {a}'s position gap (high part {b}) is negative or leaves the tile's range"
    return f"chunk of {nbytes} bytes cannot be decoded"


def stream_table(data: bytes, n: int, channels: int, where: str, layout: int = LAYOUT_GAPS, grid=None):
    """A part's stream table (spec section 4; a whole chunk before format 4, ``layout`` as
    :func:`part_layout` gives): ``([(kind, lo, hi, loc, k)] per stream, the offset of the first
    ANS word)``, kinds as in :func:`.ans.decode_streams` (:func:`parse_table`;
    format 3: stream 0 is the gaps' low bits, its ``loc`` their shift, and ``grid [3]``, if given,
    gets the positions' ``(x0, width, y0)``). Raises :class:`LigFormatError` starting with ``where`` if the table is malformed."""
    if layout == LAYOUT_PARTS:
        raise ValueError("stream_table: a format-4 chunk has a table per part (chunk_parts gives them)")
    buf = np.frombuffer(data, np.uint8)
    params = np.empty((5 + channels, 5), np.int64)
    detail = np.zeros(4, np.int64)
    grid = np.zeros(3, np.int64) if grid is None else grid
    pos = parse_table(buf, 0, len(buf), int(n), int(channels), int(layout), params, grid, detail)
    if pos < 0:
        raise LigFormatError(f"{where}: {chunk_problem(detail, len(buf))}")
    return [tuple(int(v) for v in p) for p in params], int(pos)


def chunk_parts(data: bytes, n: int, where: str, layout: int = LAYOUT_PARTS) -> list[tuple[bytes, int]]:
    """``[(part bytes, Gaussians)]`` of a chunk of ``n > 0`` Gaussians (:func:`part_count`,
    :func:`part_spans`). Raises :class:`LigFormatError` starting with ``where`` if they are malformed."""
    buf = np.frombuffer(data, np.uint8)
    detail = np.zeros(4, np.int64)
    p = part_count(buf, 0, len(buf), int(n), int(layout), detail)
    spans = np.empty((max(p, 1), 2), np.int64)
    if p < 0 or not part_spans(buf, 0, len(buf), p, int(layout), spans, detail):
        raise LigFormatError(f"{where}: {chunk_problem(detail, len(buf))}")
    return [(data[a:b], (i + 1) * n // p - i * n // p) for i, (a, b) in enumerate(spans.tolist())]


def decode_chunk(data: bytes, n: int, channels: int, where: str, layout: int = LAYOUT_PARTS):
    """Inverse of :func:`.tile_writer.encode_chunk` (:func:`decode_symbols`): ``(qx, qy, qc [n, 3], qk [n, C])``,
    int64, for a chunk of ``layout`` (:func:`chunk_layout`). Raises :class:`LigFormatError`
    starting with ``where`` if the chunk is malformed."""
    buf = np.frombuffer(data, np.uint8)
    detail = np.zeros(4, np.int64)
    status, out = decode_symbols(buf, 0, len(buf), int(n), int(channels), int(layout), detail)
    if status != OK:
        raise LigFormatError(f"{where}: {chunk_problem(detail, len(buf))}")
    return out[0], out[1], np.ascontiguousarray(out[2:5].T), np.ascontiguousarray(out[5:].T)


def position_streams(qx, qy, params, layout: int, grid) -> list:
    """The two position streams a part codes, from its decoded positions: ``qx`` and ``dqy``, or
    in format 3 the gaps' low bits and high part (the shift is ``params[0][3]``) on the part's
    ``grid`` (``x0, width, y0``, as :func:`stream_table` gives it; a forged one need not be the
    writer's)."""
    if layout != LAYOUT_GAPS:
        return [qx, np.diff(qy, prepend=0)]
    gaps = raster_gaps(qx, qy, int(grid[0]), int(grid[1]), int(grid[2]))
    shift = params[0][3]
    return [gaps & ((1 << shift) - 1), gaps >> shift]


def attribute_bits(data: bytes, n: int, channels: int, where: str, layout: int = LAYOUT_PARTS) -> dict:
    """Bits one chunk spends per attribute (:func:`stream_attribute`) and on its stream tables and
    part lengths (``side``): each stream's code length under its own model, ``-sum log2 p`` (the
    ANS words add a few bits per part), for ``info --verbose``."""
    if n == 0:
        return {}
    parts = chunk_parts(data, n, where, layout)
    out = {"side": 8 * (len(data) - sum(len(b) for b, _ in parts))}
    for b, m in parts:
        for key, bits in _part_bits(b, m, channels, where, part_layout(layout)).items():
            out[key] = out.get(key, 0.0) + bits
    return out


def _part_bits(data: bytes, n: int, channels: int, where: str, layout: int) -> dict:
    """:func:`attribute_bits` of one part."""
    grid = np.zeros(3, np.int64)
    params, pos = stream_table(data, n, channels, where, layout, grid)
    qx, qy, qc, qk = decode_chunk(data, n, channels, where, layout)
    streams = position_streams(qx, qy, params, layout, grid) + [qc[:, k] for k in range(3)] + \
        [qk[:, c] for c in range(channels)]
    out = {"side": 8 * pos}
    for i, (s, (kind, lo, hi, loc, k)) in enumerate(zip(streams, params)):
        if kind == ans.CONST:
            bits = 0.0
        elif kind == ans.UNIFORM:
            bits = n * math.log2(hi - lo + 1)
        else:
            p = geometric_probabilities(lo, hi, loc, k)
            p = np.maximum(p / p.sum(), 2.0 ** -24)  # the writer's floor (:func:`.tile_writer._laplace_params`)
            bits = -float(np.log2(p[s - lo]).sum())
        key = stream_attribute(i)
        out[key] = out.get(key, 0.0) + bits
    return out
