"""Image sources for the encoder: windows of an image read on demand.

The encoder never needs the whole image at once: it reads one tile (plus a 2-pixel margin for
the budget's gradient energy) at a time. A :class:`Source` says how big the image is and reads
windows of it; tile tasks carry a :class:`Window`, which a worker process (local or on a Dask
cluster) turns into pixels itself, so large TIFFs stream tile by tile and never pass through
the parent process.

- :class:`ArraySource`: an array in memory (what Pillow formats decode to).
- :class:`TiffSource`: a TIFF/BigTIFF, tiled or striped, chunky or planar, pyramidal (level 0),
  read lazily through tifffile's zarr store. Picklable by path: workers reopen the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import limits
from .errors import LigFormatError, LigInputError, LigSizeError
from .io import TIFF_SUFFIXES
from .limits import MAX_ENCODE_PIXELS



class Source:
    """``width``, ``height``, ``channels``, ``dtype`` (uint8/uint16/float32) and ``read(x0, y0, x1, y1)``."""

    width: int
    height: int
    channels: int
    dtype: np.dtype

    @property
    def bit_depth(self) -> int:
        return {1: 8, 2: 16}.get(np.dtype(self.dtype).itemsize, 32) if np.dtype(self.dtype).kind == "u" else 32

    def read(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:  # [y1-y0, x1-x0, C]
        raise NotImplementedError

    def __getstate__(self):
        # A task's source travels without the cached subsamples (:func:`subsample`).
        return {k: v for k, v in self.__dict__.items() if k != "_subsamples"}

    def identity(self) -> bytes:
        """Bytes that change when the pixels change (the key under which a resumable encode
        keeps its finished tiles)."""
        raise NotImplementedError

    def check(self, name: str = "image"):
        if self.width < 1 or self.height < 1:
            raise LigInputError(f"{name} is empty: {self.width}x{self.height} pixels")
        if not 1 <= self.channels <= 4:
            raise LigInputError(f"{name} has {self.channels} channels; ligcodec codes 1 to 4 (grey, grey+alpha, RGB, "
                                "RGBA): split the channels into images of at most 4")
        if self.width * self.height > MAX_ENCODE_PIXELS:
            raise LigSizeError(f"image of {self.width}x{self.height} pixels exceeds the encoder's limit of "
                               f"{MAX_ENCODE_PIXELS} pixels (64 GP); split it")
        if np.dtype(self.dtype) not in (np.uint8, np.uint16, np.float32):
            raise LigInputError(f"unsupported sample type {self.dtype}: use 8- or 16-bit integers (or float in [0, 1])")
        return self


class ArraySource(Source):
    def __init__(self, image):
        a = np.asarray(image)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise LigInputError(f"image must be [H, W] or [H, W, C] with 1 to 4 channels, got shape {a.shape}")
        if a.dtype.kind == "f":
            if not np.isfinite(a).all():
                raise LigInputError("image contains NaN or inf values")
            a = np.clip(a, 0, 1).astype(np.float32)
        elif a.dtype not in (np.uint8, np.uint16):
            raise LigInputError(f"unsupported image dtype {a.dtype}: use uint8, uint16 or float in [0, 1]")
        self.array = a
        self.height, self.width, self.channels = a.shape
        self.dtype = a.dtype
        self.check()

    def read(self, x0, y0, x1, y1):
        return self.array[y0:y1, x0:x1]

    def identity(self) -> bytes:
        import hashlib

        h = hashlib.blake2b(digest_size=16)
        h.update(repr((self.array.shape, str(self.array.dtype))).encode())
        rows = max(1, (64 << 20) // max(1, self.array[0].nbytes))
        for y in range(0, self.height, rows):
            h.update(np.ascontiguousarray(self.array[y : y + rows]).data)
        return h.digest()


class TiffSource(Source):
    """Level 0 of a TIFF/BigTIFF, read lazily window by window (tifffile + zarr)."""

    def __init__(self, path):
        import tifffile

        self.path = str(Path(path).resolve())
        self._z = None
        try:
            if os.path.getsize(self.path) == 0:
                raise LigFormatError(f"{path}: the file is empty (0 bytes)")
            with tifffile.TiffFile(self.path) as tf:
                s = tf.series[0]
                axes, shape, dtype = s.axes, tuple(s.levels[0].shape), np.dtype(s.dtype)
                palette = tf.pages[0].photometric == tifffile.PHOTOMETRIC.PALETTE
        except FileNotFoundError:
            raise LigInputError(f"{path}: no such file") from None
        except LigFormatError:
            raise
        except Exception as e:  # tifffile raises many types for corrupt files
            raise LigFormatError(f"{path}: cannot read TIFF: {e}") from None
        if palette:
            raise LigInputError(f"{path}: a palette (colour-mapped) TIFF; its samples are colour-table indices, "
                                "not colours: convert it to RGB first")
        # Planar channels: tifffile names the leading axis S (samples), C (OME channels) or Q.
        if axes in ("CYX", "QYX"):
            axes = "SYX"
        if axes not in ("YX", "YXS", "SYX"):
            raise LigInputError(f"{path}: TIFF with axes {axes!r} {shape} is not one image; ligcodec reads one "
                                "image (Y, X and up to 4 channels), the first series' level 0: save the plane "
                                "(time point, z slice) to encode as a TIFF of its own")
        self.axes = axes
        self.height, self.width = (shape[1], shape[2]) if axes == "SYX" else shape[:2]
        self.channels = 1 if axes == "YX" else shape[2] if axes == "YXS" else shape[0]
        if dtype not in (np.uint8, np.uint16):
            raise LigInputError(f"{path}: TIFF samples of type {dtype}; ligcodec codes 8- and 16-bit unsigned "
                                "samples: convert it (e.g. scale to uint16), or pass the pixels scaled to [0, 1] "
                                "as a float array to ligcodec.encode")
        self.dtype = dtype
        self.check(str(path))

    def __getstate__(self):
        return {k: v for k, v in super().__getstate__().items() if k != "_z"} | {"_z": None}

    def _array(self):
        if self._z is None:
            import tifffile

            try:
                import zarr

                self._z = zarr.open(tifffile.imread(self.path, aszarr=True, level=0), mode="r")
            except (ImportError, ValueError):  # no zarr 3: whole-image read (memory ~ image size)
                self._z = tifffile.imread(self.path, level=0)
        return self._z

    def read(self, x0, y0, x1, y1):
        try:
            z = self._array()
            if self.axes == "SYX":
                return np.moveaxis(np.asarray(z[:, y0:y1, x0:x1]), 0, 2)
            a = np.asarray(z[y0:y1, x0:x1])
        except LigInputError:
            raise
        except Exception as e:
            raise LigFormatError(f"{self.path}: the TIFF is damaged (truncated or corrupt) where pixels {x0}..{x1 - 1} "
                                 f"x {y0}..{y1 - 1} are stored ({e}); copy or export it again") from None
        return a[:, :, None] if a.ndim == 2 else a

    def identity(self) -> bytes:
        st = os.stat(self.path)
        return repr((self.path, st.st_size, st.st_mtime_ns)).encode()


def read_image(path) -> np.ndarray:
    """``[H, W, C]`` uint8/uint16 array of an image file (EXIF orientation applied)."""
    path = Path(path)
    if not path.exists():
        raise LigInputError(f"{path}: no such file")
    if path.suffix.lower() in TIFF_SUFFIXES:
        src = TiffSource(path)  # checks layout and sample type with clear messages
        a = src.read(0, 0, src.width, src.height)
    elif _png_bit_depth(path) == 16:
        # Pillow reads 16-bit colour PNGs as 8-bit RGB (silently dropping the low byte); imagecodecs
        # (libpng) keeps all 16 bits.
        import imagecodecs

        try:
            a = imagecodecs.png_decode(path.read_bytes())
        except Exception as e:
            raise LigFormatError(f"{path}: cannot read 16-bit PNG: {e}") from None
        if a.dtype != np.uint16:
            a = a.astype(np.uint16)
    else:
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, limits.MAX_IN_MEMORY_PIXELS)
            with Image.open(path) as im:
                if im.width * im.height > limits.MAX_IN_MEMORY_PIXELS:
                    raise LigSizeError(f"{path}: {im.width}x{im.height} pixels; PNG/JPEG/WebP inputs are decoded "
                                       f"whole, up to {limits.MAX_IN_MEMORY_PIXELS} pixels. Convert it to a tiled TIFF "
                                       "(read tile by tile, any size)")
                im = ImageOps.exif_transpose(im)
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    a = np.asarray(im).astype(np.uint16)
                elif im.mode in ("L", "RGB", "RGBA", "LA"):
                    a = np.asarray(im)
                elif im.mode == "1":
                    a = np.asarray(im.convert("L"))
                else:
                    a = np.asarray(im.convert("RGBA" if "A" in im.getbands() else "RGB"))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise LigFormatError(f"{path}: cannot read image: {e}") from None
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or not 1 <= a.shape[2] <= 4:
        raise LigInputError(f"{path}: unsupported image layout {a.shape} (need H x W with 1-4 channels)")
    if a.dtype not in (np.uint8, np.uint16):
        raise LigInputError(f"{path}: unsupported sample type {a.dtype} (need 8- or 16-bit integers)")
    return a


def _png_bit_depth(path) -> int | None:
    """Bit depth from a PNG's IHDR chunk (None if not a PNG)."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[24] if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" else None


def subsample(src: Source, step: int, band: int = 1024) -> np.ndarray:
    """``src[::step, ::step]`` as float32 in [0, 1], read a band of rows at a time (bounded memory).
    Kept on ``src`` (read-only), so that the passes of one encode (``psnr=``, a retry under the raw
    size, the colour choice of each) read a large TIFF once for it, not once per pass."""
    from .model import as_float  # the renderer's imports are not needed to open a source

    cache = src.__dict__.setdefault("_subsamples", {})
    if step not in cache:
        band = max(step, band // step * step)
        rows = [as_float(src.read(0, y0, src.width, min(src.height, y0 + band))[::step, ::step])
                for y0 in range(0, src.height, band)]
        cache[step] = np.concatenate(rows, 0)
        cache[step].flags.writeable = False
    return cache[step]


def open_source(image) -> Source:
    """A :class:`Source` for an array, a Source, or a path (TIFF lazily, other formats through Pillow)."""
    if isinstance(image, Source):
        return image
    if isinstance(image, (str, os.PathLike)):
        p = Path(image)
        if not p.exists():
            raise LigInputError(f"{p}: no such file")
        if p.suffix.lower() in TIFF_SUFFIXES:
            return TiffSource(p)
        return ArraySource(read_image(p))
    return ArraySource(image)


@dataclass
class Window:
    """A window of a source, turned into pixels where a task runs (``load()``)."""

    source: Source
    x0: int
    y0: int
    x1: int
    y1: int

    def load(self) -> np.ndarray:
        return self.source.read(self.x0, self.y0, self.x1, self.y1)

    def __reduce__(self):
        # An in-memory source travels as just its window's pixels, never the whole array.
        if isinstance(self.source, ArraySource):
            return (_Pixels, (np.ascontiguousarray(self.load()),))
        return (Window, (self.source, self.x0, self.y0, self.x1, self.y1))


class _Pixels:
    def __init__(self, a):
        self.a = a

    def load(self):
        return self.a
