"""A Pillow plugin for ``.lig`` files: ``import ligcodec.pillow`` and ``PIL.Image.open("x.lig")`` reads them.

Pillow has no plugin entry points (it finds formats only among its own modules and those
imported), so the import is required; it registers the format ``"LIG"``, the extension ``.lig``,
the MIME type ``image/x-lig`` and a decoder named ``"ligcodec"``::

    import ligcodec.pillow  # noqa: F401 - registers the format
    from PIL import Image

    im = Image.open("photo.lig")       # reads the header only
    small = im.reduce(4)               # renders at scale 1/4: never decodes full resolution
    im.draft(None, (500, 400))         # like JPEG: picks the largest power-of-two reduction
    im.load()                          #   whose size is >= 500 x 400, and renders at that scale
    im.thumbnail((256, 256))           # uses draft(), so it renders at a reduced scale too

Modes: 8-bit files are ``L``, ``LA``, ``RGB`` or ``RGBA`` (1-4 channels). 16-bit grey is ``I;16``.
Pillow has no 16-bit ``LA``/``RGB``/``RGBA`` mode, so 16-bit files with 2-4 channels open as
``LA``/``RGB``/``RGBA`` reduced to 8 bits by ``v8 = round(v16 / 257)`` (nearest, i.e.
``(v16 * 255 + 32767) // 65535``: the inverse of the usual ``v8 * 257`` widening), applied to
:meth:`ligcodec.LigImage.read`'s uint16 values; ``im.info["bit_depth"]`` says 16. Read such files
with :func:`ligcodec.open` for full precision.

Pixels are exactly :meth:`ligcodec.LigImage.read` at the scale chosen (1, or ``1 / factor`` after
``draft``/``reduce``): rendered at that scale (anti-aliased), not decoded then subsampled. The
image is rendered in bands of rows into Pillow's buffer, so a load holds the image plus one band.

``reduce(factor)`` before ``load()`` renders at ``1 / factor`` (the size is ``ceil(size /
factor)``, as Pillow's); so does ``reduce(factor, box)`` when the box starts on multiples of the
factor and ends on them or at the image's edge. Other calls, and calls after ``load()``, are
Pillow's own ``reduce`` of the loaded pixels.

Pillow's decompression-bomb check applies at ``Image.open``: above ``Image.MAX_IMAGE_PIXELS``
(89 MP) it warns, above twice that it refuses. For gigapixel files meant to be read reduced, set
``Image.MAX_IMAGE_PIXELS = None`` (or a larger limit) first, or use :func:`ligcodec.open`.

A corrupt or truncated ``.lig`` raises :class:`ligcodec.LigFormatError` (a ``ValueError``) from
``Image.open``, saying what is wrong, rather than Pillow's generic ``UnidentifiedImageError``.

A file object without a file name (``BytesIO``) is copied to a temporary file, because
:class:`~ligcodec.LigImage` reads by path.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile

import numpy as np
from PIL import Image, ImageFile

from .container import MAGIC

FORMAT = "LIG"
MIME = "image/x-lig"
DECODER = "ligcodec"
#: Rows rendered per band while loading (bounded further to ~16 M samples per band).
BAND_ROWS = 1024

_MODES = {(1, 8): "L", (2, 8): "LA", (3, 8): "RGB", (4, 8): "RGBA",
          (1, 16): "I;16", (2, 16): "LA", (3, 16): "RGB", (4, 16): "RGBA"}


def _accept(prefix: bytes) -> bool:
    return prefix[: len(MAGIC)] == MAGIC


def _tile(extents, args):
    tile_class = getattr(ImageFile, "_Tile", None)  # Pillow >= 11 (a NamedTuple); a plain tuple before
    return tile_class(DECODER, extents, 0, args) if tile_class else (DECODER, extents, 0, args)


def _to_mode(a: np.ndarray, mode: str) -> bytes:
    """``LigImage.read`` output as raw bytes of ``mode`` (``I;16`` is little-endian uint16)."""
    if mode == "I;16":
        return a.astype("<u2", copy=False).tobytes()
    if a.dtype == np.uint16:  # 16-bit colour: round(v / 257), documented above
        a = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.ascontiguousarray(a).tobytes()


def _render(lig, factor: int, region) -> np.ndarray:
    return lig.read(1.0 / factor, region)


class LigDecoder(ImageFile.PyDecoder):
    """Renders a ``.lig`` into Pillow's image buffer in bands of rows. Args: ``(lig, factor)``."""

    _pulls_fd = True

    def decode(self, buffer):
        lig, factor = self.args[:2]
        x0, y0, x1, y1 = self.state.extents()
        w = x1 - x0
        rows = max(1, min(BAND_ROWS, (1 << 24) // max(1, w * lig.header.channels)))
        for by in range(y0, y1, rows):
            bh = min(rows, y1 - by)
            data = _to_mode(_render(lig, factor, (x0, by, w, bh)), self.mode)
            raw = Image._getdecoder(self.mode, "raw", self.mode)
            raw.setimage(self.im, (x0, by, x1, by + bh))
            n, err = raw.decode(data)
            if n >= 0 or err != 0:
                raise ValueError(f"cannot set rows {by}..{by + bh} of the image (raw decoder status {n}, {err})")
        return -1, 0


class LigImageFile(ImageFile.ImageFile):
    """A ``.lig`` file opened by Pillow (see the module docstring)."""

    format = FORMAT
    format_description = "ligcodec Gaussian-splatting image"

    def _open(self) -> None:
        if not _accept(self.fp.read(len(MAGIC))):
            raise SyntaxError("not a .lig file")
        from .image import LigImage

        self._lig_tmp = None
        path = self._source_path()
        try:
            self._lig = LigImage(path)
        except Exception:
            self._remove_tmp()
            raise
        if self._lig_tmp is not None:
            try:  # POSIX: the open file stays readable after unlinking
                os.unlink(self._lig_tmp)
                self._lig_tmp = None
            except OSError:
                pass  # Windows: removed on close
        h = self._lig.header
        self._mode = _MODES[(h.channels, h.bit_depth)]
        self._lig_full = (h.width, h.height)
        self._lig_factor = 1
        self._size = (h.width, h.height)
        self.info.update(bit_depth=h.bit_depth, lig_scale=1.0, lig_levels=h.levels)
        self.tile = [_tile((0, 0, *self._size), (self._lig, 1))]

    def _source_path(self):
        if self.filename and os.path.isfile(self.filename):
            return self.filename
        name = getattr(self.fp, "name", None)
        if isinstance(name, (str, bytes, os.PathLike)) and os.path.isfile(name):
            return name
        # A stream without a file: LigImage reads by path, so copy it to a temporary file.
        self.fp.seek(0)
        with tempfile.NamedTemporaryFile(suffix=".lig", delete=False) as tmp:
            shutil.copyfileobj(self.fp, tmp)
            self._lig_tmp = tmp.name
        return self._lig_tmp

    # ----------------------------------------------------------------- reduced decoding
    def _set_factor(self, factor: int) -> None:
        from .render.contract import output_size

        self._lig_factor = factor
        self._size = output_size(*self._lig_full, 1.0 / factor)
        self.info["lig_scale"] = 1.0 / factor
        self.tile = [_tile((0, 0, *self._size), (self._lig, factor))]

    def draft(self, mode, size):
        """Like JPEG's: render at the largest power-of-two reduction ``f`` with ``W / f >= size[0]``
        and ``H / f >= size[1]`` (``size=None``: full resolution). The mode is not changed.
        Returns ``(mode, box)``, ``box`` the original image in the reduced image's coordinates,
        or None once the image is loaded."""
        if not self.tile or getattr(self, "_lig", None) is None:
            return None
        W, H = self._lig_full
        f = 1
        if size:
            w, h = (max(1, int(v)) for v in size)
            while W >= 2 * f * w and H >= 2 * f * h:
                f *= 2
        self._set_factor(f)
        return self.mode, (0, 0, W / f, H / f)

    def reduce(self, factor, box=None):
        """``Image.reduce``, rendered at the reduced scale when the file is not loaded yet (see
        the module docstring); otherwise Pillow's box average of the loaded pixels."""
        fx, fy = (factor, factor) if not isinstance(factor, (list, tuple)) else factor
        lig = getattr(self, "_lig", None)
        if (self.tile and lig is not None and fx == fy and isinstance(fx, (int, np.integer)) and fx >= 1
                and not lig._reader.closed):
            k = int(fx)
            w, h = self.size
            x0, y0, x1, y1 = (0, 0, w, h) if box is None else (int(v) for v in box)
            aligned = (x0 % k == 0 and y0 % k == 0 and (x1 % k == 0 or x1 == w) and (y1 % k == 0 or y1 == h)
                       and 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h)
            if aligned:
                f = self._lig_factor * k
                region = (x0 // k, y0 // k, math.ceil((x1 - x0) / k), math.ceil((y1 - y0) / k))
                a = _render(lig, f, region)
                out = Image.frombytes(self.mode, (region[2], region[3]), _to_mode(a, self.mode), "raw", self.mode)
                out.info.update(self.info, lig_scale=1.0 / f)
                return out
        return super().reduce(factor, box)

    # --------------------------------------------------------------------------- closing
    def load_end(self) -> None:
        self._close_lig()

    def _close_lig(self) -> None:
        lig = getattr(self, "_lig", None)
        if lig is not None:
            lig.close()
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if getattr(self, "_lig_tmp", None):
            try:
                os.unlink(self._lig_tmp)
            except OSError:
                pass
            self._lig_tmp = None

    def close(self) -> None:
        self._close_lig()
        super().close()

    def __exit__(self, *args) -> None:
        self._close_lig()
        super().__exit__(*args)


def register() -> None:
    """Register the format with Pillow (done on import; calling it again is harmless)."""
    Image.register_open(FORMAT, LigImageFile, _accept)
    Image.register_extension(FORMAT, ".lig")
    Image.register_mime(FORMAT, MIME)
    Image.register_decoder(DECODER, LigDecoder)


register()
