"""The one data type for a set of 2D Gaussians.

A Gaussian ``i`` contributes ``colours[i] * exp(-0.5 * d^T S_i^-1 d)`` to the pixel whose centre is
``p + 0.5``, with ``d = p + 0.5 - means[i]`` (see :mod:`ligcodec.render.contract`).

The covariance is stored as a log-Cholesky factor ``chol = (log l11, l21, log l22)`` with
``L = [[l11, 0], [l21, l22]]`` and ``S = L L^T``. Every finite triple gives a positive definite
covariance, so an optimiser can move the parameters freely and a decoder never meets a
non-invertible matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LigInputError

#: log-Cholesky diagonal entries must lie in this range: sigma from ~2e-22 px to ~5e21 px. Beyond
#: it, ``l**2`` over- or underflows float64 and the Gaussian has no meaning for an image anyway.
LOG_SCALE_LIMIT = 50.0


@dataclass(frozen=True)
class Gaussians:
    """A set of N 2D Gaussians in the pixel coordinates of the full-resolution image.

    Attributes:
        means: ``[N, 2]`` float64, (x, y) centres in full-resolution pixels; the centre of pixel
            (row i, column j) is (j + 0.5, i + 0.5).
        chol: ``[N, 3]`` float32/64, (log l11, l21, log l22), see the module docstring.
        colours: ``[N, C]`` float32/64, one amplitude per channel (may be negative).
    """

    means: np.ndarray  # [N, 2]
    chol: np.ndarray  # [N, 3]
    colours: np.ndarray  # [N, C]

    def __post_init__(self):
        means = np.ascontiguousarray(self.means, dtype=np.float64)
        chol = np.ascontiguousarray(self.chol)
        colours = np.ascontiguousarray(self.colours)
        if chol.dtype not in (np.float32, np.float64):
            chol = chol.astype(np.float64)
        if colours.dtype not in (np.float32, np.float64):
            colours = colours.astype(np.float32)
        if colours.ndim == 1:
            colours = colours[:, None]
        if means.ndim != 2 or means.shape[1] != 2:
            raise LigInputError(f"means must have shape [N, 2], got {means.shape}")
        n = means.shape[0]
        if chol.shape != (n, 3):
            raise LigInputError(f"chol must have shape [N, 3] = [{n}, 3], got {chol.shape}")
        if colours.ndim != 2 or colours.shape[0] != n or colours.shape[1] < 1:
            raise LigInputError(f"colours must have shape [N, C] = [{n}, C>=1], got {colours.shape}")
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "chol", chol)
        object.__setattr__(self, "colours", colours)

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def channels(self) -> int:
        return self.colours.shape[1]

    def validate(self) -> "Gaussians":
        """Raise :class:`LigInputError` naming the first bad Gaussian; return self if all is well."""
        from . import kernels  # one parallel pass; the numpy code below only runs to name a culprit

        if kernels.all_valid(self.means, self.chol, self.colours, LOG_SCALE_LIMIT):
            return self
        for name, arr in (("means", self.means), ("chol", self.chol), ("colours", self.colours)):
            bad = ~np.isfinite(arr)
            if bad.any():
                i = int(np.argwhere(bad)[0][0])
                raise LigInputError(
                    f"{name} of Gaussian {i} is not finite ({arr[i].tolist()}); "
                    "remove or fix NaN/inf parameters before rendering"
                )
        diag = self.chol[:, [0, 2]]
        bad = np.abs(diag) > LOG_SCALE_LIMIT
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            raise LigInputError(
                f"Gaussian {i} has a degenerate covariance: log-Cholesky diagonal {diag[i].tolist()} "
                f"is outside [-{LOG_SCALE_LIMIT}, {LOG_SCALE_LIMIT}]"
            )
        return self

    # ---------------------------------------------------------------- constructors and views
    @classmethod
    def empty(cls, channels: int = 3) -> "Gaussians":
        return cls(np.zeros((0, 2)), np.zeros((0, 3)), np.zeros((0, channels), np.float32))

    @classmethod
    def from_covariance(cls, means, cov, colours) -> "Gaussians":
        """Build from covariances ``cov = [N, 3] (Sxx, Sxy, Syy)``; rejects non positive definite ones."""
        cov = np.asarray(cov, dtype=np.float64)
        if cov.ndim != 2 or cov.shape[1] != 3:
            raise LigInputError(f"cov must have shape [N, 3] (Sxx, Sxy, Syy), got {cov.shape}")
        sxx, sxy, syy = cov[:, 0], cov[:, 1], cov[:, 2]
        with np.errstate(invalid="ignore"):
            det = sxx * syy - sxy * sxy
            # Relative test: a covariance whose determinant is lost in the rounding of its entries
            # is singular for every practical purpose (a line, not an ellipse).
            bad = ~(np.isfinite(cov).all(axis=1) & (sxx > 0) & (det > 1e-12 * sxx * syy))
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            raise LigInputError(
                f"covariance of Gaussian {i} is not positive definite: {cov[i].tolist()} "
                "(need Sxx > 0 and Sxx*Syy - Sxy^2 > 0)"
            )
        l11 = np.sqrt(sxx)
        l21 = sxy / l11
        l22 = np.sqrt(det / sxx)
        chol = np.stack([np.log(l11), l21, np.log(l22)], axis=1)
        return cls(means, chol, colours)

    @classmethod
    def from_scale_rotation(cls, means, scales, angles, colours) -> "Gaussians":
        """Build from standard deviations ``scales = [N, 2]`` along axes rotated by ``angles = [N]``."""
        scales = np.asarray(scales, dtype=np.float64)
        angles = np.asarray(angles, dtype=np.float64)
        c, s = np.cos(angles), np.sin(angles)
        v1, v2 = scales[:, 0] ** 2, scales[:, 1] ** 2
        cov = np.stack([c * c * v1 + s * s * v2, c * s * (v1 - v2), s * s * v1 + c * c * v2], axis=1)
        return cls.from_covariance(means, cov, colours)

    def covariance(self) -> np.ndarray:
        """``[N, 3]`` float64 (Sxx, Sxy, Syy)."""
        return chol_to_cov(self.chol.astype(np.float64))

    def take(self, index) -> "Gaussians":
        return Gaussians(self.means[index], self.chol[index], self.colours[index])

    @staticmethod
    def concatenate(parts) -> "Gaussians":
        parts = list(parts)
        return Gaussians(
            np.concatenate([p.means for p in parts]),
            np.concatenate([p.chol for p in parts]),
            np.concatenate([p.colours for p in parts]),
        )


def chol_to_cov(chol):
    """(log l11, l21, log l22) -> (Sxx, Sxy, Syy); works on numpy arrays and torch tensors alike."""
    l11 = chol[:, 0].exp() if hasattr(chol, "exp") else np.exp(chol[:, 0])
    l22 = chol[:, 2].exp() if hasattr(chol, "exp") else np.exp(chol[:, 2])
    l21 = chol[:, 1]
    return _stack3(l11 * l11, l11 * l21, l21 * l21 + l22 * l22)


def _stack3(a, b, c):
    if isinstance(a, np.ndarray):
        return np.stack([a, b, c], axis=1)
    import torch

    return torch.stack([a, b, c], dim=1)
