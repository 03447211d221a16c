"""IIIF Image API 3.0 request parsing and read planning: no web framework here.

A request ``{region}/{size}/{rotation}/{quality}.{format}`` becomes a :class:`Request`: the region
in full-resolution pixels, the output size, the rotation and mirroring, the quality and format.
:func:`plan_read` then turns region + size into the one ``LigImage.read(scale, region)`` call
that serves it:

* **exact** when some scale ``s`` maps the region onto whole output pixels of the render at ``s``
  with exactly the requested size (every tile request of a viewer, ``full``/``max``, ``pct:n``
  of the whole image, ``w,`` / ``,h`` that keep the aspect ratio at a scale the image divides
  into, upscaling with ``^``): the response is ``read(s, window)``, bit for bit;
* **resampled** otherwise (a region that starts between output pixels, or ``w,h`` that change
  the aspect ratio): the covering window is rendered at the *larger* of the two implied scales
  (so no axis is rendered below the requested resolution) and resampled to the requested size
  with Pillow (bicubic, on floats, per channel), then rounded like ``read``.

Sizes computed by the server (the other side of ``w,``, ``,h``, ``pct:n``, ``!w,h``) round up,
like :func:`ligcodec.render.contract.output_size` and OpenSeadragon: the size of the whole image
at scale 1/2^k is ``ceil(W / 2^k) x ceil(H / 2^k)`` everywhere (info.json's ``sizes``, Deep Zoom
levels, these requests).

Errors are :class:`IIIFError` with the HTTP status IIIF asks for: 400 for a malformed or
impossible request, 501 for a valid request of a feature this server does not implement.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: Formats and qualities this server renders; the other IIIF names are valid requests that get 501.
FORMATS = ("png", "jpg", "webp")
IIIF_FORMATS = {"tif", "gif", "pdf", "jp2"}
QUALITIES = ("default", "color", "gray")
IIIF_QUALITIES = {"bitonal"}
#: Features beyond level 1 that this server supports (info.json ``extraFeatures``).
EXTRA_FEATURES = ["regionByPct", "sizeByPct", "sizeByConfinedWh", "sizeUpscaling", "rotationBy90s", "mirroring"]

_INT = r"(?:0|[1-9][0-9]*)"
_NUM = r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
_PX_REGION = re.compile(rf"^({_INT}),({_INT}),({_INT}),({_INT})$")
_PCT_REGION = re.compile(rf"^pct:({_NUM}),({_NUM}),({_NUM}),({_NUM})$")
_WH = re.compile(rf"^(!)?({_INT})?,({_INT})?$")
_PCT_SIZE = re.compile(rf"^pct:({_NUM})$")
_ROTATION = re.compile(rf"^(!)?({_NUM})$")
_EPS = 1e-6


class IIIFError(Exception):
    """A request the server refuses: ``status`` (400, 404, 501) and a one-line ``reason``."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _bad(reason: str):
    raise IIIFError(400, reason)


def _ceil(v: float) -> int:
    """``ceil`` that ignores float dust (0.25 * 1024 -> 256), as output_size does."""
    return math.ceil(round(v, 6))


@dataclass(frozen=True)
class Request:
    region: tuple  # (x0, y0, x1, y1) full-resolution pixels, inside the image (floats for pct:)
    size: tuple  # (w, h) output pixels before rotation
    rotation: int  # 0, 90, 180, 270 (clockwise)
    mirror: bool
    quality: str
    format: str


def parse_region(text: str, width: int, height: int) -> tuple:
    """``full | square | x,y,w,h | pct:x,y,w,h`` -> ``(x0, y0, x1, y1)`` clipped to the image."""
    if text == "full":
        return (0, 0, width, height)
    if text == "square":
        side = min(width, height)
        x, y = (width - side) // 2, (height - side) // 2
        return (x, y, x + side, y + side)
    m = _PX_REGION.match(text)
    if m:
        x, y, w, h = (int(v) for v in m.groups())
    else:
        m = _PCT_REGION.match(text)
        if not m:
            _bad(f"region {text!r}: expected full, square, x,y,w,h (integers) or pct:x,y,w,h")
        px, py, pw, ph = (float(v) for v in m.groups())
        if px > 100 or py > 100 or pw > 100 or ph > 100:
            _bad(f"region {text!r}: percentages must be at most 100")
        x, y, w, h = px * width / 100, py * height / 100, pw * width / 100, ph * height / 100
    if w <= 0 or h <= 0:
        _bad(f"region {text!r}: width and height must be greater than 0")
    if x >= width or y >= height:
        _bad(f"region {text!r} lies outside the image ({width}x{height})")
    return (x, y, min(x + w, width), min(y + h, height))


def parse_size(text: str, region: tuple, max_pixels: int) -> tuple:
    """``max | w, | ,h | w,h | !w,h | pct:n`` and their ``^`` forms -> output ``(w, h)``."""
    rw, rh = region[2] - region[0], region[3] - region[1]
    # The region's own size in whole pixels (a pct: region may end between pixels).
    nw, nh = max(1, _ceil(rw)), max(1, _ceil(rh))
    up = text.startswith("^")
    body = text[1:] if up else text
    if body == "max":
        w, h = nw, nh
        if w * h > max_pixels:  # max means "as large as the server allows" (info.json maxArea)
            s = math.sqrt(max_pixels / (rw * rh))
            w, h = max(1, min(nw, math.floor(rw * s))), max(1, min(nh, math.floor(rh * s)))
        return w, h
    if body == "full":
        _bad("size 'full' is Image API 2; version 3 calls it 'max'")
    m = _PCT_SIZE.match(body)
    if m:
        n = float(m.group(1))
        if n <= 0:
            _bad(f"size {text!r}: the percentage must be greater than 0")
        if n > 100 and not up:
            _bad(f"size {text!r}: above 100% needs the upscaling form ^pct:{m.group(1)}")
        w, h = max(1, _ceil(rw * n / 100)), max(1, _ceil(rh * n / 100))
    else:
        m = _WH.match(body)
        if not m or (m.group(2) is None and m.group(3) is None):
            _bad(f"size {text!r}: expected max, w,, ,h, w,h, !w,h or pct:n (each optionally with ^)")
        confined, sw, sh = m.group(1), m.group(2), m.group(3)
        sw = None if sw is None else int(sw)
        sh = None if sh is None else int(sh)
        if sw == 0 or sh == 0:
            _bad(f"size {text!r}: width and height must be greater than 0")
        if confined:
            if sw is None or sh is None:
                _bad(f"size {text!r}: !w,h needs both w and h")
            s = min(sw / rw, sh / rh)
            if not up:
                s = min(s, 1.0)
            w, h = min(sw, max(1, _ceil(rw * s))), min(sh, max(1, _ceil(rh * s)))
        elif sw is not None and sh is not None:
            w, h = sw, sh
        elif sw is not None:
            w, h = sw, max(1, _ceil(rh * sw / rw))
        else:
            w, h = max(1, _ceil(rw * sh / rh)), sh
        if not up and (w > nw or h > nh):
            _bad(f"size {text!r} is larger than the region ({nw}x{nh}); use the upscaling form ^{body}")
    if w * h > max_pixels:
        _bad(f"size {text!r}: {w}x{h} is {w * h} pixels, above this server's limit of {max_pixels} (info.json "
             "maxArea); request a smaller region or size")
    return w, h


def parse_rotation(text: str) -> tuple:
    m = _ROTATION.match(text)
    if not m:
        _bad(f"rotation {text!r}: expected a number of degrees from 0 to 360, optionally after ! (mirroring)")
    deg = float(m.group(2))
    if deg > 360:
        _bad(f"rotation {text!r}: degrees must be from 0 to 360")
    deg = deg % 360
    if deg not in (0, 90, 180, 270):
        raise IIIFError(501, f"rotation {text!r}: only multiples of 90 degrees are implemented")
    return int(deg), bool(m.group(1))


def parse_quality_format(text: str, channels: int) -> tuple:
    quality, dot, fmt = text.rpartition(".")
    if not dot or not quality:
        _bad(f"{text!r}: expected quality.format, e.g. default.png")
    if fmt not in FORMATS:
        if fmt in IIIF_FORMATS:
            raise IIIFError(501, f"format {fmt!r} is not implemented; use png, jpg or webp")
        _bad(f"format {fmt!r}: not an image format this server knows (png, jpg, webp)")
    if quality not in QUALITIES:
        if quality in IIIF_QUALITIES:
            raise IIIFError(501, f"quality {quality!r} is not implemented; use default, color or gray")
        _bad(f"quality {quality!r}: expected default, color or gray")
    if quality == "color" and channels < 3:
        _bad(f"quality 'color': this image has {channels} channel(s), no colour; use default or gray")
    return quality, fmt


def parse(region: str, size: str, rotation: str, quality_format: str, width: int, height: int, channels: int,
          max_pixels: int) -> Request:
    """A whole image request, checked in the order IIIF lists the parameters."""
    reg = parse_region(region, width, height)
    wh = parse_size(size, reg, max_pixels)
    rot, mirror = parse_rotation(rotation)
    quality, fmt = parse_quality_format(quality_format, channels)
    return Request(reg, wh, rot, mirror, quality, fmt)


@dataclass(frozen=True)
class Plan:
    """What to render: ``scale``, the output-pixel ``window = (x, y, w, h)`` of the render at that
    scale, and, when not ``exact``, the ``box`` (left, top, right, bottom in window pixels, floats)
    to resample to ``size``."""

    scale: float
    window: tuple
    size: tuple
    exact: bool
    box: tuple | None = None


def _output_side(side: int, s: float) -> int:
    return max(1, _ceil(side * s))


def _exact_span(a0, a1, n, side, s):
    """Output pixels ``[p0, p0 + n)`` at scale ``s`` covering full-res ``[a0, a1)`` exactly, or None."""
    p0 = a0 * s
    if abs(p0 - round(p0)) > _EPS:
        return None
    p0 = round(p0)
    if a1 >= side:
        p1 = _output_side(side, s)  # to the image's edge: the render ends at ceil(side * s)
    else:
        p1 = a1 * s
        if abs(p1 - round(p1)) > _EPS:
            return None
        p1 = round(p1)
    return p0 if p1 - p0 == n else None


def plan_read(width: int, height: int, region: tuple, size: tuple) -> Plan:
    """The read that serves ``region`` (full-res ``x0, y0, x1, y1``) at ``size`` (w, h); see the
    module docstring for exact versus resampled."""
    x0, y0, x1, y1 = region
    w, h = size
    rw, rh = x1 - x0, y1 - y0
    candidates = [w / rw, h / rh]
    for n, r in ((w, rw), (h, rh)):  # power-of-2 scales: tiles at the image's edge end short
        candidates.append(2.0 ** round(math.log2(n / r)))
    seen = set()
    for s in candidates:
        if s in seen or not (s > 0 and math.isfinite(s)):
            continue
        seen.add(s)
        px = _exact_span(x0, x1, w, width, s)
        py = _exact_span(y0, y1, h, height, s) if px is not None else None
        if px is not None and py is not None:
            return Plan(s, (px, py, w, h), (w, h), True)
    s = max(w / rw, h / rh)
    ow, oh = _output_side(width, s), _output_side(height, s)
    wx0, wy0 = min(math.floor(x0 * s + _EPS), ow - 1), min(math.floor(y0 * s + _EPS), oh - 1)
    wx1, wy1 = max(wx0 + 1, min(ow, _ceil(x1 * s))), max(wy0 + 1, min(oh, _ceil(y1 * s)))
    box = (x0 * s - wx0, y0 * s - wy0, min(x1 * s, wx1) - wx0, min(y1 * s, wy1) - wy0)
    return Plan(s, (wx0, wy0, wx1 - wx0, wy1 - wy0), (w, h), False, box)


def scale_factors(width: int, height: int, tile: int) -> list:
    """1, 2, 4, ... up to the first factor at which the whole image fits in one tile."""
    out = [1]
    while _ceil(max(width, height) / out[-1]) > tile:
        out.append(out[-1] * 2)
    return out


def info(base_id: str, width: int, height: int, channels: int, tile: int, max_pixels: int) -> dict:
    """The info.json document (Image API 3.0, level 1 plus :data:`EXTRA_FEATURES`)."""
    factors = scale_factors(width, height, tile)
    sizes = [{"width": _output_side(width, 1 / f), "height": _output_side(height, 1 / f)} for f in reversed(factors)]
    sizes = [s for s in sizes if s["width"] * s["height"] <= max_pixels]
    doc = {
        "@context": "http://iiif.io/api/image/3/context.json",
        "id": base_id,
        "type": "ImageService3",
        "protocol": "http://iiif.io/api/image",
        "profile": "level1",
        "width": width,
        "height": height,
        "maxArea": max_pixels,
        "sizes": sizes,
        "tiles": [{"width": tile, "height": tile, "scaleFactors": factors}],
        "extraFormats": ["png", "webp"],
        "extraQualities": ["color", "gray"] if channels >= 3 else ["gray"],
        "extraFeatures": EXTRA_FEATURES,
    }
    return doc
