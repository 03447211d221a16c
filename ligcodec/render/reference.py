"""A slow, obviously-correct dense renderer that the fast kernels are tested against.

It follows the contract (:mod:`.contract`) literally, with explicit 2x2 matrices, ``np.linalg``
inverses and determinants, in float64, and evaluates every Gaussian at every pixel of the region.
Memory is O(pixels x Gaussians): use it on small inputs only.
"""

from __future__ import annotations

import numpy as np

from .contract import CUTOFF_Q, aa_variance, check_region, output_size
from .gaussians import Gaussians


def covariance_matrices(chol) -> np.ndarray:
    """``[N, 2, 2]`` covariance matrices ``L L^T`` from log-Cholesky ``[N, 3]``."""
    chol = np.asarray(chol, np.float64)
    L = np.zeros((len(chol), 2, 2))
    L[:, 0, 0] = np.exp(chol[:, 0])
    L[:, 1, 0] = chol[:, 1]
    L[:, 1, 1] = np.exp(chol[:, 2])
    return L @ L.transpose(0, 2, 1)


def render_reference(g: Gaussians, size, scale=1.0, region=None) -> np.ndarray:
    """``[h, w, C]`` float64 render of ``g`` for an image of ``size = (W, H)`` full-res pixels."""
    ow, oh = output_size(size[0], size[1], scale)
    x0, y0, w, h = check_region(region, ow, oh)
    s = float(scale)
    S = covariance_matrices(g.chol) * s * s + aa_variance(s) * np.eye(2)  # [N, 2, 2]
    amp = np.sqrt(np.linalg.det(covariance_matrices(g.chol) * s * s) / np.linalg.det(S))  # [N]
    P = np.linalg.inv(S)  # [N, 2, 2]
    ys, xs = np.mgrid[y0 : y0 + h, x0 : x0 + w]
    centres = np.stack([xs + 0.5, ys + 0.5], -1).reshape(-1, 1, 2)  # [P, 1, 2]
    d = centres - g.means[None] * s  # [P, N, 2]
    q = np.einsum("pni,nij,pnj->pn", d, P, d)  # [P, N]
    wgt = np.where(q <= CUTOFF_Q, np.exp(-0.5 * q), 0.0)
    out = wgt @ (g.colours.astype(np.float64) * amp[:, None])  # [P, C]
    return out.reshape(h, w, -1)


def render_reference_torch(means, chol, colours, size, scale=1.0, region=None):
    """The same dense reference on torch tensors, so tests can differentiate it with autograd."""
    import torch

    ow, oh = output_size(size[0], size[1], scale)
    x0, y0, w, h = check_region(region, ow, oh)
    s = float(scale)
    n = means.shape[0]
    L = torch.zeros(n, 2, 2, dtype=chol.dtype)
    L = L.index_put((torch.arange(n), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)), chol[:, 0].exp())
    L = L.index_put((torch.arange(n), torch.ones(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)), chol[:, 1])
    L = L.index_put((torch.arange(n), torch.ones(n, dtype=torch.long), torch.ones(n, dtype=torch.long)), chol[:, 2].exp())
    S0 = L @ L.transpose(1, 2) * (s * s)
    S = S0 + aa_variance(s) * torch.eye(2, dtype=chol.dtype)
    amp = torch.sqrt(torch.linalg.det(S0) / torch.linalg.det(S))
    P = torch.linalg.inv(S)
    ys, xs = torch.meshgrid(torch.arange(y0, y0 + h), torch.arange(x0, x0 + w), indexing="ij")
    centres = torch.stack([xs + 0.5, ys + 0.5], -1).reshape(-1, 1, 2).to(means.dtype)
    d = centres - means[None] * s  # [P, N, 2]
    q = torch.einsum("pni,nij,pnj->pn", d, P, d)
    wgt = torch.where(q <= CUTOFF_Q, torch.exp(-0.5 * q), torch.zeros_like(q))
    return (wgt @ (colours * amp[:, None])).reshape(h, w, -1)
