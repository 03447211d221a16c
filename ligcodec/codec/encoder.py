"""The encode pipeline: a Gaussian count -> fitted, quantised, entropy-coded ``.lig`` file.

The public entry is :func:`ligcodec.codec.ratecontrol.encode`, which turns the budget options
(quality, bpp, psnr, ...) into a Gaussian count and calls :func:`encode_tiles`. This module keeps
the rest: the settings that change the bytes (:func:`encode_settings`), pass 1 (fit every tile),
the quantiser steps, pass 2 (quantise and code every tile, its levels laid out by the fitting
plan, :mod:`ligcodec.fit.plan`), the journal that makes both passes resumable, and the file write.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import msgpack
import numpy as np

from ..container import MAX_HEADER_SIZE, Header, lig_size, steps_as_float32, write_lig
from ..errors import LigInputError
from ..fit.optimise import FitSettings
from ..fit.plan import FitConfig, tile_seed
from ..fit.tiles import (fit_tile, render_parts, split_by_energy, tile_areas, tile_energies,
                         tile_threads)
from ..model import as_float, tile_grid
from ..render import Gaussians
from ..runner import local_pool, run_unordered, workers_for
from ..source import Window, subsample
from .alpha import mask_chunks
from .colour import MATRIX_STEP_GAIN, choose_transform
from .journal import Journal, tile_digest
from .quantise import QuantSteps, adaptive_steps, quantise_tile
from .rateprobe import landing_shift, payload_at, plain_payload, probed_shifts
from .seams import choose_threshold
from .tile_writer import encode_chunk

#: ``effort`` 1..9 -> optimiser steps per level per tile (like WebP's method / JPEG XL's effort).
#: Measured on 4 Kodak images, 10k Gaussians: 600 steps 30.41 dB in 12 s, 1500 steps 31.08 dB
#: in 35 s per image. The default is 7: on all 24 Kodak images it gains +0.04 / +0.06 dB over 6
#: against JPEG at 0.5 / 1 bpp (better on 17 / 19 of 24) for 1.3-1.4x the encode time, which keeps
#: a Kodak image at 1 bpp under a minute (BENCHMARKS.md).
EFFORT_STEPS = {1: 100, 2: 200, 3: 350, 4: 600, 5: 1000, 6: 1500, 7: 2000, 8: 3000, 9: 5000}
#: Below effort :data:`FAST_BELOW`, start with the whole budget (densification needs many steps to
#: pay off) and solve colours with fewer CG iterations. Measured on kodim05 / kodim23 at the
#: default budget, one process: 100 steps with densification and 25/40 CG iterations 24.58 / 36.93 dB in 10 s;
#: without and 10/15 iterations 26.66 / 37.86 dB in 4.5 s. 350 steps: 28.57 / 39.04 vs 29.22 /
#: 39.25 dB. At 1500 steps the two are equal within 0.1 dB.
#: The short schedules also take larger steps and start from smaller, less uniformly placed
#: Gaussians (learning rates 3x for means, and for covariances until the rate change below;
#: decaying to half instead of a tenth;
#: init size 0.3 instead of 0.7; uniform share 0.15 instead of 0.3). Float fits at 8000 Gaussians,
#: 100 steps: +1.8 dB on the Kodak quick set, +2.4 dB on four held-out Kodak images; +0.7 dB at
#: 350 steps and +0.3 dB at 1000 (BENCHMARKS.md, "short schedules"). With densification at 2000
#: steps the same settings lose 0.3 dB, so the default effort keeps :class:`FitSettings`' own.
#: Relocation rounds (:class:`FitSettings`) need steps between them for the moved Gaussians to
#: settle: at 100 steps, 12 rounds over the first 40 % (3 steps apart) gave a BD-rate vs JPEG 2000
#: of +64.1 %, 8 over the first half +58.5 % (rd.py --quick --effort 1), hence 8 here.
#: Over-provisioning (:class:`FitSettings` ``overfit``): the short schedules do best with a larger
#: surplus pruned later (half again, at 70 % of the steps), and with relocation kept at 5 %
#: (BENCHMARKS.md, "over-provisioning"). With those, the covariances' rate went up at every effort
#: (4x at efforts 6-9, 2x here; same section).
#: Colours learn 3x faster too (``lr_colours`` 0.03; 0.02 had lost before the 3x steps above): on
#: all 24 Kodak images at effort 1 every image gained, and 0.04, a little better there, lost on two
#: held-out medium images (BENCHMARKS.md, twenty-fifth session). The default schedule keeps 0.01:
#: 0.02 gained up to 1 bpp but lost at 2 bpp on smooth images (same section). With 0.03 a 1x1
#: tile's one Gaussian ended as a needle on the tile's edge, where no pixel centre sees it
#: (tests/test_fit.py), hence means kept half a pixel in from the edge (``inside_margin``).
FAST_EFFORT_SETTINGS = {"densify_start": 1.0, "lsq_iters": 10, "lr_means": 1.2, "lr_chol": 0.3,
                        "lr_colours": 0.03, "lr_final": 0.5, "init_size": 0.3, "init_uniform": 0.15,
                        "densify_rounds": 8, "densify_until": 0.5, "relocate": 0.05, "overfit": 0.5,
                        "prune_at": 0.7, "inside_margin": 0.5}
FAST_BELOW = 6
FAST_EFFORT_QUANT_LSQ = 15
DEFAULT_QUANT_LSQ = 40
#: Steps of quantisation-aware refinement of the covariances in each coding round
#: (:func:`~ligcodec.codec.quantise.refine_for_grid`), at efforts from :data:`FAST_BELOW` on; the
#: short schedules skip it, as it would cost them as much again as the fit. Measured on 8 tiles of
#: Kodak 05, 13, 16 and 23 at 1 bpp (BENCHMARKS.md, twelfth session): 30 / 60 / 100 / 200 steps
#: +0.07 / +0.10 / +0.17 / +0.17 dB at the same size (the last iterate; the kept best iterate: +0.16 at
#: 100).
DEFAULT_QUANT_REFINE = 100
DEFAULT_EFFORT = 7
#: The border filter written into every file (spec section 6, ``deblock = [K, T]``): ramps over
#: ``2 K`` pixels, for jumps up to ``T`` (fading out by 2 T), first DEBLOCK_THRESHOLD x the coded
#: image's RMS error; :func:`~ligcodec.codec.seams.choose_threshold` then raises it where the
#: decoded seams still show (smooth images). Measured at effort 1 on 8 Kodak images at 0.25-2 bpp (BENCHMARKS.md, "border
#: filter"): 2.5 left the steps across borders 1-12 % above the source's, 3 took them 2-13 %
#: below; PSNR moves by 0.01-0.02 dB. K = 2, 4 or 8 give the same steps at the border; a wider
#: ramp is less visible and costs a little more PSNR.
DEBLOCK_WIDTH = 4
DEBLOCK_THRESHOLD = 2.75
#: ``progressive=True``: a quarter of the budget in a level 0 fitted to the image at 1/4, which
#: then stands alone at scales up to 1/4 (header ``level0_scale``), so such reads need only
#: level-0 bytes. Measured on Kodak at 1 bpp (bench/levels.py --progressive, BENCHMARKS.md
#: "Progressive files"): that read touches 28 % of the file and is 2.9 dB below a default file's
#: 1/4 read; full resolution is 1.2 dB below a default file of the same size. Shares of 0.15 and
#: 0.4 (kodim13, 23) cost 0.25-0.43 / 1.6-1.7 dB at full resolution for 1/4 reads 6-7 dB below /
#: level with or above the default file's.
PROGRESSIVE_FIT = {"level0_fraction": 0.25, "downsample": 4}
#: The rate loop of a ``bpp=`` encode (:func:`next_shift`): the count comes from a model before
#: the fit, so the base steps can miss the target size. The first coding round takes the shift that
#: the probe (:func:`_first_shift`) expects to land it; while a round still misses by more than
#: RATE_TOLERANCE, the tiles are coded again (pass 2 only: a few % of the time at the default
#: effort, ~20 % at effort 1) with the quantiser steps moved as if the fit's error were
#: 2^(shift/8) times what it is, at most RATE_ROUNDS more times, the shift within ±RATE_MAX_SHIFT.
#: The first move assumes :data:`RATE_SIZE_PER_SHIFT`; later moves use the measured secant.
RATE_TOLERANCE = 0.02
RATE_ROUNDS = 2
RATE_MAX_SHIFT = 16
#: The quantiser steps' shift (in eighths of an octave of the fit's error, as for the rate loop)
#: that each effort starts from. The steps that :func:`~ligcodec.codec.quantise.adaptive_steps`
#: derives from the fit's error are finer than the rate can afford: at equal file size, coarser
#: steps and more Gaussians do better. Measured at 0.5 bpp (code pass at several shifts on one fit,
#: against the dB that 1.2x the Gaussians buy per octave of rate; BENCHMARKS.md, "coarser quantiser steps"):
#: at effort 1, +12 gains 0.37-0.54 dB on kodim05, kodim23 and a medium photo; at effort 7,
#: +8 gains 0.15-0.19 dB on kodim05 and 23, and +16 less.
EFFORT_STEP_SHIFT = {1: 12, 2: 12, 3: 12, 4: 12, 5: 12, 6: 8, 7: 8, 8: 8, 9: 8}
#: Relative change of the file size per unit of shift (measured: -9.5 to -11.3 % for +8, at efforts
#: 1 and 7): the rate loop's first move, and the count model's correction for the base shift.
RATE_SIZE_PER_SHIFT = 0.012
#: Where a ``bpp=`` file still misses its target size by more than this after the rate loop's rounds
#: (the steps at the edge of their range or of what the fit's error allows, or out of rounds), the
#: count (a model's guess before the fit) was wrong for the image: the tiles are fitted again, once,
#: with the count scaled by the first round's miss (:func:`_recount`; about twice the encode time, for
#: such images only). Not sooner: where the steps can land the file, a recount bought nothing
#: (aerial 2_2_07 at 1 bpp, 14 % short at the base steps: 33.95 dB landed by finer steps, 33.92 dB
#: recounted) and doubled the time. Measured on the microscopy image of ``medium`` at 1 bpp: 28 % short
#: at the base steps, 14 % short at the finest the loop reached (BENCHMARKS.md, ninth session).
RECOUNT_MISS = 0.05


@dataclass
class EncodeResult:
    path: str
    bytes: int
    bpp: float
    gaussians: int
    #: of the decoded tiles vs the input, float samples, clamped; before the border filter (spec
    #: section 6), which moves it by hundredths of a dB (BENCHMARKS.md, "border filter")
    psnr: float
    seconds: float
    #: fits it took: psnr= searches the budget; a file above the raw size is encoded again; a bpp= file
    #: whose count missed is fitted again (:data:`RECOUNT_MISS`)
    passes: int = 1
    #: per fit of this run, ``[(step shift, file size)]`` of its coding rounds (a ``bpp=`` encode's
    #: rate loop and recount; one round otherwise)
    rounds: list | None = None
    requested: int | None = None  # the Gaussian budget asked for, where the raw-size cap lowered it


class TooLarge(Exception):
    """:func:`encode_tiles` made a file larger than its ``max_bytes`` (and did not keep it)."""

    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


@dataclass
class EncodeSettings:
    """Everything besides the budget that changes an encode's bytes (:func:`encode_settings`)."""

    cfg: FitConfig  # with the seed, the effort's fit settings and a progressive file's layout
    effort: int
    quant: QuantSteps | None
    quant_lsq: int  # CG iterations of the colour solve on the quantised geometry
    quant_refine: int  # steps of the covariances' refinement for the grid (DEFAULT_QUANT_REFINE)
    metadata: dict
    level0_scale: float | None = None  # progressive: level 0 stands alone at scales up to this
    step_shift: int = 0  # the quantiser steps' base shift (:data:`EFFORT_STEP_SHIFT`)


def encode_settings(*, effort: int = DEFAULT_EFFORT, quant: QuantSteps | None = None, config: FitConfig | None = None,
                    seed: int = 0, workers: int = 0, progressive: bool = False, metadata: dict | None = None,
                    **level_settings) -> EncodeSettings:
    """Check and resolve the settings of an encode: ``effort`` into fit settings (``level_settings``,
    fields of :class:`FitSettings`, override them), ``progressive`` into the fit's layout."""
    unknown = sorted(set(level_settings) - {f.name for f in fields(FitSettings)})
    if unknown:
        raise TypeError(f"encode() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; besides "
                        f"its own, it takes the fit settings {', '.join(f.name for f in fields(FitSettings))}")
    if effort not in EFFORT_STEPS:
        raise LigInputError(f"effort must be an integer 1..9, got {effort!r}")
    cfg = config or FitConfig()
    level0_scale = None
    if progressive:
        if cfg.levels != 2:
            raise LigInputError(f"progressive=True needs 2 levels (a standalone level 0 and the detail level), "
                                f"got levels={cfg.levels}")
        cfg = replace(cfg, **PROGRESSIVE_FIT)
        level0_scale = 1.0 / cfg.downsample
    fast = effort < FAST_BELOW
    level_settings = {**effort_level_settings(effort), **level_settings}
    cfg = replace(cfg, seed=seed, workers=workers, level=replace(cfg.level, **level_settings))
    return EncodeSettings(cfg, effort, quant, FAST_EFFORT_QUANT_LSQ if fast else DEFAULT_QUANT_LSQ,
                          0 if fast else DEFAULT_QUANT_REFINE, metadata or {}, level0_scale,
                          0 if quant is not None else EFFORT_STEP_SHIFT[effort])


def effort_level_settings(effort: int) -> dict:
    """The :class:`FitSettings` fields that ``effort`` sets."""
    return {"steps": EFFORT_STEPS[effort], **(FAST_EFFORT_SETTINGS if effort < FAST_BELOW else {})}


def effort_config(effort: int) -> FitConfig:
    """The :class:`FitConfig` that ``effort`` alone implies (what the header's ``fit`` entry is
    relative to)."""
    return FitConfig(level=FitSettings(**effort_level_settings(effort)))


# ------------------------------------------------------------------------------ tile tasks
def fit_tile_task(window, n, cfg: FitConfig, seed):
    """Pass 1: fit one tile. ``([(packed Gaussians, count) per level], squared error, pixel digest)``;
    ``window.load()`` gives the tile's pixels wherever this runs (a worker reads its own tile)."""
    with tile_threads():
        pixels = window.load()
        target = as_float(pixels)
        parts = fit_tile(target, n, cfg, seed)
        recon = render_parts(parts, target.shape)
        return ([(pack_gaussians(g), len(g)) for g in parts], float(((np.clip(recon, 0, 1) - target) ** 2).sum()),
                tile_digest(pixels))


def code_tile_task(window, n, packed, cfg: FitConfig, steps: QuantSteps, transform,
                   quant_lsq: int = DEFAULT_QUANT_LSQ, refine: int = 0):
    """Pass 2: quantise and code one fitted tile whose budget was ``n`` (``packed`` as
    :func:`fit_tile_task` returned it): ``([(chunk bytes, count) per level], squared error, pixel
    digest)``."""
    with tile_threads():
        pixels = window.load()
        target = as_float(pixels)
        parts = [unpack_gaussians(b, k, target.shape[2]) for b, k in packed]
        levels = quantise_tile(parts, target, n, cfg, steps, transform, quant_lsq, refine)
        chunks = [(encode_chunk(q.qx, q.qy, q.qc, q.qk), len(q.qx)) for q in levels]
        recon = render_parts([q.gaussians for q in levels], target.shape)
        return chunks, float(((np.clip(recon, 0, 1) - target) ** 2).sum()), tile_digest(pixels)


def probe_task(packed, channels: int, steps: list[QuantSteps], transform) -> list[int]:
    """The rate loop's probe of one fitted tile (``packed`` as :func:`fit_tile_task` returned it):
    its payload rounded plainly at each of ``steps`` (:func:`~ligcodec.codec.rateprobe.plain_payload`)."""
    return plain_payload([unpack_gaussians(b, k, channels) for b, k in packed], steps, transform)


def digest_task(window) -> str:
    """The pixel digest of one tile (checks the tiles a resumed encode does not load again)."""
    return tile_digest(window.load())


def pack_gaussians(g: Gaussians) -> bytes:
    """Float Gaussians as bytes (means float64, log-Cholesky float64, colours float32): exact."""
    return (np.ascontiguousarray(g.means, "<f8").tobytes() + np.ascontiguousarray(g.chol, "<f8").tobytes()
            + np.ascontiguousarray(g.colours, "<f4").tobytes())


def unpack_gaussians(data: bytes, n: int, channels: int) -> Gaussians:
    means = np.frombuffer(data, "<f8", 2 * n, 0).reshape(n, 2).astype(np.float64)
    chol = np.frombuffer(data, "<f8", 3 * n, 16 * n).reshape(n, 3).astype(np.float64)
    colours = np.frombuffer(data, "<f4", channels * n, 40 * n).reshape(n, channels).astype(np.float32)
    return Gaussians(means, chol, colours)


# ------------------------------------------------------------------------------ the pipeline
def encode_tiles(src, path, gaussians: int, settings: EncodeSettings, *, workers: int = 0, scheduler=None,
                 resume: bool = False, progress=None, max_bytes: int | None = None,
                 target_bytes: int | None = None) -> EncodeResult:
    """Encode the :class:`~ligcodec.source.Source` ``src`` with ``gaussians`` Gaussians into ``path``:
    pass 1 fits every tile, pass 2 quantises and codes it, both journalled (``path + ".partial"``;
    ``resume`` continues from it). ``workers``, ``scheduler`` and ``progress`` as for
    :func:`ligcodec.codec.ratecontrol.encode`. With ``target_bytes`` (and steps not given), pass 2
    runs again with other steps while the file misses that size (:func:`next_shift`). A file
    over ``max_bytes`` is not kept: :class:`TooLarge` says its size."""
    t0 = time.perf_counter()
    job = _Job.prepare(src, gaussians, settings, target_bytes)
    path = Path(path)
    journal = Journal.open(journal_path(path), job.key, resume)
    if scheduler is None:
        workers = workers_for(workers, len(job.tiles))
    with local_pool(workers, scheduler) as pool:  # one pool for everything: workers start once
        where = _Where(workers, scheduler, pool)
        journal.start(journal.budgets or job.split_budget(where))
        if journal.count is not None:  # resumed after a recount
            job.info["gaussians"] = journal.count
        try:
            rounds = len(journal.history)  # coding rounds finished before a resumed one
            done = len(journal.records["fit"]) + len(journal.tiles) + rounds * len(job.tiles)
            tally = _Tally(progress, done, (2 + rounds) * len(job.tiles))
            # Alpha: a lossless mask of the exactly transparent / opaque pixels (spec section 8).
            alpha = mask_chunks(job.src, job.tiles) if job.src.channels in (2, 4) else None
            per_fit = []  # the coding rounds' [(shift, size)] of each fit
            while True:
                _fit_pass(job, journal, journal.budgets, where, tally)
                header, recs, chunks, history = _code_rounds(job, journal, journal.budgets, where, tally, alpha,
                                                             target_bytes)
                per_fit.append(history)
                n = _recount(job, journal, history, header, chunks, target_bytes)
                if n is None:
                    break
                job.info["gaussians"] = n
                journal.recount(n, job.split_budget(where))
                tally.restart(2 * len(job.tiles))  # like a new encode (a resume of it counts from here)
            size, kept = _write(path, header, chunks, alpha, max_bytes, job.src)
        except BaseException:
            if not journal.records["fit"] and not journal.tiles and journal.count is None:
                journal.remove()  # nothing worth resuming: leave nothing behind
            raise
        finally:
            journal.close()
    journal.remove()
    if not kept:
        raise TooLarge(size)
    w, h, nch = src.width, src.height, src.channels
    mse = sum(r.err for r in recs) / (w * h * nch)
    return EncodeResult(str(path), size, size * 8 / (w * h), sum(c[1] for lvl in chunks for c in lvl),
                        10 * math.log10(1 / mse) if mse > 0 else float("inf"), time.perf_counter() - t0,
                        passes=1 if journal.count is None else 2, rounds=per_fit)


@dataclass
class _Job:
    """One encode: the image and its tiles, the settings, and the header's ``encoder`` entry."""

    src: object
    settings: EncodeSettings
    depth: int
    transform: str | tuple  # "none", "ycocg" or the inverse matrix (colour.choose_transform)
    info: dict  # everything that changes the bytes except the quantiser steps (they follow from the fits)
    key: str  # the journal's: the settings and the input's identity
    tiles: list
    windows: list
    energies: np.ndarray | None = None  # per tile, read once (a recount splits its count by them again)
    probe: tuple | None = None  # the rate loop's (shifts, plain payloads) of the fit being coded

    @classmethod
    def prepare(cls, src, gaussians: int, s: EncodeSettings, target_bytes: int | None = None) -> _Job:
        """The settings and header checked, the tiles laid out."""
        w, h, nch = src.width, src.height, src.channels
        s = replace(s, cfg=s.cfg.for_image(w, h, gaussians))
        depth = 8 if src.bit_depth == 32 else src.bit_depth
        # A user's steps (quant=) were chosen for YCoCg; otherwise the image's statistics decide.
        transform = _colour_transform(src, gaussians) if s.quant is None else "ycocg" if nch >= 3 else "none"
        # The header gets only the fit settings that differ from what the effort implies (every
        # byte counts at low rates: the full dump was ~500 bytes, 4 % of a Kodak file at 0.25 bpp).
        # The journal's key takes them all against the plain defaults, so that a resume never
        # mixes tiles fitted under settings that an effort meant in another version. Not
        # `workers` or `scheduler`: where tiles run never changes the bytes.
        # The colour solve's iterations and the refinement follow from the effort, so the header
        # need not spend bytes on them, nor on an empty "fit".
        info = {"gaussians": gaussians, "seed": s.cfg.seed, "effort": s.effort}
        fit = _changed(asdict(s.cfg), asdict(effort_config(s.effort).for_image(w, h, gaussians)))
        if fit:
            info["fit"] = fit
        keyed = {**info, "fit": _changed(asdict(s.cfg), asdict(FitConfig())), "quant_lsq_iters": s.quant_lsq,
                 "quant_refine": s.quant_refine}
        if target_bytes is not None:  # the rate loop's aim changes the steps, so the bytes
            keyed["target_bytes"] = target_bytes
        packed = msgpack.packb([w, h, nch, depth, transform, keyed, s.metadata,
                                None if s.quant is None else asdict(s.quant)], use_bin_type=True)
        key = hashlib.blake2b(packed + src.identity(), digest_size=16).hexdigest()
        tiles = list(tile_grid(w, h, s.cfg.tile))
        job = cls(src, s, depth, transform, info, key, tiles, [Window(src, *t[1:]) for t in tiles])
        # Check the settings now (the real header, with the steps the fits choose, comes after them).
        job.header(choose_steps(s.quant, None, s.cfg.levels, nch))
        return job

    def header(self, steps: QuantSteps) -> Header:
        src, cfg = self.src, self.settings.cfg
        matrix = None if isinstance(self.transform, str) else [list(r) for r in self.transform]
        header = Header(src.width, src.height, src.channels, self.depth, cfg.tile, cfg.levels,
                        "matrix" if matrix else self.transform, steps.pos_step, list(steps.chol_step),
                        [list(map(float, r)) for r in steps.colour_step], encoder=dict(self.info),
                        metadata=self.settings.metadata, level0_scale=self.settings.level0_scale,
                        colour_matrix=matrix)
        header.validate(LigInputError, "encode settings")
        if len(header.pack()) > MAX_HEADER_SIZE // 2:
            raise LigInputError(f"the header would take {len(header.pack())} bytes; shorten the metadata")
        return header

    def split_budget(self, where: _Where) -> list[int]:
        """Gaussians per tile (by area and gradient energy: :func:`~ligcodec.fit.tiles.split_by_energy`)."""
        src, cfg = self.src, self.settings.cfg
        if self.energies is None:
            self.energies = tile_energies(src, cfg.tile, where.workers, where.scheduler, where.pool)
        return split_by_energy(self.energies, tile_areas(src.width, src.height, cfg.tile), self.info["gaussians"],
                               cfg.content_weight, cfg.content_power, cfg.content_floor)


@dataclass
class _Where:
    """Where tile tasks run (:func:`~ligcodec.runner.run_unordered`)."""

    workers: int
    scheduler: object
    pool: object

    def run(self, fn, tasks):
        return run_unordered(fn, tasks, self.workers, self.scheduler, self.pool)


class _Tally:
    """``progress(done, total)`` over both passes (the fit is most of the time); its first call
    says how much a resumed encode already has (0 if none)."""

    def __init__(self, progress, done: int, total: int):
        self.progress, self.done, self.total = progress, done, total
        if progress:
            progress(done, total)

    def restart(self, total: int):
        self.done, self.total = 0, total
        if self.progress:
            self.progress(0, total)

    def step(self):
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total)


def _fit_pass(job: _Job, journal: Journal, budgets, where: _Where, tally: _Tally):
    """Pass 1: fit every tile the journal has neither fitted nor coded."""
    fits, codes, cfg = journal.records["fit"], journal.tiles, job.settings.cfg
    todo = ((t, (job.windows[t], budgets[t], cfg, tile_seed(cfg.seed, t))) for t in range(len(job.tiles))
            if t not in fits and t not in codes)
    if codes:  # resumed in pass 2: the coded tiles are not loaded again, so check them here
        for t, digest in where.run(digest_task, ((t, (job.windows[t],)) for t in codes)):
            _check_unchanged(t, job.tiles[t], codes[t].digest, digest)
    for t, (parts, err, digest) in where.run(fit_tile_task, todo):
        journal.add("fit", t, parts, err, digest=digest)
        tally.step()


def _fit_rmse(job: _Job, fits) -> float | None:
    """The fit's RMS error over the whole image (None unless every tile is fitted)."""
    src = job.src
    return (math.sqrt(sum(r.err for r in fits.values()) / (src.width * src.height * src.channels))
            if len(fits) == len(job.tiles) else None)


def _code_rounds(job: _Job, journal: Journal, budgets, where: _Where, tally: _Tally, alpha, target: int | None):
    """Pass 2, and with a ``target`` size again with the steps moved while the file misses it
    (:func:`next_shift`; the journal records each new round, so a resumed encode makes the same
    choices): ``(header, coded tile records, chunks per level)`` of the round kept, the last, and
    ``[(shift, file size)]`` of every round."""
    s, nch = job.settings, job.src.channels
    rmse = _fit_rmse(job, journal.records["fit"])
    history = [tuple(h) for h in journal.history]
    shift = journal.shift if journal.history else s.step_shift  # resumed in a later round: its shift
    if target is not None and s.quant is None:
        first = _first_shift(job, journal, where, rmse, target, alpha)  # resumed too: _recount reads it
        if not journal.history:
            shift = first
    while True:
        steps = choose_steps(s.quant, rmse, s.cfg.levels, nch, shift, job.transform)
        _code_pass(job, journal, budgets, steps, where, tally)
        recs = [journal.tiles[t] for t in range(len(job.tiles))]
        header, chunks = _final_header(job, steps, recs)
        header.alpha_mask = alpha is not None
        history.append((shift, lig_size(header, chunks, alpha)))
        nxt = None if target is None or s.quant is not None else next_shift(history, target, s.step_shift)
        if nxt is None:
            return header, recs, chunks, history
        journal.new_round(nxt, history)
        tally.total += len(job.tiles)
        shift = nxt


def _first_shift(job: _Job, journal: Journal, where: _Where, rmse, target: int, alpha) -> int:
    """The step shift of the first coding round of a file aimed at ``target`` bytes: where the fits'
    plainly rounded payload (:mod:`~ligcodec.codec.rateprobe`), probed within the rate loop's range,
    lands it (the same shift for a resumed encode: the fits decide it)."""
    s, nch, fits = job.settings, job.src.channels, journal.records["fit"]
    shifts = probed_shifts(s.step_shift, RATE_MAX_SHIFT)
    steps = [choose_steps(None, rmse, s.cfg.levels, nch, sh, job.transform) for sh in shifts]
    tasks = ((t, ([(journal.read(ref), n) for ref, n in fits[t].chunks], nch, steps, job.transform))
             for t in range(len(job.tiles)))
    payload = np.zeros(len(shifts))
    for _, sizes in where.run(probe_task, tasks):
        payload += sizes
    job.probe = (shifts, payload)
    header = job.header(steps[0])  # the steps and the border filter's floats take fixed room
    header.deblock, header.alpha_mask = [DEBLOCK_WIDTH, 0.0], alpha is not None
    fixed = lig_size(header, [[(b"", 0)] * len(job.tiles)] * s.cfg.levels, alpha)
    return landing_shift(shifts, payload, target - fixed)


def next_shift(history, target: int, base: int = 0) -> int | None:
    """The step shift of the next coding round of a file aimed at ``target`` bytes, after the
    rounds ``history = [(shift, size)]``; None to keep the last (within :data:`RATE_TOLERANCE`,
    out of rounds, or no new shift to try). A shift of +8 doubles the colour steps; shifts stay
    within ``base`` ± :data:`RATE_MAX_SHIFT` (far from the base, bits of precision buy much less
    than bits of Gaussians)."""
    shift, size = history[-1]
    if abs(size / target - 1) <= RATE_TOLERANCE or len(history) > RATE_ROUNDS:
        return None
    slope = -RATE_SIZE_PER_SHIFT * size  # bytes per eighth of an octave
    if len(history) >= 2:
        (s0, z0), (s1, z1) = history[-2], history[-1]
        if s1 != s0 and (z1 - z0) / (s1 - s0) < 0:
            slope = (z1 - z0) / (s1 - s0)
    new = int(np.clip(shift + round((target - size) / slope), base - RATE_MAX_SHIFT, base + RATE_MAX_SHIFT))
    return None if any(new == s for s, _ in history) else new


def _recount(job: _Job, journal: Journal, history, header: Header, chunks, target: int | None) -> int | None:
    """The Gaussian count to fit again with, where the last coding round of a file aimed at
    ``target`` bytes still misses it by more than :data:`RECOUNT_MISS` (once per encode); else None.
    The count scales with the bytes the Gaussians took in the first round, the header and chunk
    index aside, brought to the base steps by the probe (:func:`_first_shift`): more Gaussians buy
    more than finer steps, so the new count aims at the target at the base steps."""
    if target is None or job.settings.quant is not None or journal.count is not None:
        return None
    if abs(history[-1][1] / target - 1) <= RECOUNT_MISS:
        return None
    payload = sum(len(ref) for level in chunks for ref, _ in level)
    fixed = max(history[-1][1] - payload, 0)
    (shift, size), n = history[0], job.info["gaussians"]
    if job.probe is not None:  # the first round's payload as it would be at the base steps
        base = job.settings.step_shift
        size = fixed + (size - fixed) * payload_at(*job.probe, base) / payload_at(*job.probe, shift)
    return max(1, min(job.src.width * job.src.height, round(n * max(target - fixed, 1) / max(size - fixed, 1))))


def _code_pass(job: _Job, journal: Journal, budgets, steps: QuantSteps, where: _Where, tally: _Tally):
    """Pass 2: quantise and code every tile not coded yet."""
    fits, codes, s = journal.records["fit"], journal.tiles, job.settings
    todo = ((t, (job.windows[t], budgets[t], [(journal.read(ref), n) for ref, n in fits[t].chunks], s.cfg, steps,
                 job.transform, s.quant_lsq, s.quant_refine))
            for t in range(len(job.tiles)) if t not in codes)
    for t, (t_chunks, err, digest) in where.run(code_tile_task, todo):
        _check_unchanged(t, job.tiles[t], fits[t].digest, digest)
        journal.add("code", t, t_chunks, err, digest)
        tally.step()


def _final_header(job: _Job, steps: QuantSteps, recs) -> tuple[Header, list]:
    """The header with the steps and the border filter, and the chunks per level (of the coded
    tiles ``recs``)."""
    header = job.header(steps)
    src = job.src
    rmse = math.sqrt(sum(r.err for r in recs) / (src.width * src.height * src.channels))
    header.deblock = [DEBLOCK_WIDTH, round(DEBLOCK_THRESHOLD * rmse, 7)]
    chunks = [[r.chunks[li] for r in recs] for li in range(job.settings.cfg.levels)]
    return header, chunks


def _write(path: Path, header: Header, chunks, alpha, max_bytes: int | None, src=None) -> tuple[int, bool]:
    """Write the file (with the alpha mask chunks ``alpha``, if any) under a temporary name and
    move it to ``path`` unless it is larger than ``max_bytes``: ``(size, kept)``. With ``src``, the
    border filter's threshold is then chosen by decoding it (:func:`~ligcodec.codec.seams.choose_threshold`)
    and the file written again if that changes it (the same size: the header's floats are float64)."""
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            size = write_lig(f, header, chunks, alpha)
        kept = max_bytes is None or size <= max_bytes
        if kept and src is not None and header.deblock:
            t0 = header.deblock[1]
            t = round(choose_threshold(tmp, src, t0 / DEBLOCK_THRESHOLD), 7)
            if t != t0:
                header.deblock = [header.deblock[0], t]
                with open(tmp, "wb") as f:
                    size = write_lig(f, header, chunks, alpha)
        if kept:  # else the caller encodes again (a rare miss of the rate control's estimate)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return size, kept


def _check_unchanged(t, tile, recorded, now):
    """A resumed encode's tile must have the pixels it had when the journal recorded it."""
    if recorded != now:
        _, x0, y0, x1, y1 = tile
        raise LigInputError(f"the input changed since the interrupted encode: tile {t} (pixels {x0}..{x1 - 1} x "
                            f"{y0}..{y1 - 1}) differs from the one fitted then; start over with --no-resume "
                            "(resume=False)")


def choose_steps(quant: QuantSteps | None, fit_rmse: float | None, levels: int, channels: int,
                 shift: int = 0, transform="ycocg") -> QuantSteps:
    """The quantiser steps: ``quant`` if given, else the defaults scaled to the fit's RMS error
    times ``2^(shift/8)`` (:func:`~ligcodec.codec.quantise.adaptive_steps`; the defaults while it
    is not known), the colour steps times :data:`~ligcodec.codec.colour.MATRIX_STEP_GAIN` with
    a matrix ``transform``. The encoder's own steps are float32 numbers, which the header stores in 5 bytes
    each, not 9 (:meth:`~ligcodec.container.Header.pack`); ``quant`` is kept as given."""
    if quant is not None:
        return quant.for_image(levels, channels)
    s = (QuantSteps() if fit_rmse is None else adaptive_steps(QuantSteps(), fit_rmse * 2 ** (shift / 8)))
    s = s.for_image(levels, channels)
    if not isinstance(transform, str):
        s = s.scaled(1.0, MATRIX_STEP_GAIN)
    pos, chol, colour = steps_as_float32([s.pos_step, list(s.chol_step), s.colour_step])
    return QuantSteps(pos, tuple(chol), colour)


#: :func:`_colour_transform` estimates the colour statistics on a subsample of about this many pixels.
COLOUR_SAMPLE_PIXELS = 250_000


def _colour_transform(src, gaussians: int):
    """The colour transform of an encode (:func:`~ligcodec.codec.colour.choose_transform`), from a
    subsample of the image (colour images only: the matrix pays where the colour detail lies off
    YCoCg's axes, as in aerial and pathology images)."""
    if src.channels < 3:
        return "none"
    step = max(1, int(math.sqrt(src.width * src.height / COLOUR_SAMPLE_PIXELS)))
    return choose_transform(subsample(src, step), src.channels, gaussians)


def journal_path(path) -> Path:
    """Where an encode keeps finished tiles of ``path`` until the file is complete."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def _changed(d: dict, default: dict) -> dict:
    """The entries of ``d`` that differ from ``default`` (recursively), msgpack-friendly;
    never ``workers`` (where tiles run does not change the bytes)."""
    out = {}
    for k, v in d.items():
        if k == "workers":
            continue
        if isinstance(v, dict):
            sub = _changed(v, default.get(k, {}))
            if sub:
                out[k] = sub
        elif v != default.get(k):
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


__all__ = ["DEFAULT_EFFORT", "EFFORT_STEPS", "EncodeResult", "EncodeSettings", "FitSettings", "TooLarge",
           "encode_settings", "encode_tiles", "journal_path", "next_shift"]
