"""A ``.lig`` file as a read-only zarr v3 store: an OME-NGFF 0.5 multiscale pyramid rendered on demand.

``aszarr(img)`` returns a :class:`zarr.abc.store.Store` that holds no pixels: its metadata
documents are built when it is made, and every chunk is rendered when a reader asks for it, by
``img.read(1 / 2**level, region)``. Nothing is written to disk, so zarr, dask, napari, ome-zarr-py
and anything else that reads a zarr v3 store see a pyramid of the image at every power-of-two
scale::

    import dask.array as da, zarr
    store = ligcodec.zarr_store.aszarr(img)            # img.aszarr() does the same
    group = zarr.open_group(store, mode="r")           # OME-NGFF 0.5 ("ome" attributes)
    level0 = da.from_zarr(store, component="0")        # (C, H, W), lazily rendered
    level2 = da.from_zarr(store, component="2")        # (C, ceil(H/4), ceil(W/4)) == img[::4, ::4]

Layout (see :func:`aszarr`):

* The group's ``zarr.json`` has ``attributes.ome`` = ``{"version": "0.5", "multiscales": [...],
  "omero": {...}}``. Axes are ``c, y, x`` (channel, then space): OME-NGFF requires that order
  (the spec orders axes time, channel, space; ome-zarr-py's reader rejects a channel axis after
  the spatial ones), and napari-ome-zarr turns the channel axis into one layer per channel,
  coloured by the ``omero`` channels (red, green, blue, alpha/grey). ``axes="yxc"`` gives the
  numpy layout instead (``store["0"][y0:y1, x0:x1]`` is ``img[y0:y1, x0:x1]``, and napari's
  ``rgb=True`` wants it), but NGFF has no such order, so that store has no ``ome`` attributes.
* Levels ``"0"``, ``"1"``, ... are :attr:`LigImage.level_downsamples`: halving while the longer
  side stays at least 256 px. Level ``l`` has shape ``ceil(H / 2**l) x ceil(W / 2**l)``
  (:func:`ligcodec.render.contract.output_size`) and the ``scale`` transform ``2**l`` on y and x,
  no translation: level-``l`` pixel ``j`` covers level-0 pixels ``[j * 2**l, (j + 1) * 2**l)``
  (it is the anti-aliased render, close to the box average of that block), the convention of
  ome-zarr-py's and bioformats2raw's pyramids.
* Chunks are ``C x 256 x 256`` (all channels in one chunk: one render per chunk), uncompressed
  (the ``bytes`` codec, little-endian): rendering is the "decompression". Edge chunks are full
  size, zero beyond the image, as zarr's regular grid wants.

Chunks render one at a time, under a lock and synchronously in zarr's event loop (the numba
kernels are themselves parallel over the cores, and numba's default threading layer supports one
parallel kernel at a time). A chunk of a small level covers much of the image; the reader gathers
its Gaussians in bounded groups of tiles, so memory stays bounded (see ``Model.render``). The store pickles by path (dask distributed workers reopen the file). This module imports zarr;
``import ligcodec`` does not import this module.
"""

from __future__ import annotations

import json
import math
import os
import threading

import numpy as np

try:
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
except ImportError as e:  # zarr 3 needs Python 3.11+
    raise ImportError(f"ligcodec.zarr_store needs zarr>=3 (Python 3.11+): {e}") from e

from .render.contract import output_size

#: Chunk side of every level (output pixels).
DEFAULT_CHUNK = 256
#: OME-NGFF version written for zarr v3.
NGFF_VERSION = "0.5"

_CHANNEL_INFO = {  # channels -> [(label, colour)] for the "omero" rendering settings
    1: [("grey", "FFFFFF")],
    2: [("grey", "FFFFFF"), ("alpha", "FFFFFF")],
    3: [("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF")],
    4: [("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"), ("alpha", "FFFFFF")],
}


def aszarr(img, *, chunk: int = DEFAULT_CHUNK, axes: str = "cyx", name: str | None = None, owns: bool = False):
    """A read-only zarr v3 store over ``img`` (an open :class:`~ligcodec.LigImage`; ``owns``: the
    store closes it) presenting it as an OME-NGFF 0.5 multiscale image; chunks are rendered on
    demand. See the module docstring for the layout. (``LigImage.aszarr()`` calls this; this
    module never imports ``image.py``, so the two do not import each other.)

    ``chunk``: side of the square chunks (output pixels, 16..4096). ``axes``: ``"cyx"`` (OME-NGFF,
    the default) or ``"yxc"`` (numpy layout, no OME metadata). ``name``: the multiscale's name
    (default: the file's name).
    """
    return LigZarrStore(img, chunk=chunk, axes=axes, name=name, owns=owns)


def _reopen(image_class, path, chunk, axes, name):
    """Unpickling (a dask worker): the same kind of image opened again from its path."""
    return aszarr(image_class(path), chunk=chunk, axes=axes, name=name, owns=True)


class LigZarrStore(Store):
    """A read-only zarr v3 store rendering a ``.lig`` image on demand (see :func:`aszarr`)."""

    def __init__(self, img, *, chunk: int = DEFAULT_CHUNK, axes: str = "cyx", name: str | None = None,
                 owns: bool = False):
        from .errors import LigInputError

        super().__init__(read_only=True)
        if axes not in ("cyx", "yxc"):
            raise LigInputError(f"axes {axes!r} must be 'cyx' (OME-NGFF) or 'yxc' (numpy layout)")
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or not 16 <= chunk <= 4096:
            raise LigInputError(f"chunk {chunk!r} must be an integer in 16..4096")
        if not (hasattr(img, "read") and hasattr(img, "header") and hasattr(img, "level_downsamples")):
            raise LigInputError(f"aszarr() takes an open image (ligcodec.open(path).aszarr()), got {img!r}")
        self._owns = owns
        self._img = img
        self._chunk = int(chunk)
        self._axes = axes
        h = self._img.header
        self._name = name if name is not None else os.path.basename(os.fspath(self._img.path))
        self._dtype = np.dtype("<u2" if h.bit_depth == 16 else "u1")
        self._channels = h.channels
        self._lock = threading.Lock()
        # level -> (downsample, (height, width), (chunk rows, chunk cols))
        self._levels = []
        for d in self._img.level_downsamples:
            d = int(d)
            w, hh = output_size(h.width, h.height, 1 / d)
            self._levels.append((d, (hh, w), (math.ceil(hh / self._chunk), math.ceil(w / self._chunk))))
        self._meta = self._metadata()

    # ---------------------------------------------------------------------------- metadata
    def _metadata(self) -> dict[str, bytes]:
        h, C, c = self._img.header, self._channels, self._chunk
        meta = {}
        datasets = []
        for lvl, (d, (hh, w), _) in enumerate(self._levels):
            shape, chunks, dims = ((C, hh, w), (C, c, c), ["c", "y", "x"]) if self._axes == "cyx" else \
                ((hh, w, C), (c, c, C), ["y", "x", "c"])
            meta[f"{lvl}/zarr.json"] = {
                "zarr_format": 3,
                "node_type": "array",
                "shape": list(shape),
                "data_type": "uint16" if h.bit_depth == 16 else "uint8",
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": 0,
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                "attributes": {},
                "dimension_names": dims,
            }
            datasets.append({"path": str(lvl), "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, float(d), float(d)]}]})
        attrs = {}
        if self._axes == "cyx":
            peak = 65535 if h.bit_depth == 16 else 255
            attrs["ome"] = {
                "version": NGFF_VERSION,
                "multiscales": [{
                    "name": self._name,
                    "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"},
                             {"name": "x", "type": "space"}],
                    "datasets": datasets,
                    "type": "gaussian-splat render",
                    "metadata": {"description": "level l is the .lig image rendered at scale 1/2**l "
                                                "(anti-aliased: close to the 2**l x 2**l box average)",
                                 "method": "ligcodec.LigImage.read", "version": _version()},
                }],
                "omero": {
                    "name": self._name,
                    "version": NGFF_VERSION,
                    "rdefs": {"model": "color" if C >= 3 else "greyscale", "defaultZ": 0, "defaultT": 0},
                    "channels": [{"label": label, "color": colour, "active": label != "alpha",
                                  "coefficient": 1.0, "family": "linear", "inverted": False,
                                  "window": {"min": 0, "max": peak, "start": 0, "end": peak}}
                                 for label, colour in _CHANNEL_INFO[C]],
                },
            }
        attrs["ligcodec"] = {"width": h.width, "height": h.height, "channels": C, "bit_depth": h.bit_depth,
                             "downsamples": [d for d, _, _ in self._levels], "axes": self._axes}
        meta["zarr.json"] = {"zarr_format": 3, "node_type": "group", "attributes": attrs}
        return {k: json.dumps(v, indent=1).encode() for k, v in meta.items()}

    # ------------------------------------------------------------------------------ chunks
    def _parse_chunk_key(self, key: str):
        """``(level, row, col)`` of a chunk key ``"{level}/c/{i}/{j}/{k}"``, or None."""
        parts = key.split("/")
        if len(parts) != 5 or parts[1] != "c" or not all(p.isdigit() and (p == "0" or p[0] != "0")
                                                          for p in (parts[0], *parts[2:])):
            return None
        lvl, a, b, e = (int(p) for p in (parts[0], *parts[2:]))
        if lvl >= len(self._levels):
            return None
        row, col, ch = (b, e, a) if self._axes == "cyx" else (a, b, e)
        ny, nx = self._levels[lvl][2]
        if ch != 0 or not (row < ny and col < nx):
            return None
        return lvl, row, col

    def _chunk_nbytes(self) -> int:
        return self._chunk * self._chunk * self._channels * self._dtype.itemsize

    def _render_chunk(self, lvl: int, row: int, col: int) -> bytes:
        d, (hh, w), _ = self._levels[lvl]
        c = self._chunk
        x0, y0 = col * c, row * c
        cw, ch = min(c, w - x0), min(c, hh - y0)
        with self._lock:
            tile = self._img.read(1 / d, (x0, y0, cw, ch))
        if self._axes == "cyx":
            out = np.zeros((self._channels, c, c), self._dtype)
            out[:, :ch, :cw] = tile.transpose(2, 0, 1)
        else:
            out = np.zeros((c, c, self._channels), self._dtype)
            out[:ch, :cw] = tile
        return out.tobytes()

    def _value(self, key: str):
        if key in self._meta:
            return self._meta[key]
        parsed = self._parse_chunk_key(key)
        return None if parsed is None else self._render_chunk(*parsed)

    def _keys(self):
        yield "zarr.json"
        for lvl, (_, _, (ny, nx)) in enumerate(self._levels):
            yield f"{lvl}/zarr.json"
            for i in range(ny):
                for j in range(nx):
                    yield f"{lvl}/c/0/{i}/{j}" if self._axes == "cyx" else f"{lvl}/c/{i}/{j}/0"

    # --------------------------------------------------------------------------- Store API
    def __eq__(self, other) -> bool:
        return (type(other) is type(self) and other._img is self._img and other._chunk == self._chunk
                and other._axes == self._axes and other._name == self._name)

    def __hash__(self):
        return hash((id(self._img), self._chunk, self._axes, self._name))

    def __reduce__(self):
        return _reopen, (type(self._img), os.fspath(self._img.path), self._chunk, self._axes, self._name)

    def __repr__(self):
        return f"<LigZarrStore {self._img.path} {self._axes} chunks {self._chunk} levels {len(self._levels)}>"

    def with_read_only(self, read_only: bool = False):
        if not read_only:
            raise ValueError("a .lig zarr store is read-only")
        return type(self)(self._img, chunk=self._chunk, axes=self._axes, name=self._name)

    @property
    def supports_writes(self) -> bool:
        return False

    @property
    def supports_deletes(self) -> bool:
        return False

    @property
    def supports_listing(self) -> bool:
        return True

    async def get(self, key, prototype, byte_range=None):
        data = self._value(key)
        if data is None:
            return None
        return prototype.buffer.from_bytes(_byte_slice(data, byte_range))

    async def get_partial_values(self, prototype, key_ranges):
        return [await self.get(k, prototype, r) for k, r in key_ranges]

    async def exists(self, key: str) -> bool:
        return key in self._meta or self._parse_chunk_key(key) is not None

    async def getsize(self, key: str) -> int:
        if key in self._meta:
            return len(self._meta[key])
        if self._parse_chunk_key(key) is None:
            raise FileNotFoundError(key)
        return self._chunk_nbytes()

    async def set(self, key, value):
        self._check_writable()

    async def delete(self, key):
        self._check_writable()

    async def list(self):
        for k in self._keys():
            yield k

    async def list_prefix(self, prefix: str):
        for k in self._keys():
            if k.startswith(prefix):
                yield k

    async def list_dir(self, prefix: str):
        """The names (keys or key prefixes, no ``/``) one level below ``prefix``."""
        parts = [p for p in prefix.split("/") if p]
        if not parts:
            yield "zarr.json"
            for lvl in range(len(self._levels)):
                yield str(lvl)
            return
        if not (parts[0].isdigit() and str(int(parts[0])) == parts[0] and int(parts[0]) < len(self._levels)):
            return
        lvl, rest = int(parts[0]), parts[1:]
        if not rest:
            yield "zarr.json"
            yield "c"
            return
        if rest[0] != "c" or not all(p.isdigit() for p in rest[1:]):
            return
        ny, nx = self._levels[lvl][2]
        sizes = (1, ny, nx) if self._axes == "cyx" else (ny, nx, 1)
        depth = len(rest) - 1
        if depth >= 3 or any(int(p) >= sizes[i] for i, p in enumerate(rest[1:])):
            return
        for i in range(sizes[depth]):
            yield str(i)

    def close(self) -> None:
        super().close()
        if self._owns:
            self._img.close()


def _byte_slice(data: bytes, byte_range) -> bytes:
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix :] if byte_range.suffix else b""
    raise TypeError(f"unexpected byte range {byte_range!r}")


def _version() -> str:
    from . import __version__

    return __version__
