"""One tile's bitstream written (spec section 4): the symbol streams of a chunk's Gaussians,
sorted by ``(qy, qx)``, cut into parts, each part's stream table and constriction's ANS words.

The rules both sides share (which model a stream gets, the table limits, the layouts) and the one
reader are in :mod:`.tile`; what each attribute costs is read back by :func:`.tile.attribute_bits`.
"""

from __future__ import annotations

import math

import numpy as np
from constriction import stream

from . import ans
from .tile import (LAYOUT_GAPS, LAYOUT_PARTS, MAX_GAP_SHIFT, MAX_SYMBOL, VARINT_MAX_BYTES,
                   geometric_probabilities, raster_gaps, stream_kind, table_limit)

#: ligcodec writes 2 or 4 parts, whichever codes a chunk in fewer bytes (a part's models fit its
#: Gaussians more closely than the chunk's do), for a chunk of :data:`SPLIT_GAUSSIANS` or more, so
#: that one tile's chunk decodes on two cores; an even count keeps two cores equally busy (three
#: parts, often the fewest bytes, left one core a third of the work idle). Smaller chunks: 1 or 2.
SPLIT_GAUSSIANS = 2048


def _laplace_params(s: np.ndarray, lo: int, hi: int) -> tuple[int, int, float]:
    """Integer location (median) and scale byte of a stream, and its bits: the byte whose table
    codes ``s`` in the fewest bits, searched near the moment estimate (mean absolute deviation
    ``m`` of a discrete Laplace with ratio ``r``: ``m = 2r / (1 - r^2)``)."""
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
    return loc, best[1], best[0]


def _uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def encode_chunk(qx, qy, qc, qk, layout: int = LAYOUT_PARTS) -> bytes:
    """Entropy-code the symbol streams of one tile's level (see spec section 4), the Gaussians
    sorted by ``(qy, qx)``: in format 4 (``layout`` :data:`LAYOUT_PARTS`) in the number of parts
    of :func:`written_parts` that codes them in the fewest bytes; other layouts (for tests of
    older files) in one part. What each attribute costs is read back by :func:`attribute_bits`."""
    n = len(qx)
    if layout != LAYOUT_PARTS or n == 0:
        return encode_part(qx, qy, qc, qk, layout)
    _check_sorted(np.asarray(qx), np.asarray(qy))  # the whole chunk, not only each part
    best = None
    for p in written_parts(n):
        cuts = [i * n // p for i in range(p + 1)]  # part i holds Gaussians floor(i n / P) ..
        parts = [encode_part(qx[a:b], qy[a:b], qc[a:b], qk[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
        if max(len(x) for x in parts[:-1] or [b""]) >> (7 * VARINT_MAX_BYTES):
            raise ValueError(f"encode_chunk: a part of {max(map(len, parts))} bytes is too long for its length varint")
        data = bytes([p]) + b"".join(_uvarint(len(x)) for x in parts[:-1]) + b"".join(parts)
        if best is None or len(data) < len(best):
            best = data
    return best


def written_parts(n: int) -> tuple:
    """The part counts ligcodec tries for a chunk of ``n`` Gaussians (:data:`SPLIT_GAUSSIANS`)."""
    return (2, 4) if n >= SPLIT_GAUSSIANS else (1, 2) if n >= 2 else (1,)


def encode_part(qx, qy, qc, qk, layout: int = LAYOUT_GAPS) -> bytes:
    """One part's stream table and ANS words (a whole chunk before format 4): ``layout``
    :data:`LAYOUT_GAPS` (format 3's positions) or :data:`LAYOUT_24` (the 2.x positions)."""
    n = len(qx)
    if n == 0:
        return b""
    qx, qy = np.asarray(qx, np.int64), np.asarray(qy, np.int64)
    limit = table_limit(n)
    head = bytearray()
    models = []
    if layout == LAYOUT_GAPS:
        _check_sorted(qx, qy)
        x0, width, shift, low, high = gap_streams(qx, qy, limit)
        head += _uvarint(_zigzag(x0)) + _uvarint(width - 1) + _uvarint(_zigzag(int(qy[0]))) + bytes([shift])
        models.append(_model(0, 0, (1 << shift) - 1, 0, 0, limit))
        positions = [low, high]
    else:
        positions = [qx, np.diff(qy, prepend=0)]
    streams = positions + [qc[:, k] for k in range(3)] + [qk[:, c] for c in range(qk.shape[1])]
    for i, s in enumerate(streams):
        lo, hi = int(s.min()), int(s.max())
        if i == 0:
            if layout != LAYOUT_GAPS:
                head += _uvarint(_zigzag(lo)) + _uvarint(hi - lo)
                models.append(_model(i, lo, hi, 0, 0, limit))
        else:
            # A stream too wide for a table is coded uniformly: its k is never used.
            loc, k, _ = _laplace_params(s, lo, hi) if hi - lo < limit else (int(np.round(np.median(s))), 0, 0.0)
            head += _uvarint(_zigzag(loc)) + _uvarint(loc - lo) + _uvarint(hi - loc) + bytes([k])
            models.append(_model(i, lo, hi, loc, k, limit))
    coder = stream.stack.AnsCoder()
    for s, (m, lo) in reversed(list(zip(streams, models))):
        if m is not None:  # a constant stream (lo == hi) codes no symbols
            symbols = (s - lo).astype(np.int32)  # models take 0..hi-lo
            coder.encode_reverse(symbols, m)
    return bytes(head) + coder.get_compressed().astype("<u4").tobytes()


def _check_sorted(qx, qy) -> None:
    """Format 3 and 4 code the Gaussians sorted by ``(qy, qx)`` (spec section 4)."""
    if np.any(np.diff(qy) < 0) or np.any((np.diff(qy) == 0) & (np.diff(qx) < 0)):
        raise ValueError("encode_chunk: the Gaussians must be sorted by (qy, qx)")


def gap_streams(qx, qy, limit: int):
    """Format 3's positions (spec section 4): ``(x0, width, s, low bits, high part)`` of the raster
    gaps, ``s`` the shift that codes them in the fewest bits (the low bits cost ``s`` each, the
    high part its geometric table; a high part wider than a table is not considered)."""
    x0 = int(qx.min())
    width = int(qx.max()) - x0 + 1
    gaps = raster_gaps(qx, qy, x0, width)
    around = int(math.log2(max(float(gaps.mean()), 1.0)))
    best = None
    for shift in range(max(0, around - 3), min(MAX_GAP_SHIFT, around + 2) + 1):
        high = gaps >> shift
        lo, hi = int(high.min()), int(high.max())
        if hi - lo >= limit and shift < MAX_GAP_SHIFT:
            continue
        bits = len(gaps) * shift + (_laplace_params(high, lo, hi)[2] if hi > lo else 0.0)
        if best is None or bits < best[0]:
            best = (bits, shift)
    shift = best[1] if best else MAX_GAP_SHIFT
    if int(gaps.max()) >> shift > MAX_SYMBOL:
        raise ValueError(f"encode_part: positions span {int(gaps.sum())} grid cells, too many to code")
    return x0, width, shift, gaps & ((1 << shift) - 1), gaps >> shift


def _model(i, lo, hi, loc, k, limit):
    """``(constriction model, or None for a constant stream, lo)`` for the encoder."""
    kind = stream_kind(i, lo, hi, limit)
    if kind == ans.CONST:
        return None, lo
    if kind == ans.UNIFORM:
        return stream.model.Uniform(hi - lo + 1), lo
    return stream.model.Categorical(geometric_probabilities(lo, hi, loc, k), perfect=False), lo
