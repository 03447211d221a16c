"""Decode many chunks at once: stream tables, ANS, delta, dequantisation and the colour inverse
in one numba kernel, parallel over chunks (spec sections 4 and 5).

Why: a whole-image read at reduced scale (``img[::4, ::4]``) touches every chunk of the file.
Chunk by chunk in Python, the stream-table parsing, ``np.stack``/``cumsum``, dequantisation and
colour inverse cost about as much as the ANS decode itself, and all of it ran on one core. Here
a chunk is a work item and the output lands straight in the flat arrays the renderer takes.

The per-chunk Python decoder (:func:`.tile.decode_chunk`) stays the reference and the source of
error messages: a chunk this kernel rejects is decoded again by it, which raises the
:class:`~ligcodec.errors.LigFormatError` naming the tile, level and what is wrong.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..container import MAX_AMPLITUDE, MAX_LOG_SCALE, MAX_POSITION, MAX_TILE_WORK
from . import ans
from .dequant import dequantise_chol_into
from .tile import (LEGACY_TABLE_BASE, LEGACY_TABLE_PER_BYTE, MAX_SYMBOL, TABLE_BASE, TABLE_MAX, TABLE_PER_GAUSSIAN,
                   VARINT_MAX_BYTES)

#: Status codes of :func:`decode_chunks` per chunk.
OK, BAD_TABLE, BAD_WORDS, BAD_GEOMETRY, BAD_AMPLITUDE, TOO_MUCH_WORK = 0, 1, 2, 3, 4, 5
#: What each rejection of the spec's section 4 limits means, for error messages.
LIMIT_MESSAGES = {
    BAD_GEOMETRY: f"a Gaussian's position, log-scale (|log l| <= {MAX_LOG_SCALE}) or shear is out of range or not finite",
    BAD_AMPLITUDE: f"a Gaussian's amplitude is above {MAX_AMPLITUDE} or not finite",
    TOO_MUCH_WORK: f"its Gaussians would draw more than {MAX_TILE_WORK} times the tile's pixels",
}
#: ``exp(MAX_LOG_SCALE)``: the largest shear ``|l21|``.
_MAX_L21 = math.exp(MAX_LOG_SCALE)
_ELLIPSE = 9.0 * math.pi  # area of q <= 9 is 9 pi sqrt(det S) = 9 pi l11 l22


@numba.njit(cache=True, nogil=True)
def _check_limits(means, chol, colours, r0, n, ox, oy, tile_area):
    """OK, or why rows ``r0:r0 + n`` (one chunk) break the spec's section 4 limits. Every
    comparison is written so that NaN fails it."""
    work = 0.0
    for r in range(r0, r0 + n):
        if not (abs(means[r, 0] - ox) <= MAX_POSITION and abs(means[r, 1] - oy) <= MAX_POSITION
                and abs(chol[r, 0]) <= MAX_LOG_SCALE and abs(chol[r, 2]) <= MAX_LOG_SCALE
                and abs(chol[r, 1]) <= _MAX_L21):
            return BAD_GEOMETRY
        for ch in range(colours.shape[1]):
            if not (abs(colours[r, ch]) <= MAX_AMPLITUDE):
                return BAD_AMPLITUDE
        work += min(_ELLIPSE * math.exp(chol[r, 0] + chol[r, 2]), tile_area)
    if work > MAX_TILE_WORK * tile_area:
        return TOO_MUCH_WORK
    return OK


@numba.njit(cache=True, nogil=True)
def _uvarint(data, pos, end):
    """``(value, new pos)``, or ``(-1, pos)`` if the varint runs past ``end`` or is too long."""
    v = 0
    for k in range(VARINT_MAX_BYTES):
        if pos >= end:
            return -1, pos
        b = np.int64(data[pos])
        pos += 1
        v |= (b & 0x7F) << (7 * k)
        if not b & 0x80:
            return v, pos
    return -1, pos


@numba.njit(cache=True, nogil=True)
def _zigzag(v):
    return v >> 1 if not v & 1 else -((v + 1) >> 1)


@numba.njit(cache=True, nogil=True)
def _decode_one(data, start, end, n, nch, legacy, params, out):
    """Stream table and ANS words of one chunk ``data[start:end]`` into ``out [5 + C, n]``;
    ``legacy``: a 2.0/2.1 chunk (see :func:`.tile.table_limit`)."""
    limit = TABLE_MAX if legacy else min(TABLE_MAX, TABLE_BASE + TABLE_PER_GAUSSIAN * n)
    values = 0
    pos = start
    for i in range(5 + nch):
        if i == 0:
            z, pos = _uvarint(data, pos, end)
            span, pos = _uvarint(data, pos, end)
            if z < 0 or span < 0:
                return BAD_TABLE
            lo = _zigzag(z)
            hi = lo + span
            loc = 0
            k = 0
        else:
            z, pos = _uvarint(data, pos, end)
            below, pos = _uvarint(data, pos, end)
            above, pos = _uvarint(data, pos, end)
            if z < 0 or below < 0 or above < 0 or pos >= end:
                return BAD_TABLE
            loc = _zigzag(z)
            lo = loc - below
            hi = loc + above
            k = np.int64(data[pos])
            pos += 1
        if min(lo, hi) < -MAX_SYMBOL or max(lo, hi) > MAX_SYMBOL:
            return BAD_TABLE
        if lo == hi:
            kind = ans.CONST
        elif i == 0 or hi - lo + 1 > limit:
            kind = ans.UNIFORM
        else:
            kind = ans.TABLE
            values += hi - lo + 1
        params[i, 0] = kind
        params[i, 1] = lo
        params[i, 2] = hi
        params[i, 3] = loc
        params[i, 4] = k
    if (end - pos) % 4 or (legacy and values > LEGACY_TABLE_BASE + LEGACY_TABLE_PER_BYTE * (end - start)):
        return BAD_TABLE
    nw = (end - pos) // 4
    words = np.empty(nw, np.uint32)
    for w in range(nw):
        b = pos + 4 * w
        words[w] = (np.uint32(data[b]) | (np.uint32(data[b + 1]) << np.uint32(8))
                    | (np.uint32(data[b + 2]) << np.uint32(16)) | (np.uint32(data[b + 3]) << np.uint32(24)))
    if ans.decode_streams(words, params[:, 0], params[:, 1], params[:, 2], params[:, 3], params[:, 4], n, out):
        return BAD_WORDS
    return OK


@numba.njit(cache=True, parallel=True)
def decode_chunks(data, starts, ends, counts, first, origins, pos_step, chol_step, colour_steps, ycocg, tile,
                  legacy, means, chol, colours, status):
    """Decode chunk ``c`` (bytes ``data[starts[c]:ends[c]]``, ``counts[c]`` Gaussians, tile
    origin ``origins[c]``, colour steps ``colour_steps[c] [C]``) into rows ``first[c]:`` of
    ``means [N, 2]`` (float64, image pixels), ``chol [N, 3]`` (float64) and ``colours [N, C]``
    (float32, inverse colour transform applied when ``ycocg``). ``status[c]`` gets OK or the
    reason the chunk was rejected (its stream table or words, or the limits of the spec's section
    4 on the dequantised Gaussians of a ``tile``-px tile); its rows are then undefined."""
    nch = colours.shape[1]
    for c in numba.prange(len(starts)):
        n = counts[c]
        if n == 0:
            status[c] = OK if ends[c] == starts[c] else BAD_TABLE
            continue
        params = np.empty((5 + nch, 5), np.int64)
        out = np.empty((5 + nch, n), np.int64)
        status[c] = _decode_one(data, starts[c], ends[c], n, nch, legacy, params, out)
        if status[c] != OK:
            continue
        r0 = first[c]
        ox = np.float64(origins[c, 0])
        oy = np.float64(origins[c, 1])
        qy = 0
        coded = np.empty(nch, np.float64)
        for j in range(n):
            r = r0 + j
            qy += out[1, j]
            means[r, 0] = ox + (out[0, j] + 0.5) * pos_step
            means[r, 1] = oy + (qy + 0.5) * pos_step
            dequantise_chol_into(np.float64(out[2, j]), np.float64(out[3, j]), np.float64(out[4, j]),
                                 chol_step[0], chol_step[1], chol_step[2], chol, r)
            for ch in range(nch):
                coded[ch] = out[5 + ch, j] * colour_steps[c, ch]
            if ycocg:
                y, co, cg = coded[0], coded[1], coded[2]
                coded[0] = y + co - cg
                coded[1] = y + cg
                coded[2] = y - co - cg
            for ch in range(nch):
                colours[r, ch] = np.float32(coded[ch])
        status[c] = _check_limits(means, chol, colours, r0, n, ox, oy, np.float64(tile) * tile)
