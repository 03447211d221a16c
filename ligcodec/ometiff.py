"""A ``.lig`` as a tiled, pyramidal OME-TIFF, written in bounded memory.

:func:`write_ome_pyramid` writes the full-resolution image as the first IFD and the power-of-two
reductions (:attr:`LigImage.level_downsamples`: halving while the longer side stays at least
256 px) as its SubIFDs, the layout that Bio-Formats, QuPath, OMERO, napari-tifffile and tifffile
read as one multi-resolution OME image. Every level is *rendered* at its scale
(``img.read(1 / 2**level, region)``, anti-aliased, close to the box average), not downsampled from
the level above, and rendered one band of tile rows at a time and handed to tifffile as a
generator of tiles, so memory holds one band (``tile`` rows x the level's width) plus tifffile's
compression batch (one band too by default), never a level. ``bench/ometiff_memory.py`` measures it.

tifffile is imported when the function is called, so ``import ligcodec`` does not import it.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import LigInputError
from .render.contract import output_size

#: Compressions that get TIFF's horizontal-differencing predictor (it shrinks photos ~10-25 %).
_PREDICTED = {"zlib", "deflate", "adobe_deflate", "lzw", "zstd"}


def _levels(img) -> list[int]:
    return [int(d) for d in img.level_downsamples]


def _tiles(img, scale: float, width: int, height: int, tile: int):
    """Tiles of the render at ``scale`` (size ``width`` x ``height``), row-major, each ``tile x tile
    x C`` (``tile x tile`` for grey; zero beyond the image); one band of ``tile`` rows is rendered at a time."""
    C = img.header.channels
    for y in range(0, height, tile):
        bh = min(tile, height - y)
        band = img.read(scale, (0, y, width, bh))  # memory bounded by Model.render's groups
        for x in range(0, width, tile):
            t = band[:, x : x + tile]
            if t.shape[0] != tile or t.shape[1] != tile:
                pad = np.zeros((tile, tile, C), band.dtype)
                pad[: t.shape[0], : t.shape[1]] = t
                t = pad
            yield np.ascontiguousarray(t[:, :, 0] if C == 1 else t)
        del band


def write_ome_pyramid(img, path, tile: int = 256, compression="zlib", *, compressionargs=None,
                      predictor=None, bigtiff=None, maxworkers=None, buffersize=None, metadata=None,
                      progress=None) -> list:
    """Write ``img`` (a :class:`~ligcodec.LigImage` or a path to a ``.lig``) to ``path`` as a tiled
    pyramidal OME-TIFF; returns the levels' ``(width, height)``.

    ``tile``: TIFF tile side (a multiple of 16). ``compression``: any tifffile/imagecodecs name
    (``"zlib"``, the default: lossless and read by every OME-TIFF reader; ``"lzw"``, ``"zstd"``,
    ``"jpeg"`` for 8-bit, ``"jpeg2000"``...) or None. ``predictor``: TIFF predictor (default: the
    horizontal predictor for zlib/lzw/zstd). ``bigtiff``: default True when the uncompressed
    pyramid is near 2 GiB or more (a classic TIFF must stay under 4 GiB). ``maxworkers``: tifffile's compression threads
    (default: tifffile's choice). ``buffersize``: bytes of raw tiles tifffile compresses per batch
    (default: one band of the widest level, 4..64 MiB; tifffile's own default, 512 MiB, would hold
    whole levels of smaller images). ``metadata``: extra OME metadata passed to tifffile (e.g.
    ``{"PhysicalSizeX": 0.25, "PhysicalSizeXUnit": "µm", ...}``). ``progress``: called as
    ``progress(level, levels)`` before each level is written.

    Pixels of level ``l`` are exactly ``img.read(1 / 2**l)``, at size ``ceil(W / 2**l) x
    ceil(H / 2**l)``; RGB(A) is stored interleaved (photometric RGB, alpha as an extra sample),
    grey as minisblack. Memory: one band of ``tile`` rows of the widest level, not the image.
    """
    import tifffile

    from .image import LigImage

    own = not isinstance(img, LigImage)
    if own:
        img = LigImage(img)
    try:
        tile = _check_tile(tile)
        h = img.header
        levels = _levels(img)
        sizes = [output_size(h.width, h.height, 1 / d) for d in levels]
        if bigtiff is None:
            bigtiff = _needs_bigtiff(img, sizes)
        ome = _ome_metadata(img, metadata)
        common = _tiff_options(img, sizes, tile, compression, compressionargs, predictor, maxworkers,
                               buffersize)
        tmp = _partial_path(path)
        with tifffile.TiffWriter(tmp, bigtiff=bigtiff, ome=True) as tif:
            _write_levels(tif, img, levels, sizes, tile, common, ome, progress)
        os.replace(tmp, path)
        return sizes
    except BaseException:
        try:
            os.unlink(_partial_path(path))
        except OSError:
            pass
        raise
    finally:
        if own:
            img.close()


def _partial_path(path) -> str:
    """Where the pyramid is written before it is renamed to ``path``: a reader never finds a half-written
    OME-TIFF under the real name, and a failed write removes only this file, never an older ``path``."""
    return f"{os.fspath(path)}.partial"


def _check_tile(tile) -> int:
    """``tile`` as an int, checked before any file is created: TIFF requires tile sides that are multiples
    of 16 (a bool is refused although it is an int: ``tile=True`` is a mistake, not a size)."""
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 16 or tile % 16:
        raise LigInputError(f"tile {tile!r} must be a positive multiple of 16 (TIFF's rule)")
    return int(tile)


def _sample_dtype(img) -> np.dtype:
    """The TIFF's sample type: the ``.lig``'s own bit depth (16-bit stays 16-bit), so the pixels are
    stored exactly as :meth:`LigImage.read` returns them."""
    return np.dtype(np.uint16 if img.header.bit_depth == 16 else np.uint8)


def _layout(channels: int) -> tuple:
    """``(photometric, extrasamples, axes)`` for ``channels``: readers take grey as minisblack and colour
    as RGB, and show a 2nd (grey+alpha) or 4th (RGBA) channel as alpha only when it is tagged as an
    unassociated extra sample; a single channel has no sample axis."""
    if channels == 1:
        return "minisblack", None, "YX"
    if channels == 2:
        return "minisblack", ("unassalpha",), "YXS"
    if channels == 3:
        return "rgb", None, "YXS"
    return "rgb", ("unassalpha",), "YXS"


def _needs_bigtiff(img, sizes) -> bool:
    """Whether the default is BigTIFF: a classic TIFF's 32-bit offsets end at 4 GiB and compression may not
    shrink the pixels much, so BigTIFF once the uncompressed pyramid nears 2 GiB (room left for the IFDs)."""
    raw = sum(w * hh for w, hh in sizes) * img.header.channels * _sample_dtype(img).itemsize
    return raw > 2**31 - 2**25


def _tiff_options(img, sizes, tile: int, compression, compressionargs, predictor, maxworkers,
                  buffersize) -> dict:
    """tifffile ``write`` keywords shared by every level (``sizes``: the levels', widest first).
    ``"none"`` and ``"None"`` mean no compression too (for names taken from text); the horizontal
    predictor is the default where it helps (:data:`_PREDICTED`). ``buffersize`` defaults to one band
    of the widest level, clamped to 4..64 MiB, because tifffile's own default (512 MiB) would hold
    whole levels of smaller images in memory."""
    C = img.header.channels
    dtype = _sample_dtype(img)
    comp = None if compression in (None, "none", "None") else compression
    if predictor is None:
        predictor = bool(comp) and str(comp).lower() in _PREDICTED
    if buffersize is None:
        buffersize = min(64 << 20, max(4 << 20, tile * sizes[0][0] * C * dtype.itemsize))
    photometric, extrasamples, _ = _layout(C)
    common = {"buffersize": int(buffersize), "dtype": dtype, "tile": (tile, tile), "photometric": photometric,
              "compression": comp, "compressionargs": compressionargs, "predictor": predictor or None,
              "maxworkers": maxworkers}
    if extrasamples:
        common["extrasamples"] = extrasamples
    if C > 1:
        common["planarconfig"] = "contig"
    return common


def _ome_metadata(img, metadata) -> dict:
    """The OME metadata of the first IFD: the axes and the image's name (the ``.lig``'s file name) that
    OME readers show, then the caller's ``metadata``, which may add to or override them."""
    ome = {"axes": _layout(img.header.channels)[2], "Name": os.path.basename(os.fspath(img.path))}
    if metadata:
        ome.update(metadata)
    return ome


def _write_levels(tif, img, levels, sizes, tile: int, common: dict, ome: dict, progress) -> None:
    """Write every level to the open ``tif`` as a generator of tiles (one band rendered at a time): level 0
    as the main IFD, carrying the OME metadata and room for the other levels as its SubIFDs, then each
    reduction as a SubIFD marked reduced-resolution (subfiletype 1) -- the layout OME readers expect."""
    C = img.header.channels
    for i, (d, (w, hh)) in enumerate(zip(levels, sizes)):
        if progress is not None:
            progress(i, len(levels))
        shape = (hh, w) if C == 1 else (hh, w, C)
        kw = {**common, "shape": shape}
        if i == 0:
            kw.update(subifds=len(levels) - 1, metadata=ome)
        else:
            kw.update(subfiletype=1, metadata=None)
        tif.write(_tiles(img, 1.0 / d, w, hh, tile), **kw)
