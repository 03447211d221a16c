"""Decode many chunks at once: the symbols (:func:`.tile.decode_part`), dequantisation and the
colour inverse in one numba kernel, parallel over the chunks' parts (spec sections 4 and 5).

Why: a whole-image read at reduced scale (``img[::4, ::4]``) touches every chunk of the file.
Chunk by chunk in Python, the stream-table parsing, ``np.stack``/``cumsum``, dequantisation and
colour inverse cost about as much as the ANS decode itself, and all of it ran on one core. Here
a part (since format 4 a chunk has one to :data:`~.tile.MAX_PARTS`) is a work item, so that even
a one-tile file decodes on every core, and the output lands straight in the flat arrays the
renderer takes.

The stream table and ANS words have one reader, :func:`.tile.decode_part`, which this kernel
and :func:`.tile.decode_chunk` (one chunk, for tests and benches) both run. A chunk it rejects gets
a status here and a detail row (:func:`.tile.chunk_problem` words it for the
:class:`~ligcodec.errors.LigFormatError`); a chunk whose Gaussians break the limits of section 4
gets one of the statuses of :data:`LIMIT_MESSAGES`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..container import MAX_AMPLITUDE, MAX_LOG_SCALE, MAX_POSITION, MAX_TILE_WORK
from .colour import YCOCG_INVERSE
from .dequant import dequantise_chol_into
from .tile import (BAD_TABLE, BAD_WORDS, OK, check_empty, decode_part, part_count, part_detail,
                   part_layout, part_spans)

__all__ = ["BAD_AMPLITUDE", "BAD_GEOMETRY", "BAD_TABLE", "BAD_WORDS", "LIMIT_MESSAGES", "OK", "TOO_MUCH_WORK",
           "decode_chunks"]

#: Status codes of :func:`decode_chunks` per chunk: those of :func:`.tile.decode_symbols` (``OK``,
#: ``BAD_TABLE``, ``BAD_WORDS``) and the section-4 limits on the dequantised Gaussians.
BAD_GEOMETRY, BAD_AMPLITUDE, TOO_MUCH_WORK = 3, 4, 5
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
def _check_rows(means, chol, colours, r0, n, ox, oy, tile_area, work, item):
    """OK, or why rows ``r0:r0 + n`` (one part) break the spec's section 4 limits on each Gaussian;
    ``work[item]`` gets their drawing work (the chunk's limit is checked on the parts' sum). Every
    comparison is written so that NaN fails it."""
    w = 0.0
    for r in range(r0, r0 + n):
        if not (abs(means[r, 0] - ox) <= MAX_POSITION and abs(means[r, 1] - oy) <= MAX_POSITION
                and abs(chol[r, 0]) <= MAX_LOG_SCALE and abs(chol[r, 2]) <= MAX_LOG_SCALE
                and abs(chol[r, 1]) <= _MAX_L21):
            return BAD_GEOMETRY
        for ch in range(colours.shape[1]):
            if not (abs(colours[r, ch]) <= MAX_AMPLITUDE):
                return BAD_AMPLITUDE
        w += min(_ELLIPSE * math.exp(chol[r, 0] + chol[r, 2]), tile_area)
    work[item] = w
    return OK


def colour_mix(header) -> tuple[np.ndarray, bool]:
    """:func:`decode_chunks`'s ``mix, mixed`` for a header's colour transform (section 5)."""
    if header.colour_transform == "none":
        return np.eye(3), False
    m = YCOCG_INVERSE if header.colour_transform == "ycocg" else header.colour_matrix
    return np.ascontiguousarray(m, np.float64), True


@numba.njit(cache=True, parallel=True)
def decode_chunks(data, starts, ends, counts, first, origins, pos_step, chol_step, colour_steps, mix, mixed,
                  tile, layout, means, chol, colours, status, detail):
    """Decode chunk ``c`` (bytes ``data[starts[c]:ends[c]]``, ``counts[c]`` Gaussians, tile
    origin ``origins[c]``, colour steps ``colour_steps[c] [C]``) into rows ``first[c]:`` of
    ``means [N, 2]`` (float64, image pixels), ``chol [N, 3]`` (float64) and ``colours [N, C]``
    (float32; when ``mixed``, channels 0..2 are the inverse colour matrix ``mix [3, 3]`` applied,
    section 5: YCoCg's is :data:`~ligcodec.codec.colour.YCOCG_INVERSE`). ``status[c]`` gets OK or the
    reason the chunk was rejected (its parts, stream tables or words, then ``detail[c] [4]`` holds
    the detail of :func:`.tile.decode_part`; or the limits of the spec's section 4 on the
    dequantised Gaussians of a ``tile``-px tile); its rows are then undefined."""
    k = len(starts)
    parts = np.zeros(k + 1, np.int64)  # chunk c's parts are work items parts[c]:parts[c + 1]
    for c in range(k):  # a byte per chunk: serial
        status[c] = OK
        if counts[c] == 0:
            status[c] = check_empty(starts[c], ends[c], detail[c])
            continue
        p = part_count(data, starts[c], ends[c], counts[c], layout, detail[c])
        if p < 0:
            status[c] = BAD_TABLE
        parts[c + 1] = max(p, 0)
    parts = np.cumsum(parts)
    items = parts[k]
    spans = np.empty((items, 2), np.int64)
    chunk_of = np.empty(items, np.int64)
    for c in range(k):
        p = parts[c + 1] - parts[c]
        if p and not part_spans(data, starts[c], ends[c], p, layout, spans[parts[c]:parts[c + 1]], detail[c]):
            status[c] = BAD_TABLE
        chunk_of[parts[c]:parts[c + 1]] = c
    item_status = np.zeros(items, np.int8)
    item_detail = np.zeros((items, 4), np.int64)
    work = np.zeros(items, np.float64)
    for i in numba.prange(items):
        c = chunk_of[i]
        if status[c] == OK:
            item_status[i] = _decode_item(data, spans[i, 0], spans[i, 1], c, i - parts[c], parts[c + 1] - parts[c],
                                          counts, first, origins, pos_step, chol_step, colour_steps, mix, mixed,
                                          tile, part_layout(layout), means, chol, colours, item_detail[i], work, i)
    for c in range(k):  # the first part that failed decides; the work adds up in part order
        total = 0.0
        for i in range(parts[c], parts[c + 1]):
            if status[c] == OK and item_status[i] != OK:
                status[c] = item_status[i]
                detail[c, :] = item_detail[i]
                part_detail(detail[c], spans[i, 0] - starts[c])
            total += work[i]
        if status[c] == OK and total > MAX_TILE_WORK * np.float64(tile) * tile:
            status[c] = TOO_MUCH_WORK


@numba.njit(cache=True, nogil=True)
def _decode_item(data, start, end, c, part, nparts, counts, first, origins, pos_step, chol_step, colour_steps, mix,
                 mixed, tile, layout, means, chol, colours, detail, work, item):
    """Part ``part`` of ``nparts`` of chunk ``c`` (bytes ``data[start:end]``), as
    :func:`decode_chunks` describes: its status."""
    n = counts[c]
    a = part * n // nparts
    m = (part + 1) * n // nparts - a
    nch = colours.shape[1]
    out = np.empty((5 + nch, m), np.int64)
    st = decode_part(data, start, end, m, nch, layout, out, detail)
    if st != OK:
        return st
    r0 = first[c] + a
    ox = np.float64(origins[c, 0])
    oy = np.float64(origins[c, 1])
    coded = np.empty(nch, np.float64)
    for j in range(m):
        r = r0 + j
        means[r, 0] = ox + (out[0, j] + 0.5) * pos_step
        means[r, 1] = oy + (out[1, j] + 0.5) * pos_step
        dequantise_chol_into(np.float64(out[2, j]), np.float64(out[3, j]), np.float64(out[4, j]),
                             chol_step[0], chol_step[1], chol_step[2], chol, r)
        for ch in range(nch):
            coded[ch] = out[5 + ch, j] * colour_steps[c, ch]
        if mixed:
            c0, c1, c2 = coded[0], coded[1], coded[2]
            for i in range(3):  # the spec's order of operations
                coded[i] = (mix[i, 0] * c0 + mix[i, 1] * c1) + mix[i, 2] * c2
        for ch in range(nch):
            colours[r, ch] = np.float32(coded[ch])
    return _check_rows(means, chol, colours, r0, m, ox, oy, np.float64(tile) * tile, work, item)
