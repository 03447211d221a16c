"""The ASGI app of ``ligcodec serve`` (Starlette): IIIF Image API 3.0, Deep Zoom and a viewer.

URLs (``{name}`` is a file's stem):

* ``/`` the files; ``/view/{name}`` an OpenSeadragon viewer (``?iiif=1``, ``?crisp=1``, ``?format=``)
* ``/iiif/3/{name}/info.json`` and ``/iiif/3/{name}/{region}/{size}/{rotation}/{quality}.{format}``
  (``/iiif/3/{name}`` redirects to its info.json)
* ``/dzi/{name}.dzi`` (``?format=jpg|webp`` for other tiles than png) and
  ``/dzi/{name}_files/{level}/{col}_{row}.{png|jpg|webp}``
* ``/static/openseadragon/...`` OpenSeadragon from ``ligcodec/serve/static/node_modules``

Every image response is one ``LigImage.read`` in a worker thread (at most ``threads`` at a time),
with an ETag (the file's checksums and the request) and ``Cache-Control``; ``If-None-Match``
answers 304 without rendering. Each request logs one line on the ``ligcodec.serve`` logger:
method, path, status, milliseconds and, for images, ``file= scale= region= tiles= decoded=
bytes_read=``: the scale rendered, the output-pixel window, the codec tiles the read rendered and
those of them that were not in the cache before it (decoded by this read, unless a concurrent
request decoded them first), and the bytes the file gave up meanwhile (all requests on the file).
Tiles of the coarse levels (see :data:`LEVEL_CACHE_TILES`) add ``level_cache=render`` (this
request rendered the whole level: its tiles are all the level's) or ``level_cache=hit``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from functools import partial
from urllib.parse import quote

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from ..errors import LigError
from ..render.contract import output_size
from . import dzi, iiif, pages, render
from .iiif import IIIFError
from .library import Library

log = logging.getLogger("ligcodec.serve")

#: Largest output of one request (info.json ``maxArea``): 16 MP, 48 MB of RGB.
MAX_PIXELS = 1 << 24
#: A request's render may be larger than its output when it is resampled (w,h that change the
#: aspect ratio render at the larger scale): at most this many times the output limit.
MAX_RENDER_FACTOR = 4
TILE = 256
IIIF_PROFILE = "http://iiif.io/api/image/3/level1.json"
IIIF_CONTEXT = "http://iiif.io/api/image/3/context.json"
#: Pyramid levels (scale 1/2^k) whose whole render has at most this many tiles of pixels are
#: rendered whole on their first request and served from memory: a tile there covers a quarter
#: of the image or more, so it needs most of the file's Gaussians anyway (at 1/32 of a 64 MP image
#: every one of them), and a viewer asks for all of them first thing. Exact: a window of a read is
#: bit for bit the read of that window. At most 4 x 256^2 pixels per level, a few levels per file.
LEVEL_CACHE_TILES = 4


def served_tile_size(file_tile: int) -> int:
    """The served tile: the file's, when it is a power of two from 128 to 1024, so that a
    full-resolution tile is one codec tile; otherwise 256."""
    return file_tile if 128 <= file_tile <= 1024 and file_tile & (file_tile - 1) == 0 else TILE


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = [t.strip() for t in header.split(",")]
    return any(t.removeprefix("W/") == etag for t in tags)


class _LogRequests:
    """One log line per request (pure ASGI, so streaming and 304s are logged alike)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]
        scope.setdefault("state", {})  # shared with the copies of the scope the routes see

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if log.isEnabledFor(logging.INFO):
                fields = scope["state"].get("lig") or {}
                extra = "".join(f" {k}={v}" for k, v in fields.items())
                path = scope.get("path", "")
                if scope.get("query_string"):
                    path += "?" + scope["query_string"].decode("latin-1")
                log.info("%s %s %d ms=%.1f%s", scope.get("method", "-"), path, status[0],
                         (time.perf_counter() - t0) * 1e3, extra)


def _fmt_tiles(tiles) -> str:
    return ",".join(map(str, tiles)) if tiles else "-"


def error_response(e: IIIFError) -> Response:
    """The plain-text answer to a refused request; ``no-store`` so that a fixed file or a
    corrected URL is never shadowed by a cached error."""
    return PlainTextResponse(e.reason + "\n", status_code=e.status, headers={"Cache-Control": "no-store"})


class ImageService:
    """The request handlers of one app and what they share: the library, the limits, the render
    limiter and the OpenSeadragon file server (both made on first use, inside the event loop).

    Each ``async`` method taking a ``Request`` is one route's endpoint (see :func:`create_app`);
    the others are the steps they share, some of them run in a worker thread."""

    def __init__(self, library: Library, *, threads: int, max_pixels: int, max_age: int):
        self.library = library
        self.threads = threads
        self.max_pixels = max_pixels
        self.cache_control = f"public, max-age={int(max_age)}"
        self._limiter = None
        self._osd_files = None

    # ------------------------------------------------------------------------- shared steps
    def limiter(self) -> anyio.CapacityLimiter:
        """At most ``threads`` renders at a time; made on the first render, in the event loop."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
        return self._limiter

    def open_entry(self, name):
        """``(entry, LigImage)`` for ``name``, or the IIIFError (404/500) a client should get."""
        entry = self.library.get(name)
        try:
            return entry, entry.image()
        except FileNotFoundError:
            raise IIIFError(404, f"{name!r} is gone") from None
        except (LigError, OSError) as e:
            raise IIIFError(500, f"{name!r} cannot be read: {e}") from None

    @staticmethod
    def etag_for(entry, *parts) -> str:
        """The file's content tag plus a digest of what the request asked for."""
        h = hashlib.sha1(repr(parts).encode()).hexdigest()[:12]
        return f'"{entry.etag}-{h}"'

    def not_modified(self, request, etag) -> Response | None:
        """A 304 when the client already holds ``etag``; ``None`` when the response must be made."""
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": self.cache_control})
        return None

    @staticmethod
    def coarse_level(img, scale: float) -> tuple | None:
        """``(width, height)`` of the whole render at ``scale`` if it is a cached coarse level."""
        h = img.header
        tile = served_tile_size(h.tile)
        f = 1 / scale
        if f < 2 or f != 2 ** round(math.log2(f)):
            return None
        ow, oh = output_size(h.width, h.height, scale)
        return (ow, oh) if ow * oh <= LEVEL_CACHE_TILES * tile * tile else None

    @staticmethod
    def read(entry, img, plan, window):
        """``read_plan``, or a window of ``read(plan.scale)`` for ``window``; the tiles rendered."""
        tiles = render.tiles_of(img, plan.scale, window)
        fresh = [t for t in tiles if t not in render.cached(img, tiles, plan.scale)]
        p = plan if window == plan.window else iiif.Plan(plan.scale, window, window[2:], True)
        if entry.read_lock is not None:
            with entry.read_lock:
                return render.read_plan(img, p), tiles, fresh
        return render.read_plan(img, p), tiles, fresh

    def read_level(self, entry, img, plan, level):
        """The whole coarse level ``plan.scale`` (``level`` is its size), from the entry's level
        cache or rendered (and cached, unless the file was reopened meanwhile); with the tiles
        rendered, those decoded, and ``"render"`` or ``"hit"``."""
        with entry.level_lock:
            current = entry.image() is img  # not reopened since this request began
            full = entry.levels.get(plan.scale) if current else None
            if full is not None:
                return full, [], [], "hit"
            full, tiles, fresh = self.read(entry, img, plan, (0, 0, *level))
            if current:
                entry.levels[plan.scale] = full
            return full, tiles, fresh, "render"

    def render_body(self, entry, img, plan, post, fmt):
        """The encoded image of ``plan`` (run in a worker thread): ``(body, tiles, decoded,
        bytes read, level cache use or None)``."""
        before = img.bytes_read
        level = self.coarse_level(img, plan.scale) if plan.exact else None
        how = None
        if level is None:
            a, tiles, fresh = self.read(entry, img, plan, plan.window)
        else:
            full, tiles, fresh, how = self.read_level(entry, img, plan, level)
            x, y, w, h = plan.window
            a = full[y : y + h, x : x + w]
        if post:
            a = render.postprocess(a, *post)
        body = render.encode(a, fmt)
        return body, tiles, fresh, img.bytes_read - before, how

    async def image_response(self, request, entry, img, plan, post, fmt, etag, profile: bool) -> Response:
        """Render ``plan`` in a worker thread (within the limiter) and answer it, leaving the
        fields of the request's log line in ``request.state.lig``."""
        work = partial(self.render_body, entry, img, plan, post, fmt)
        try:
            body, tiles, fresh, nbytes, how = await anyio.to_thread.run_sync(work, limiter=self.limiter())
        except LigError as e:  # a corrupt chunk, or a read too large for this machine's memory
            log.error("%s: %s", entry.path, e)
            return error_response(IIIFError(500, f"{entry.name!r} cannot be decoded here: {e}"))
        x, y, w, h = plan.window
        request.state.lig = {"file": entry.name, "scale": f"{plan.scale:.6g}", "region": f"{x},{y},{w},{h}",
                             "exact": int(plan.exact), "tiles": _fmt_tiles(tiles), "decoded": _fmt_tiles(fresh),
                             "bytes_read": nbytes}
        if how:
            request.state.lig["level_cache"] = how
        headers = {"ETag": etag, "Cache-Control": self.cache_control}
        if profile:
            headers["Link"] = f'<{IIIF_PROFILE}>;rel="profile"'
        return Response(body, media_type=render.MEDIA_TYPES[fmt], headers=headers)

    # ------------------------------------------------------------------------------ IIIF
    async def iiif_base(self, request: Request):
        name = request.path_params["name"]
        try:
            self.library.get(name)
        except IIIFError as e:
            return error_response(e)
        return RedirectResponse(f"/iiif/3/{quote(name, safe='')}/info.json", status_code=303)

    async def iiif_info(self, request: Request):
        name = request.path_params["name"]
        try:
            entry, img = self.open_entry(name)
        except IIIFError as e:
            return error_response(e)
        h = img.header
        base = str(request.base_url).rstrip("/")
        ld = "application/ld+json" in request.headers.get("accept", "")
        etag = self.etag_for(entry, "info", base, ld, self.max_pixels)
        hit = self.not_modified(request, etag)
        if hit:
            return hit
        doc = iiif.info(f"{base}/iiif/3/{quote(name, safe='')}", h.width, h.height, h.channels,
                        served_tile_size(h.tile), self.max_pixels)
        media = f'application/ld+json;profile="{IIIF_CONTEXT}"' if ld else "application/json"
        return JSONResponse(doc, media_type=media,
                            headers={"ETag": etag, "Cache-Control": self.cache_control, "Vary": "Accept",
                                     "Link": f'<{IIIF_PROFILE}>;rel="profile"'})

    def plan_iiif(self, p: dict):
        """``(entry, img, request, plan)`` for the path parameters of an IIIF image request, or the
        IIIFError (400/404/500) that refuses it."""
        entry, img = self.open_entry(p["name"])
        h = img.header
        req = iiif.parse(p["region"], p["size"], p["rotation"], p["qf"], h.width, h.height, h.channels,
                         self.max_pixels)
        plan = iiif.plan_read(h.width, h.height, req.region, req.size)
        if plan.window[2] * plan.window[3] > MAX_RENDER_FACTOR * self.max_pixels:
            raise IIIFError(400, f"size {p['size']!r} changes the aspect ratio so much that its render "
                                 f"({plan.window[2]}x{plan.window[3]}) exceeds this server's limit")
        return entry, img, req, plan

    async def iiif_image(self, request: Request):
        try:
            entry, img, req, plan = self.plan_iiif(request.path_params)
        except IIIFError as e:
            return error_response(e)
        etag = self.etag_for(entry, "iiif", req)
        hit = self.not_modified(request, etag)
        if hit:
            return hit
        post = (req.rotation, req.mirror, req.quality) if (req.rotation or req.mirror or req.quality == "gray") else None
        return await self.image_response(request, entry, img, plan, post, req.format, etag, profile=True)

    # ----------------------------------------------------------------------- Deep Zoom
    async def dzi_descriptor(self, request: Request):
        name = request.path_params["name"]
        fmt = request.query_params.get("format", "png")
        try:
            if fmt not in render.MEDIA_TYPES:
                raise IIIFError(400, f"format {fmt!r}: use png, jpg or webp")
            entry, img = self.open_entry(name)
        except IIIFError as e:
            return error_response(e)
        h = img.header
        etag = self.etag_for(entry, "dzi", fmt)
        hit = self.not_modified(request, etag)
        if hit:
            return hit
        return Response(dzi.descriptor(h.width, h.height, served_tile_size(h.tile), fmt), media_type="application/xml",
                        headers={"ETag": etag, "Cache-Control": self.cache_control})

    async def dzi_tile(self, request: Request):
        p = request.path_params
        try:
            if p["fmt"] not in render.MEDIA_TYPES:
                raise IIIFError(400, f"tile format {p['fmt']!r}: use png, jpg or webp")
            entry, img = self.open_entry(p["name"])
            h = img.header
            scale, window = dzi.tile_read(h.width, h.height, served_tile_size(h.tile), p["level"], p["col"], p["row"])
        except IIIFError as e:
            return error_response(e)
        etag = self.etag_for(entry, "dzi", p["level"], p["col"], p["row"], p["fmt"])
        hit = self.not_modified(request, etag)
        if hit:
            return hit
        plan = iiif.Plan(scale, window, window[2:], True)
        return await self.image_response(request, entry, img, plan, None, p["fmt"], etag, profile=False)

    # --------------------------------------------------------------------------- pages
    async def index(self, request: Request):
        rows = []
        for name in self.library.names():
            try:
                _, img = self.open_entry(name)
                h = img.header
                rows.append((name, h.width, h.height, h.channels, h.bit_depth, os.path.getsize(img.path)))
            except IIIFError as e:
                rows.append((name, e.reason))
        return HTMLResponse(pages.index(rows), headers={"Cache-Control": "no-cache"})

    async def view(self, request: Request):
        try:
            _, img = self.open_entry(request.path_params["name"])
        except IIIFError as e:
            return error_response(e)
        return HTMLResponse(pages.viewer(request.path_params["name"], img.header.width, img.header.height),
                            headers={"Cache-Control": "no-cache"})

    async def osd_static(self, request: Request):
        if not pages.osd_installed():
            return PlainTextResponse(f"OpenSeadragon is not installed; run: {pages.INSTALL}\n", status_code=404)
        if self._osd_files is None:
            self._osd_files = StaticFiles(directory=pages.OSD_DIR)
        scope = dict(request.scope, path="/" + request.path_params["path"], root_path="")
        return await self._osd_files.get_response(request.path_params["path"], scope)


async def favicon(request: Request):
    return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})


async def unknown(request: Request, exc):
    return PlainTextResponse(f"not found: {request.url.path} (see / for the files and their services)\n",
                             status_code=404)


def create_app(root, *, threads: int | None = None, max_pixels: int = MAX_PIXELS, cache_tiles: int = 4096,
               max_age: int = 3600) -> Starlette:
    """The app serving the ``.lig`` file ``root`` or every ``.lig`` under the directory ``root``.

    ``threads``: renders at a time (default: the CPU count); ``max_pixels``: largest output of a
    request (400 above it); ``cache_tiles``: decoded (level, tile) chunks kept per file;
    ``max_age``: seconds clients may reuse a response without asking (then they revalidate with
    the ETag and get a 304 if the file is unchanged)."""
    library = Library(root, cache_tiles=cache_tiles)
    service = ImageService(library, threads=threads or os.cpu_count() or 4, max_pixels=max_pixels,
                           max_age=max_age)
    routes = [
        Route("/", service.index),
        Route("/view/{name}", service.view),
        Route("/iiif/3/{name}", service.iiif_base),
        Route("/iiif/3/{name}/info.json", service.iiif_info),
        Route("/iiif/3/{name}/{region}/{size}/{rotation}/{qf}", service.iiif_image),
        Route("/dzi/{name}.dzi", service.dzi_descriptor),
        Route("/dzi/{name}_files/{level:int}/{col:int}_{row:int}.{fmt}", service.dzi_tile),
        Route("/static/openseadragon/{path:path}", service.osd_static),
        Route("/favicon.ico", favicon),
    ]
    middleware = [Middleware(_LogRequests),
                  Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "HEAD"],
                             expose_headers=["ETag", "Link"])]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={404: unknown})
    app.state.library = library
    return app
