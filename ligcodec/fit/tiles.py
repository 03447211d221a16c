"""Fitting the whole image: the budget split between the tiles, and each tile fitted as its plan
(:mod:`ligcodec.fit.plan`) lays out its levels."""

from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, replace

import numpy as np

from ..errors import LigInputError
from ..model import Model, as_float, tile_grid, to_float_image
from ..render import Gaussians
from ..render.raster import project, rasterize
from ..runner import run_unordered, task_threads, workers_for
from ..source import Window
from .init import gradient_energy
from .optimise import FitSettings, fit_level
from .plan import FitConfig, downsample, level_seed, level_target, plan_tile, tile_seed


def resolve_budget(width: int, height: int, gaussians=None, density=None, default_density: float = 0.05) -> int:
    """The Gaussian count from a count or a per-pixel density, capped at one per pixel."""
    if gaussians is not None and density is not None:
        raise LigInputError("give the budget as gaussians= or density=, not both")
    if gaussians is None:
        d = default_density if density is None else density
        if not (d > 0 and math.isfinite(d)):
            raise LigInputError(f"density must be > 0, got {density!r}")
        gaussians = max(1, int(round(d * width * height)))
    gaussians = int(gaussians)
    if gaussians < 1:
        raise LigInputError(f"the Gaussian budget must be at least 1, got {gaussians}")
    return min(gaussians, width * height)


def split_budget(img, tile: int, total: int, content_weight: float, power: float = 1.0,
                 floor: float = 0.0) -> list[int]:
    """Gaussians per tile of ``img`` (an array or a :class:`~ligcodec.source.Source`): part by
    area, part by gradient energy (:func:`split_by_energy`); at most one per pixel."""
    from ..source import open_source

    src = open_source(img)
    return split_by_energy(tile_energies(src, tile), tile_areas(src.width, src.height, tile), total,
                           content_weight, power, floor)


def tile_areas(width: int, height: int, tile: int) -> np.ndarray:
    return np.array([(x1 - x0) * (y1 - y0) for _, x0, y0, x1, y1 in tile_grid(width, height, tile)], np.float64)


#: Columns read at once by :func:`tile_energies` (a band of one tile row by this many pixels).
ENERGY_BLOCK = 8192


def tile_energies(src, tile: int, workers: int = 1, scheduler=None, pool=None) -> np.ndarray:
    """Gradient energy summed per tile, reading the source one block of a tile row at a time
    (with the 2-px margin the gradient and its 3x3 blur need), so memory stays bounded. The blocks
    are independent tasks (see :func:`ligcodec.runner.run_unordered`): on 2 workers this pass over
    the whole image, which splits the budget before any fit starts, takes half the time."""
    w, h = src.width, src.height
    nx = math.ceil(w / tile)
    out = np.zeros(nx * math.ceil(h / tile), np.float64)
    step = max(tile, ENERGY_BLOCK // tile * tile)

    def tasks():
        for ty, y0 in enumerate(range(0, h, tile)):
            y1 = min(h, y0 + tile)
            for bx0 in range(0, w, step):
                bx1 = min(w, bx0 + step)
                ry0, ry1, rx0, rx1 = max(0, y0 - 2), min(h, y1 + 2), max(0, bx0 - 2), min(w, bx1 + 2)
                yield ty * nx + bx0 // tile, (Window(src, rx0, ry0, rx1, ry1), y0 - ry0, y1 - ry0, bx0 - rx0,
                                               bx1 - rx0, tile)

    for first, vals in run_unordered(block_energies, tasks(), workers, scheduler, pool):
        out[first : first + len(vals)] = vals
    return out


def block_energies(window, r0, r1, c0, c1, tile) -> np.ndarray:
    """Energies of the tiles of one block of :func:`tile_energies`: ``window`` holds the block
    with its margin, whose rows ``r0:r1`` and columns ``c0:c1`` are the block itself."""
    e = gradient_energy(as_float(window.load()))[r0:r1, c0:c1]
    return np.array([e[:, x : x + tile].sum(dtype=np.float64) for x in range(0, c1 - c0, tile)])


def split_by_energy(e: np.ndarray, area: np.ndarray, total: int, content_weight: float, power: float = 1.0,
                    floor: float = 0.0) -> list[int]:
    """Gaussians per tile from per-tile energies and areas: the largest-remainder split of
    ``total`` by ``(1 - w) * area share + w * content share``, where a tile's content share is its
    area times its mean energy to the ``power`` (above 1, busy tiles get more than their energy
    share: their error falls faster per Gaussian), and no tile's share is under ``floor`` times its
    area share (flat tiles, a slide's background, still get enough to be flat). At most one
    Gaussian per pixel; what that cap leaves goes to the other tiles by the same shares."""
    area = np.asarray(area, np.float64)
    by_area = area / area.sum()
    content = area * (np.maximum(np.asarray(e, np.float64), 0) / np.maximum(area, 1)) ** power
    by_content = content / content.sum() if content.sum() > 0 else by_area
    w = np.maximum((1 - content_weight) * by_area + content_weight * by_content, floor * by_area)
    budget = int(min(total, area.sum()))
    raw = np.zeros_like(w)
    free = np.ones(len(w), bool)
    left = float(budget)
    while left > 1e-9 and free.any():  # water-filling: tiles that reach one per pixel stop there
        # Where the tiles left have no content share, the rest goes by area.
        wf = np.where(free, w, 0) if w[free].sum() > 0 else np.where(free, area, 0)
        share = wf / wf.sum() * left
        full = free & (raw + share >= area)
        if not full.any():
            raw += share
            break
        left -= float((area[full] - raw[full]).sum())
        raw[full] = area[full]
        free &= ~full
    n = np.floor(raw).astype(np.int64)
    rest = budget - int(n.sum())
    n[np.argsort(raw - n, kind="stable")[::-1][:rest]] += 1
    return [int(min(k, a)) for k, a in zip(n, area)]


def fit(image, gaussians: int | None = None, *, density: float | None = None, config: FitConfig | None = None,
        progress=None, workers: int | None = None, **level_settings) -> Model:
    """Fit a multi-level Gaussian model to ``image`` ([H, W] or [H, W, C]; uint8, uint16 or float).

    Give the budget as ``gaussians`` (a count) or ``density`` (Gaussians per pixel). Budgets above
    one Gaussian per pixel are capped there. ``progress``: None (quiet), True (a line per tile on
    stderr with the running PSNR) or a callable ``f(done, total, psnr_db)``.
    ``level_settings`` override fields of :class:`FitSettings` (steps, learning rates, ...).
    ``workers`` overrides ``config.workers`` (0: one process per core; 1: this process). The
    model is the same for any number of workers.
    """
    cfg = replace(config) if config else FitConfig()  # checked again (FitConfig.__post_init__) if changed since
    if workers is not None:
        cfg = FitConfig(**{**asdict(cfg), "level": cfg.level, "workers": int(workers)})
    if level_settings:
        cfg = FitConfig(**{**asdict(cfg), "level": FitSettings(**{**asdict(cfg.level), **level_settings})})
    img, depth = to_float_image(image)
    h, w, nch = img.shape
    gaussians = resolve_budget(w, h, gaussians, density)
    cfg = cfg.for_image(w, h, gaussians)
    budgets = split_budget(img, cfg.tile, gaussians, cfg.content_weight, cfg.content_power, cfg.content_floor)
    tiles = list(tile_grid(w, h, cfg.tile))
    levels = [[None] * len(tiles) for _ in range(cfg.levels)]
    report = _progress(progress, len(tiles))
    t0 = time.perf_counter()
    sq_err = 0.0
    tasks = [(img[y0:y1, x0:x1], n, cfg, tile_seed(cfg.seed, t)) for (t, x0, y0, x1, y1), n in zip(tiles, budgets)]
    for done, ((t, x0, y0, x1, y1), (parts, err)) in enumerate(zip(tiles, run_tasks(tasks, cfg.workers)), 1):
        for li, g in enumerate(parts):
            levels[li][t] = Gaussians(g.means + [x0, y0], g.chol, g.colours)
        sq_err += err
        report(done, 10 * math.log10(1.0 / max(err / tasks[t][0].size, 1e-20)))
    overall = 10 * math.log10(1.0 / max(sq_err / img.size, 1e-20))
    info = dict(bit_depth=depth, seconds=time.perf_counter() - t0, psnr=overall, budget=gaussians,
                config=_jsonable(asdict(cfg)))
    return Model(w, h, nch, cfg.tile, levels, info)


def run_tasks(tasks, workers, fn=None):
    """Yield ``fn(*task)`` (default :func:`fit_tile_job`) in task order, here or in a spawn pool."""
    fn = fn or fit_tile_job
    ready, nxt = {}, 0
    for key, result in run_unordered(fn, enumerate(tasks), workers_for(workers, len(tasks))):
        ready[key] = result
        while nxt in ready:
            yield ready.pop(nxt)
            nxt += 1


@contextmanager
def tile_threads():
    """The threads of one tile's task (:func:`~ligcodec.runner.task_threads`): one, or all of them
    where the task runs alone in this process; the tiles are otherwise the parallel work. numba's
    kernels give the same bits on any thread count (each pixel and each Gaussian sums in a fixed
    order; ``test_fit_threads_same_bits``), so a pool worker may take idle cores too
    (:func:`~ligcodec.runner.rebalance_threads`); torch's would not, and its backend keeps one thread."""
    import numba

    torch = sys.modules.get("torch")  # only the torch backend imports it
    threads = (torch.get_num_threads() if torch else 0, numba.get_num_threads())
    if torch:
        torch.set_num_threads(1)
    numba.set_num_threads(task_threads())
    try:
        yield
    finally:
        if torch:
            torch.set_num_threads(threads[0])
        numba.set_num_threads(threads[1])


def render_parts(parts, shape) -> np.ndarray:
    """Sum of the levels' renders at scale 1 over a tile of ``shape`` (tile-local Gaussians)."""
    recon = np.zeros(shape, np.float32)
    for g in parts:
        if len(g):
            recon += rasterize(*project(g, 1.0), (0, 0, shape[1], shape[0]))
    return recon


def fit_tile_job(target, n, cfg: FitConfig, seed):
    """:func:`fit`'s task: one tile (:func:`tile_threads`): ``(parts per level in tile-local pixels,
    squared error)``."""
    with tile_threads():
        parts = fit_tile(target, n, cfg, seed)
        recon = render_parts(parts, target.shape)
        return parts, float(((np.clip(recon, 0, 1) - target) ** 2).sum())


def fit_tile(target, n, cfg: FitConfig, seed) -> list[Gaussians]:
    """Fit ``n`` Gaussians to one tile ``target`` as :func:`~ligcodec.fit.plan.plan_tile` plans
    them: one :class:`Gaussians` (tile-local pixels) per level of ``cfg``, empty past the plan."""
    parts = []
    for li, lv in enumerate(plan_tile(n, target.shape, cfg)):
        below = render_parts(parts, target.shape) if parts else None
        parts.append(fit_level(level_target(target, lv, below), lv.gaussians, scale=lv.scale, settings=cfg.level,
                               seed=level_seed(seed, li)))
    return parts + [Gaussians.empty(target.shape[2])] * (cfg.levels - len(parts))


def _progress(progress, total):
    if progress is None or progress is False:
        return lambda done, p: None
    if callable(progress):
        return lambda done, p: progress(done, total, p)
    t0 = time.perf_counter()

    def report(done, p):
        print(f"\rfit: tile {done}/{total}, tile PSNR {p:.2f} dB, {time.perf_counter() - t0:.0f} s",
              end="\n" if done == total else "", file=sys.stderr, flush=True)

    return report


def _jsonable(d):
    return {k: (_jsonable(v) if isinstance(v, dict) else v) for k, v in d.items()}


__all__ = ["FitConfig", "downsample", "fit", "fit_tile", "fit_tile_job", "render_parts", "resolve_budget",
           "run_tasks", "split_budget", "split_by_energy", "tile_areas", "tile_energies", "tile_threads"]
