"""The border filter's threshold, chosen per image by the encoder (spec section 6 leaves ``T`` to it).

Tiles are fitted independently, so the decoded error jumps where two tiles meet; the decoder's
border filter (:mod:`ligcodec.render.deblock`) spreads each jump up to ``T`` over a ramp and
leaves larger ones, which are the picture's own edges. A ``T`` fixed relative to the coded RMS
error suits Kodak photos but not smooth images (histology, microscopy, a flower's petals), whose
error is small overall and larger where the tiles disagree: there the steps across tile borders
stayed 35-70 % above the steps elsewhere, against the source's same ratio. So the encoder decodes
the file it wrote with a few thresholds and keeps the one whose ratio comes closest to the
source's (#16's seam measure, :func:`seam_ratio`); where the filter at the usual threshold leaves
the borders smoother than the source's, a smaller one. Between two neighbouring thresholds of the
grid the ratio can swing by a third on a smooth photo at a low rate (BENCHMARKS.md, twenty-third
session), so where the closest still misses by more than :data:`CLOSE`, the
search narrows the bracket by interpolation. Reading the file costs one to nine full decodes,
small next to the fit.
"""

from __future__ import annotations

import math

import numpy as np

#: Thresholds tried, in multiples of the coded RMS error. The search starts at
#: :data:`~ligcodec.codec.encoder.DEBLOCK_THRESHOLD` (2.75, format 2.3's first fixed choice) and
#: moves up while the seams stay above the source's, down while they are below it. 16 and 22:
#: a medium photo at 1 bpp (photo_wiki_021, 512-px tiles) still had its border steps 22 % above the
#: source's at 11 x (BENCHMARKS.md, twentieth session).
MULTIPLES = (1.0, 1.75, 2.75, 4.0, 5.5, 8.0, 11.0, 16.0, 22.0)
START = 2
#: A threshold whose seam ratio is within this of the source's (relative) ends the search; #16's
#: bar is ±10 %; a third of it leaves room for the one-code-value differences between CPUs that
#: the spec allows a reader.
CLOSE = 0.03
#: Interpolation steps inside the grid's bracket, at most (each one full decode).
NARROW_STEPS = 2
#: Pixels read at a time (bands of whole rows: bounded memory on large images).
BAND_PIXELS = 1 << 22


class StepTally:
    """Sums of absolute steps between neighbouring pixels: across tile borders and elsewhere."""

    def __init__(self):
        self.border = self.border_n = self.inner = self.inner_n = 0.0

    def add(self, a: np.ndarray, tile: int, y0: int = 0, last: bool = True) -> None:
        """Count the steps of rows ``y0..`` of an image (``a [h, w, C]``): every horizontal step,
        and the vertical steps between its rows (all but the last row's unless ``last``: bands
        overlapping by one row count each step once)."""
        a = np.asarray(a)
        a = a.astype(np.int32) if a.dtype.kind in "ui" else a.astype(np.float32)
        dx = np.abs(np.diff(a if last else a[:-1], axis=1))  # dx[:, j]: columns j and j + 1
        dy = np.abs(np.diff(a, axis=0))  # dy[i]: rows y0 + i and y0 + i + 1
        # Borders: the step from column tile - 1 to tile, ...; from row y0 + i to y0 + i + 1 where
        # y0 + i + 1 is a multiple of tile.
        for d, across in ((dx, dx[:, tile - 1 :: tile]), (dy, dy[(tile - 1 - y0) % tile :: tile])):
            total, border = float(d.sum(dtype=np.float64)), float(across.sum(dtype=np.float64))
            self.border += border
            self.border_n += across.size
            self.inner += total - border
            self.inner_n += d.size - across.size

    def ratio(self) -> float:
        """Mean step across borders over mean step elsewhere (nan without either)."""
        if not self.border_n or not self.inner_n:
            return float("nan")
        return (self.border / self.border_n) / max(self.inner / self.inner_n, 1e-12)


def seam_ratio(img, tile: int) -> float:
    """Mean absolute step between neighbouring pixels across tile borders (columns and rows at
    multiples of ``tile``) over the mean absolute step between all other neighbours: about 1
    without seams, above 1 where tile borders show. #16's seam test compares a decoded image's
    ratio with its source's (within ±10 %)."""
    t = StepTally()
    t.add(img, tile)
    return t.ratio()


def _tally(read, width: int, height: int, tile: int, channels: int) -> StepTally:
    """:class:`StepTally` of an image read by ``read(x0, y0, x1, y1)`` in bands, colour channels only."""
    t = StepTally()
    band = max(8, BAND_PIXELS // width)
    for y0 in range(0, height, band):
        y1 = min(height, y0 + band + 1)  # one row of overlap: the step to the next band
        t.add(np.asarray(read(0, y0, width, y1))[:, :, :channels], tile, y0, last=y1 == height)
    return t


def choose_threshold(path, src, rmse: float) -> float:
    """The border filter's ``T`` for the written file ``path`` (its header's ``deblock`` set) of
    the source ``src``: the multiple of ``rmse`` found by :func:`search` whose :func:`seam_ratio`
    of the decoded image comes closest to the source's."""
    from ..image import open as open_lig

    colours = 3 if src.channels >= 3 else 1  # not alpha
    with open_lig(path) as im:
        w, h, tile = im.header.width, im.header.height, im.header.tile
        source = _tally(src.read, w, h, tile, colours).ratio()
        if not source > 0:  # no borders, or a flat source: nothing to match
            return MULTIPLES[START] * rmse
        k = im.model.deblock[0]

        def excess(multiple):
            im.model.deblock = (k, multiple * rmse)
            return _tally(lambda x0, y0, x1, y1: im.read(region=(x0, y0, x1 - x0, y1 - y0)), w, h, tile,
                          colours).ratio() / source - 1

        return search(excess) * rmse


def search(excess) -> float:
    """The multiple whose ``excess(multiple)`` (seams over the source's, minus 1; it falls as the
    threshold grows) is closest to 0: :func:`walk` over :data:`MULTIPLES` from :data:`START`, then,
    while the closest misses by more than :data:`CLOSE` and the walk crossed 0 between two
    multiples, up to :data:`NARROW_STEPS` interpolations in log multiple inside that bracket."""
    seen = {}

    def at(m):
        if m not in seen:
            seen[m] = excess(m)
        return seen[m]

    walk(lambda i: at(MULTIPLES[i]), START, len(MULTIPLES))  # its choice is the closest in seen
    for _ in range(NARROW_STEPS):
        if min(abs(e) for e in seen.values()) <= CLOSE:
            break
        above = [m for m, e in seen.items() if e > 0]  # thresholds that leave seams above the source's
        below = [m for m, e in seen.items() if e < 0]
        if not above or not below:
            break
        lo, hi = max(above), min(below)
        f = seen[lo] / (seen[lo] - seen[hi])  # where a straight line in log multiple crosses 0
        # Kept off the ends, so that a curved excess cannot pin every step to one side.
        at(math.exp(math.log(lo) + min(max(f, 0.2), 0.8) * (math.log(hi) - math.log(lo))))
    return min(seen, key=lambda m: (abs(seen[m]), m))


def walk(excess, start: int, n: int) -> int:
    """The index in ``0..n-1`` whose ``excess(i)`` (a decreasing function: seams over the source's,
    minus 1) is closest to 0, searched from ``start`` towards 0 until it changes sign."""
    i, e = start, excess(start)
    best, best_err = i, abs(e)
    step = 1 if e > 0 else -1  # seams above the source's: a larger T; below: a smaller one
    while abs(e) > 0 and 0 <= i + step < n:
        i += step
        e = excess(i)
        if abs(e) < best_err:
            best, best_err = i, abs(e)
        if (e > 0) != (step > 0):  # crossed the source's ratio
            break
    return best
