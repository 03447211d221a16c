"""Rate control and the public :func:`encode`: the budget options -> a Gaussian count -> the pipeline.

:func:`encode` takes at most one budget option and turns it into a Gaussian count: ``quality``
(:func:`quality_density`), ``bpp`` (:func:`gaussians_for_bpp`), ``density`` or ``gaussians``
(:func:`~ligcodec.fit.tiles.resolve_budget`), or ``psnr`` (:func:`encode_for_psnr`, a search over
several encodes). It caps the count so that no file is larger than the image's raw samples
(:func:`cap_to_raw`), and encodes again with fewer Gaussians where a file still comes out larger.
The encode itself, for a count, is :func:`ligcodec.codec.encoder.encode_tiles`.

Quality is one number users know from JPEG and WebP. Here it sets the Gaussian density (per
pixel): every 12.5 points double the Gaussians (about +3 to +4 dB, measured on Kodak: 10k -> 40k
Gaussians gave 33.9 -> 41.8 dB unquantised); quality 50 is the encoder's default density. At the
top of the scale the raw-size cap binds: on 256x256 crops at effort 1 (with the effort-1 fit
settings before the short-schedule change, BENCHMARKS.md) from quality 99 on an RGB
photo, 95 on a flat synthetic image, 83 on a grey photo (a third of the raw bytes), and the
highest qualities then give the same file.

A PSNR target cannot be hit in one pass (the PSNR a budget reaches depends on the content), so
:func:`encode_for_psnr` encodes up to ``max_passes`` times, each time moving the density along the
measured log-linear PSNR-vs-density line (secant), and keeps the smallest file that reaches the
target.
"""

from __future__ import annotations

import math
import numbers
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import LigInputError
from ..fit.init import box_blur
from ..fit.plan import SINGLE_TILE_PIXELS, FitConfig
from ..fit.tiles import resolve_budget
from ..io import check_output_dir
from ..source import open_source, subsample
from .encoder import (DEFAULT_EFFORT, RATE_SIZE_PER_SHIFT, EncodeResult, EncodeSettings, TooLarge, encode_settings,
                      encode_tiles)
from .quantise import QuantSteps

DEFAULT_DENSITY = 0.03
DEFAULT_QUALITY = 50
#: Quality points per doubling of the density.
QUALITY_PER_DOUBLING = 12.5
#: dB per doubling of the density assumed before two passes have measured it.
PRIOR_DB_PER_DOUBLING = 4.0
#: The budget options of :func:`encode` (at most one may be given).
BUDGET_OPTIONS = ("quality", "gaussians", "bpp", "density", "psnr")

#: Bits per Gaussian the budget estimate for ``bpp=`` starts from (the mean on the Kodak quick set
#: with adaptive steps; :func:`gaussians_for_bpp` refines it per image).
BITS_PER_GAUSSIAN = 49.0
#: :func:`gaussians_for_bpp`'s model of the coded bits per Gaussian (RGB, chunk tables excluded):
#: ``a + b log2(proxy) + c log2(pixels per Gaussian)``, with ``proxy`` the RMS error of a box blur of
#: radius ``sqrt(pixels per Gaussian) / 2``, a stand-in for the fit's error, which sets the adaptive
#: quantiser steps. Least squares on the relative error of the first coding's size (before the
#: rate loop moves the steps) at the default effort, over 35 files of 13 images: the Kodak quick set
#: at 0.25 / 1 bpp and all of ``medium`` (photos, aerial, histology, microscopy) at 0.25 / 0.5 / 1
#: bpp. Fitted without each image in turn, it is off by 6 % rms (at most 12 %) on the one left out;
#: the previous model, fitted on the Kodak quick set alone, was off by 15 % rms (up to 39 %) there,
#: mostly towards too few Gaussians on smooth images. On Kodak images outside the fit it gives 4-11 %
#: too many (the rate loop lands them). The pixels per Gaussian hardly matter. Format 3's positions
#: (raster gaps) took the intercept down by the 0.93 bits/G they save on six Kodak files at 1 bpp,
#: so that the saving buys Gaussians rather than finer steps through the rate loop.
BPG_MODEL = (30.13, -4.48, 0.04)
#: Bytes a file spends besides the Gaussians' symbols: prefix, index head, header (typical), and
#: per chunk its index entry (24), stream table (~36 for RGB) and ANS flush (~4).
FIXED_BYTES, CHUNK_BYTES = 28 + 220, 24 + 40
#: :func:`gaussians_for_bpp` looks at a subsample of the image of about this many pixels.
PROXY_PIXELS = 1_000_000
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
    quality (:data:`~ligcodec.codec.encoder.EFFORT_STEPS`; a ``steps=`` keyword overrides it). No
    budget writes a file larger than the image's raw samples (:data:`RAW_CAP`): the result's
    ``requested`` says when the count asked for was lowered, ``passes`` when the file had to be
    encoded again.

    ``progressive``: fit level 0 to stand alone at scales up to 1/4
    (:data:`~ligcodec.codec.encoder.PROGRESSIVE_FIT`), so that such reads touch only its bytes, at
    some cost in full-resolution quality.

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
    options = dict(effort=effort, quant=quant, config=config, seed=seed, workers=workers, progressive=progressive,
                   metadata=metadata, **level_settings)
    settings = encode_settings(**options)
    check_output_dir(path)  # now, not after the fit
    one_budget(quality=quality, gaussians=gaussians, bpp=bpp, density=density, psnr=psnr)
    if psnr is not None:
        return encode_for_psnr(image, path, psnr, scheduler=scheduler, progress=progress, **options)
    t0 = time.perf_counter()
    budget = {"gaussians": gaussians, "bpp": bpp, "density": density, "quality": quality}
    r = _encode_capped(open_source(image), path, settings, budget, workers=workers, scheduler=scheduler, resume=resume,
                       progress=progress)
    r.seconds = time.perf_counter() - t0
    return r


def planned_tiles(src, effort: int, config: FitConfig, *, psnr: float | None = None, **budget) -> int:
    """How many tiles :func:`encode` lays ``src`` out in at ``budget`` (gaussians=, bpp=, density=,
    quality=; ``psnr`` searches counts, so its first pass is assumed): for a progress line that must
    be right before the first tile reports. The count decides only for images that can be one tile
    (:func:`~ligcodec.fit.plan.auto_tile`), so larger ones are not read for it."""
    w, h = src.width, src.height
    count = None
    if w * h <= SINGLE_TILE_PIXELS and psnr is None:
        count = budget_count(src, config, **budget, shift=encode_settings(effort=effort, config=config).step_shift)
    tile = config.for_image(w, h, count).tile
    return -(-w // tile) * -(-h // tile)


def one_budget(**given) -> str | None:
    """The name of the one budget option given (not None) in ``given``, or None; an error if several."""
    names = [k for k, v in given.items() if v is not None]
    if len(names) > 1:
        raise LigInputError(f"give at most one of {', '.join(k + '=' for k in BUDGET_OPTIONS)}")
    return names[0] if names else None


def _encode_capped(src, path, settings: EncodeSettings, budget: dict, **where) -> EncodeResult:
    """:func:`encode` at one budget (``budget``: the options as given), capped at the raw size:
    encoded again, with fewer Gaussians, while the file comes out larger."""
    depth = 8 if src.bit_depth == 32 else src.bit_depth
    raw = raw_size(src.width, src.height, src.channels, depth)
    asked, first_asked, passes = budget_count(src, settings.cfg, **budget, shift=settings.step_shift), None, 0
    # The tiles follow from the first count (auto_tile), and stay while the count moves to land the file.
    settings = replace(settings, cfg=settings.cfg.for_image(src.width, src.height, asked))
    # bpp=: the encoder codes the tiles again with other steps while the file misses this size
    # (never aimed above the raw-size cap's aim, which the count is held to).
    bpp = budget.get("bpp")
    target = None if bpp is None else int(min(bpp * src.width * src.height / 8, RAW_CAP * raw))
    while True:
        passes += 1
        n = cap_to_raw(src, asked, depth, settings.cfg, settings.step_shift)
        try:
            r = encode_tiles(src, path, n, settings, max_bytes=raw if n > 1 else None, target_bytes=target, **where)
        except TooLarge as e:  # the file came out larger than the raw samples: fewer Gaussians
            first_asked = first_asked or asked
            asked = resolve_budget(src.width, src.height, retry_count(src, n, e.size, depth, settings.cfg))
            continue
        r.passes, r.requested = passes + r.passes - 1, first_asked or (asked if n < asked else None)
        return r


def budget_count(src, cfg: FitConfig, *, gaussians=None, bpp=None, density=None, quality=None, shift: int = 0) -> int:
    """The Gaussian count one budget option asks for (the default density if none), at most
    one per pixel, before the raw-size cap (``shift``: the quantiser steps', for ``bpp``)."""
    if quality is not None:
        density = quality_density(quality)
    if bpp is not None:
        if not (isinstance(bpp, numbers.Real) and bpp > 0 and math.isfinite(bpp)):
            raise LigInputError(f"bpp must be a number > 0, got {bpp!r}")
        gaussians = gaussians_for_bpp(src, bpp, cfg, shift)
    return resolve_budget(src.width, src.height, gaussians, density, default_density=DEFAULT_DENSITY)


def quality_density(quality) -> float:
    """Gaussians per pixel for ``quality`` 1..100 (50: the default density 0.03)."""
    try:
        q = float(quality)
    except (TypeError, ValueError):
        raise LigInputError(f"quality must be a number 1..100, got {quality!r}") from None
    if not 1 <= q <= 100:
        raise LigInputError(f"quality must be 1..100, got {quality!r}")
    return DEFAULT_DENSITY * 2 ** ((q - DEFAULT_QUALITY) / QUALITY_PER_DOUBLING)


def raw_size(width: int, height: int, channels: int, bit_depth: int) -> int:
    """Bytes of the image's raw samples: width x height x channels x bytes per sample."""
    return width * height * channels * (2 if bit_depth > 8 else 1)


def _overhead(src, cfg: FitConfig) -> int:
    """Bytes a file of ``src`` spends besides the Gaussians' symbols (:data:`FIXED_BYTES`)."""
    tile = cfg.for_image(src.width, src.height).tile
    chunks = cfg.levels * math.ceil(src.width / tile) * math.ceil(src.height / tile)
    return FIXED_BYTES + CHUNK_BYTES * chunks


def cap_to_raw(src, gaussians: int, bit_depth: int, cfg: FitConfig, shift: int = 0) -> int:
    """``gaussians``, lowered where :func:`gaussians_for_bpp` expects its file above
    :data:`RAW_CAP` of the raw samples (see there). Budgets that cannot come near are returned
    as they are without consulting the model (the usual case: bytes as before the cap)."""
    w, h = src.width, src.height
    cap_bits = RAW_CAP * 8 * raw_size(w, h, src.channels, bit_depth)
    if 8 * _overhead(src, cfg) + gaussians * MAX_MODEL_BPG <= cap_bits:
        return gaussians
    return max(1, min(gaussians, gaussians_for_bpp(src, cap_bits / (w * h), cfg, shift)))


def retry_count(src, gaussians: int, size: int, bit_depth: int, cfg: FitConfig) -> int:
    """The Gaussians to encode again with, after ``gaussians`` gave a file of ``size`` bytes, over
    the raw size: scaled by the overshoot to aim at :data:`RAW_RETRY` of it, and at most 0.9x."""
    fixed = _overhead(src, cfg)
    aim = RAW_RETRY * raw_size(src.width, src.height, src.channels, bit_depth) - fixed
    return max(1, min(int(gaussians * 0.9), int(gaussians * aim / max(size - fixed, 1))))


def gaussians_for_bpp(src, bpp: float, cfg: FitConfig, shift: int = 0) -> int:
    """The Gaussian count whose file should come out at ``bpp`` (see :data:`BPG_MODEL`) with the
    quantiser steps shifted by ``shift`` (:data:`~ligcodec.codec.encoder.EFFORT_STEP_SHIFT`)."""
    w, h, nch = src.width, src.height, src.channels
    npx = w * h
    bits = bpp * npx - 8 * _overhead(src, cfg)
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
        g = bits / float(np.clip(bpg * (1 - RATE_SIZE_PER_SHIFT) ** shift, 20.0, 90.0))
    return max(1, int(g))


def encode_for_psnr(image, path, target: float, *, max_passes: int = 4, tolerance: float = 0.2,
                    progress=None, encode=None, **kwargs):
    """Encode to the smallest file found whose PSNR (dB, vs the input) is at least ``target``.

    Stops early once a pass lands within ``tolerance`` dB above the target. If no pass reaches
    it (e.g. a target above what one Gaussian per pixel can do), keeps the best PSNR found.
    ``kwargs``: :func:`encode`'s, besides the budget (each pass is one :func:`encode` at a
    density, or ``encode(src, path, density=..., progress=..., **kwargs)`` where given).
    Returns the kept pass's :class:`EncodeResult` with ``passes`` added."""
    encode = encode or _encode_pass
    if not (isinstance(target, (int, float)) and math.isfinite(target) and 0 < target < 200):
        raise LigInputError(f"psnr target must be a number of dB in (0, 200), got {target!r}")
    one_budget(psnr=target, **{k: kwargs.pop(k, None) for k in ("quality", "gaussians", "bpp", "density")})
    t0 = time.perf_counter()
    src = open_source(image)
    path = Path(path)
    tries = []  # (density, result, temp path)
    d = DEFAULT_DENSITY
    try:
        for i in range(max_passes):
            tmp = path.with_name(f".{path.name}.psnr-pass{i}-{os.getpid()}")
            r = encode(src, tmp, density=d, progress=progress, **kwargs)
            tries.append((d, r, tmp))
            if target <= r.psnr <= target + tolerance or (r.psnr < target and d >= 1.0):
                break
            if r.psnr < target and getattr(r, "requested", None) is not None:
                break  # the raw-size cap lowered this budget: a larger one gives the same file
            nd = _next_density(tries, d, r.psnr, target, tolerance)
            if any(abs(math.log2(nd / t[0])) < 0.01 for t in tries):
                break
            d = nd
        ok = [t for t in tries if t[1].psnr >= target]
        best = min(ok, key=lambda t: t[1].bytes) if ok else max(tries, key=lambda t: t[1].psnr)
        os.replace(best[2], path)
        best[1].path = str(path)
        best[1].passes = len(tries)
        best[1].seconds = time.perf_counter() - t0  # all passes
        return best[1]
    finally:
        for _, _, tmp in tries:
            if tmp.exists():
                tmp.unlink()


def _next_density(tries, d: float, psnr: float, target: float, tolerance: float) -> float:
    """The secant step of :func:`encode_for_psnr`: the density that should land in the target band."""
    slope = PRIOR_DB_PER_DOUBLING
    if len(tries) >= 2:
        (da, ra, _), (db, rb, _) = sorted(tries[-2:], key=lambda t: t[0])
        if db > da and rb.psnr > ra.psnr:
            slope = min(8.0, max(1.0, (rb.psnr - ra.psnr) / math.log2(db / da)))
    return min(1.0, max(1e-5, d * 2 ** ((target + tolerance / 2 - psnr) / slope)))


def _encode_pass(src, path, **kwargs) -> EncodeResult:
    """One pass of :func:`encode_for_psnr`: :func:`encode` at a density."""
    return encode(src, path, **kwargs)


__all__ = ["DEFAULT_DENSITY", "DEFAULT_EFFORT", "EncodeResult", "cap_to_raw", "encode", "encode_for_psnr",
           "gaussians_for_bpp", "quality_density", "raw_size"]
