"""Reading and writing ordinary images (PNG/JPEG/WebP through Pillow, TIFF through tifffile)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import LigInputError

TIFF_SUFFIXES = {".tif", ".tiff", ".btf", ".tf8"}
#: Decoded-image outputs by suffix (TIFF aside). WebP is written lossless; JPEG (8-bit, no alpha)
#: at quality 95, for a quick look only: it is lossy.
PIL_OUTPUTS = {".png": "PNG", ".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}
#: Suffixes of image files, which `ligcodec encode` refuses as the name of its .lig output.
IMAGE_SUFFIXES = TIFF_SUFFIXES | set(PIL_OUTPUTS) | {".gif", ".bmp", ".jp2", ".j2k", ".jxl", ".avif", ".heic"}
#: zlib level of PNG outputs. 1, not Pillow's 6: writing a decoded image at 6 takes several times as
#: long as decoding it (BENCHMARKS.md, "PNG level"), for a file only some 10-20 % smaller.
PNG_LEVEL = 1


def check_output_dir(path) -> None:
    """Raise a clear error now if ``path``'s directory does not exist (instead of a
    FileNotFoundError naming a temporary file, after the work is done)."""
    parent = Path(path).absolute().parent
    if not parent.is_dir():
        raise LigInputError(f"{path}: the directory {parent} does not exist (create it first)")


def check_output_format(path, channels: int, bit_depth: int):
    """The Pillow format name for writing an image of ``channels`` and ``bit_depth`` to ``path``
    (None for TIFF), or a clear error if that suffix cannot hold it."""
    suffix = Path(path).suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return None
    fmt = PIL_OUTPUTS.get(suffix)
    if fmt is None:
        raise LigInputError(f"{path}: unknown output format (use .png or .tif; .webp and .jpg also work for 8-bit)")
    if fmt in ("WEBP", "JPEG") and bit_depth == 16:
        raise LigInputError(f"{path}: {fmt} holds 8-bit samples only; write 16-bit images as .png or .tif")
    if fmt == "JPEG" and channels in (2, 4):
        raise LigInputError(f"{path}: JPEG has no alpha channel; write images with alpha as .png, .webp or .tif")
    return fmt


def write_image(path, array: np.ndarray, bit_depth: int = 8, png_level: int = PNG_LEVEL) -> None:
    """Write ``[H, W, C]`` float (0..1) or integer samples as PNG (zlib level ``png_level``, 0-9),
    TIFF, WebP (lossless) or JPEG (quality 95, 8-bit without alpha), atomically."""
    path = Path(path)
    a = np.asarray(array)
    if a.dtype.kind == "f":
        peak = 65535 if bit_depth == 16 else 255
        a = np.round(np.clip(a, 0, 1) * peak).astype(np.uint16 if bit_depth == 16 else np.uint8)
    fmt = check_output_format(path, a.shape[2], 16 if a.dtype == np.uint16 else 8)
    check_output_dir(path)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        if fmt is None:
            import tifffile

            tifffile.imwrite(tmp, a[:, :, 0] if a.shape[2] == 1 else a, **_tiff_layout(a.shape[2]),
                             tile=(256, 256) if a.shape[0] * a.shape[1] > 4096 * 4096 else None, bigtiff=a.nbytes > 2**31)
        else:
            from PIL import Image

            if a.dtype == np.uint16 and a.shape[2] > 1:
                import imagecodecs  # Pillow cannot write 16-bit colour PNGs

                tmp.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(a), level=png_level))
            else:
                im = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
                if fmt == "WEBP":  # WebP stores RGB(A): grey becomes RGB, grey+alpha RGBA
                    im = im.convert("RGBA" if a.shape[2] in (2, 4) else "RGB")
                    im.save(tmp, format=fmt, lossless=True, exact=True)
                else:
                    im.save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {"compress_level": png_level}))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _tiff_layout(channels: int) -> dict:
    """photometric/extrasamples for 1-4 interleaved channels (grey, grey+alpha, RGB, RGBA)."""
    photometric = "minisblack" if channels < 3 else "rgb"
    if channels == 1:
        return {"photometric": photometric}
    extra = {"extrasamples": ("unassalpha",)} if channels in (2, 4) else {}
    return {"photometric": photometric, "planarconfig": "contig", **extra}


#: Rows rendered at once by :func:`write_tiff_tiled` (one band of tiles).
TIFF_TILE = 256


def write_tiff_tiled(path, width: int, height: int, channels: int, dtype, read_band) -> None:
    """Write a tiled (Big)TIFF of ``height x width x channels`` in bounded memory, atomically.

    ``read_band(y, h)`` returns rows ``y .. y+h`` as ``[h, width, channels]`` of ``dtype``; one
    band of 256-px tiles is held at a time, so decoding a gigapixel image needs ~256 rows."""
    import tifffile

    path = Path(path)
    dtype = np.dtype(dtype)
    t = TIFF_TILE
    check_output_dir(path)

    def tiles():
        for y in range(0, height, t):
            band = read_band(y, min(t, height - y))
            for x in range(0, width, t):
                yield band[:, x : x + t, 0] if channels == 1 else band[:, x : x + t]

    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        big = width * height * channels * dtype.itemsize > 2**31
        tifffile.imwrite(tmp, tiles(), shape=(height, width) if channels == 1 else (height, width, channels), dtype=dtype, tile=(t, t),
                         bigtiff=big, compression="zlib", **_tiff_layout(channels))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
