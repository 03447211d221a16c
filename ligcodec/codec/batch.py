"""Decode many chunks at once: the symbols (:func:`.tile.decode_symbols`), dequantisation and the
colour inverse in one numba kernel, parallel over chunks (spec sections 4 and 5).

Why: a whole-image read at reduced scale (``img[::4, ::4]``) touches every chunk of the file.
Chunk by chunk in Python, the stream-table parsing, ``np.stack``/``cumsum``, dequantisation and
colour inverse cost about as much as the ANS decode itself, and all of it ran on one core. Here
a chunk is a work item and the output lands straight in the flat arrays the renderer takes.

The stream table and ANS words have one reader, :func:`.tile.decode_symbols`, which this kernel
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
from .tile import BAD_TABLE, BAD_WORDS, OK, check_empty, decode_symbols

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
    reason the chunk was rejected (its stream table or words, then ``detail[c] [4]`` holds the
    detail of :func:`.tile.decode_symbols`; or the limits of the spec's section 4 on the
    dequantised Gaussians of a ``tile``-px tile); its rows are then undefined."""
    nch = colours.shape[1]
    for c in numba.prange(len(starts)):
        n = counts[c]
        if n == 0:
            status[c] = check_empty(starts[c], ends[c], detail[c])
            continue
        st, out = decode_symbols(data, starts[c], ends[c], n, nch, layout, detail[c])
        status[c] = st
        if st != OK:
            continue
        r0 = first[c]
        ox = np.float64(origins[c, 0])
        oy = np.float64(origins[c, 1])
        coded = np.empty(nch, np.float64)
        for j in range(n):
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
        status[c] = _check_limits(means, chol, colours, r0, n, ox, oy, np.float64(tile) * tile)
