"""One tile's bitstream (spec section 4): quantise, order, entropy-code; and back."""

from __future__ import annotations

import math

import numpy as np
from constriction import stream

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


def table_limit(n: int, legacy: bool = False) -> int:
    """Most values a stream of a chunk of ``n`` Gaussians may have for the geometric table."""
    return TABLE_MAX if legacy else min(TABLE_MAX, TABLE_BASE + TABLE_PER_GAUSSIAN * n)


def dequantise_chol(qc, chol_step) -> np.ndarray:
    """``(log l11, l21, log l22)`` of the indices: ``q0 s0``, ``q1 s1 exp(q2 s2)``, ``q2 s2``."""
    cs = np.asarray(chol_step, np.float64)
    qc = np.asarray(qc)
    out = np.empty(qc.shape, np.float64)
    dequantise_chol_rows(np.ascontiguousarray(qc, np.int64), cs[0], cs[1], cs[2], out)
    return out


def dequantise(qx, qy, qc, qk, origin, pos_step, chol_step, colour_step):
    means = np.stack([origin[0] + (qx + 0.5) * pos_step, origin[1] + (qy + 0.5) * pos_step], 1)
    return means, dequantise_chol(qc, chol_step), qk * np.asarray(colour_step, np.float64)


def geometric_probabilities(lo: int, hi: int, loc: int, k: int) -> np.ndarray:
    """Unnormalised probabilities of the symbols ``lo..hi`` under the geometric table
    (a discrete Laplace, :func:`ligcodec.codec.ans.geometric_weights`)."""
    out = np.empty(hi - lo + 1, np.float64)
    ans.geometric_weights(lo, hi, loc, k, out)
    return out


def _laplace_params(s: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Integer location (median) and scale byte of a stream: the byte whose table codes ``s`` in
    the fewest bits, searched near the moment estimate (mean absolute deviation ``m`` of a
    discrete Laplace with ratio ``r``: ``m = 2r / (1 - r^2)``)."""
    loc = int(np.round(np.median(s)))
    m = max(float(np.mean(np.abs(s - loc))), 1e-3)
    r = (math.sqrt(1 + m * m) - 1) / m
    k0 = int(np.clip(np.round(-8 * math.log2(max(1 - r, 1e-12))), 0, 255))
    counts = np.bincount(s - lo, minlength=hi - lo + 1)
    used = counts > 0
    best = None
    for k in range(max(0, k0 - 3), min(255, k0 + 3) + 1):
        p = geometric_probabilities(lo, hi, loc, k)
        p = np.maximum(p / p.sum(), 2.0 ** -24)
        bits = -float((counts[used] * np.log2(p[used])).sum())
        if best is None or bits < best[0]:
            best = (bits, k)
    return loc, best[1]


def _uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


#: Attribute of each stream, for the bits-per-attribute report.
def stream_attribute(i: int) -> str:
    return "position" if i < 2 else "covariance" if i < 5 else "colour"


def encode_chunk(qx, qy, qc, qk, stats: dict | None = None) -> bytes:
    """Entropy-code the symbol streams of one tile (see spec section 4).

    ``stats``, if given, accumulates the bits each attribute costs (each stream coded alone) and
    the stream table's ("side").
    """
    n = len(qx)
    if n == 0:
        return b""
    dqy = np.diff(qy, prepend=0)
    streams = [qx, dqy] + [qc[:, k] for k in range(3)] + [qk[:, c] for c in range(qk.shape[1])]
    head = bytearray()
    models = []
    limit = table_limit(n)
    for i, s in enumerate(streams):
        lo, hi = int(s.min()), int(s.max())
        if i == 0:
            head += _uvarint(_zigzag(lo)) + _uvarint(hi - lo)
            models.append(_model(i, lo, hi, 0, 0, limit))
        else:
            # A stream too wide for a table is coded uniformly: its k is never used.
            loc, k = _laplace_params(s, lo, hi) if hi - lo < limit else (int(np.round(np.median(s))), 0)
            head += _uvarint(_zigzag(loc)) + _uvarint(loc - lo) + _uvarint(hi - loc) + bytes([k])
            models.append(_model(i, lo, hi, loc, k, limit))
    coder = stream.stack.AnsCoder()
    for i, (s, (m, lo)) in reversed(list(enumerate(zip(streams, models)))):
        if m is not None:  # a constant stream (lo == hi) codes no symbols
            symbols = (s - lo).astype(np.int32)  # models take 0..hi-lo
            coder.encode_reverse(symbols, m)
            if stats is not None:
                alone = stream.stack.AnsCoder()
                alone.encode_reverse(symbols, m)
                key = stream_attribute(i)
                stats[key] = stats.get(key, 0) + alone.num_bits()
    if stats is not None:
        stats["side"] = stats.get("side", 0) + 8 * len(head)
    return bytes(head) + coder.get_compressed().astype("<u4").tobytes()


def _kind(i, lo, hi, limit) -> int:
    """Model kind of stream ``i`` (spec section 4): constant, uniform (``qx`` and streams wider
    than ``limit``, :func:`table_limit`) or the geometric table."""
    if lo == hi:
        return ans.CONST
    return ans.UNIFORM if i == 0 or hi - lo + 1 > limit else ans.TABLE


def _model(i, lo, hi, loc, k, limit):
    """``(constriction model, or None for a constant stream, lo)`` for the encoder."""
    kind = _kind(i, lo, hi, limit)
    if kind == ans.CONST:
        return None, lo
    if kind == ans.UNIFORM:
        return stream.model.Uniform(hi - lo + 1), lo
    return stream.model.Categorical(geometric_probabilities(lo, hi, loc, k), perfect=False), lo


class _Reader:
    def __init__(self, data: bytes, where: str):
        self.data, self.pos, self.where = data, 0, where

    def uvarint(self) -> int:
        v = 0
        for shift in range(0, 7 * VARINT_MAX_BYTES, 7):
            if self.pos >= len(self.data):
                raise LigFormatError(f"{self.where}: chunk of {len(self.data)} bytes is too short for its stream table")
            b = self.data[self.pos]
            self.pos += 1
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
        raise LigFormatError(f"{self.where}: varint longer than {VARINT_MAX_BYTES} bytes at chunk byte {self.pos}")

    def zigzag(self) -> int:
        v = self.uvarint()
        return v >> 1 if not v & 1 else -((v + 1) >> 1)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise LigFormatError(f"{self.where}: chunk of {len(self.data)} bytes is too short for its stream table")
        self.pos += 1
        return self.data[self.pos - 1]


def stream_table(data: bytes, n: int, channels: int, where: str, legacy: bool = False):
    """A chunk's stream table (spec section 4): ``([(kind, lo, hi, loc, k)] per stream, the
    offset of the first ANS word)``, kinds as in :func:`.ans.decode_streams`."""
    r = _Reader(data, where)
    limit = table_limit(n, legacy)
    params = []
    for i in range(5 + channels):
        if i == 0:
            lo = r.zigzag()
            hi = lo + r.uvarint()
            loc = k = 0
        else:
            loc = r.zigzag()
            lo, hi = loc - r.uvarint(), loc + r.uvarint()
            k = r.byte()
        if min(lo, hi) < -MAX_SYMBOL or max(lo, hi) > MAX_SYMBOL:
            raise LigFormatError(f"{where}: stream {i} has an invalid range [{lo}, {hi}]")
        params.append((_kind(i, lo, hi, limit), lo, hi, loc, k))
    return params, r.pos


def decode_chunk(data: bytes, n: int, channels: int, where: str, legacy: bool = False):
    """Inverse of :func:`encode_chunk`: ``(qx, qy, qc [n, 3], qk [n, C])``, int64. ``legacy``: a
    2.0/2.1 chunk (tables up to :data:`TABLE_MAX`, bounded by its length instead)."""
    if n == 0:
        if data:
            raise LigFormatError(f"{where}: {len(data)} bytes for 0 Gaussians")
        return (np.zeros(0, np.int64),) * 2 + (np.zeros((0, 3), np.int64), np.zeros((0, channels), np.int64))
    params, pos = stream_table(data, n, channels, where, legacy)
    values = sum(hi - lo + 1 for kind, lo, hi, _, _ in params if kind == ans.TABLE)
    if legacy and values > LEGACY_TABLE_BASE + LEGACY_TABLE_PER_BYTE * len(data):
        raise LigFormatError(f"{where}: its tables hold {values} values for {len(data)} bytes, above what a 2.1 "
                             "file may (spec section 4); re-encode it with this ligcodec")
    if (len(data) - pos) % 4:
        raise LigFormatError(f"{where}: {len(data) - pos} bytes after the stream table are not whole 32-bit words")
    words = np.frombuffer(data, "<u4", (len(data) - pos) // 4, pos).astype(np.uint32)
    out = np.empty((len(params), n), np.int64)
    p = np.array(params, np.int64).reshape(-1, 5)
    if ans.decode_streams(words, p[:, 0], p[:, 1], p[:, 2], p[:, 3], p[:, 4], n, out):
        raise LigFormatError(f"{where}: entropy decoding failed: the ANS words end in a zero word")
    qx, dqy = out[0], out[1]
    qy = np.cumsum(dqy)
    return qx, qy, np.stack(out[2:5], 1), np.stack(out[5:], 1)
