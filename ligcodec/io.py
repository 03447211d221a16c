"""Reading and writing ordinary images (PNG/JPEG/WebP through Pillow, TIFF through tifffile)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import LigFormatError, LigInputError

TIFF_SUFFIXES = {".tif", ".tiff", ".btf", ".tf8"}


def read_image(path) -> np.ndarray:
    """``[H, W, C]`` uint8/uint16 array of an image file (EXIF orientation applied)."""
    path = Path(path)
    if not path.exists():
        raise LigInputError(f"{path}: no such file")
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        try:
            a = tifffile.imread(path, level=0) if _is_pyramid(path) else tifffile.imread(path)
        except Exception as e:  # tifffile raises many types for corrupt files
            raise LigFormatError(f"{path}: cannot read TIFF: {e}") from None
    else:
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    a = np.asarray(im).astype(np.uint16)
                elif im.mode in ("L", "RGB", "RGBA", "LA"):
                    a = np.asarray(im)
                elif im.mode == "1":
                    a = np.asarray(im.convert("L"))
                else:
                    a = np.asarray(im.convert("RGBA" if "A" in im.getbands() else "RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise LigFormatError(f"{path}: cannot read image: {e}") from None
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or not 1 <= a.shape[2] <= 4:
        raise LigInputError(f"{path}: unsupported image layout {a.shape} (need H x W with 1-4 channels)")
    if a.dtype not in (np.uint8, np.uint16):
        raise LigInputError(f"{path}: unsupported sample type {a.dtype} (need 8- or 16-bit integers)")
    return a


def _is_pyramid(path) -> bool:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            return len(tf.series[0].levels) > 1
    except Exception:
        return False


def write_image(path, array: np.ndarray, bit_depth: int = 8) -> None:
    """Write ``[H, W, C]`` float (0..1) or integer samples as PNG or TIFF, atomically."""
    path = Path(path)
    a = np.asarray(array)
    if a.dtype.kind == "f":
        peak = 65535 if bit_depth == 16 else 255
        a = np.round(np.clip(a, 0, 1) * peak).astype(np.uint16 if bit_depth == 16 else np.uint8)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            tifffile.imwrite(tmp, a[:, :, 0] if a.shape[2] == 1 else a, photometric="minisblack" if a.shape[2] == 1 else "rgb",
                             tile=(256, 256) if a.shape[0] * a.shape[1] > 4096 * 4096 else None, bigtiff=a.nbytes > 2**31)
        else:
            from PIL import Image

            fmt = {".png": "PNG", ".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower())
            if fmt is None:
                raise LigInputError(f"{path}: unknown output format (use .png or .tif)")
            if a.shape[2] == 1:
                im = Image.fromarray(a[:, :, 0])
            else:
                if a.dtype == np.uint16:
                    raise LigInputError(f"{path}: 16-bit colour needs TIFF output (.tif)")
                im = Image.fromarray(a)
            im.save(tmp, format=fmt)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
