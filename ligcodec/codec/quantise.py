"""Quantisation of one tile: covariances refined for the grid (optional), geometry to the grid,
colours re-solved on the quantised geometry."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..fit.optimise import Adam, loss_grads, lsq_colours
from ..fit.plan import FitConfig, level_target, plan_tile
from ..fit.tiles import render_parts
from ..render import Gaussians
from . import colour
from .tile import MAX_SYMBOL, dequantise_chol


@dataclass
class QuantSteps:
    """Quantiser steps (stored in the header). Defaults measured on the Kodak quick set (see
    :func:`adaptive_steps`, which scales them to the fit's error): the log-diagonal of the
    Cholesky factor needs a finer step (1/16) than the shear l21 / l22 (1/8)."""

    pos_step: float = 1 / 8
    chol_step: tuple = (1 / 16, 1 / 8, 1 / 16)
    colour_step: list = field(default_factory=lambda: [[1 / 128] * 3, [1 / 128] * 3])  # [level][channel]

    def for_image(self, levels: int, channels: int) -> "QuantSteps":
        rows = [list(r) for r in self.colour_step][:levels]
        while len(rows) < levels:
            rows.append(list(rows[-1]))
        rows = [(r * channels)[:channels] if len(r) != channels else r for r in rows]
        return QuantSteps(self.pos_step, tuple(self.chol_step), rows)

    def scaled(self, geometry: float, colour: float) -> "QuantSteps":
        """Position and covariance steps times ``geometry``, colour steps times ``colour``."""
        return QuantSteps(self.pos_step * geometry, tuple(c * geometry for c in self.chol_step),
                          [[c * colour for c in r] for r in self.colour_step])


#: :func:`adaptive_steps`: the fit's RMS error at which the default steps apply (28 dB), and the
#: exponents of the step multipliers in the error ratio (colour, geometry), measured on the Kodak
#: quick set at 0.25-1 bpp: rate-distortion theory says a step should grow like the distortion
#: the fit already has (exponent 1); geometry does best a little less steep.
ADAPT_REF_RMSE = 10 ** (-28 / 20)
ADAPT_EXPONENTS = (1.0, 0.5)


def adaptive_steps(base: QuantSteps, rmse: float) -> QuantSteps:
    """``base`` scaled to a fit whose RMS error (samples in [0, 1]) is ``rmse``: multipliers
    ``(rmse / ADAPT_REF_RMSE) ** exponent``, rounded to powers of 2^(1/8) within [1/16, 4]."""
    ratio = max(rmse, 1e-12) / ADAPT_REF_RMSE

    def mult(e):
        return 2.0 ** (np.clip(np.round(8 * e * np.log2(ratio)), -32, 16) / 8)

    return base.scaled(float(mult(ADAPT_EXPONENTS[1])), float(mult(ADAPT_EXPONENTS[0])))


@dataclass
class QuantisedLevel:
    qx: np.ndarray
    qy: np.ndarray
    qc: np.ndarray  # [N, 3]
    qk: np.ndarray  # [N, C]
    gaussians: Gaussians  # dequantised, tile-local


#: Colour quantisation rounds (:func:`_quantise_colours`): the colours are quantised a group at
#: a time and the rest re-solved to make up for the error.
COLOUR_ROUNDS = 4


def _render_local(g: Gaussians, shape, scale):
    from ..render.raster import project, rasterize

    return rasterize(*project(g, scale), (0, 0, shape[1], shape[0]))


def _quantise_colours(geo: Gaussians, target, scale, step, transform, rounds, lsq_iters, rounding=np.round):
    """Colour indices ``[N, C]`` of ``geo`` (colours already least-squares on its geometry), for
    ``step`` per channel (or per Gaussian and channel: bench/quant_tiles.py's variants, as is
    ``rounding``).

    Rounding every colour at once leaves each Gaussian's rounding error in the image. The render
    is linear in the colours, so (as GPTQ does for weights) the largest Gaussians are rounded
    first and the colours not yet rounded are re-solved against what remains, absorbing the
    error; the smallest, last group is rounded as it is."""
    n = len(geo)
    step = np.broadcast_to(step, geo.colours.shape)
    if rounds <= 1 or not lsq_iters or n < 2 * rounds:
        return rounding(colour.forward(geo.colours, transform) / step)
    qk = np.zeros((n, geo.colours.shape[1]))
    cols = geo.colours.copy()
    groups = np.array_split(np.argsort(-(geo.chol[:, 0] + geo.chol[:, 2]), kind="stable"), rounds)
    fixed = np.zeros(n, bool)
    for i, grp in enumerate(groups):
        qk[grp] = rounding(colour.forward(cols[grp], transform) / step[grp])
        if i == rounds - 1:
            break
        fixed[grp] = True
        cols[grp] = colour.inverse(qk[grp] * step[grp], transform)
        done = Gaussians(geo.means[fixed], geo.chol[fixed], cols[fixed])
        free = ~fixed
        rest = Gaussians(geo.means[free], geo.chol[free], cols[free])
        cols[free] = lsq_colours(rest, target - _render_local(done, target.shape, scale), scale, lsq_iters).colours
    return qk


def round_means(means, ps) -> np.ndarray:
    """Position indices ``[N, 2]`` (spec section 5)."""
    return np.clip(np.round(means / ps - 0.5), -MAX_SYMBOL, MAX_SYMBOL).astype(np.int64)


def round_chol(chol, cs) -> np.ndarray:
    """Covariance indices ``[N, 3]`` (spec section 5)."""
    qc = np.zeros((len(chol), 3), np.int64)
    qc[:, [0, 2]] = np.clip(np.round(chol[:, [0, 2]] / cs[[0, 2]]), -MAX_SYMBOL, MAX_SYMBOL)
    # l21 is coded as the shear l21 / l22 (of the quantised l22): scale-free, so one step suits
    # small and large Gaussians alike (measured +0.05 dB at equal rate over a plain l21 step).
    l22 = np.exp(qc[:, 2] * cs[2])
    qc[:, 1] = np.clip(np.round(chol[:, 1] / l22 / cs[1]), -MAX_SYMBOL, MAX_SYMBOL)
    return qc


#: :func:`refine_for_grid`: Adam's learning rates, for the covariances in units of their steps and
#: for the colours in sample values (the fit ends at 0.02 and 0.001), decayed by a half cosine.
#: Chosen on 8 tiles of Kodak 05, 13, 16 and 23 at 1 bpp (BENCHMARKS.md, twelfth session): positions
#: refined too, or the covariances at 0.15 x their step, gained no more than the covariances alone.
REFINE_LR_CHOL = 0.1
REFINE_LR_COLOURS = 0.002


def refine_for_grid(g: Gaussians, target, scale, steps: QuantSteps, iters: int, lsq_iters: int = 40) -> Gaussians:
    """``g`` with covariances and colours refined for ``iters`` steps through the quantiser
    (quantisation-aware training with a straight-through gradient): each step renders the
    covariances as they would be quantised and applies the gradient to the unquantised ones, so
    that rounding lands them where the quantised tile fits ``target`` best. The positions stay."""
    cs = np.asarray(steps.chol_step)
    means = np.ascontiguousarray(g.means, np.float64)
    q_means = (round_means(means, steps.pos_step) + 0.5) * steps.pos_step
    # Start from the colours that best fit the plainly rounded geometry, as quantise_level's do.
    plain = Gaussians(q_means, dequantise_chol(round_chol(g.chol, cs), cs), g.colours)
    cols = lsq_colours(plain, target, scale, lsq_iters).colours
    opt = Adam([g.chol.astype(np.float64), cols.astype(np.float64)], [REFINE_LR_CHOL * cs, REFINE_LR_COLOURS])
    best, best_loss = None, math.inf
    for i in range(iters + 1):
        chol, cols = opt.params
        q_chol = dequantise_chol(round_chol(chol, cs), cs)
        loss, _, (_, g_chol, g_cols) = loss_grads(q_means, q_chol, cols, target, scale)
        # Rounding makes the loss a step function, and Adam moves every parameter by about its
        # learning rate whatever the gradient's size, so the loss does not fall at every step:
        # keep the best iterate (the first is plain rounding, so this never does worse than it).
        if loss < best_loss:
            best, best_loss = (chol.copy(), cols.copy()), loss
        if i < iters:
            opt.step((g_chol, g_cols), 0.5 * (1 + math.cos(math.pi * i / iters)))
    return Gaussians(means, best[0], best[1].astype(np.float32))


def quantise_level(g: Gaussians, target, scale, steps: QuantSteps, level: int, transform: str,
                   lsq_iters: int = 40, colour_rounds: int | None = None, refine: int = 0) -> QuantisedLevel:
    """Quantise ``g`` (tile-local) for ``target`` at ``scale``: the covariances refined for the grid
    for ``refine`` steps (:func:`refine_for_grid`), positions and covariances to the grid, then the
    colours that best fit the quantised geometry (least squares), then those."""
    ps, cs = steps.pos_step, np.asarray(steps.chol_step)
    if refine and len(g):
        g = refine_for_grid(g, target, scale, steps, refine, lsq_iters)
    q, qc = round_means(g.means, ps), round_chol(g.chol, cs)
    geo = Gaussians((q + 0.5) * ps, dequantise_chol(qc, cs), g.colours)
    if lsq_iters and len(g):
        geo = lsq_colours(geo, target, scale, lsq_iters)
    step = np.asarray(steps.colour_step[level])
    qk = np.clip(_quantise_colours(geo, target, scale, step, transform,
                                   COLOUR_ROUNDS if colour_rounds is None else colour_rounds, lsq_iters),
                 -MAX_SYMBOL, MAX_SYMBOL).astype(np.int64)
    deq = Gaussians(geo.means, geo.chol, colour.inverse(qk * step, transform))
    order = np.lexsort((q[:, 0], q[:, 1]))
    return QuantisedLevel(q[order, 0], q[order, 1], qc[order], qk[order], deq.take(order))


def quantise_tile(parts: list[Gaussians], target, n: int, cfg: FitConfig, steps: QuantSteps, transform: str,
                  lsq_iters: int = 40, refine: int = 0) -> list[QuantisedLevel]:
    """Quantise a tile's fitted levels ``parts`` (tile-local; the tile's budget was ``n``), each
    against what it was fitted to: the tile's plan (:func:`~ligcodec.fit.plan.plan_tile`), with a
    detail level's residual taken from the levels before it as quantised. Levels past the plan
    are empty. ``refine``: steps of :func:`refine_for_grid` per level."""
    plan = plan_tile(n, target.shape, cfg)
    out = []
    for li, g in enumerate(parts):
        if li < len(plan):
            below = render_parts([q.gaussians for q in out], target.shape) if out else None
            level, scale = level_target(target, plan[li], below), plan[li].scale
        else:
            level, scale = target, 1.0
        out.append(quantise_level(g, level, scale, steps, li, transform, lsq_iters, refine=refine))
    return out
