"""The viewer in a real browser: `ligcodec serve` + the real OpenSeadragon + headless Chromium.

Starts ``python -m ligcodec.serve`` on a 1024x768 progressive .lig (kodim23, mirrored out to
that size), opens ``/view/NAME?crisp=1`` (pixels mode: one decoded pixel per screen pixel at
whole-number zooms), zooms in twice and pans through OpenSeadragon's viewport API, and checks

* from the server's log: the home view at 1/4 scale decoded level-0 chunks only (a progressive
  file's level 0 stands alone there); after the zoom to 1:1 every request rendered scale 1 and
  only the codec tiles under the viewport, and those are the tiles it decoded;
* that screenshots of the viewer equal ``ligcodec.decode`` of the same window (within 1 code
  value), at 1:1 and at 2:1 (each decoded pixel drawn as 2x2 screen pixels);
* that OpenSeadragon reads the IIIF info.json (``?iiif=1``) and shows the same pixels from
  IIIF tiles; and that the default (smooth, animated) viewer loads without errors.

Screenshots go to $LIGCODEC_SCREENS (default /tmp/ligcodec-screens). Skipped without playwright
(Python), a Chromium ($LIGCODEC_CHROMIUM, or chromium on PATH: Debian's ``apt-get install
chromium``), the web extras, or OpenSeadragon (``npm ci --prefix ligcodec/serve/static``).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

from PIL import Image

import ligcodec
from ligcodec.serve import pages

CHROMIUM = os.environ.get("LIGCODEC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    pytest.skip("no Chromium (apt-get install chromium, or set LIGCODEC_CHROMIUM)", allow_module_level=True)
if not pages.osd_installed():
    pytest.skip(f"OpenSeadragon is not installed ({pages.INSTALL})", allow_module_level=True)

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--force-color-profile=srgb"]
SCREENS = Path(os.environ.get("LIGCODEC_SCREENS", "/tmp/ligcodec-screens"))
KODIM23 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak" / "kodim23.png"
VIEW_W, VIEW_H = 480, 360  # the viewer (below the page's 32-px header): home view of 1024x768 at ~0.47
NAME = "parrots"
_LINE = re.compile(r"(GET|HEAD) (\S+) (\d{3}) ms=\S+(.*)$")


def _image() -> np.ndarray:
    """1024x768: kodim23 mirrored at its right and bottom edges (or a synthetic image)."""
    if KODIM23.is_file():
        a = np.asarray(Image.open(KODIM23).convert("RGB"))[:-1]  # its last row is black
        return np.pad(a, ((0, 768 - a.shape[0]), (0, 1024 - a.shape[1]), (0, 0)), mode="reflect")
    y, x = np.mgrid[0:768, 0:1024].astype(np.float32)
    a = np.stack([x / 1024, y / 768, 0.5 + 0.5 * np.sin(x / 17) * np.cos(y / 23)], -1)
    return (a * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def lig(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("browser")
    path = d / f"{NAME}.lig"
    ligcodec.encode(_image(), path, gaussians=8000, effort=1, steps=40, workers=1, progressive=True)
    return path


class Server:
    """``python -m ligcodec.serve`` in a child process; its log lines collected as they come."""

    def __init__(self, path: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "ligcodec.serve", str(path), "--port", "0"],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        first = self.proc.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", first)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"the server did not start: {first}{self.proc.stderr.read()}")
        self.url = f"http://127.0.0.1:{m.group(1)}"
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def requests(self, since: int = 0) -> list[dict]:
        """Parsed request lines: path, status and the key=value fields."""
        out = []
        for line in self.lines[since:]:
            m = _LINE.search(line)
            if m:
                d = dict(kv.split("=", 1) for kv in m.group(4).split())
                d.update(path=m.group(2), status=int(m.group(3)))
                out.append(d)
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def server(lig):
    s = Server(lig.parent)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": VIEW_W, "height": VIEW_H + 32}, device_scale_factor=1)
    pg = ctx.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield pg
    ctx.close()
    assert not errors, errors


_SETTLE = """async () => {
  const v = window.viewer, item = v.world.getItemAt(0);
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  let stable = 0;
  for (let i = 0; i < 1200 && stable < 6; i++) {
    await frame();
    const busy = v.imageLoader.jobsInProgress > 0 || !item.getFullyLoaded() || v.world.needsDraw();
    stable = busy ? 0 : stable + 1;
  }
  return stable >= 6;
}"""

_PLACE = """([z, x0, y0]) => {
  const v = window.viewer, vp = v.viewport, c = vp.getContainerSize();
  vp.zoomTo(vp.imageToViewportZoom(z), null, true);
  vp.panTo(vp.imageToViewportCoordinates(x0 + c.x / (2 * z), y0 + c.y / (2 * z)), true);
  v.forceRedraw();
  const tl = vp.viewerElementToImageCoordinates(new OpenSeadragon.Point(0, 0));
  return [tl.x, tl.y, vp.viewportToImageZoom(vp.getZoom())];
}"""


def _open(page, url):
    page.goto(url)
    page.wait_for_function("window.viewer && window.viewer.world && window.viewer.world.getItemCount() > 0", timeout=60_000)
    assert page.evaluate(_SETTLE), "OpenSeadragon did not finish loading"


def _place(page, zoom, x0, y0):
    """Zoom to ``zoom`` screen pixels per image pixel with image pixel (x0, y0) at the viewer's
    top-left corner, and wait until every tile is loaded and drawn."""
    tx, ty, z = page.evaluate(_PLACE, [zoom, x0, y0])
    assert abs(tx - x0) < 1e-6 and abs(ty - y0) < 1e-6 and abs(z - zoom) < 1e-9
    assert page.evaluate(_SETTLE), "OpenSeadragon did not finish loading"


def _shot(page, name) -> np.ndarray:
    box = page.evaluate("(() => { const r = document.getElementById('viewer').getBoundingClientRect();"
                        " return [r.x, r.y, r.width, r.height]; })()")
    assert box[2:] == [VIEW_W, VIEW_H]
    data = page.screenshot(clip={"x": box[0], "y": box[1], "width": box[2], "height": box[3]})
    SCREENS.mkdir(parents=True, exist_ok=True)
    (SCREENS / f"{name}.png").write_bytes(data)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _compare(shot, lig, zoom, x0, y0, name):
    """The screenshot against ``ligcodec.decode`` of the window it shows: at zooms below 1 the
    render at that scale, at zoom 2 the full-resolution render with each pixel drawn 2x2."""
    scale = min(zoom, 1.0)
    rep = round(zoom / scale)
    with ligcodec.open(lig) as img:
        ow, oh = ligcodec.render.contract.output_size(img.header.width, img.header.height, scale)
    x, y = int(x0 * scale), int(y0 * scale)
    w, h = min(VIEW_W // rep, ow - x), min(VIEW_H // rep, oh - y)
    want = ligcodec.decode(lig, scale, (x, y, w, h))
    want = np.repeat(np.repeat(want, rep, 0), rep, 1)
    got = shot[: want.shape[0], : want.shape[1]]
    Image.fromarray(np.concatenate([got, want], 1)).save(SCREENS / f"{name}_vs_decode.png")
    diff = np.abs(got.astype(int) - want.astype(int))
    if rep > 1:
        # Enlarged, the canvas's last row and column (where Chromium samples a tile cut by the
        # canvas edge) can show the next decoded pixel: compare inside them.
        diff = diff[1:-1, 1:-1]
    assert diff.max() <= 1, f"{name}: {int((diff > 1).sum())} values differ by more than 1 (max {diff.max()})"
    return diff


def _tiles(lig, scale, region) -> set:
    with ligcodec.open(lig) as img:
        return set(img.model.tiles_drawn(scale, region))


def _split(v: str) -> set:
    return set() if v == "-" else {int(t) for t in v.split(",")}


def test_deep_zoom_viewer_zooms_decodes_only_what_it_shows(server, page, lig):
    _open(page, f"{server.url}/view/{NAME}?crisp=1")
    home = [r for r in server.requests() if "scale" in r]
    assert home and all(float(r["scale"]) <= 0.25 for r in home), home  # the home view is at 1/4 or less
    with ligcodec.open(lig) as img:
        r = img._reader
        level0 = sum(r.entry(0, t).length for t in range(r.header.n_tiles))
        level1 = {t: r.entry(1, t).length for t in range(r.header.n_tiles)}
    # bytes_read is what the file gave up while a request ran (its own reads and any concurrent
    # request's): none read more than all level-0 chunks, so no level-1 chunk was read.
    assert 0 < max(int(r["bytes_read"]) for r in home) <= level0
    _shot(page, "deepzoom_home")

    # Zoom 1: to 1:1 at (256, 256). Only scale-1 renders of the tiles under the viewport follow,
    # and they decode exactly those tiles (their level-1 chunks; level 0 is cached).
    mark = len(server.lines)
    _place(page, 1.0, 256, 256)
    # The viewer asks for the Deep Zoom tiles (256 px, on the codec's grid) under the viewport;
    # each read also draws the few pixels around it that the border filter needs.
    with ligcodec.open(lig) as img:
        W, H = img.header.width, img.header.height
    x1, y1 = min(W, -(-(256 + VIEW_W) // 256) * 256), min(H, -(-(256 + VIEW_H) // 256) * 256)
    shown = _tiles(lig, 1.0, (256, 256, x1 - 256, y1 - 256))
    after = [r for r in server.requests(mark) if "scale" in r]
    assert after and all(r["scale"] == "1" and r["status"] == 200 for r in after), after
    assert set().union(*(_split(r["tiles"]) for r in after)) <= shown
    decoded = set().union(*(_split(r["decoded"]) for r in after))
    with ligcodec.open(lig) as img:  # the tiles under the viewport itself: decoded by these requests
        under = {t for t, *_ in img.model.owned_rects(1.0, (256, 256, VIEW_W, VIEW_H))}
    assert under <= decoded <= shown, (under, decoded, shown)
    assert 0 < max(int(r["bytes_read"]) for r in after) <= sum(level1[t] for t in shown)
    _compare(_shot(page, "deepzoom_1to1"), lig, 1.0, 256, 256, "deepzoom_1to1")

    # Zoom 2 and pan: 2 screen px per image px at (400, 300); the tiles are the same, already
    # in the browser, and nothing else is decoded.
    mark = len(server.lines)
    _place(page, 2.0, 400, 300)
    after = [r for r in server.requests(mark) if "scale" in r]
    assert all(r["scale"] == "1" and _split(r["tiles"]) <= shown and not _split(r["decoded"]) for r in after), after
    _compare(_shot(page, "deepzoom_2to1_panned"), lig, 2.0, 400, 300, "deepzoom_2to1_panned")


def test_iiif_viewer_reads_info_json_and_shows_the_pixels(server, page, lig):
    mark = len(server.lines)
    _open(page, f"{server.url}/view/{NAME}?iiif=1&crisp=1")
    reqs = server.requests(mark)
    assert any(r["path"] == f"/iiif/3/{NAME}/info.json" and r["status"] == 200 for r in reqs), reqs
    tiles = [r for r in reqs if r["path"].startswith(f"/iiif/3/{NAME}/") and "scale" in r]
    assert tiles and all(r["status"] == 200 and r["path"].endswith("/0/default.png") for r in tiles)
    _shot(page, "iiif_home")
    mark = len(server.lines)
    _place(page, 0.5, 64, 32)
    assert all(r["scale"] == "0.5" for r in server.requests(mark) if "scale" in r)
    _compare(_shot(page, "iiif_half"), lig, 0.5, 64, 32, "iiif_half")


def test_default_viewer_loads(server, page):
    """The normal viewer (smooth, animated, WebGL where the browser has it) opens and draws."""
    t = time.perf_counter()
    _open(page, f"{server.url}/view/{NAME}")
    shot = _shot(page, "default_home")
    assert shot.std() > 10 and time.perf_counter() - t < 60  # an image, not a blank canvas
