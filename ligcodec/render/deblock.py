"""The border filter of spec section 6 (2.3 files with ``deblock = [K, T]``).

Tiles are fitted independently, so the decoded image's error jumps where one tile's pixels meet
the next one's: a visible cross along the tile grid at low rates. The filter takes each jump at
a border, less the mean of the steps beside it, and spreads it over the ``2k`` pixels around the
border as a linear ramp: all of it up to ``T`` (a coding error's size), none beyond ``2T`` (an
edge of the image), fading between so that float rounding never flips a decision. It is numpy
on the float image (before clamping): a few vector operations per border, no kernel to load.
"""

from __future__ import annotations

import math

import numpy as np


def filter_width(width: int, scale: float) -> int:
    """``k``, the filter's half-width in output pixels at ``scale`` for a file's ``K = width``
    (0: no filter; below ``1 / K`` the tiles are a few pixels wide and their seams with them)."""
    return min(int(width), math.floor(width * scale + 1e-9))


def halo(k: int) -> int:
    """Pixels beyond a region that a read of it renders for the filter: a border's correction
    reaches ``k`` pixels, and its step is measured from 2 pixels on either side."""
    return k + 2 if k > 0 else 0


def deblock(a: np.ndarray, columns, rows, k: int, threshold: float) -> np.ndarray:
    """Filter ``a [h, w, C]`` float32 in place: first across the borders that start at the
    array's ``columns``, then across those at its ``rows`` (positions where a tile starts owning
    pixels, relative to the array). A border whose step needs pixels outside the array is left:
    in a read with :func:`halo` pixels around its region, no such border reaches the region."""
    across_columns(a, columns, k, threshold)
    return across_rows(a, rows, k, threshold)


def across_columns(a: np.ndarray, columns, k: int, threshold: float) -> np.ndarray:
    """The filter's first pass: across the vertical borders at ``columns`` (see :func:`deblock`).
    Each row is filtered on its own, so rows can be filtered in any batches."""
    return _pass(a, columns, k, threshold, axis=1)


def across_rows(a: np.ndarray, rows, k: int, threshold: float) -> np.ndarray:
    """The second pass: across the horizontal borders at ``rows``, on :func:`across_columns`' result."""
    return _pass(a, rows, k, threshold, axis=0)


def _pass(a, borders, k, threshold, axis):
    # The filter runs in float32: a threshold that float32 rounds to 0 would filter nothing (every
    # fade is 0) and divide by zero; one past float32's range filters like its largest value (every
    # fade is 1). The header allows any finite T >= 0.
    t = np.float32(min(float(threshold), float(np.finfo(np.float32).max)))
    if k <= 0 or not t > 0:
        return a
    v = a if axis == 1 else a.transpose(1, 0, 2)  # a view: columns of ``v`` are the pass's lines
    n = v.shape[1]
    b = np.array([b for b in borders if 2 <= b <= n - 2], np.int64)
    if not b.size:
        return a
    # Every step first, from the image before this pass (spec: each d before the pass's
    # corrections), all borders at once; then the corrections, one offset j at a time (borders
    # are a tile apart, so no pixel is in two borders' ramps and fancy-index adds are exact).
    p1, p0, q0, q1 = v[:, b - 2], v[:, b - 1], v[:, b], v[:, b + 1]
    d = (q0 - p0) - ((p0 - p1) + (q1 - q0)) / np.float32(2)
    fade = np.clip(np.float32(2) - np.abs(d) / t, np.float32(0), np.float32(1))
    half = d * fade / np.float32(2)
    ramp = (1 - np.arange(k) / k).astype(np.float32)
    for j in range(k):
        c = half * ramp[j]
        left, right = b - 1 - j, b + j
        ok = left >= 0
        v[:, left[ok]] += c[:, ok]
        ok = right < n
        v[:, right[ok]] -= c[:, ok]
    return a
