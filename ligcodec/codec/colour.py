"""Colour decorrelation (spec section 5) of the first three channels: YCoCg, or (2.4) a matrix,
the orthonormal KLT of the image's colour detail, where that codes the colours in fewer bits."""

from __future__ import annotations

import math

import numpy as np

#: YCoCg's inverse (coded -> RGB), as a matrix: the decoder's matrix path gives its exact values.
YCOCG_INVERSE = ((1.0, 1.0, -1.0), (1.0, 0.0, 1.0), (1.0, -1.0, -1.0))
#: A matrix transform's colour steps are YCoCg's times this: an orthonormal basis passes each
#: coded channel's error to RGB with gain 1, YCoCg's inverse with squared gains 3, 2 and 3, so
#: sqrt(8/3) gives the same RGB error per step (measured best of 1.3 / 1.63 / 2 on 8 Kodak and 4
#: aerial and histology tiles, bench/quant_tiles.py).
MATRIX_STEP_GAIN = math.sqrt(8 / 3)
#: :func:`choose_transform` takes the matrix where its estimated saving pays for its header
#: bytes (~60) this many times over.
MATRIX_MARGIN = 2.0


def forward(cols: np.ndarray, transform) -> np.ndarray:
    """``[N, C]`` colours -> coded channels. ``transform``: ``"none"``, ``"ycocg"`` or a 3 x 3
    inverse matrix (``"matrix"``: coded -> RGB)."""
    if isinstance(transform, str) and transform == "none":
        return cols.astype(np.float64)
    out = cols.astype(np.float64).copy()
    r, g, b = out[:, 0].copy(), out[:, 1].copy(), out[:, 2].copy()
    if isinstance(transform, str):
        out[:, 0] = 0.25 * r + 0.5 * g + 0.25 * b
        out[:, 1] = 0.5 * r - 0.5 * b
        out[:, 2] = -0.25 * r + 0.5 * g - 0.25 * b
        return out
    out[:, :3] = np.stack([r, g, b], 1) @ np.linalg.inv(np.asarray(transform, np.float64)).T
    return out


def inverse(coded: np.ndarray, transform) -> np.ndarray:
    """Coded channels -> ``[N, C]`` colours (float32), as the decoder computes them (section 5)."""
    if isinstance(transform, str) and transform == "none":
        return coded.astype(np.float32)
    m = np.asarray(YCOCG_INVERSE if isinstance(transform, str) else transform, np.float64)
    out = coded.astype(np.float64).copy()
    c0, c1, c2 = out[:, 0].copy(), out[:, 1].copy(), out[:, 2].copy()
    for i in range(3):  # the spec's order of operations
        out[:, i] = (m[i, 0] * c0 + m[i, 1] * c1) + m[i, 2] * c2
    return out.astype(np.float32)


def detail_covariance(img: np.ndarray) -> np.ndarray:
    """Colour covariance [3, 3] of the image's detail (a 2 x 2 second difference, which leaves out
    the smooth shading that level 0 codes) over its first three channels."""
    t = np.asarray(img, np.float64)[:, :, :3]
    d = (t[2:, 2:] + t[:-2, :-2] - t[2:, :-2] - t[:-2, 2:]).reshape(-1, 3)
    return d.T @ d / max(1, len(d))


def klt_matrix(cov: np.ndarray) -> tuple:
    """The orthonormal basis (columns: largest component first, each with its largest entry > 0)
    of ``cov``, as float32 numbers: the inverse matrix that a ``"matrix"`` header holds."""
    _, v = np.linalg.eigh(cov + 1e-12 * np.eye(3))
    v = v[:, ::-1]
    v = v * np.sign(v[np.abs(v).argmax(0), range(3)])
    return tuple(tuple(float(np.float32(x)) for x in row) for row in v)


def matrix_saving(cov: np.ndarray, m) -> float:
    """Estimated bits per Gaussian that coding in basis ``m`` (an inverse matrix, orthonormal)
    saves over YCoCg at the same RGB error: half the difference of the sums of log2 variances of the
    coded channels, each YCoCg channel weighted by its inverse's squared gain (high-rate theory).
    Measured against coded colours on two Kodak files: 0.38 / 0.10 bits vs 0.39 / 0.12 here."""
    fwd = np.array([[0.25, 0.5, 0.25], [0.5, 0.0, -0.5], [-0.25, 0.5, -0.25]])
    gains = (np.asarray(YCOCG_INVERSE) ** 2).sum(0)
    var_y = np.maximum(np.diag(fwd @ cov @ fwd.T) * gains, 1e-20)
    m = np.asarray(m, np.float64)
    var_m = np.maximum(np.diag(m.T @ cov @ m), 1e-20)
    return 0.5 * float(np.log2(var_y).sum() - np.log2(var_m).sum())


def choose_transform(sub: np.ndarray | None, channels: int, gaussians: int, header_bytes: int = 60):
    """``"none"`` (under 3 channels), or for colour images the KLT matrix of the sample ``sub``
    [h, w, C] where its estimated saving over all ``gaussians`` pays :data:`MATRIX_MARGIN` times
    its ``header_bytes``, else ``"ycocg"``."""
    if channels < 3:
        return "none"
    if sub is None or min(sub.shape[:2]) < 3:
        return "ycocg"
    cov = detail_covariance(sub)
    m = klt_matrix(cov)
    save = matrix_saving(cov, m) * gaussians
    return m if save >= MATRIX_MARGIN * 8 * header_bytes else "ycocg"
