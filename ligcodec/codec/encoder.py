"""``encode``: image -> fitted, quantised, entropy-coded ``.lig`` file."""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import msgpack
import numpy as np

from ..container import MAX_HEADER_SIZE, Header, write_lig
from ..errors import LigInputError
from ..fit.optimise import FitSettings
from ..fit.tiles import (FitConfig, _fit_tile, as_float, downsample, render_parts, resolve_budget,
                         single_threaded, split_by_energy, tile_areas, tile_energies)
from ..io import check_output_dir
from ..model import tile_grid
from ..render import Gaussians
from ..runner import local_pool, run_unordered
from ..source import Window, open_source
from .alpha import mask_chunks
from .journal import Journal, tile_digest
from .ratecontrol import DEFAULT_DENSITY
from .quantise import QuantSteps, adaptive_steps, quantise_level
from .tile import encode_chunk

#: Bits per Gaussian the budget estimate for ``bpp=`` starts from (the mean on the Kodak quick set
#: with adaptive steps; :func:`gaussians_for_bpp` refines it per image).
BITS_PER_GAUSSIAN = 49.0
#: :func:`gaussians_for_bpp`'s model of the coded bits per Gaussian (RGB, chunk tables excluded):
#: ``a + b log2(proxy) + c log2(pixels per Gaussian)``, with ``proxy`` the RMS error of a box blur of
#: radius ``sqrt(pixels per Gaussian) / 2``, a stand-in for the fit's error, which sets the adaptive
#: quantiser steps. Least squares on the quick set (4 images x 4 budgets, 0.2-1.3 bpp): rms error
#: 1.3 bits (3 %) where a constant is off by 4.8 bits (up to 17 %).
BPG_MODEL = (6.79, -9.34, 1.31)
#: Bytes a file spends besides the Gaussians' symbols: prefix, index head, header (typical), and
#: per chunk its index entry (24), stream table (~36 for RGB) and ANS flush (~4).
FIXED_BYTES, CHUNK_BYTES = 28 + 160, 24 + 40
#: :func:`gaussians_for_bpp` looks at a subsample of the image of about this many pixels.
PROXY_PIXELS = 1_000_000
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
FAST_EFFORT_SETTINGS = {"densify_start": 1.0, "lsq_iters": 10}
FAST_BELOW = 6
FAST_EFFORT_QUANT_LSQ = 15
DEFAULT_QUANT_LSQ = 40
DEFAULT_EFFORT = 7
#: ``progressive=True``: a quarter of the budget in a level 0 fitted to the image at 1/4, which
#: then stands alone at scales up to 1/4 (header ``level0_scale``), so such reads need only
#: level-0 bytes. Measured on Kodak at 1 bpp (bench/levels.py --progressive, BENCHMARKS.md
#: "Progressive files"): that read touches 28 % of the file and is 2.9 dB below a default file's
#: 1/4 read; full resolution is 1.2 dB below a default file of the same size. Shares of 0.15 and
#: 0.4 (kodim13, 23) cost 0.25-0.43 / 1.6-1.7 dB at full resolution for 1/4 reads 6-7 dB below /
#: level with or above the default file's.
PROGRESSIVE_FIT = {"level0_fraction": 0.25, "downsample": 4}
#: No budget writes a file larger than the image's raw samples (:func:`raw_size`). A budget whose
#: file :func:`gaussians_for_bpp` expects above ``RAW_CAP`` of that size is lowered to what it
#: expects there (a model fitted at 0.2-1.3 bpp: aimed at 0.85, files came out at 0.67-0.98 of the
#: raw size on 256x256 RGB, grey and 16-bit Kodak crops and synthetic images at effort 1); a file
#: that still comes out larger is encoded again, its Gaussians scaled by the measured overshoot to
#: aim at ``RAW_RETRY`` of it.
RAW_CAP = 0.85
RAW_RETRY = 0.9
#: The most bits per Gaussian :func:`gaussians_for_bpp` assumes: a budget under
#: ``RAW_CAP x raw / MAX_MODEL_BPG`` is never capped (nor the model even consulted).
MAX_MODEL_BPG = 90.0


@dataclass
class EncodeResult:
    path: str
    bytes: int
    bpp: float
    gaussians: int
    psnr: float  # of the decoded image vs the input, float samples, clamped
    seconds: float
    passes: int = 1  # encodes it took (psnr= searches the budget; a file above the raw size is encoded again)
    requested: int | None = None  # the Gaussian budget asked for, where the raw-size cap lowered it


def fit_tile_task(window, n, cfg: FitConfig, seed):
    """Pass 1: fit one tile. ``([(packed Gaussians, count) per level], squared error, pixel digest)``;
    ``window.load()`` gives the tile's pixels wherever this runs (a worker reads its own tile)."""
    with single_threaded():
        pixels = window.load()
        target = as_float(pixels)
        parts = _fit_tile(target, n, cfg, seed)
        recon = render_parts(parts, target.shape)
        return ([(pack_gaussians(g), len(g)) for g in parts], float(((np.clip(recon, 0, 1) - target) ** 2).sum()),
                tile_digest(pixels))


def code_tile_task(window, packed, cfg: FitConfig, steps: QuantSteps, transform: str,
                   quant_lsq: int = DEFAULT_QUANT_LSQ):
    """Pass 2: quantise and code one fitted tile (``packed`` as :func:`fit_tile_task` returned
    it): ``([(chunk bytes, count) per level], squared error, bit stats per level, pixel digest)``."""
    with single_threaded():
        pixels = window.load()
        target = as_float(pixels)
        parts = [unpack_gaussians(b, n, target.shape[2]) for b, n in packed]
        chunks, deq, stats = [], [], []
        if cfg.levels == 2 and len(parts[1]) == 0:
            # A budget under 2 (a tiny tile, e.g. the 1-px strip of a 257-px wide image): the fit
            # put its one Gaussian in level 0 at full resolution (fit.tiles._fit_tile), so it is
            # quantised against the full-resolution tile, not the coarse level's downsampled one.
            levels = [quantise_level(parts[0], target, 1.0, steps, 0, transform, quant_lsq),
                      quantise_level(parts[1], target, 1.0, steps, 1, transform, quant_lsq)]
        elif cfg.levels == 2:
            small = downsample(target, cfg.downsample)
            q0 = quantise_level(parts[0], small, 1.0 / cfg.downsample, steps, 0, transform, quant_lsq)
            coarse = render_parts([q0.gaussians], target.shape)
            q1 = quantise_level(parts[1], target - coarse, 1.0, steps, 1, transform, quant_lsq)
            levels = [q0, q1]
        else:
            levels = [quantise_level(parts[0], target, 1.0, steps, 0, transform, quant_lsq)]
        for q in levels:
            st = {}
            chunks.append((encode_chunk(q.qx, q.qy, q.qc, q.qk, st), len(q.qx)))
            deq.append(q.gaussians)
            stats.append(st)
        recon = render_parts(deq, target.shape)
        return chunks, float(((np.clip(recon, 0, 1) - target) ** 2).sum()), stats, tile_digest(pixels)


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


def encode(image, path, *, gaussians: int | None = None, bpp: float | None = None, density: float | None = None,
           effort: int = DEFAULT_EFFORT, quant: QuantSteps | None = None, config: FitConfig | None = None,
           quality: float | None = None, psnr: float | None = None,
           seed: int = 0, workers: int = 0, scheduler=None, resume: bool = False, progressive: bool = False,
           metadata: dict | None = None, progress=None, **level_settings) -> EncodeResult:
    """Encode ``image`` into the ``.lig`` file ``path``.

    ``image``: an array [H, W(, C)] (uint8/uint16, or float in [0, 1]), a path (TIFF/BigTIFF is
    read lazily tile by tile, so images larger than memory stream; PNG/JPEG/WebP are decoded
    whole) or a :class:`~ligcodec.source.Source`.

    Budget, one of: ``quality`` 1..100 (default 50; 12.5 points double the Gaussians),
    ``gaussians`` (count), ``density`` (per pixel), ``bpp`` (target bits per pixel, turned into a
    count by :func:`gaussians_for_bpp`) or ``psnr`` (dB: up to 4 encodes searching the budget,
    see :mod:`ligcodec.codec.ratecontrol`). ``effort`` 1..9 trades encode time for
    quality (:data:`EFFORT_STEPS`; a ``steps=`` keyword overrides it). No budget writes a file
    larger than the image's raw samples (:data:`RAW_CAP`): the result's ``requested`` says when
    the count asked for was lowered, ``passes`` when the file had to be encoded again.

    ``progressive``: fit level 0 to stand alone at scales up to 1/4 (:data:`PROGRESSIVE_FIT`), so
    that such reads touch only its bytes, at some cost in full-resolution quality.

    Where tiles run: ``workers`` local processes (0: one per core; 1: this process), or a Dask
    distributed cluster (``scheduler``: address or ``Client``; its workers must be able to read
    a file ``image`` at the same path). Neither changes the bytes: same input, options and seed
    give identical files in one environment (library versions and CPU; across environments the
    floating-point fit can differ slightly).

    Safety: finished tiles go to ``path + ".partial"`` as they complete; the file is assembled
    under a temporary name and renamed, so a failed encode leaves no partial ``.lig`` and never
    touches an existing file until it succeeds. With ``resume=True`` an interrupted encode of the
    same input and settings continues from the tiles in that journal.
    """
    unknown = sorted(set(level_settings) - {f.name for f in fields(FitSettings)})
    if unknown:
        raise TypeError(f"encode() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; besides "
                        f"its own, it takes the fit settings {', '.join(f.name for f in fields(FitSettings))}")
    check_output_dir(path)  # now, not after the fit
    if psnr is not None:
        from .ratecontrol import encode_for_psnr

        return encode_for_psnr(image, path, psnr, gaussians=gaussians, bpp=bpp, density=density, quality=quality,
                               effort=effort, quant=quant, config=config, seed=seed, workers=workers,
                               scheduler=scheduler, metadata=metadata, progress=progress, progressive=progressive,
                               **level_settings)
    t0 = time.perf_counter()
    src = open_source(image)
    budget = {"gaussians": gaussians, "bpp": bpp, "density": density, "quality": quality}
    passes, requested = 0, None
    while True:
        passes += 1
        try:
            r = _encode_once(src, path, **budget, effort=effort, quant=quant, config=config, seed=seed,
                             workers=workers, scheduler=scheduler, resume=resume, progressive=progressive,
                             metadata=metadata, progress=progress, **level_settings)
        except _OverRaw as e:  # the file came out larger than the raw samples: fewer Gaussians
            requested = requested or e.requested
            budget = {"gaussians": e.retry, "bpp": None, "density": None, "quality": None}
            continue
        r.passes, r.seconds, r.requested = passes, time.perf_counter() - t0, requested or r.requested
        return r


class _OverRaw(Exception):
    """:func:`_encode_once` wrote a file larger than the raw samples (and did not keep it)."""

    def __init__(self, retry: int, requested: int):
        super().__init__(retry)
        self.retry, self.requested = retry, requested


def _encode_once(src, path, *, gaussians, bpp, density, quality, effort, quant, config, seed, workers, scheduler,
                 resume, progressive, metadata, progress, **level_settings) -> EncodeResult:
    """:func:`encode` at one budget. Raises :class:`_OverRaw` (with a smaller count) instead of
    writing a file larger than the raw samples, unless the budget is already one Gaussian."""
    t0 = time.perf_counter()
    depth = 8 if src.bit_depth == 32 else src.bit_depth
    w, h, nch = src.width, src.height, src.channels
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
    level_settings = {"steps": EFFORT_STEPS[effort], **(FAST_EFFORT_SETTINGS if fast else {}), **level_settings}
    quant_lsq = FAST_EFFORT_QUANT_LSQ if fast else DEFAULT_QUANT_LSQ
    cfg = replace(cfg, seed=seed, workers=workers, level=replace(cfg.level, **level_settings))
    given = [x is not None for x in (gaussians, bpp, density, quality)]
    if sum(given) > 1:
        raise LigInputError("give at most one of quality=, gaussians=, bpp=, density=, psnr=")
    if quality is not None:
        from .ratecontrol import quality_density

        density = quality_density(quality)
    if bpp is not None:
        if not (bpp > 0 and math.isfinite(bpp)):
            raise LigInputError(f"bpp must be > 0, got {bpp!r}")
        gaussians = gaussians_for_bpp(src, bpp, cfg)
    gaussians = resolve_budget(w, h, gaussians, density, default_density=DEFAULT_DENSITY)
    requested, gaussians = gaussians, cap_to_raw(src, gaussians, depth, cfg)
    transform = "ycocg" if nch >= 3 else "none"
    # Only the fit settings that differ from the defaults (every byte counts at low rates: the
    # full dump was ~500 bytes, 4 % of a Kodak file at 0.25 bpp).
    fit_settings = _changed(asdict(cfg), asdict(FitConfig()))
    # Everything that changes the bytes except the quantiser steps, which follow from the fits.
    # Not `workers` or `scheduler`: where tiles run never changes the bytes.
    encoder_info = {"gaussians": gaussians, "seed": seed, "effort": effort, "quant_lsq_iters": quant_lsq,
                    "fit": fit_settings}
    settings = msgpack.packb([w, h, nch, depth, transform, encoder_info, metadata or {},
                              None if quant is None else asdict(quant)], use_bin_type=True)
    # Check the settings now (the real header, with the steps the fits choose, comes after them).
    _header(w, h, nch, depth, cfg, transform, choose_steps(quant, None, cfg.levels, nch), encoder_info, metadata,
            level0_scale)
    path = Path(path)
    key = hashlib.blake2b(settings + src.identity(), digest_size=16).hexdigest()
    journal = Journal.open(journal_path(path), key, resume)
    tiles = list(tile_grid(w, h, cfg.tile))
    windows = [Window(src, x0, y0, x1, y1) for _, x0, y0, x1, y1 in tiles]
    with local_pool(workers, scheduler) as pool:  # one pool for everything: workers start once
        budgets = journal.budgets or split_by_energy(tile_energies(src, cfg.tile, workers, scheduler, pool),
                                                     tile_areas(w, h, cfg.tile), gaussians, cfg.content_weight)
        journal.start(budgets)
        fits, codes = journal.records["fit"], journal.tiles
        total = 2 * len(tiles)  # progress counts both passes (the fit is most of the time)
        done = len(fits) + len(codes)
        try:
            if progress:  # first call: how much a resumed encode already has (0 if none)
                progress(done, total)
            # Pass 1: fit every tile.
            todo = ((t, (windows[t], budgets[t], cfg, cfg.seed * 1_000_003 + t)) for t in range(len(tiles))
                    if t not in fits and t not in codes)
            if codes:  # resumed in pass 2: the coded tiles are not loaded again, so check them here
                for t, digest in run_unordered(digest_task, ((t, (windows[t],)) for t in codes), workers, scheduler,
                                               pool):
                    _check_unchanged(t, tiles[t], codes[t].digest, digest)
            for t, (parts, err, digest) in run_unordered(fit_tile_task, todo, workers, scheduler, pool):
                journal.add("fit", t, parts, err, digest=digest)
                done += 1
                if progress:
                    progress(done, total)
            # Quantiser steps for the whole image (stored in the header), then pass 2: code every tile.
            fit_rmse = math.sqrt(sum(r.err for r in fits.values()) / (w * h * nch)) if len(fits) == len(tiles) else None
            steps = choose_steps(quant, fit_rmse, cfg.levels, nch)
            todo = ((t, (windows[t], [(journal.read(ref), n) for ref, n in fits[t].chunks], cfg, steps, transform,
                         quant_lsq))
                    for t in range(len(tiles)) if t not in codes)
            for t, (t_chunks, err, t_stats, digest) in run_unordered(code_tile_task, todo, workers, scheduler, pool):
                _check_unchanged(t, tiles[t], fits[t].digest, digest)
                journal.add("code", t, t_chunks, err, t_stats, digest)
                done += 1
                if progress:
                    progress(done, total)
            header = _header(w, h, nch, depth, cfg, transform, steps, encoder_info, metadata, level0_scale)
            # Bits per Gaussian per attribute (each stream coded alone; the real file codes them
            # jointly and is within a few bytes per tile of the sum) for `ligcodec info --verbose`.
            recs = [codes[t] for t in range(len(tiles))]
            chunks = [[r.chunks[li] for r in recs] for li in range(cfg.levels)]
            counts = [sum(c[1] for c in lvl) for lvl in chunks]
            bits = [{} for _ in range(cfg.levels)]
            for r in recs:
                for li, st in enumerate(r.stats):
                    for k, v in st.items():
                        bits[li][k] = bits[li].get(k, 0) + v
            header.encoder["bits_per_gaussian"] = [
                {k: round(v / max(n, 1), 1) for k, v in sorted(b.items())} for b, n in zip(bits, counts)
            ]
            # Alpha: a lossless mask of the exactly transparent / opaque pixels (spec section 8).
            alpha = mask_chunks(src, tiles) if nch in (2, 4) else None
            header.alpha_mask = alpha is not None
            tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
            try:
                with open(tmp, "wb") as f:
                    size = write_lig(f, header, chunks, alpha)
                over = size > raw_size(w, h, nch, depth) and gaussians > 1
                if not over:  # else (a rare miss of cap_to_raw's estimate) encode again, below
                    os.replace(tmp, path)
            finally:
                if tmp.exists():
                    tmp.unlink()
        except BaseException:
            if not fits and not codes:  # nothing worth resuming: leave nothing behind
                journal.remove()
            raise
        finally:
            journal.close()
    journal.remove()
    if over:
        fixed = FIXED_BYTES + CHUNK_BYTES * len(chunks) * len(tiles)
        aim = RAW_RETRY * raw_size(w, h, nch, depth) - fixed
        raise _OverRaw(max(1, min(int(gaussians * 0.9), int(gaussians * aim / max(size - fixed, 1)))), requested)
    sq = sum(r.err for r in recs)
    mse = sq / (w * h * nch)
    return EncodeResult(str(path), size, size * 8 / (w * h), sum(counts),
                        10 * math.log10(1 / mse) if mse > 0 else float("inf"), time.perf_counter() - t0,
                        requested=requested if gaussians < requested else None)


def _check_unchanged(t, tile, recorded, now):
    """A resumed encode's tile must have the pixels it had when the journal recorded it."""
    if recorded != now:
        _, x0, y0, x1, y1 = tile
        raise LigInputError(f"the input changed since the interrupted encode: tile {t} (pixels {x0}..{x1 - 1} x "
                            f"{y0}..{y1 - 1}) differs from the one fitted then; start over with --no-resume "
                            "(resume=False)")


def _header(w, h, nch, depth, cfg, transform, steps, encoder_info, metadata, level0_scale=None) -> Header:
    header = Header(w, h, nch, depth, cfg.tile, cfg.levels, transform, steps.pos_step, list(steps.chol_step),
                    [list(map(float, r)) for r in steps.colour_step], encoder=dict(encoder_info),
                    metadata=metadata or {}, level0_scale=level0_scale)
    header.validate(LigInputError, "encode settings")
    if len(header.pack()) > MAX_HEADER_SIZE // 2:
        raise LigInputError(f"the header would take {len(header.pack())} bytes; shorten the metadata")
    return header


def choose_steps(quant: QuantSteps | None, fit_rmse: float | None, levels: int, channels: int) -> QuantSteps:
    """The quantiser steps: ``quant`` if given, else the defaults scaled to the fit's RMS error
    (:func:`~ligcodec.codec.quantise.adaptive_steps`; the defaults while it is not known)."""
    steps = quant or (QuantSteps() if fit_rmse is None else adaptive_steps(QuantSteps(), fit_rmse))
    return steps.for_image(levels, channels)


def raw_size(width: int, height: int, channels: int, bit_depth: int) -> int:
    """Bytes of the image's raw samples: width x height x channels x bytes per sample."""
    return width * height * channels * (2 if bit_depth > 8 else 1)


def cap_to_raw(src, gaussians: int, bit_depth: int, cfg: FitConfig) -> int:
    """``gaussians``, lowered where :func:`gaussians_for_bpp` expects its file above
    :data:`RAW_CAP` of the raw samples (see there). Budgets that cannot come near are returned
    as they are without consulting the model (the usual case: bytes as before the cap)."""
    w, h = src.width, src.height
    chunks = cfg.levels * math.ceil(w / cfg.tile) * math.ceil(h / cfg.tile)
    cap_bits = RAW_CAP * 8 * raw_size(w, h, src.channels, bit_depth)
    if 8 * (FIXED_BYTES + CHUNK_BYTES * chunks) + gaussians * MAX_MODEL_BPG <= cap_bits:
        return gaussians
    return max(1, min(gaussians, gaussians_for_bpp(src, cap_bits / (w * h), cfg)))


def gaussians_for_bpp(src, bpp: float, cfg: FitConfig) -> int:
    """The Gaussian count whose file should come out at ``bpp`` (see :data:`BPG_MODEL`)."""
    from ..fit.init import box_blur

    w, h, nch = src.width, src.height, src.channels
    npx = w * h
    chunks = cfg.levels * math.ceil(w / cfg.tile) * math.ceil(h / cfg.tile)
    bits = bpp * npx - 8 * (FIXED_BYTES + CHUNK_BYTES * chunks)
    if bits <= 0:
        return 1
    step = max(1, int(math.sqrt(npx / PROXY_PIXELS)))
    sub = subsample(src, step)
    g = bits / BITS_PER_GAUSSIAN
    for _ in range(3):
        ppg = npx / g
        r = max(1, int(round(math.sqrt(ppg) / 2 / step)))
        blur = np.stack([box_blur(sub[:, :, c], r) for c in range(nch)], -1)
        proxy = max(float(np.sqrt(np.mean((blur - sub) ** 2, dtype=np.float64))), 1e-4)
        a, b, c = BPG_MODEL
        bpg = a + b * math.log2(proxy) + c * math.log2(ppg) - 5.0 * (3 - min(nch, 3))  # ~5 bits a colour channel
        g = bits / float(np.clip(bpg, 25.0, 90.0))
    return max(1, int(g))


def subsample(src, step: int, band: int = 1024) -> np.ndarray:
    """``src[::step, ::step]`` as float32, read a band of rows at a time (bounded memory)."""
    band = max(step, band // step * step)
    rows = [as_float(src.read(0, y0, src.width, min(src.height, y0 + band))[::step, ::step])
            for y0 in range(0, src.height, band)]
    return np.concatenate(rows, 0)


def journal_path(path) -> Path:
    """Where ``encode`` keeps finished tiles of ``path`` until the file is complete."""
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


__all__ = ["EncodeResult", "FitSettings", "encode"]
