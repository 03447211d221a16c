"""numpy-facing wrappers of the numba kernels (no torch needed)."""

from __future__ import annotations

import numba
import numpy as np

from . import banded, kernels
from .contract import CUTOFF_Q, aa_variance, check_region, check_scale, output_size
from .gaussians import LOG_SCALE_LIMIT, Gaussians


def project(g: Gaussians, scale: float):
    """``(params [N, 9], cols [N, C])`` of ``g`` in output pixels at ``scale`` (see kernels)."""
    return kernels.project(g.means, g.chol, g.colours, scale, aa_variance(scale), CUTOFF_Q)


def _chunks(n):
    """Chunks of the parallel binning passes: a few per thread (the result does not depend on it)."""
    return 4 * numba.get_num_threads() if n >= 16384 else 1


def _backward_chunks():
    """Runs of equal work that :func:`kernels.backward` cuts its Gaussians into: a few per thread,
    so that a misjudged run costs little (the result does not depend on it)."""
    return 4 * numba.get_num_threads()


def rasterize(params, cols, region, tile=kernels.TILE, out=None) -> np.ndarray:
    """Forward pass on projected Gaussians (see :mod:`.kernels`): ``[h, w, C]`` float32."""
    x0, y0, w, h = region
    nch = cols.shape[1]
    if out is None:
        out = np.empty((h, w, nch), np.float32)
    if len(params) == 0:
        out[...] = 0
        return out
    tw, th = tile
    boxes, start, ids = kernels.bin_gaussians(params, x0, y0, w, h, tw, th, _chunks(len(params)))
    kernels.forward(params, cols, CUTOFF_Q, boxes, start, ids, x0, y0, w, h, tw, th, out)
    return out


def rasterize_backward(params, cols, region, grad_out, colours_only=False):
    """Gradients of ``sum(grad_out * rasterize(...))`` w.r.t. (means, conic, cols), float64.
    ``colours_only``: the same colour gradients, faster; the others are not wanted."""
    _, _, w, h = region
    # Planar [C, h, w + slack] gives the backward kernel unit-stride spans it can vectorise.
    grad_out = np.asarray(grad_out, np.float32)
    planes = np.zeros((grad_out.shape[2], h, w + kernels.LANES), np.float32)
    planes[:, :, :w] = np.moveaxis(grad_out, -1, 0)
    return backward_planes(params, cols, region, planes, colours_only)


def backward_planes(params, cols, region, planes, colours_only=False):
    """:func:`rasterize_backward` with the image gradient already planar (``[C, h, w + LANES]``,
    zero slack columns)."""
    x0, y0, w, h = region
    boxes = kernels.gaussian_boxes(params, x0, y0, w, h)
    # 64-px tiles: 48 KB of RGB gradient planes each, in L2 while its Gaussians are visited.
    order = kernels.tile_order(params, boxes, x0, y0, w, h, 64)
    if len(order) == 0 or kernels.order_breaks(order) < len(order) // 16:
        return kernels.backward(params, cols, CUTOFF_Q, boxes, x0, y0, planes, order, _backward_chunks(),
                                colours_only)
    # Scattered (random order): visited through the index, each Gaussian's own parameters were a
    # cache miss (200k shuffled Gaussians at 1/4 of 2048^2: 27 ms, 3x the codec's order), so
    # they are gathered into tile order first and the gradients put back.
    grads = kernels.backward(kernels.take_rows(params, order), kernels.take_rows(cols, order), CUTOFF_Q,
                             kernels.take_rows(boxes, order), x0, y0, planes, order[:0], _backward_chunks(),
                             colours_only)
    return tuple(kernels.put_rows(gr, order) for gr in grads)


def render(g: Gaussians, size, *, scale=1.0, region=None) -> np.ndarray:
    """Render ``g`` (an image of ``size = (W, H)`` full-res pixels) at ``scale``.

    ``region = (x, y, w, h)`` in output pixels selects a window; the result is ``[h, w, C]``
    float32, unclamped. A region render equals the same window of the full render bit for
    bit, and touches only the Gaussians that reach it; the result does not depend on the
    number of threads.

    Two paths evaluate the same contract and agree to float rounding (~1e-7 of the peak): the
    banded path of :mod:`.banded` (no binning) and the tiled path of :mod:`.kernels` (project,
    bin into tiles, draw). The banded one serves every scale up to 1/2, and larger scales when
    the Gaussians are spatially coherent, as the codec stores them; Gaussians in random order
    above 1/2 take the tiled one. Measured (bench/render.py Gaussians, 200k on 2048^2, scale
    1, 2 threads): banded 49.9 vs tiled 57.2 ms in codec order, 206.8 vs 92.6 ms shuffled.
    Which path runs depends on the Gaussians, the scale and the image size, never on the
    region, so a region render is still the same window of the full render.
    """
    s = check_scale(scale)
    ow, oh = output_size(size[0], size[1], s)
    reg = check_region(region, ow, oh)
    x0, y0, w, h = reg
    out = np.empty((h, w, g.channels), np.float32)
    if len(g) == 0:
        out[...] = 0
        return out
    banded = _render_banded(g, s, reg, out, oh)  # validates on the way
    if banded is not None:
        return banded
    g.validate()
    tw, th = kernels.TILE
    # Projection fused with binning: the same params, boxes and tile lists as project() followed
    # by rasterize(), in one pass fewer over the Gaussians.
    params, cols, boxes, start, ids = kernels.project_and_bin(
        g.means, g.chol, g.colours, s, aa_variance(s), CUTOFF_Q, x0, y0, w, h, tw, th, _chunks(len(g))
    )
    return kernels.forward(params, cols, CUTOFF_Q, boxes, start, ids, x0, y0, w, h, tw, th, out)


def _render_banded(g: Gaussians, s: float, region, out, out_h: int):
    """The banded path (see :mod:`.banded`): ``out``, or None above scale 1/2 when the
    Gaussians are not spatially coherent (the tiled path is then faster). The choice depends
    on the Gaussians, the scale and the output height ``out_h``, not on the region."""
    x0, y0, w, h = region
    # Blocks of consecutive Gaussians whose centres span more than a quarter of the output's
    # rows on average: random order, not the codec's.
    coherent = banded.block_spread(g.means, s) <= out_h / 4
    if not coherent and s > banded.MAX_SCALE:
        return None
    k = aa_variance(s)
    workers = numba.get_num_threads()
    geo, aux, box, rows, ok = banded.setup(g.means, g.chol, s, k, CUTOFF_Q, LOG_SCALE_LIMIT, x0, y0, w, h,
                                            workers)
    if not (ok and np.isfinite(g.colours).all()):
        g.validate()  # raises, naming the culprit
    # Bands of at most 64 rows (an RGB band buffer of a 1024-px-wide output is ~800 KB), a few
    # per thread. The result does not depend on the bands or the threads. Every band scans the
    # blocks that reach it, so when they are not coherent one band per thread scans least:
    # 200k shuffled Gaussians at 1/4 of 2048^2 took 15.5 ms with 8 bands, 7.2 ms with 2.
    nb = min(h, max(2 * workers, -(-h // 64)) if coherent else workers)
    return banded.forward(geo, aux, box, rows, g.means, g.chol, g.colours, s, k, CUTOFF_Q, x0, y0, w, h,
                           nb, min(workers, nb), out)
