"""Rate control: ``quality`` 1..100 as a Gaussian density, ``psnr`` as a search over the budget.

Quality is one number users know from JPEG and WebP. Here it sets the Gaussian density (per
pixel): every 12.5 points double the Gaussians (about +3 to +4 dB, measured on Kodak: 10k -> 40k
Gaussians gave 33.9 -> 41.8 dB unquantised); quality 50 is the encoder's default density. At the
top of the scale the encoder caps the count so that no file is larger than the image's raw
samples (:func:`ligcodec.codec.encoder.cap_to_raw`): on 256x256 crops at effort 1 that cap binds
from quality 99 on an RGB photo, 95 on a flat synthetic image, 83 on a grey photo (a third of
the raw bytes), and the highest qualities then give the same file.

A PSNR target cannot be hit in one pass (the PSNR a budget reaches depends on the content), so
:func:`encode_for_psnr` encodes up to ``max_passes`` times, each time moving the density along the
measured log-linear PSNR-vs-density line (secant), and keeps the smallest file that reaches the
target.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import LigInputError

DEFAULT_DENSITY = 0.03
DEFAULT_QUALITY = 50
#: Quality points per doubling of the density.
QUALITY_PER_DOUBLING = 12.5
#: dB per doubling of the density assumed before two passes have measured it.
PRIOR_DB_PER_DOUBLING = 4.0


def quality_density(quality) -> float:
    """Gaussians per pixel for ``quality`` 1..100 (50: the default density 0.03)."""
    try:
        q = float(quality)
    except (TypeError, ValueError):
        raise LigInputError(f"quality must be a number 1..100, got {quality!r}") from None
    if not 1 <= q <= 100:
        raise LigInputError(f"quality must be 1..100, got {quality!r}")
    return DEFAULT_DENSITY * 2 ** ((q - DEFAULT_QUALITY) / QUALITY_PER_DOUBLING)


def encode_for_psnr(image, path, target: float, *, max_passes: int = 4, tolerance: float = 0.2,
                    progress=None, encode=None, **kwargs):
    """Encode to the smallest file found whose PSNR (dB, vs the input) is at least ``target``.

    Stops early once a pass lands within ``tolerance`` dB above the target. If no pass reaches
    it (e.g. a target above what one Gaussian per pixel can do), keeps the best PSNR found.
    Returns the kept pass's :class:`EncodeResult` with ``passes`` added."""
    from ..source import open_source
    from .encoder import encode as encode_once

    encode = encode or encode_once
    if not (isinstance(target, (int, float)) and math.isfinite(target) and 0 < target < 200):
        raise LigInputError(f"psnr target must be a number of dB in (0, 200), got {target!r}")
    for k in ("gaussians", "bpp", "density", "quality"):
        if kwargs.get(k) is not None:
            raise LigInputError(f"give either psnr= or {k}=, not both")
        kwargs.pop(k, None)
    import time

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
            slope = PRIOR_DB_PER_DOUBLING
            if len(tries) >= 2:
                (da, ra, _), (db, rb, _) = sorted(tries[-2:], key=lambda t: t[0])
                if db > da and rb.psnr > ra.psnr:
                    slope = min(8.0, max(1.0, (rb.psnr - ra.psnr) / math.log2(db / da)))
            nd = min(1.0, max(1e-5, d * 2 ** ((target + tolerance / 2 - r.psnr) / slope)))
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
