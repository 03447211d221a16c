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
        if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 16 or tile % 16:
            raise LigInputError(f"tile {tile!r} must be a positive multiple of 16 (TIFF's rule)")
        tile = int(tile)
        h = img.header
        C = h.channels
        dtype = np.dtype(np.uint16 if h.bit_depth == 16 else np.uint8)
        levels = _levels(img)
        sizes = [output_size(h.width, h.height, 1 / d) for d in levels]
        comp = None if compression in (None, "none", "None") else compression
        if predictor is None:
            predictor = bool(comp) and str(comp).lower() in _PREDICTED
        if bigtiff is None:
            raw = sum(w * hh for w, hh in sizes) * C * dtype.itemsize
            bigtiff = raw > 2**31 - 2**25  # leave room for the IFDs; compression may not shrink much
        if C == 1:
            photometric, extrasamples, axes = "minisblack", None, "YX"
        elif C == 2:
            photometric, extrasamples, axes = "minisblack", ("unassalpha",), "YXS"
        elif C == 3:
            photometric, extrasamples, axes = "rgb", None, "YXS"
        else:
            photometric, extrasamples, axes = "rgb", ("unassalpha",), "YXS"
        ome = {"axes": axes, "Name": os.path.basename(os.fspath(img.path))}
        if metadata:
            ome.update(metadata)
        if buffersize is None:
            buffersize = min(64 << 20, max(4 << 20, tile * sizes[0][0] * C * dtype.itemsize))
        common = {"buffersize": int(buffersize), "dtype": dtype, "tile": (tile, tile), "photometric": photometric,
                  "compression": comp, "compressionargs": compressionargs, "predictor": predictor or None,
                  "maxworkers": maxworkers}
        if extrasamples:
            common["extrasamples"] = extrasamples
        if C > 1:
            common["planarconfig"] = "contig"
        tmp = f"{os.fspath(path)}.partial"
        with tifffile.TiffWriter(tmp, bigtiff=bigtiff, ome=True) as tif:
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
        os.replace(tmp, path)
        return sizes
    except BaseException:
        try:
            os.unlink(f"{os.fspath(path)}.partial")
        except OSError:
            pass
        raise
    finally:
        if own:
            img.close()
