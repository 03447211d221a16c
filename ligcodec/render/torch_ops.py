"""torch glue: autograd over the numba kernels (CPU fitting) and a device-agnostic renderer (CUDA).

Both follow :mod:`.contract` and take the same arguments, so the encoder can switch between them
with ``backend=``. The projection to output pixels (scale, anti-aliasing, log-Cholesky to conic)
is :func:`.contract.project` run on tensors, so autograd carries the chain rule from the conic to
the log-Cholesky parameters.
"""

from __future__ import annotations


import numpy as np
import torch

from .contract import CUTOFF_Q, check_region, check_scale, output_size, project
from .kernels import params_from_conic
from .raster import rasterize, rasterize_backward


class _NumbaRasterize(torch.autograd.Function):
    """``image [h, w, C] = rasterize(means [N, 2], conic [N, 3], cols [N, C])`` on the CPU kernels."""

    @staticmethod
    def forward(ctx, means, conic, cols, region):
        p = params_from_conic(_np64(means), _np64(conic), CUTOFF_Q)
        k = np.ascontiguousarray(cols.detach().cpu().numpy(), dtype=np.float32)
        out = rasterize(p, k, region)
        ctx.region = region
        ctx.arrays = (p, k)
        ctx.dtypes = (means.dtype, conic.dtype, cols.dtype)
        return torch.from_numpy(out).to(cols.device)

    @staticmethod
    def backward(ctx, grad):
        p, k = ctx.arrays
        g = np.ascontiguousarray(grad.detach().cpu().numpy(), dtype=np.float32)
        gm, gc, gk = rasterize_backward(p, k, ctx.region, g)
        dm, dc, dk = ctx.dtypes
        return torch.from_numpy(gm).to(dm), torch.from_numpy(gc).to(dc), torch.from_numpy(gk).to(dk), None


def _np64(t):
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float64)


def rasterize_torch(means, conic, cols, region, max_elements: int = 1 << 23):
    """Device-agnostic rasteriser in plain torch ops (runs unchanged on CUDA), differentiable.

    Each Gaussian is evaluated on a square patch around its centre; Gaussians are bucketed by
    patch radius (powers of two) and processed in chunks of at most ``max_elements`` patch
    pixels, so memory stays bounded whatever N is. Contributions are summed with ``index_add``.
    """
    x0, y0, w, h = region
    nch = cols.shape[1]
    dev = means.device
    img = torch.zeros(h * w, nch, dtype=cols.dtype, device=dev)
    if means.shape[0] == 0:
        return img.reshape(h, w, nch)
    a, b, c = conic[:, 0], conic[:, 1], conic[:, 2]
    with torch.no_grad():
        det = a * c - b * b
        radius = torch.sqrt(CUTOFF_Q * torch.maximum(a, c) / det)  # >= both half-axes of the box
        # Only the region can be reached, so no patch needs to be larger than the region.
        radius = torch.clamp(radius, max=float(max(w, h)) + 1.0)
        bucket = torch.ceil(torch.log2(torch.clamp(radius + 1.0, min=1.0))).long()
    for bk in torch.unique(bucket).tolist():
        r = 1 << bk
        sel = torch.nonzero(bucket == bk).squeeze(1)
        off = torch.arange(-r, r + 1, device=dev)
        oy, ox = torch.meshgrid(off, off, indexing="ij")
        ox, oy = ox.reshape(-1), oy.reshape(-1)  # [P]
        step = max(1, max_elements // ox.numel())
        for s0 in range(0, sel.numel(), step):
            idx = sel[s0 : s0 + step]
            mx, my = means[idx, 0], means[idx, 1]
            J = torch.floor(mx).detach().long()[:, None] + ox[None]  # [n, P]
            I = torch.floor(my).detach().long()[:, None] + oy[None]
            dx = J.to(means.dtype) + 0.5 - mx[:, None]
            dy = I.to(means.dtype) + 0.5 - my[:, None]
            q = a[idx, None] * dx * dx + 2 * b[idx, None] * dx * dy + c[idx, None] * dy * dy
            valid = (q <= CUTOFF_Q) & (J >= x0) & (J < x0 + w) & (I >= y0) & (I < y0 + h)
            wgt = torch.where(valid, torch.exp(-0.5 * q), torch.zeros_like(q)).to(cols.dtype)
            flat = torch.where(valid, (I - y0) * w + (J - x0), torch.zeros_like(I))
            vals = wgt[:, :, None] * cols[idx, None, :]  # [n, P, C]
            img = img.index_add(0, flat.reshape(-1), vals.reshape(-1, nch))
    return img.reshape(h, w, nch)


def render_torch(means, chol, colours, size, *, scale=1.0, region=None, backend="auto"):
    """Differentiable render of tensors ``means [N, 2]``, ``chol [N, 3]``, ``colours [N, C]``.

    ``backend``: ``"numba"`` (CPU kernels, fastest on CPU), ``"torch"`` (any device) or
    ``"auto"`` (numba on CPU, torch elsewhere). Returns ``[h, w, C]`` on the colours' device.
    """
    s = check_scale(scale)
    ow, oh = output_size(size[0], size[1], s)
    reg = check_region(region, ow, oh)
    m, conic, cols = project(means, chol, colours, s)
    if backend == "auto":
        backend = "numba" if colours.device.type == "cpu" else "torch"
    if backend == "numba":
        return _NumbaRasterize.apply(m, conic, cols, reg)
    if backend == "torch":
        return rasterize_torch(m, conic, cols, reg)
    raise ValueError(f"backend must be 'numba', 'torch' or 'auto', got {backend!r}")


__all__ = ["render_torch", "rasterize_torch"]
