"""Colour decorrelation (spec section 5): YCoCg for the first three channels, lossless in reals."""

from __future__ import annotations

import numpy as np


def forward(cols: np.ndarray, transform: str) -> np.ndarray:
    """``[N, C]`` colours -> coded channels."""
    if transform == "none":
        return cols.astype(np.float64)
    out = cols.astype(np.float64).copy()
    r, g, b = cols[:, 0], cols[:, 1], cols[:, 2]
    out[:, 0] = 0.25 * r + 0.5 * g + 0.25 * b
    out[:, 1] = 0.5 * r - 0.5 * b
    out[:, 2] = -0.25 * r + 0.5 * g - 0.25 * b
    return out


def inverse(coded: np.ndarray, transform: str) -> np.ndarray:
    if transform == "none":
        return coded.astype(np.float32)
    out = coded.astype(np.float64).copy()
    y, co, cg = coded[:, 0], coded[:, 1], coded[:, 2]
    out[:, 0] = y + co - cg
    out[:, 1] = y + cg
    out[:, 2] = y - co - cg
    return out.astype(np.float32)
