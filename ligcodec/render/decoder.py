"""The decoder's draw: what ``ligcodec.open``/``decode`` (and everything built on them) render
with, at every scale. Every codec tile owns a rectangle of the output (spec section 6).

It is :mod:`.banded`'s path with every box clipped to the pixels its tile owns
(:func:`.banded.setup_owned`): the output is cut into bands of rows, every band draws the
Gaussians whose boxes reach it, in index order, and the per-Gaussian set-up runs in vector loops.
It replaced a draw whose work items were (tile, band of rows) pairs after a projection into a
9-column table: on the same Gaussians the banded draw was as fast or faster at every scale
measured, 2x at 1/8-1/4 (bench/decode_paths.py, BENCHMARKS.md).

Exactness: a pixel's weight depends only on the pixel and the Gaussian (span quadratics anchored
at the output's first column, never at the window), and each pixel sums its tile's Gaussians
in index order, so a region read equals the same window of a full read bit for bit.

``render()``'s own paths cannot serve the decoder unchanged: they sum every Gaussian into every
pixel it reaches, while the format clips each tile's Gaussians to the pixels the tile owns; on
a real file the two differ by thousands of code values at tile borders.
"""


from __future__ import annotations

import numba
import numpy as np

from . import banded
from .contract import CUTOFF_Q, aa_variance


#: Bands of at most this many rows, and at least this many per worker (see draw).
BAND_ROWS = 64
BANDS_PER_WORKER = 2


def draw(means, chol, colours, seg, rects, scale, x0, y0, out):
    """Write into ``out [h, w, C]`` (region origin ``x0, y0``) tile ``t``'s Gaussians
    ``seg[t]:seg[t + 1]`` summed over the output pixels it owns, ``rects[t] = (X0, Y0, X1, Y1)``
    (half-open, inside the region). The rectangles must tile their bounding rectangle exactly
    (whole rows of tiles, or a run within one row: how :meth:`ligcodec.model.Model.render`
    groups them), since the bands write all of it."""
    bx0, by0 = int(rects[:, 0].min()), int(rects[:, 1].min())
    bx1, by1 = int(rects[:, 2].max()), int(rects[:, 3].max())
    w, h = bx1 - bx0, by1 - by0
    if int(((rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])).sum()) != w * h:
        raise ValueError("the tiles' rectangles do not tile their bounding rectangle")
    if seg[-1] == 0:
        out[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0] = 0
        return out
    k = aa_variance(scale)
    workers = numba.get_num_threads()
    # Gaussians are validated when their chunk is decoded (codec/batch.py), hence no log limit.
    geo, aux, box, rows, _ = banded.setup_owned(means, chol, scale, k, CUTOFF_Q, np.inf, bx0, by0, w, h, workers,
                                                seg, rects)
    nb = min(h, max(BANDS_PER_WORKER * workers, -(-h // BAND_ROWS)))
    banded.forward(geo, aux, box, rows, means, chol, colours, scale, k, CUTOFF_Q, bx0, by0, w, h, nb,
                   min(workers, nb), out[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0])
    return out
