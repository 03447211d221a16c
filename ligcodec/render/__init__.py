"""The rasteriser: render sums of 2D Gaussians at any scale and region.

- :class:`Gaussians` — the data type; :func:`render` — numba CPU render (no torch needed);
- :func:`render_reference` — slow dense reference for tests;
- :func:`render_torch`, :func:`rasterize_torch` — differentiable torch paths (import torch lazily).
"""

from ..limits import MAX_IN_MEMORY_PIXELS, MAX_SIDE
from .contract import AA_VARIANCE, CUTOFF_SIGMA, output_size
from .gaussians import Gaussians
from .raster import rasterize, rasterize_backward, render
from .reference import render_reference

__all__ = [
    "AA_VARIANCE",
    "CUTOFF_SIGMA",
    "MAX_IN_MEMORY_PIXELS",
    "MAX_SIDE",
    "Gaussians",
    "output_size",
    "rasterize",
    "rasterize_backward",
    "render",
    "render_reference",
    "render_torch",
    "rasterize_torch",
]


def __getattr__(name):
    # torch is an encoder-only dependency: import it only when a torch path is asked for.
    if name in ("render_torch", "rasterize_torch"):
        from . import torch_ops

        return getattr(torch_ops, name)
    raise AttributeError(name)
