"""The fitting plan: what is fitted where, in one place for the fit and the quantiser.

:class:`FitConfig` holds the settings (checked when it is made). :func:`plan_tile` turns a tile's
Gaussian budget into its levels: how many Gaussians each gets and the resolution it is fitted at.
:func:`level_target` says what a level is fitted (and later quantised) against, and
:func:`tile_seed` / :func:`level_seed` the random seed of each fit. The fit
(:func:`ligcodec.fit.tiles.fit_tile`) and the quantisation pass
(:func:`ligcodec.codec.encoder.code_tile_task`) both walk this plan, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import LigInputError
from ..model import tile_grid
from .init import downsample
from .optimise import FitSettings


@dataclass
class FitConfig:
    """Settings of :func:`~ligcodec.fit.fit` and of the encoder's fit. Defaults are measured in
    bench/fit.py (see BENCHMARKS.md). Checked when made (:class:`~ligcodec.errors.LigInputError`)."""

    levels: int = 2
    # Share of the budget for the coarse level. LIG uses 1/8; coded, its Gaussians cost more bits
    # and fit worse per Gaussian, so a small share codes better at equal rate: 0.03 against 0.125,
    # then 0.02 against 0.03 on all of Kodak (BENCHMARKS.md, nineteenth session).
    level0_fraction: float = 0.02
    downsample: int = 2  # level 0 fits the image area-averaged over downsample^2 blocks
    tile: int = 0  # tile edge in full-res pixels; 0: chosen per image (auto_tile)
    # The split of the budget between tiles (fit/tiles.split_by_energy): content_weight of it by
    # content (the tile's area x its mean gradient energy ^ content_power), the rest by area, and no
    # tile under content_floor x its area share. Measured in bench/fit.py on medium images
    # (BENCHMARKS.md, 2026-12-04): concentrating on busy tiles gains most where a flat background
    # takes much of the image (a slide), and a little on photos and aerial scenes.
    content_weight: float = 1.0
    content_power: float = 1.3
    content_floor: float = 0.1
    seed: int = 0
    workers: int = 0  # processes fitting tiles in parallel; 0 = one per CPU core
    level: FitSettings = field(default_factory=FitSettings)

    def __post_init__(self):
        if self.levels not in (1, 2):
            raise LigInputError(f"levels must be 1 or 2, got {self.levels}")
        if self.downsample not in (2, 4, 8):
            raise LigInputError(f"downsample must be 2, 4 or 8, got {self.downsample}")
        if self.tile and (self.tile < 16 or self.tile % self.downsample):
            raise LigInputError(f"tile must be 0 (chosen per image) or >= 16 and a multiple of downsample "
                                f"({self.downsample}), got {self.tile}")
        if not 0 <= self.content_weight <= 1:
            raise LigInputError(f"content_weight must be in [0, 1], got {self.content_weight}")
        if not 0 <= self.content_power <= 4:
            raise LigInputError(f"content_power must be in [0, 4], got {self.content_power}")
        if not 0 <= self.content_floor <= 1:
            raise LigInputError(f"content_floor must be in [0, 1], got {self.content_floor}")
        if not 0 < self.level0_fraction < 1:
            raise LigInputError(f"level0_fraction must be in (0, 1), got {self.level0_fraction}")

    def for_image(self, width: int, height: int, gaussians: int | None = None) -> FitConfig:
        """These settings with the tile edge that ``tile = 0`` leaves to :func:`auto_tile` (for
        ``gaussians``, where known)."""
        return self if self.tile else replace(self, tile=auto_tile(width, height, gaussians))


#: The tile edges :func:`auto_tile` picks from, largest first.
AUTO_TILES = (512, 384, 256)
#: ... and how far from even the split of a grid's pixels over two processes may be.
AUTO_TILE_BALANCE = 1.15
#: Images of at most this many pixels (Kodak's 768 x 512) are one tile (:func:`auto_tile`). One
#: tile's fit on two threads takes longer than two tiles' fits side by side (its arrays leave the
#: cache, and its serial steps have no partner; BENCHMARKS.md, seventeenth session), so larger
#: images keep tiles that two processes share. Smaller ones code better whole: a 768 x 512 photo
#: (seventeenth session), and a 512 x 512 image against four tiles (384 and 128 px, which two
#: processes share evenly; twenty-seventh session).
SINGLE_TILE_PIXELS = 768 * 512
#: ... with at most this many Gaussians a pixel (Kodak: 1.4-1.6 bpp). Beyond it a fixed split
#: between tiles spends the Gaussians better than one tile's fit moves them: Kodak at 2 bpp coded
#: better in 384-px tiles, at 0.25-1 bpp as one tile (BENCHMARKS.md, seventeenth to nineteenth
#: sessions).
SINGLE_TILE_DENSITY = 1 / 30


def auto_tile(width: int, height: int, gaussians: int | None = None) -> int:
    """The tile edge of an image: the largest of :data:`AUTO_TILES` whose tiles split over two
    processes (the standard machine's cores) within :data:`AUTO_TILE_BALANCE` of even, pixel
    for pixel (largest tile first to the less loaded), else the smallest.

    Large tiles: each chunk costs ~64 bytes of index entry, stream table and coder flush, and a
    tile border needs extra Gaussians (they are drawn inside their own tile only), so fewer,
    larger tiles code better (BENCHMARKS.md, fifteenth and seventeenth sessions). An image of at
    most :data:`SINGLE_TILE_PIXELS` (a 768 x 512 photo, a 512 x 512 image) is one tile, its
    longer side rounded up to 16, unless ``gaussians`` exceed :data:`SINGLE_TILE_DENSITY`: no
    borders, and its fit takes every core (runner.rebalance_threads). The result depends on the
    image's size and the count alone, never on the machine."""
    side = max(width, height)
    sparse = gaussians is None or gaussians <= SINGLE_TILE_DENSITY * width * height
    if width * height <= SINGLE_TILE_PIXELS and sparse:
        return -(-side // 16) * 16
    for t in AUTO_TILES:
        areas = [(x1 - x0) * (y1 - y0) for _, x0, y0, x1, y1 in tile_grid(width, height, t)]
        load = [0, 0]
        for a in sorted(areas, reverse=True):
            load[load[1] < load[0]] += a
        if max(load) <= AUTO_TILE_BALANCE * width * height / 2:
            return t
    return AUTO_TILES[-1]


def tile_seed(seed: int, tile: int) -> int:
    """The seed of tile number ``tile``'s fit (its levels add their index: :func:`level_seed`)."""
    return seed * 1_000_003 + tile


def level_seed(seed: int, level: int) -> int:
    """The seed of one level's fit in a tile whose seed (:func:`tile_seed`) is ``seed``."""
    return seed + level


@dataclass(frozen=True)
class LevelPlan:
    """One level of one tile: its Gaussians and the resolution it is fitted at."""

    gaussians: int
    #: 1: the tile at full resolution, fitted to what the levels before it left (the residual);
    #: f > 1: the tile area-averaged over f x f blocks (:func:`downsample`), rendered at scale 1/f.
    downsample: int = 1

    @property
    def scale(self) -> float:
        return 1.0 / self.downsample


def plan_tile(n: int, shape, cfg: FitConfig) -> list[LevelPlan]:
    """The levels of a tile of ``shape`` (h, w, ...) whose budget is ``n`` Gaussians.

    No Gaussians: no level. One level, or a budget under 2: everything in level 0 at full
    resolution. Else level 0 gets ``round(n x level0_fraction)`` (at least 1, at most one per pixel
    of the downsampled tile) fitted to the tile at ``1 / cfg.downsample``, and level 1 the rest,
    fitted at full resolution to what level 0 leaves. Levels after the plan's are empty."""
    if n < 1:
        return []
    if cfg.levels == 1 or n < 2:
        return [LevelPlan(n)]
    f = cfg.downsample
    n0 = max(1, int(round(n * cfg.level0_fraction)))
    n0 = min(n0, -(-shape[0] // f) * -(-shape[1] // f))
    return [LevelPlan(n0, f), LevelPlan(n - n0)]


def level_target(target: np.ndarray, level: LevelPlan, below: np.ndarray | None) -> np.ndarray:
    """What ``level`` is fitted and quantised against: the tile ``target`` downsampled for a
    coarse level, else ``target`` less ``below`` (the full-resolution render of the levels before
    it; None where there are none)."""
    if level.downsample > 1:
        return downsample(target, level.downsample)
    return target if below is None else target - below


__all__ = ["FitConfig", "LevelPlan", "downsample", "level_seed", "level_target", "plan_tile", "tile_seed"]
