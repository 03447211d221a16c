"""Pixels of a request: the read a plan names, post-processing, and encoding to png/jpg/webp.

Runs in the server's worker threads. ``LigImage.read`` is safe to call from several threads on
one image (its tile cache is behind a lock, held while missing tiles are decoded), and the
renderer's numba kernels (``parallel=True``, numba's OpenMP layer here) run outside the GIL.
Measured on this 2-core machine while shared with other work: two threads each reading ten
768x512 renders of one image took 0.52 of the time one thread took for all twenty, and while one
render ran on one numba thread a spinning Python thread kept 63 % of its idle speed. Leaving numba
its default threads per request served as many or more tiles per second than one thread per
request (bench/serve_load.py, 4 MP, 2 and 4 server threads), so the server does not change it.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

from .iiif import Plan

MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def tiles_of(img, scale: float, window) -> list:
    """The codec tiles a read of ``window`` at ``scale`` renders (they are decoded unless cached)."""
    return img.model.tiles_drawn(scale, window)


def cached(img, tiles, scale: float) -> set:
    """Which of ``tiles`` are in the image's cache now, for every level a read at ``scale`` uses
    (a peek for the log: another request may decode or evict tiles meanwhile)."""
    levels = img.model.default_levels(scale)
    cache = getattr(img, "_cache", None)
    lock = getattr(img, "_lock", None)
    if cache is None or lock is None:
        return set()
    with lock:
        return {t for t in tiles if all((lvl, t) in cache for lvl in levels)}


def read_plan(img, plan: Plan) -> np.ndarray:
    """``[h, w, C]`` in the image's dtype: ``img.read(plan.scale, plan.window)``, resampled to
    ``plan.size`` when the plan is not exact."""
    if plan.exact:
        return img.read(plan.scale, plan.window)
    from PIL import Image

    src = img.read_float(plan.scale, plan.window)
    w, h = plan.size
    out = np.empty((h, w, src.shape[2]), np.float32)
    for c in range(src.shape[2]):
        ch = Image.fromarray(np.ascontiguousarray(src[:, :, c]))  # mode F
        out[:, :, c] = np.asarray(ch.resize((w, h), Image.Resampling.BICUBIC, box=plan.box))
    peak = 65535 if img.dtype == np.uint16 else 255
    np.clip(out, 0, 1, out=out)
    out *= peak
    return np.round(out, out=out).astype(img.dtype)


def postprocess(a: np.ndarray, rotation: int, mirror: bool, quality: str) -> np.ndarray:
    """IIIF's order: mirror, rotate clockwise, then quality (gray: ITU-R 601 luma, as Pillow)."""
    if mirror:
        a = a[:, ::-1]
    if rotation:
        a = np.rot90(a, k=-(rotation // 90), axes=(0, 1))
    if quality == "gray" and a.shape[2] >= 3:
        luma = a[:, :, 0] * 0.299 + a[:, :, 1] * 0.587 + a[:, :, 2] * 0.114
        luma = np.round(luma).astype(a.dtype)[:, :, None]
        a = np.concatenate([luma, a[:, :, 3:]], axis=2)
    return np.ascontiguousarray(a)


def _png16(a: np.ndarray) -> bytes:
    """A 16-bit PNG (Pillow writes 16 bits for one grey channel only)."""
    h, w, c = a.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = a.astype(">u2").reshape(h, w * c).view(np.uint8)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 3)) + chunk(b"IEND", b"")


def encode(a: np.ndarray, fmt: str) -> bytes:
    """png (lossless, 8 or 16 bits as the image), jpg (quality 90, no alpha) or webp (quality 90)."""
    from PIL import Image

    if fmt == "png" and a.dtype == np.uint16:
        return _png16(a)
    if a.dtype == np.uint16:
        a = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    c = a.shape[2]
    if fmt == "jpg" and c in (2, 4):
        a, c = a[:, :, : c - 1], c - 1  # JPEG has no alpha
    if fmt == "webp" and c == 2:
        a, c = a[:, :, [0, 0, 0, 1]], 4
    im = Image.fromarray(np.ascontiguousarray(a[:, :, 0] if c == 1 else a))  # L, LA, RGB or RGBA
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, "PNG", compress_level=1)
    elif fmt == "jpg":
        im.save(buf, "JPEG", quality=90)
    else:
        im.save(buf, "WEBP", quality=90)
    return buf.getvalue()
