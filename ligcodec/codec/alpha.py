"""The alpha mask (spec section 8): where the source's alpha is exactly 0 or exactly opaque.

Gaussians are smooth: fitted to a hard alpha edge they ring, so fully opaque pixels near it
decoded as 209 of 255 and transparent ones as 41. A viewer composites with alpha, so those errors
show as holes and halos. The mask records, per tile, which source pixels are fully transparent
(class 0), fully opaque (1) or neither (2), losslessly (zlib), and the decoder overrides the
rendered alpha wherever an output pixel's footprint is all one of the first two classes. A tile
that is all one class costs one byte.
"""

from __future__ import annotations

import zlib

import numba
import numpy as np

from ..errors import LigFormatError

TRANSPARENT, OPAQUE, PARTIAL = 0, 1, 2
#: First byte of a mask chunk: the whole tile is one class, or a zlib-compressed class map follows.
MAP = 3


def peak_of(dtype) -> float:
    """The sample value of a fully opaque pixel: 255, 65535, or 1.0 for float input."""
    dt = np.dtype(dtype)
    return float(np.iinfo(dt).max) if dt.kind == "u" else 1.0


def mask_chunk(alpha: np.ndarray, peak: float) -> bytes:
    """The mask chunk of one tile's alpha samples ``[h, w]`` (spec section 8)."""
    classes = np.full(alpha.shape, PARTIAL, np.uint8)
    classes[alpha == 0] = TRANSPARENT
    classes[alpha == peak] = OPAQUE
    lo, hi = int(classes.min()), int(classes.max())
    if lo == hi:
        return b"" if lo == PARTIAL else bytes([lo])
    return bytes([MAP]) + zlib.compress(np.ascontiguousarray(classes).tobytes(), 9)


def read_mask(data: bytes, width: int, height: int, where: str):
    """``None`` (nothing exact in the tile), a class (the whole tile), or the class map
    ``[height, width]`` uint8. Decompression stops at the tile's size, so a forged chunk cannot
    make it allocate more."""
    if not data:
        return None
    mode = data[0]
    if mode in (TRANSPARENT, OPAQUE) and len(data) == 1:
        return int(mode)
    if mode != MAP:
        raise LigFormatError(f"{where}: alpha mask chunk starts with {mode} (expected 0, 1 or {MAP}) or has trailing "
                             "bytes; the file is corrupt")
    size = width * height
    d = zlib.decompressobj()
    try:
        raw = d.decompress(data[1:], size + 1)
    except zlib.error as e:
        raise LigFormatError(f"{where}: alpha mask does not decompress ({e}); the file is corrupt") from None
    if len(raw) != size or d.unconsumed_tail or d.unused_data or not d.eof:
        raise LigFormatError(f"{where}: alpha mask holds {len(raw)}{'+' if d.unconsumed_tail else ''} bytes, not "
                             f"the tile's {width}x{height} and nothing else; the file is corrupt")
    classes = np.frombuffer(raw, np.uint8).reshape(height, width)
    if classes.max() > PARTIAL:
        raise LigFormatError(f"{where}: alpha mask holds class {classes.max()} (only 0, 1, 2 exist); the file is corrupt")
    return classes


def _footprints(lo: int, hi: int, scale: float, a: int, b: int):
    """Full-res pixel ranges ``[f0, f1)`` of the output pixels ``lo..hi-1`` at ``scale``, clipped to
    the tile's ``[a, b)`` and never empty (spec section 8): ``[floor(j / s), ceil((j + 1) / s))``,
    relative to ``a``."""
    j = np.arange(lo, hi, dtype=np.float64)
    f0 = np.floor(np.round(j / scale, 6)).astype(np.int64)
    f1 = np.ceil(np.round((j + 1) / scale, 6)).astype(np.int64)
    f0 = np.clip(f0, a, b - 1)
    f1 = np.clip(f1, f0 + 1, b)
    return f0 - a, f1 - a


@numba.njit(cache=True, nogil=True)
def _override(classes, r0, r1, c0, c1, view):
    """``view[i, j]`` = 1 (0) where every class in ``classes[r0[i]:r1[i], c0[j]:c1[j]]`` is opaque
    (transparent). Each footprint is scanned until its first pixel of another class, so a read
    costs about the mask pixels under it, with no extra memory."""
    for i in range(view.shape[0]):
        for j in range(view.shape[1]):
            first = classes[r0[i], c0[j]]
            if first == PARTIAL:
                continue
            same = True
            for y in range(r0[i], r1[i]):
                for x in range(c0[j], c1[j]):
                    if classes[y, x] != first:
                        same = False
                        break
                if not same:
                    break
            if same:
                view[i, j] = 1.0 if first == OPAQUE else 0.0


def apply_mask(alpha_out: np.ndarray, mask, scale: float, tile_box, rect, origin) -> None:
    """Override ``alpha_out`` (float, the region's alpha plane) on the output pixels ``rect =
    (x0, y0, x1, y1)`` that tile ``tile_box = (X0, Y0, X1, Y1)`` owns: 1.0 where every full-res
    pixel of the footprint is opaque, 0.0 where every one is transparent. ``origin``: the region's
    (x, y) in output pixels."""
    if mask is None:
        return
    x0, y0, x1, y1 = rect
    view = alpha_out[y0 - origin[1]:y1 - origin[1], x0 - origin[0]:x1 - origin[0]]
    if not isinstance(mask, np.ndarray):
        view[...] = 1.0 if mask == OPAQUE else 0.0
        return
    X0, Y0, X1, Y1 = tile_box
    c0, c1 = _footprints(x0, x1, scale, X0, X1)
    r0, r1 = _footprints(y0, y1, scale, Y0, Y1)
    _override(mask, r0, r1, c0, c1, view)


def mask_chunks(src, tiles) -> list[bytes]:
    """The mask chunk of every tile ``(t, x0, y0, x1, y1)`` of a source whose last channel is
    alpha, read one tile at a time (bounded memory for streamed sources)."""
    peak = peak_of(src.dtype)
    return [mask_chunk(np.asarray(src.read(x0, y0, x1, y1))[:, :, -1], peak) for _, x0, y0, x1, y1 in tiles]
