"""Closed-form colours: the render is linear in the colours, so given the geometry the best
colours solve a sparse least-squares problem ``min ||A c - y||^2``, with ``A c`` the forward pass
and ``A^T r`` the colour part of the backward pass. Conjugate gradients on the normal equations
(all channels at once, one step size per channel); numpy + numba only.
"""

from __future__ import annotations

import numpy as np

from ..render.raster import rasterize, rasterize_backward
from ..runner import rebalance_threads


def _At(params, region, r, nch):
    # The backward kernel's colour gradient of sum(r * render) is exactly A^T r; the colours it is
    # given only feed the geometry gradients, which are not wanted here.
    zeros = np.zeros((params.shape[0], nch), np.float32)
    return rasterize_backward(params, zeros, region, r, colours_only=True)[2]


def solve_colours(params, region, target, cols0=None, iters: int = 30, ridge: float = 1e-4, tol: float = 1e-6):
    """Colours ``[N, C]`` minimising ``||render - target||^2 + ridge ||c||^2``.

    ``params [N, 9]`` are projected Gaussians (kernels' layout), ``target [h, w, C]`` the image of
    ``region``. ``cols0`` warm-starts the solve. Returns float32.
    """
    rebalance_threads()  # a tile solved alone takes the idle cores (a task's first solve precedes its fit)
    n = params.shape[0]
    nch = target.shape[2]
    if n == 0:
        return np.zeros((0, nch), np.float32)
    x = np.zeros((n, nch)) if cols0 is None else np.asarray(cols0, np.float64).copy()

    def normal(v):
        return _At(params, region, rasterize(params, v.astype(np.float32), region), nch) + ridge * v

    b = _At(params, region, target.astype(np.float32), nch)
    r = b - normal(x)
    p = r.copy()
    rs = (r * r).sum(0)
    b2 = (b * b).sum(0) + 1e-30
    for _ in range(iters):
        if (rs / b2).max() < tol * tol:
            break
        Ap = normal(p)
        alpha = rs / np.maximum((p * Ap).sum(0), 1e-30)
        x += alpha * p
        r -= alpha * Ap
        rs_new = (r * r).sum(0)
        p = r + (rs_new / np.maximum(rs, 1e-30)) * p
        rs = rs_new
    return x.astype(np.float32)
