"""``ligcodec.open()``: a lazy image over a ``.lig`` file, read as numpy arrays.

Only the tiles and levels a read needs are decoded (and kept in a small cache); a preview with
``levels=[0]`` touches level-0 bytes only, and so does any read of a progressive file at a scale up
to its ``level0_scale``.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from .codec.alpha import apply_mask, read_mask
from .codec.batch import LIMIT_MESSAGES, OK, colour_mix, decode_chunks
from .codec.tile import chunk_layout, chunk_problem
from .container import LigReader
from .errors import LigFormatError, LigIndexError, LigInputError, LigSizeError
from .model import Model, tile_grid, tile_output_span
from .render import Gaussians
from .render.contract import check_region, check_scale, output_size


@contextmanager
def _no_memory_error(scale, region):
    """A read's memory is its output's plus what its bytes decode to (the spec's limits bound the
    latter), so running out of memory means the output is too large for this machine: say so."""
    try:
        yield
    except MemoryError:
        raise LigSizeError(f"not enough memory for a read at scale {scale} of region {region}: read a smaller "
                           "region or scale, or read the image in parts (img[y0:y1, x0:x1])") from None


#: Output pixels a read renders at a time (float32, 12 bytes each in RGB): see LigImage.read.
STRIP_PIXELS = 1 << 22


class _LazyLevel:
    """``model.levels[level]``: a sequence of the tiles' Gaussians, decoded on access."""

    def __init__(self, image: "LigImage", level: int):
        self._image, self._level = image, level

    def __getitem__(self, tile: int) -> Gaussians:
        n = len(self)
        if not -n <= tile < n:
            raise LigIndexError(f"tile {tile} out of range: the image has {n} tiles")
        return self._image._tile(self._level, tile % n)

    def __len__(self):
        return self._image._reader.header.n_tiles

    def __iter__(self):
        return (self[t] for t in range(len(self)))


class _LazyModel(Model):
    """The model of a file: tiles are decoded when a render first needs them, all at once."""

    def __init__(self, image: "LigImage", *args):
        super().__init__(*args)
        self._image = image

    def gather(self, tiles, levels):
        return self._image._gather(tiles, levels)

    def tile_counts(self, tiles, levels) -> list[int]:
        """From the index: no chunk is read."""
        r = self._image._reader
        n = r.header.n_tiles
        e = r.index.entries
        return [sum(e[lvl * n + t].count for lvl in levels) for t in tiles]

    def level_counts(self) -> list[int]:
        """From the index: no chunk is read."""
        r = self._image._reader
        n = r.header.n_tiles
        return [sum(e.count for e in r.index.entries[lvl * n : (lvl + 1) * n]) for lvl in range(r.header.levels)]


class LigImage:
    """A ``.lig`` image. ``shape`` is (H, W, C) like numpy; ``dimensions`` is (W, H) like OpenSlide."""

    def __init__(self, path, cache_tiles: int = 256):
        self.path = path
        self._reader = LigReader(path)
        self.header = h = self._reader.header
        self._lock = threading.Lock()
        self._cache: OrderedDict = OrderedDict()
        self._masks: OrderedDict = OrderedDict()  # tile -> decoded alpha mask (section 8)
        self._cache_size = cache_tiles
        self._origins = {t: (x0, y0) for t, x0, y0, _, _ in tile_grid(h.width, h.height, h.tile)}
        self.model = _LazyModel(self, h.width, h.height, h.channels, h.tile,
                                [_LazyLevel(self, i) for i in range(h.levels)], {}, h.level0_scale,
                                tuple(h.deblock) if h.deblock else None)

    # -------------------------------------------------------------- conventions users know
    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.header.height, self.header.width, self.header.channels)

    @property
    def dtype(self):
        return np.dtype(np.uint16 if self.header.bit_depth == 16 else np.uint8)

    @property
    def dimensions(self) -> tuple[int, int]:
        return (self.header.width, self.header.height)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """A virtual pyramid: any scale renders, these are the conventional power-of-2 levels,
        halving while the longer side stays at least 256 px (so 1, 2, ... down to 256-511 px)."""
        d, out = 1, []
        while True:
            out.append(float(d))
            if max(self.header.width, self.header.height) / (2 * d) < 256:
                return tuple(out)
            d *= 2

    @property
    def level_count(self) -> int:
        return len(self.level_downsamples)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple(output_size(self.header.width, self.header.height, 1 / d) for d in self.level_downsamples)

    def get_best_level_for_downsample(self, downsample: float) -> int:
        """OpenSlide's rule: the largest level whose downsample is at most ``downsample``."""
        d = float(downsample)
        return max((i for i, v in enumerate(self.level_downsamples) if v <= d), default=0)

    # ----------------------------------------------------------------------------- reads
    def read_float(self, scale=1.0, region=None, levels=None) -> np.ndarray:
        """``[h, w, C]`` float32 in [0, 1] (clamped) at ``scale``; ``region=(x, y, w, h)`` in output
        px; ``levels=[0]`` renders the coarse level alone (a preview that reads fewer bytes);
        ``levels=None`` is :meth:`Model.default_levels` (level 0 alone at scales up to a progressive
        file's ``level0_scale``, otherwise all levels)."""
        with _no_memory_error(scale, region):
            return self._finish(self.model.render(scale=scale, region=region, levels=levels), check_scale(scale),
                                region)

    def _finish(self, part, s: float, region) -> np.ndarray:
        """A float render of ``region`` clamped to [0, 1], with the alpha mask applied (in place)."""
        np.clip(part, 0, 1, out=part)
        if self.header.alpha_mask:
            self._apply_alpha(part, s, region)
        return part

    def read(self, scale=1.0, region=None, levels=None) -> np.ndarray:
        """``[h, w, C]`` in the image's dtype (uint8 or uint16) at ``scale`` and ``region``.

        Rendered in strips of whole rows of tiles, each converted as it is done: a float32
        render of the whole output (four times the bytes of uint8) is never held, and its pages
        never faulted in. A region read is the same window of a full read bit for bit, so the
        strips change no pixel."""
        s = check_scale(scale)
        ow, oh = output_size(self.header.width, self.header.height, s)
        x0, y0, w, h = check_region(region, ow, oh)
        peak = 65535 if self.header.bit_depth == 16 else 255
        with _no_memory_error(scale, region):
            out = np.empty((h, w, self.header.channels), self.dtype)
            # One float buffer for every strip: its pages are faulted in once.
            for a, b, part in self.model.render_strips(s, (x0, y0, w, h), levels, self._strips(s, y0, h, w)):
                self._finish(part, s, (x0, y0 + a, w, b - a))
                part *= peak
                out[a:b] = np.round(part, out=part)
        return out

    def _strips(self, s: float, y0: int, h: int, w: int):
        """``[(a, b)]``: rows ``[a, b)`` of a read of ``h`` rows from output row ``y0``, each about
        :data:`STRIP_PIXELS` / ``w`` rows, cut where a row of tiles starts owning pixels."""
        if h * w <= STRIP_PIXELS:  # most reads (a server's tiles, regions): one strip, no search
            return [(0, h)]
        T, H = self.header.tile, self.header.height
        rows_near = range(max(T, (int(y0 / s) // T) * T), min(H, int((y0 + h) / s) + 2 * T), T)
        starts = sorted({tile_output_span(Y, min(H, Y + T), s, H)[0] - y0 for Y in rows_near})
        cuts, last = [0], 0
        rows = max(1, STRIP_PIXELS // max(w, 1))
        for c in starts:
            if 0 < c < h and c - last >= rows:
                cuts.append(c)
                last = c
        cuts.append(h)
        return list(zip(cuts[:-1], cuts[1:]))

    def read_region(self, location, level: int, size) -> np.ndarray:
        """OpenSlide-style: ``location`` (x, y) in level-0 pixels, ``size`` (w, h) in the level's
        pixels. Parts outside the image are zero (OpenSlide pads with transparent black)."""
        if not 0 <= int(level) < self.level_count:
            raise LigInputError(f"level {level} outside 0..{self.level_count - 1} (the pyramid halves until the "
                                "longer side is under 512 px; any other scale: read(scale=..., region=...))")
        d = self.level_downsamples[int(level)]
        w, h = (int(v) for v in size)
        if w <= 0 or h <= 0:
            raise LigInputError(f"size {size!r} must be positive")
        ow, oh = self.level_dimensions[int(level)]
        x = math.floor(location[0] / d)
        y = math.floor(location[1] / d)
        out = np.zeros((h, w, self.header.channels), self.dtype)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, ow), min(y + h, oh)
        if x0 < x1 and y0 < y1:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = self.read(1 / d, (x0, y0, x1 - x0, y1 - y0))
        return out

    def __getitem__(self, key):
        """numpy-style reads: ``img[y0:y1, x0:x1]`` decodes only that window; a step,
        ``img[::4, ::4]``, renders at scale 1/4 (anti-aliased, like a box-averaged image), not
        decoded-then-subsampled. Both spatial steps must be equal, and a start must be a multiple
        of the step (output pixel i covers the full-resolution rows ``[i * step, (i + 1) * step)``);
        integers pick one row/column; a third index selects channels; ``...`` works as in numpy.
        Indices out of range raise :class:`LigIndexError` (an ``IndexError``)."""
        key = _full_key(key)
        h, w = self.header.height, self.header.width
        (y0, y1, sy, sq_rows), (x0, x1, sx, sq_cols) = (_span(key[0], h, "rows"), _span(key[1], w, "columns"))
        if sy != sx:
            raise LigInputError(f"row step {sy} and column step {sx} differ; use one step for both, e.g. "
                                f"img[::{max(sy, sx)}, ::{max(sy, sx)}]")
        for start, stop, step, name in ((y0, y1, sy, "row"), (x0, x1, sx, "column")):
            if start % step and start < stop:
                raise LigInputError(f"{name} start {start} is not a multiple of the step {step}: a strided read "
                                    f"renders at scale 1/{step}, whose pixels cover blocks of {step} starting at "
                                    f"multiples of {step}; use a start that is one, or read(scale, region)")
        try:
            channels = np.arange(self.header.channels)[key[2]]
        except IndexError as e:
            raise LigIndexError(f"channel index {key[2]!r}: {e}") from None
        n_rows, n_cols = len(range(y0, y1, sy)), len(range(x0, x1, sx))
        ow, oh = output_size(w, h, 1 / sy)
        r0, c0 = y0 // sy, x0 // sx
        rows, cols = min(n_rows, oh - r0), min(n_cols, ow - c0)
        if n_rows and n_cols and (rows, cols) == (n_rows, n_cols):
            out = self.read(1 / sy, (c0, r0, cols, rows))  # the usual case: no copy (fresh pages are slow)
        else:  # a window that runs past the image (a stop past the end of a strided read)
            out = np.zeros((n_rows, n_cols, self.header.channels), self.dtype)
            if n_rows and n_cols:
                out[:rows, :cols] = self.read(1 / sy, (c0, r0, cols, rows))
        if not np.array_equal(channels, np.arange(self.header.channels)):
            out = out[:, :, channels]
        if sq_cols:
            out = out[:, 0]
        if sq_rows:
            out = out[0]
        return out

    @property
    def ndim(self) -> int:
        return 3

    @property
    def size(self) -> int:
        return self.header.height * self.header.width * self.header.channels

    def __len__(self) -> int:
        return self.header.height

    def __array__(self, dtype=None, copy=None):
        a = self.read()
        return a if dtype is None else a.astype(dtype)

    # ------------------------------------------------------------------------ internals
    def _apply_alpha(self, out, s, region):
        """Section 8: exact 0 / 1 alpha where the source was, from the tiles' masks."""
        ow, oh = output_size(self.header.width, self.header.height, s)
        reg = (0, 0, ow, oh) if region is None else tuple(int(v) for v in region)
        for t, rect, box in self.model.owned_rects(s, reg):
            apply_mask(out[:, :, -1], self._mask(t, box), s, box, rect, reg[:2])

    def _mask(self, t, box):
        with self._lock:
            if t in self._masks:
                self._masks.move_to_end(t)
                return self._masks[t]
        X0, Y0, X1, Y1 = box
        m = read_mask(self._reader.alpha_chunk(t), X1 - X0, Y1 - Y0, f"alpha mask of tile {t}")
        with self._lock:
            self._masks[t] = m
            # Keep at most ~64 MB of decoded class maps (a 4096-px tile's is 16 MB).
            while len(self._masks) > 1 and sum(getattr(v, "nbytes", 0) for v in self._masks.values()) > 64 << 20:
                self._masks.popitem(last=False)
        return m

    def _tile(self, level: int, tile: int) -> Gaussians:
        means, chol, cols, _ = self._gather([tile], [level])
        return Gaussians(means, chol, cols)

    def _gather(self, tiles, levels):
        """:meth:`Model.gather` for the file: cached tiles from the cache, the rest decoded in one
        parallel batch (:func:`ligcodec.codec.batch.decode_chunks`)."""
        if self._reader.closed:
            raise LigInputError(f"{self.path} is closed: read inside its `with` block, or open it again")
        keys = [(lvl, t) for t in tiles for lvl in levels]
        with self._lock:
            have = {}
            for k in keys:
                if k in self._cache:
                    self._cache.move_to_end(k)
                    have[k] = self._cache[k]
        missing = [k for k in keys if k not in have]
        # Decoded outside the lock, so that concurrent reads (a tile server's threads) decode in
        # parallel; two reads that miss the same tile both decode it, to the same values.
        batch = self._decode_many(missing) if missing else None
        new = {}
        if batch is not None:
            means, chol, cols, first = batch
            for i, k in enumerate(missing):
                new[k] = (first[i], first[i + 1])
            # Keep copies (views would pin the whole batch) of the tiles of small reads: regions,
            # a server's tiles. A batch of more than half the cache is part of a read that sweeps
            # the image (img[::4, ::4]), which would only churn the cache: the copies cost ~10 %
            # of such a read (64 MP mosaic, 1/4).
            n = len(missing) if len(missing) <= self._cache_size // 2 else 0
            kept = [(k, Gaussians(means[first[i]:first[i + 1]].copy(), chol[first[i]:first[i + 1]].copy(),
                                  cols[first[i]:first[i + 1]].copy())) for i, k in enumerate(missing[:n])]
            with self._lock:
                for k, g in kept:
                    self._cache[k] = g
                    self._cache.move_to_end(k)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        counts = np.array([(new[k][1] - new[k][0]) if k in new else len(have[k]) for k in keys], np.int64)
        seg = np.zeros(len(tiles) + 1, np.int64)
        seg[1:] = np.cumsum(counts.reshape(len(tiles), len(levels)).sum(1))
        if not have:
            return means, chol, cols, seg  # the batch is already in key order
        parts = [have[k] if k in have else Gaussians(*(a[new[k][0]:new[k][1]] for a in (means, chol, cols)))
                 for k in keys]
        return (np.concatenate([g.means for g in parts]), np.concatenate([g.chol for g in parts]),
                np.concatenate([g.colours for g in parts]), seg)

    def _decode_many(self, keys):
        """Read and decode the chunks ``keys = [(level, tile)]``: flat ``(means, chol, colours,
        first [K + 1])``, chunk ``i`` in rows ``first[i]:first[i + 1]``."""
        h, r = self.header, self._reader
        chunks = [r.chunk(lvl, t) for lvl, t in keys]
        counts = np.array([r.entry(lvl, t).count for lvl, t in keys], np.int64)
        lens = np.array([len(c) for c in chunks], np.int64)
        ends = np.cumsum(lens)
        first = np.zeros(len(keys) + 1, np.int64)
        first[1:] = np.cumsum(counts)
        n = int(first[-1])
        means = np.empty((n, 2), np.float64)
        chol = np.empty((n, 3), np.float64)
        cols = np.empty((n, h.channels), np.float32)
        status = np.zeros(len(keys), np.int8)
        detail = np.zeros((len(keys), 4), np.int64)
        layout = chunk_layout(r.prefix.major, r.prefix.minor)  # spec section 4
        decode_chunks(np.frombuffer(b"".join(chunks), np.uint8), ends - lens, ends, counts, first,
                      np.array([self._origins[t] for _, t in keys], np.int64).reshape(-1, 2),
                      float(h.pos_step), np.asarray(h.chol_step, np.float64),
                      np.array([h.colour_step[lvl] for lvl, _ in keys], np.float64).reshape(len(keys), h.channels),
                      *colour_mix(h), h.tile, layout, means, chol, cols, status, detail)
        for i in np.flatnonzero(status != OK):
            lvl, t = keys[i]
            where = f"tile {t}, level {lvl}"
            if status[i] in LIMIT_MESSAGES:
                raise LigFormatError(f"{where}: chunk at byte {r.entry(lvl, t).offset} is refused: "
                                     f"{LIMIT_MESSAGES[status[i]]} (spec section 4); the file is corrupt or forged")
            raise LigFormatError(f"{where}: chunk at byte {r.entry(lvl, t).offset}: "
                                 f"{chunk_problem(detail[i], int(lens[i]))}")
        return means, chol, cols, first

    def aszarr(self, *, chunk: int = 256, axes: str = "cyx", name: str | None = None):
        """A read-only zarr v3 store of the image as an OME-NGFF multiscale pyramid, each chunk
        rendered on demand (see :func:`ligcodec.zarr_store.aszarr`): ``zarr.open_group(store)``,
        ``dask.array.from_zarr(store, component="0")``, napari."""
        from .zarr_store import aszarr

        return aszarr(self, chunk=chunk, axes=axes, name=name)

    @property
    def bytes_read(self) -> int:
        return self._reader.bytes_read

    def close(self):
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        h = self.header
        return (f"<LigImage {self.path} {h.width}x{h.height}x{h.channels} {h.bit_depth}-bit, {h.levels} Gaussian "
                f"level(s), {self.level_count} pyramid level(s)>")


def _full_key(key) -> tuple:
    """A numpy-style index as ``(rows, columns, channels)``, ``...`` expanded."""
    if not isinstance(key, tuple):
        key = (key,)
    if sum(k is Ellipsis for k in key) > 1:
        raise LigIndexError(f"index {key!r}: an index can only have a single ellipsis ('...')")
    if any(k is Ellipsis for k in key):
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
    if len(key) > 3:
        raise LigIndexError(f"index {key!r}: too many indices; the image has 3 dimensions (rows, columns, "
                            "channels)")
    return key + (slice(None),) * (3 - len(key))


def _span(k, size: int, name: str) -> tuple[int, int, int, bool]:
    """``(start, stop, step, squeeze)`` of one spatial index (an integer picks one, squeezed)."""
    squeeze = isinstance(k, (int, np.integer))
    if squeeze:
        i = int(k) + (size if k < 0 else 0)
        if not 0 <= i < size:
            raise LigIndexError(f"{name} index {k} out of range for size {size}")
        k = slice(i, i + 1)
    if not isinstance(k, slice):
        raise LigInputError(f"{name} index {k!r}: only integers and slices are supported")
    start, stop, step = k.indices(size)
    if step < 1:
        raise LigInputError(f"{name} slice {k!r}: steps must be positive")
    return start, stop, step, squeeze


def open(path, **kwargs) -> LigImage:  # noqa: A001 - the conventional name
    return LigImage(path, **kwargs)


def decode(path, scale=1.0, region=None, levels=None) -> np.ndarray:
    """Decode a ``.lig`` file (or a window of it) at ``scale`` into a uint8/uint16 array."""
    check_scale(scale)
    with LigImage(path) as img:
        return img.read(scale, region, levels)
