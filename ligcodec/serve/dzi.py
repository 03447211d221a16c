"""Deep Zoom (the ``.dzi`` format OpenSeadragon and others read).

Level ``L`` of ``0..max_level`` (``max_level = ceil(log2(max(W, H)))``) is the image at scale
``1 / 2^(max_level - L)``, ``ceil(W / 2^k) x ceil(H / 2^k)`` pixels: exactly the size of
``LigImage.read`` at that scale. Tiles are ``tile x tile`` with **overlap 0**: a tile is one
exact read, ``read(scale, (col * tile, row * tile, w, h))``; at full resolution it covers exactly
one codec tile (when the file's tile is the Deep Zoom tile), so viewing a region decodes only
the codec tiles under it, and the same pixels are served by the IIIF tiles of that scale.
(An overlap of 1 would make every tile read touch up to 9 codec tiles; OpenSeadragon's canvas
drawer draws overlap-0 tiles without seams.)
"""

from __future__ import annotations

import math
from xml.sax.saxutils import quoteattr

from .iiif import IIIFError


def max_level(width: int, height: int) -> int:
    return max(0, math.ceil(math.log2(max(width, height))))


def level_size(width: int, height: int, level: int) -> tuple:
    k = max_level(width, height) - level
    return max(1, math.ceil(width / 2**k)), max(1, math.ceil(height / 2**k))


def descriptor(width: int, height: int, tile: int, fmt: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" TileSize="{tile}" Overlap="0" '
            f'Format={quoteattr(fmt)}><Size Width="{width}" Height="{height}"/></Image>\n')


def tile_read(width: int, height: int, tile: int, level: int, col: int, row: int) -> tuple:
    """``(scale, (x, y, w, h))`` of tile ``col, row`` of ``level``; 404 when there is no such tile."""
    top = max_level(width, height)
    if not 0 <= level <= top:
        raise IIIFError(404, f"Deep Zoom level {level} does not exist (levels 0..{top})")
    lw, lh = level_size(width, height, level)
    x, y = col * tile, row * tile
    if col < 0 or row < 0 or x >= lw or y >= lh:
        raise IIIFError(404, f"Deep Zoom tile {col}_{row} does not exist at level {level} "
                             f"({math.ceil(lw / tile)}x{math.ceil(lh / tile)} tiles)")
    return 1.0 / 2 ** (top - level), (x, y, min(tile, lw - x), min(tile, lh - y))
