"""A fitted multi-level model: a grid of independent tiles, each holding its own Gaussians per level.

Rendering rule (what the encoder fits and every decoder reproduces): the image is cut into
``tile x tile`` full-resolution tiles; an output pixel at scale ``s`` belongs to the tile that
contains its centre ``((j + 0.5) / s, (i + 0.5) / s)``, and its value is the sum, over the levels
rendered, of that tile's Gaussians only (see :mod:`ligcodec.render.contract`). Tiles therefore
never interact: each can be fitted, stored, decoded and cached on its own, and a region read
touches only the tiles it overlaps. Gaussians may sit a little outside their tile; they are
simply clipped to it. A 2.3 file's border filter (``deblock``, :mod:`ligcodec.render.deblock`)
then smooths the seams between tiles; a read renders the few pixels around its region it needs.

Levels: level 0 is fitted to the image area-downsampled by 2 (its Gaussians live in full-res
pixels and are fitted by rendering at scale 1/2), level 1 to the full-resolution residual. A
progressive encode fits a bigger level 0 at 1/4, which then stands alone at scales up to 1/4
(:meth:`Model.default_levels`).

No torch here: decoding needs numpy and numba only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from .errors import LigFormatError, LigInputError, LigSizeError
from .limits import MAX_IN_MEMORY_PIXELS
from .render import Gaussians
from .render.contract import check_region, check_scale, output_size
from .render.deblock import across_columns, across_rows, deblock, filter_width, halo
from .render.decoder import draw


#: Most Gaussians :meth:`Model.render` gathers and projects at once (~200 bytes each while
#: rendering): what bounds a read's memory on images of any size. Smaller groups also keep the
#: decoded and projected arrays of a whole-image read nearer the caches (bench/large.py: 2^18 was
#: the fastest of 2^14-2^20 at scales 1 and 1/4; BENCHMARKS.md).
GROUP_GAUSSIANS = 1 << 18


def _groups(owned, counts):
    """``[(a, b)]``: slices of ``owned`` (row-major tiles) for :meth:`Model.render`, each whole rows
    of tiles of at most :data:`GROUP_GAUSSIANS` in all, or a run within one row that alone holds
    more. Either way a group's rectangles tile its bounding rectangle (the banded draw needs it)."""
    rows, a = [], 0
    for i in range(1, len(owned) + 1):
        if i == len(owned) or owned[i][2][1] != owned[a][2][1]:  # a new row of tiles starts at i
            rows.append((a, i))
            a = i
    out, cur, total = [], None, 0
    for a, b in rows:
        n = sum(counts[a:b])
        if cur is not None and total + n <= GROUP_GAUSSIANS:
            cur, total = (cur[0], b), total + n
            continue
        if cur is not None:
            out.append(cur)
        cur, total = (a, b), n
        if n > GROUP_GAUSSIANS:  # a row alone is too many: runs of it
            start, total = a, 0
            for i in range(a, b):
                if i > start and total + counts[i] > GROUP_GAUSSIANS:
                    out.append((start, i))
                    start, total = i, 0
                total += counts[i]
            out.append((start, b))  # not merged with the next row: runs stay within their row
            cur, total = None, 0
    if cur is not None:
        out.append(cur)
    return out


def tile_grid(width: int, height: int, tile: int):
    """Yield ``(index, x0, y0, x1, y1)`` of the full-res tiles, row-major."""
    nx = math.ceil(width / tile)
    ny = math.ceil(height / tile)
    for ty in range(ny):
        for tx in range(nx):
            yield ty * nx + tx, tx * tile, ty * tile, min(width, (tx + 1) * tile), min(height, (ty + 1) * tile)


def tile_output_span(a: int, b: int, scale: float, side: int) -> tuple[int, int]:
    """Output pixels ``[lo, hi)`` that the tile spanning full-res ``[a, b)`` of an image side of
    ``side`` pixels owns at ``scale``: those whose centres ``(j + 0.5) / scale`` fall in
    ``[a, b)``, and for the last tile (``b == side``) every pixel up to the output's edge, whose
    centre may lie past the image when ``side * scale`` is not whole (spec section 6)."""
    # (j + 0.5)/s >= a  <=>  j >= a*s - 0.5; rounding guards 0.25 * 256 - 0.5 style products.
    lo = math.ceil(round(a * scale - 0.5, 9))
    if b >= side:
        return lo, output_size(side, 1, scale)[0]
    return lo, math.ceil(round(b * scale - 0.5, 9))


@dataclass
class Model:
    """An unquantised multi-level model. ``levels[l][t]`` is tile ``t``'s Gaussians of level ``l``
    in absolute full-resolution pixel coordinates."""

    width: int
    height: int
    channels: int
    tile: int
    levels: list  # [L][T] Gaussians
    info: dict = field(default_factory=dict)
    level0_scale: float | None = None  # see default_levels
    deblock: tuple | None = None  # (K, T): the border filter of spec section 6 (2.3 files); None: none

    @property
    def n_tiles(self) -> int:
        return math.ceil(self.width / self.tile) * math.ceil(self.height / self.tile)

    @property
    def n_gaussians(self) -> int:
        return sum(len(g) for lvl in self.levels for g in lvl)

    def level_counts(self) -> list[int]:
        return [sum(len(g) for g in lvl) for lvl in self.levels]

    def default_levels(self, scale: float) -> list[int]:
        """The levels a read at ``scale`` renders when it names none: level 0 alone at scales up to
        :attr:`level0_scale` (a progressive file's level 0 was fitted to stand alone there, so the
        read needs only level-0 bytes), otherwise all of them. In a default file level 0 is small
        and does not stand alone (measured ~10 dB worse than both levels at 1/4, BENCHMARKS.md);
        ``levels=[0]`` still gives it as a quick preview."""
        if self.level0_scale is not None and scale <= self.level0_scale * (1 + 1e-9):
            return [0]
        return list(range(len(self.levels)))

    def render(self, scale=1.0, region=None, levels=None, out=None) -> np.ndarray:
        """``[h, w, C]`` float32 render (unclamped) at ``scale`` of ``region = (x, y, w, h)`` in
        output pixels, into ``out`` if given (every pixel is written). Only the tiles that
        overlap the region are rendered (and with :attr:`deblock`, those within a few pixels of it)."""
        s = check_scale(scale)
        ow, oh = output_size(self.width, self.height, s)
        x0, y0, w, h = check_region(region, ow, oh)
        levels = self.default_levels(s) if levels is None else self._check_levels(levels)
        if out is None:
            out = np.empty((h, w, self.channels), np.float32)
        elif out.shape != (h, w, self.channels) or out.dtype != np.float32:
            raise LigInputError(f"out has shape {out.shape} and dtype {out.dtype}; the render needs "
                                f"{(h, w, self.channels)} float32")
        k = self.filter_width(s)
        if not k:
            return self._draw(s, (x0, y0, w, h), levels, out)
        # The border filter needs pixels around the region: render them too (into ``out`` when
        # there are none to add, as for a whole image), filter, keep the region.
        px0, py0, pw, ph = grown = self.drawn_region(s, (x0, y0, w, h))
        buf = out if grown == (x0, y0, w, h) else np.empty((ph, pw, self.channels), np.float32)
        self._draw(s, grown, levels, buf)
        deblock(buf, self.border_starts(s, px0, pw, horizontal=True),
                self.border_starts(s, py0, ph, horizontal=False), k, float(self.deblock[1]))
        if buf is not out:
            out[...] = buf[y0 - py0 : y0 - py0 + h, x0 - px0 : x0 - px0 + w]
        return out

    def render_strips(self, scale, region, levels, strips):
        """:meth:`render` of ``region`` (inside the output) one strip of rows at a time: yields
        ``(a, b, rows)``, the render of rows ``[a, b)`` of the region (float32, unclamped; valid
        until the next step), in order and covering it. ``strips``: ``[(a, b)]`` cut where a row
        of tiles starts owning pixels (:meth:`LigImage._strips`). The same pixels as one render.

        With the border filter, a strip rendered alone would also draw the filter's halo rows,
        and with them the Gaussians of a whole row of tiles above and below it (BENCHMARKS.md,
        "border filter"). Instead each strip's last rows wait, unfiltered across the next
        border, for the next strip, which is drawn after them."""
        s = check_scale(scale)
        k, (x0, y0, w, h) = self.filter_width(s), region
        m = halo(k)
        if not k or len(strips) == 1 or math.floor(self.tile * s) < 2 * m + 2:
            # No filter, one strip, or tiles so small that one border's rows could reach the next
            # (a strip then carries its halo; never for the encoder's files above scale 1/4).
            buf = np.empty((max(b - a for a, b in strips), w, self.channels), np.float32)
            for a, b in strips:
                yield a, b, self.render(s, (x0, y0 + a, w, b - a), levels, out=buf[: b - a])
            return
        levels = self.default_levels(s) if levels is None else self._check_levels(levels)
        gx0, gy0, gw, gh = self.drawn_region(s, region)
        top = y0 - gy0  # halo rows above the region (those below grow the last strip)
        cuts = [0] + [a + top for a, _ in strips[1:]] + [gh]
        work = np.empty((m + max(b - a for a, b in pairwise(cuts)), gw, self.channels), np.float32)
        cols, carry, T = self.border_starts(s, gx0, gw, horizontal=True), 0, float(self.deblock[1])
        for i, (ga, gb) in enumerate(pairwise(cuts)):
            n = gb - ga
            self._draw(s, (gx0, gy0 + ga, gw, n), levels, work[carry : carry + n])
            across_columns(work[carry : carry + n], cols, k, T)
            # Borders whose four rows are all here, the one at this strip's first row included; the
            # one at its end waits: it starts the next strip.
            across_rows(work[: carry + n], self.border_starts(s, gy0 + ga - carry, carry + n, horizontal=False), k, T)
            keep = min(m, carry + n) if i < len(cuts) - 2 else 0
            lo, done = ga - carry, carry + n - keep  # work[:done] is final: grown rows [lo, lo + done)
            ra, rb = max(lo, top), min(lo + done, top + h)
            if ra < rb:
                yield ra - top, rb - top, work[ra - lo : rb - lo, x0 - gx0 : x0 - gx0 + w]
            work[:keep] = work[done : done + keep].copy()
            carry = keep

    def filter_width(self, s: float) -> int:
        """The border filter's half-width at scale ``s`` in output pixels (0: no filter)."""
        return filter_width(self.deblock[0], s) if self.deblock else 0

    def drawn_region(self, s: float, region) -> tuple:
        """What a render of ``region`` (inside the output at scale ``s``) draws: the region and
        the pixels around it that the border filter reads (none without a filter)."""
        x0, y0, w, h = region
        pad = halo(self.filter_width(s))
        ow, oh = output_size(self.width, self.height, s)
        px0, py0 = max(0, x0 - pad), max(0, y0 - pad)
        return px0, py0, min(ow, x0 + w + pad) - px0, min(oh, y0 + h + pad) - py0

    def tiles_drawn(self, s: float, region) -> list[int]:
        """The tiles a render of ``region`` at scale ``s`` draws (and decodes, unless cached)."""
        return sorted(t for t, *_ in self.owned_rects(s, self.drawn_region(s, tuple(region))))

    def border_starts(self, s: float, a: int, n: int, horizontal: bool) -> list[int]:
        """Where tile borders fall in output pixels ``[a, a + n)`` along x (``horizontal``) or y at
        scale ``s``: the first pixel each tile column (row) after the first owns, less ``a``."""
        side = self.width if horizontal else self.height
        T, count = self.tile, math.ceil(side / self.tile)
        first, last = max(1, int(a / s // T)), min(count - 1, int((a + n) / s // T) + 1)
        return [tile_output_span(t * T, min(side, (t + 1) * T), s, side)[0] - a for t in range(first, last + 1)]

    def _draw(self, s: float, region, levels, out) -> np.ndarray:
        """The render of ``region`` (inside the output) into ``out``, before the border filter."""
        x0, y0 = region[:2]
        owned = self.owned_rects(s, region)
        if not owned:  # an empty region; otherwise every pixel is owned by one tile and written
            out[...] = 0
            return out
        # All tiles and levels in one draw (see render/decoder.py), in groups of tiles of at most
        # GROUP_GAUSSIANS: a small read of a huge image (1/128 of a gigapixel) otherwise held
        # every Gaussian of the image at once (3.5 GB). Each pixel belongs to one tile, so the
        # groups change no pixel.
        counts = self.tile_counts([t for t, *_ in owned], levels)
        for a, b in _groups(owned, counts):
            group = owned[a:b]
            means, chol, colours, seg = self.gather([t for t, *_ in group], levels)
            draw(means, chol, colours, seg, np.array([r for _, r, _ in group], np.int64), s, x0, y0, out)
        return out

    def tile_counts(self, tiles, levels) -> list[int]:
        """Gaussians of each tile over ``levels`` (a lazy model reads them from the index)."""
        return [sum(len(self.levels[lvl][t]) for lvl in levels) for t in tiles]

    def owned_rects(self, s: float, region) -> list:
        """``[(tile, (x0, y0, x1, y1), (X0, Y0, X1, Y1))]``: the output pixels (half-open, inside
        ``region = (x, y, w, h)``) each tile owns at scale ``s``, and its full-res rectangle; tiles
        owning nothing there are left out."""
        x0, y0, w, h = region
        out = []
        for t, X0, Y0, X1, Y1 in self._tiles_near(region, s):
            cx0, cx1 = tile_output_span(X0, X1, s, self.width)
            cy0, cy1 = tile_output_span(Y0, Y1, s, self.height)
            rx0, rx1 = max(cx0, x0), min(cx1, x0 + w)
            ry0, ry1 = max(cy0, y0), min(cy1, y0 + h)
            if rx0 < rx1 and ry0 < ry1:
                out.append((t, (rx0, ry0, rx1, ry1), (X0, Y0, X1, Y1)))
        return out

    def _check_levels(self, levels) -> list[int]:
        try:
            out = [int(v) for v in levels]
        except (TypeError, ValueError):
            out = None
        if not out or len(set(out)) != len(out) or not all(0 <= v < len(self.levels) for v in out):
            raise LigInputError(f"levels {levels!r}: give distinct levels from 0..{len(self.levels) - 1}, "
                                "e.g. [0] for the coarse preview")
        return sorted(out)

    def gather(self, tiles, levels):
        """The Gaussians of ``tiles``, each tile's ``levels`` in order, as flat arrays:
        ``(means [N, 2] float64, chol [N, 3] float64, colours [N, C] float32, seg [T + 1])`` with
        tile ``tiles[i]``'s rows ``seg[i]:seg[i + 1]``. A lazy model overrides this to decode
        what it lacks in one batch."""
        parts = [[self.levels[lvl][t] for lvl in levels] for t in tiles]
        seg = np.zeros(len(parts) + 1, np.int64)
        seg[1:] = np.cumsum([sum(len(g) for g in gs) for gs in parts])
        flat = [g for gs in parts for g in gs if len(g)]
        if not flat:
            return np.zeros((0, 2)), np.zeros((0, 3)), np.zeros((0, self.channels), np.float32), seg
        means = np.concatenate([g.means for g in flat]).astype(np.float64, copy=False)
        chol = np.concatenate([g.chol for g in flat]).astype(np.float64, copy=False)
        colours = np.concatenate([g.colours for g in flat]).astype(np.float32, copy=False)
        return means, chol, colours, seg

    def _tiles_near(self, region, s):
        """The tiles that may own pixels of ``region`` (a superset; callers clip exactly), without
        walking the whole grid: a small read of a huge image costs only its own tiles."""
        x0, y0, w, h = region
        T, nx = self.tile, math.ceil(self.width / self.tile)
        ny = math.ceil(self.height / self.tile)
        tx0, tx1 = max(0, int(x0 / s // T) - 1), min(nx, int((x0 + w) / s // T) + 2)
        ty0, ty1 = max(0, int(y0 / s // T) - 1), min(ny, int((y0 + h) / s // T) + 2)
        for ty in range(ty0, ty1):
            for tx in range(tx0, tx1):
                yield (ty * nx + tx, tx * T, ty * T, min(self.width, (tx + 1) * T), min(self.height, (ty + 1) * T))

    # ------------------------------------------------------------------ research format (.npz)
    def save(self, path) -> None:
        arrays = {}
        for li, lvl in enumerate(self.levels):
            counts = np.array([len(g) for g in lvl], np.int64)
            arrays[f"l{li}_counts"] = counts
            for name in ("means", "chol", "colours"):
                parts = [getattr(g, name) for g in lvl]
                arrays[f"l{li}_{name}"] = np.concatenate(parts) if parts else np.zeros((0,))
        meta = dict(width=self.width, height=self.height, channels=self.channels, tile=self.tile,
                    n_levels=len(self.levels), info=self.info, format="ligcodec-model-npz", version=1)
        np.savez_compressed(path, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)

    @classmethod
    def load(cls, path) -> "Model":
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta.get("format") != "ligcodec-model-npz":
                    raise LigFormatError(f"{path}: not a ligcodec model (.npz written by Model.save)")
                levels = []
                for li in range(meta["n_levels"]):
                    counts = z[f"l{li}_counts"]
                    ends = np.cumsum(counts)
                    m, c, k = (z[f"l{li}_{n}"] for n in ("means", "chol", "colours"))
                    k = k.reshape(-1, meta["channels"])
                    levels.append([Gaussians(m[e - n : e], c[e - n : e], k[e - n : e]) for n, e in zip(counts, ends)])
        except (KeyError, ValueError, OSError) as e:
            if isinstance(e, LigFormatError):
                raise
            raise LigFormatError(f"{path}: cannot read model: {e}") from None
        return cls(meta["width"], meta["height"], meta["channels"], meta["tile"], levels, meta.get("info", {}))




def as_float(a: np.ndarray) -> np.ndarray:
    """uint8/uint16 samples (or floats in [0, 1]) as float32 in [0, 1]: the one conversion of
    samples to the values the fit sees, for in-memory images and streamed sources alike."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    return a.astype(np.float32, copy=False)


def to_float_image(image) -> tuple[np.ndarray, int]:
    """``(float32 [H, W, C] in [0, 1], bit depth)`` from a uint8/uint16/float array [H, W(, C)]."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] < 1 or a.shape[2] > 4:
        raise LigInputError(f"image must be [H, W] or [H, W, C] with 1 to 4 channels, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise LigInputError(f"image is empty: shape {a.shape}")
    if a.shape[0] * a.shape[1] > MAX_IN_MEMORY_PIXELS:
        raise LigSizeError(
            f"image of {a.shape[1]}x{a.shape[0]} pixels exceeds the in-memory encoder's limit of "
            f"{MAX_IN_MEMORY_PIXELS} pixels; give a tiled TIFF (its path) to ligcodec.encode, which streams it tile by tile"
        )
    if a.dtype in (np.uint8, np.uint16):
        return as_float(a), 8 * a.dtype.itemsize
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise LigInputError("image contains NaN or inf values")
        return np.clip(a, 0, 1).astype(np.float32), 32
    raise LigInputError(f"unsupported image dtype {a.dtype}: use uint8, uint16 or float in [0, 1]")
