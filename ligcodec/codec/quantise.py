"""Quantisation of one tile: geometry to the grid, colours re-solved on the quantised geometry."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..fit.optimise import _lsq
from ..render import Gaussians
from . import colour
from .tile import MAX_SYMBOL


@dataclass
class QuantSteps:
    """Quantiser steps (stored in the header). Defaults measured in bench/rd.py."""

    pos_step: float = 1 / 8
    chol_step: tuple = (1 / 8, 1 / 8, 1 / 8)
    colour_step: list = field(default_factory=lambda: [[1 / 128] * 3, [1 / 128] * 3])  # [level][channel]

    def for_image(self, levels: int, channels: int) -> "QuantSteps":
        rows = [list(r) for r in self.colour_step][:levels]
        while len(rows) < levels:
            rows.append(list(rows[-1]))
        rows = [(r * channels)[:channels] if len(r) != channels else r for r in rows]
        return QuantSteps(self.pos_step, tuple(self.chol_step), rows)


@dataclass
class QuantisedLevel:
    qx: np.ndarray
    qy: np.ndarray
    qc: np.ndarray  # [N, 3]
    qk: np.ndarray  # [N, C]
    gaussians: Gaussians  # dequantised, tile-local


def quantise_level(g: Gaussians, target, scale, steps: QuantSteps, level: int, transform: str,
                   lsq_iters: int = 40) -> QuantisedLevel:
    """Quantise ``g`` (tile-local) for ``target`` at ``scale``: positions and covariances to the
    grid, then the colours that best fit the quantised geometry (least squares), then those."""
    ps, cs = steps.pos_step, np.asarray(steps.chol_step)
    q = np.clip(np.round(g.means / ps - 0.5), -MAX_SYMBOL, MAX_SYMBOL).astype(np.int64)
    qc = np.clip(np.round(g.chol / cs), -MAX_SYMBOL, MAX_SYMBOL).astype(np.int64)
    geo = Gaussians((q + 0.5) * ps, qc * cs, g.colours)
    if lsq_iters and len(g):
        geo = _lsq(geo, target, scale, lsq_iters)
    coded = colour.forward(geo.colours, transform)
    step = np.asarray(steps.colour_step[level])
    qk = np.clip(np.round(coded / step), -MAX_SYMBOL, MAX_SYMBOL).astype(np.int64)
    deq = Gaussians(geo.means, geo.chol, colour.inverse(qk * step, transform))
    order = np.lexsort((q[:, 0], q[:, 1]))
    return QuantisedLevel(q[order, 0], q[order, 1], qc[order], qk[order], deq.take(order))
