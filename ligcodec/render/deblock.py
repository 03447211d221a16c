"""The border filter of spec section 6 (2.3 files with ``deblock = [K, T]``).

Tiles are fitted independently, so the decoded image's error jumps where one tile's pixels meet
the next one's: a visible cross along the tile grid at low rates. The filter takes each jump at
a border, less the mean of the steps beside it, and spreads it over the ``2k`` pixels around the
border as a linear ramp: all of it up to ``T`` (a coding error's size), none beyond ``2T`` (an
edge of the image), fading between so that float rounding never flips a decision. It is numpy on the float image (before clamping): a few vector operations per
border, no kernel to load.
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
    if k <= 0 or not threshold > 0:
        return a
    _pass(a, [b for b in columns if 2 <= b <= a.shape[1] - 2], k, threshold, axis=1)
    _pass(a, [b for b in rows if 2 <= b <= a.shape[0] - 2], k, threshold, axis=0)
    return a


def _pass(a, borders, k, threshold, axis):
    v = a if axis == 1 else a.transpose(1, 0, 2)  # a view: columns of ``v`` are the pass's lines
    n = v.shape[1]
    # Every step first, from the image before this pass (spec: each d before the pass's corrections).
    half = []
    for b in borders:
        p1, p0, q0, q1 = v[:, b - 2], v[:, b - 1], v[:, b], v[:, b + 1]
        d = (q0 - p0) - ((p0 - p1) + (q1 - q0)) / np.float32(2)
        fade = np.clip(np.float32(2) - np.abs(d) / np.float32(threshold), np.float32(0), np.float32(1))
        half.append(d * fade / np.float32(2))
    ramp = (1 - np.arange(k) / k).astype(np.float32)
    for b, h in zip(borders, half):
        for j in range(k):
            c = h * ramp[j]
            if b - 1 - j >= 0:
                v[:, b - 1 - j] += c
            if b + j < n:
                v[:, b + j] -= c
