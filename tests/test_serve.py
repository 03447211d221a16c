"""`ligcodec serve`: IIIF Image API 3.0 and Deep Zoom over Starlette's TestClient.

Every image the server returns is compared with ``LigImage.read(scale, region)`` for the read the
request means: bit for bit where the request maps onto whole output pixels of a render (tiles,
full, pct:n, w,/,h at scales the image divides into, upscaling), within resampling error where it
does not. Skipped without the ``[serve]`` extra (starlette) and an HTTP client for TestClient.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("starlette")
try:  # Starlette's TestClient runs on httpx2 (newer starlette) or httpx
    import httpx2 as _httpx
except ImportError:
    _httpx = pytest.importorskip("httpx")

from PIL import Image
from starlette.testclient import TestClient

import ligcodec
from ligcodec.fit.tiles import FitConfig
from ligcodec.serve import create_app
from ligcodec.serve.iiif import plan_read

W, H = 300, 190  # odd sizes: tiles at the right and bottom edges end short at every scale


def _photo(w=W, h=H):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.stack([x / w, y / h, 0.5 + 0.5 * np.sin(x / 9) * np.cos(y / 13)], -1)
    a[40:90, 60:140] = (0.9, 0.2, 0.1)
    a[(x - 220) ** 2 + (y - 120) ** 2 < 35**2] = (0.1, 0.3, 0.9)
    return (a * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """photo.lig (300x190 RGB, 128-px tiles) and sub/gray16.lig (90x70, one 16-bit channel)."""
    d = tmp_path_factory.mktemp("serve")
    ligcodec.encode(_photo(), d / "photo.lig", gaussians=200, effort=1, workers=1, config=FitConfig(tile=128))
    (d / "sub").mkdir()
    g = (np.linspace(0, 65535, 90)[None, :] * np.ones((70, 1))).astype(np.uint16)
    g[20:50, 30:60] = 9000
    ligcodec.encode(g, d / "sub" / "gray16.lig", gaussians=100, effort=1, workers=1, config=FitConfig(tile=64))
    return d


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(root)) as c:
        yield c


@pytest.fixture(scope="module")
def img(root):
    with ligcodec.open(root / "photo.lig") as im:
        yield im


def _pixels(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    a = np.asarray(Image.open(io.BytesIO(r.content)))
    return a if a.ndim == 3 else a[:, :, None]


# ------------------------------------------------------------------------------------- info.json
def test_info_json(client):
    r = client.get("/iiif/3/photo/info.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    info = r.json()
    assert info["@context"] == "http://iiif.io/api/image/3/context.json"
    assert info["id"] == "http://testserver/iiif/3/photo"
    assert (info["type"], info["protocol"], info["profile"]) == ("ImageService3", "http://iiif.io/api/image", "level1")
    assert (info["width"], info["height"]) == (W, H)
    assert info["tiles"] == [{"width": 128, "height": 128, "scaleFactors": [1, 2, 4]}]  # the file's tile
    assert info["sizes"] == [{"width": 75, "height": 48}, {"width": 150, "height": 95}, {"width": 300, "height": 190}]
    assert set(info["extraFormats"]) == {"png", "webp"} and "gray" in info["extraQualities"]
    assert info["maxArea"] == 1 << 24
    # level 1's HTTP features: JSON-LD on request, CORS, the base URI redirects to info.json
    r = client.get("/iiif/3/photo/info.json", headers={"Accept": "application/ld+json", "Origin": "http://x.org"})
    assert r.headers["content-type"].startswith('application/ld+json;profile="http://iiif.io/api/image/3/context.json"')
    assert r.headers["access-control-allow-origin"] == "*"
    r = client.get("/iiif/3/photo", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/iiif/3/photo/info.json")


def test_info_json_16bit_gray(client):
    info = client.get("/iiif/3/gray16/info.json").json()
    assert (info["width"], info["height"]) == (90, 70)
    assert info["extraQualities"] == ["gray"]  # no colour in one channel
    assert client.get("/iiif/3/gray16/full/max/0/color.png").status_code == 400


# ---------------------------------------------------------------------------- pixels: exact
EXACT = [
    # (region/size, scale, window at that scale or None for the whole image)
    ("full/max", 1.0, None),
    ("square/max", 1.0, (55, 0, 190, 190)),
    ("10,20,100,50/max", 1.0, (10, 20, 100, 50)),
    ("10,20,100,50/100,50", 1.0, (10, 20, 100, 50)),
    ("128,0,128,128/64,64", 0.5, (64, 0, 64, 64)),  # OpenSeadragon's tile request at factor 2
    ("128,0,128,128/64,", 0.5, (64, 0, 64, 64)),
    ("256,128,44,62/22,31", 0.5, (128, 64, 22, 31)),  # the edge tile: 44 x 62 px -> ceil(22) x ceil(31)
    ("0,0,300,190/75,48", 0.25, None),  # the whole image at factor 4, sizes as in info.json
    ("full/75,48", 0.25, None),
    ("full/150,", 0.5, None),
    ("full/,95", 0.5, None),
    ("full/pct:50", 0.5, None),
    ("full/pct:25", 0.25, None),
    ("full/!150,150", 0.5, None),
    ("full/!1000,1000", 1.0, None),  # !w,h never upscales without ^
    ("pct:50,0,50,100/max", 1.0, (150, 0, 150, 190)),
    ("pct:0,0,50,100/pct:50", 0.5, (0, 0, 75, 95)),
    ("full/^600,", 2.0, None),  # upscaling renders the Gaussians at scale 2, no resampling
    ("full/^pct:150", 1.5, None),
    ("full/^!600,600", 2.0, None),
    ("128,128,64,62/^128,124", 2.0, (256, 256, 128, 124)),
]


@pytest.mark.parametrize("request_, scale, window", EXACT, ids=[e[0] for e in EXACT])
def test_iiif_pixels_equal_read(client, img, request_, scale, window):
    got = _pixels(client.get(f"/iiif/3/photo/{request_}/0/default.png"))
    want = img.read(scale, window)
    assert got.shape == want.shape
    assert np.array_equal(got, want)


def test_colour_quality_is_default(client):
    a = client.get("/iiif/3/photo/10,20,100,50/max/0/color.png").content
    b = client.get("/iiif/3/photo/10,20,100,50/max/0/default.png").content
    assert np.array_equal(_pixels_bytes(a), _pixels_bytes(b))


def _pixels_bytes(data):
    return np.asarray(Image.open(io.BytesIO(data)))


def test_every_tile_of_every_scale_factor(client, img):
    """The tiles OpenSeadragon requests from info.json, at every scale factor, tile the renders
    at 1, 1/2 and 1/4 exactly."""
    info = client.get("/iiif/3/photo/info.json").json()
    t = info["tiles"][0]["width"]
    for f in info["tiles"][0]["scaleFactors"]:
        full = img.read(1 / f)
        lw, lh = full.shape[1], full.shape[0]
        for y in range(0, H, t * f):
            for x in range(0, W, t * f):
                rw, rh = min(t * f, W - x), min(t * f, H - y)
                sw, sh = min(t, lw - x // f), min(t, lh - y // f)
                got = _pixels(client.get(f"/iiif/3/photo/{x},{y},{rw},{rh}/{sw},{sh}/0/default.png"))
                assert np.array_equal(got, full[y // f : y // f + sh, x // f : x // f + sw]), (f, x, y)


def test_16bit_png_is_exact(client, root):
    with ligcodec.open(root / "sub" / "gray16.lig") as g:
        want = g.read(1.0)
        want_half = g.read(0.5)
    r = client.get("/iiif/3/gray16/full/max/0/default.png")
    got = np.asarray(Image.open(io.BytesIO(r.content))).astype(np.int64)
    assert got.shape == want.shape[:2] and np.array_equal(got, want[:, :, 0])
    got = np.asarray(Image.open(io.BytesIO(client.get("/iiif/3/gray16/full/pct:50/0/gray.png").content)))
    assert np.array_equal(got.astype(np.int64), want_half[:, :, 0])
    jpg = _pixels(client.get("/iiif/3/gray16/full/max/0/default.jpg"))  # 8 bits for JPEG
    assert np.abs(jpg[:, :, 0].astype(int) - np.round(want[:, :, 0] / 257)).mean() < 2


# ------------------------------------------------------------------------- pixels: resampled
def test_resampled_requests(client, img):
    """w,h that change the aspect ratio, or regions between output pixels, render at the larger
    implied scale and resample: close to the exact render, at the requested size."""
    got = _pixels(client.get("/iiif/3/photo/full/200,100/0/default.png"))
    assert got.shape == (100, 200, 3)
    ref = np.asarray(Image.fromarray(img.read(1.0)).resize((200, 100), Image.Resampling.BICUBIC))
    assert np.abs(got.astype(int) - ref).mean() < 3
    plan = plan_read(W, H, (0, 0, W, H), (200, 100))
    assert not plan.exact and plan.scale == pytest.approx(2 / 3)  # the larger of 200/300 and 100/190

    got = _pixels(client.get("/iiif/3/photo/pct:10.5,20.25,33.3,40/max/0/default.png"))
    x0, y0 = 0.105 * W, 0.2025 * H
    assert got.shape == (int(np.ceil(0.4 * H)), int(np.ceil(0.333 * W)), 3)
    ref = img.read(1.0)[int(y0) : int(y0) + got.shape[0], int(x0) : int(x0) + got.shape[1]]
    assert np.abs(got.astype(int) - ref).mean() < 6  # within a sub-pixel shift of the render


def test_max_respects_the_pixel_limit(root):
    with TestClient(create_app(root, max_pixels=10_000)) as c:
        info = c.get("/iiif/3/photo/info.json").json()
        assert info["maxArea"] == 10_000 and all(s["width"] * s["height"] <= 10_000 for s in info["sizes"])
        a = _pixels(c.get("/iiif/3/photo/full/max/0/default.png"))  # max: as large as allowed
        assert a.shape[0] * a.shape[1] <= 10_000 and a.shape[1] / a.shape[0] == pytest.approx(W / H, rel=0.02)
        r = c.get("/iiif/3/photo/full/300,/0/default.png")
        assert r.status_code == 400 and "limit" in r.text


# --------------------------------------------------------------- rotation, mirroring, quality, formats
def test_rotation_mirroring_gray(client, img):
    base = img.read(1.0, (10, 20, 100, 50))
    for rot, want in (("90", np.rot90(base, -1)), ("180", np.rot90(base, 2)), ("270", np.rot90(base, 1)),
                      ("!0", base[:, ::-1]), ("!90", np.rot90(base[:, ::-1], -1)), ("360", base)):
        got = _pixels(client.get(f"/iiif/3/photo/10,20,100,50/max/{rot}/default.png"))
        assert np.array_equal(got, want), rot
    gray = _pixels(client.get("/iiif/3/photo/10,20,100,50/max/0/gray.png"))[:, :, 0]
    pil = np.asarray(Image.fromarray(base).convert("L"))
    assert gray.shape == base.shape[:2] and np.abs(gray.astype(int) - pil).max() <= 1


@pytest.mark.parametrize("fmt, media", [("jpg", "image/jpeg"), ("webp", "image/webp"), ("png", "image/png")])
def test_formats(client, img, fmt, media):
    r = client.get(f"/iiif/3/photo/full/max/0/default.{fmt}")
    assert r.status_code == 200 and r.headers["content-type"] == media
    assert np.abs(_pixels(r).astype(int) - img.read(1.0)).mean() < 3


# ----------------------------------------------------------------------------------- errors
BAD = [
    "full2/max/0/default.png", "0,0,0,10/max/0/default.png", "300,0,10,10/max/0/default.png",
    "-1,0,10,10/max/0/default.png", "1.5,0,10,10/max/0/default.png", "pct:101,0,10,10/max/0/default.png",
    "pct:a,0,10,10/max/0/default.png", "full/full/0/default.png", "full/0,/0/default.png",
    "full/abc/0/default.png", "full/301,/0/default.png", "full/300,191/0/default.png", "full/pct:101/0/default.png",
    "full/pct:0/0/default.png", "full/!100,/0/default.png", "full/,/0/default.png", "full/^100000,/0/default.png",
    "full/max/abc/default.png", "full/max/400/default.png", "full/max/-90/default.png",
    "full/max/0/best.png", "full/max/0/default.bmp", "full/max/0/default", "full/max/0/.png",
]


@pytest.mark.parametrize("url", BAD)
def test_malformed_requests_are_400(client, url):
    r = client.get(f"/iiif/3/photo/{url}")
    assert r.status_code == 400, (url, r.status_code, r.text)
    assert r.text.count("\n") == 1 and len(r.text) > 10  # one line saying why


@pytest.mark.parametrize("url", ["full/max/45/default.png", "full/max/!22.5/default.png", "full/max/0/bitonal.png",
                                 "full/max/0/default.tif", "full/max/0/default.jp2"])
def test_unimplemented_features_are_501(client, url):
    r = client.get(f"/iiif/3/photo/{url}")
    assert r.status_code == 501 and r.text.count("\n") == 1


@pytest.mark.parametrize("url", ["/iiif/3/nope/info.json", "/iiif/3/nope/full/max/0/default.png", "/dzi/nope.dzi",
                                 "/dzi/photo_files/99/0_0.png", "/dzi/photo_files/9/9_0.png", "/view/nope",
                                 "/iiif/3/sub%2Fgray16/info.json", "/nothing/here"])
def test_unknown_files_and_tiles_are_404(client, url):
    r = client.get(url)
    assert r.status_code in (400, 404) if "%2F" in url else r.status_code == 404, (url, r.status_code)
    assert r.text.strip()


def test_path_escapes_are_refused(root, tmp_path):
    """``..``, absolute paths, NUL and links to files outside the root never reach a file; a
    link inside the root to a file inside it is served under the link's name."""
    served = tmp_path / "served"
    outside = tmp_path / "outside"
    served.mkdir()
    outside.mkdir()
    shutil.copy(root / "photo.lig", served / "photo.lig")
    shutil.copy(root / "photo.lig", outside / "secret.lig")
    (served / "escape.lig").symlink_to(outside / "secret.lig")
    (served / "alias.lig").symlink_to(served / "photo.lig")
    (served / "linkdir").symlink_to(outside, target_is_directory=True)
    with TestClient(create_app(served)) as c:
        for url in ["/iiif/3/..%2Foutside%2Fsecret/info.json", "/iiif/3/%2Fetc%2Fpasswd/info.json",
                    "/iiif/3/..%2F..%2Fphoto/full/max/0/default.png", "/iiif/3/../outside/secret/info.json",
                    "/iiif/3/photo%00/info.json", "/iiif/3/../info.json", "/dzi/..%2Fsecret.dzi",
                    "/iiif/3/secret/info.json", "/iiif/3/escape/info.json", "/dzi/escape.dzi", "/view/escape",
                    "/iiif/3/linkdir%2Fsecret/info.json"]:
            r = c.get(url)
            assert r.status_code in (400, 404), (url, r.status_code)
        assert c.get("/iiif/3/alias/info.json").status_code == 200
        assert c.get("/iiif/3/photo/info.json").status_code == 200
        assert "escape" not in c.get("/").text and "secret" not in c.get("/").text


def test_duplicate_names_are_refused(root, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(root / "photo.lig", tmp_path / "a" / "x.lig")
    shutil.copy(root / "photo.lig", tmp_path / "b" / "x.lig")
    with pytest.raises(ValueError, match="share a name"):
        create_app(tmp_path)


# ----------------------------------------------------------------------------- HTTP caching
def test_etag_and_304(client):
    url = "/iiif/3/photo/128,0,128,128/64,64/0/default.png"
    r = client.get(url)
    etag = r.headers["etag"]
    assert etag.startswith('"') and "max-age" in r.headers["cache-control"]
    for inm in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        r2 = client.get(url, headers={"If-None-Match": inm})
        assert r2.status_code == 304 and r2.content == b"" and r2.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get("/iiif/3/photo/0,0,128,128/64,64/0/default.png").headers["etag"] != etag
    # the same pixels asked the same way through another form keep their tag
    assert client.get("/iiif/3/photo/128,0,128,128/64,/0/default.png").headers["etag"] == etag
    for other in ("/iiif/3/photo/info.json", "/dzi/photo.dzi", "/dzi/photo_files/9/0_0.png"):
        e = client.get(other).headers["etag"]
        assert client.get(other, headers={"If-None-Match": e}).status_code == 304


def test_replaced_file_gets_a_new_etag(root, tmp_path):
    d = tmp_path / "live"
    d.mkdir()
    shutil.copy(root / "photo.lig", d / "x.lig")
    with TestClient(create_app(d)) as c:
        url = "/iiif/3/x/full/max/0/default.png"
        r1 = c.get(url)
        shutil.copy(root / "sub" / "gray16.lig", d / "x.part")
        os.replace(d / "x.part", d / "x.lig")
        r2 = c.get(url, headers={"If-None-Match": r1.headers["etag"]})
        assert r2.status_code == 200 and r2.headers["etag"] != r1.headers["etag"]
        assert Image.open(io.BytesIO(r2.content)).size == (90, 70)


# -------------------------------------------------------------------------------- Deep Zoom
def test_dzi_descriptor_and_tiles(client, img):
    r = client.get("/dzi/photo.dzi")
    assert r.status_code == 200 and "xml" in r.headers["content-type"]
    root = ET.fromstring(r.text)
    ns = "{http://schemas.microsoft.com/deepzoom/2008}"
    assert root.tag == f"{ns}Image"
    assert (root.get("TileSize"), root.get("Overlap"), root.get("Format")) == ("128", "0", "png")
    size = root.find(f"{ns}Size")
    assert (size.get("Width"), size.get("Height")) == (str(W), str(H))
    assert ET.fromstring(client.get("/dzi/photo.dzi?format=jpg").text).get("Format") == "jpg"
    top = 9  # ceil(log2(300))
    for level, col, row, scale, window in [(top, 0, 0, 1.0, (0, 0, 128, 128)), (top, 2, 1, 1.0, (256, 128, 44, 62)),
                                           (top - 1, 1, 0, 0.5, (128, 0, 22, 95)), (top - 2, 0, 0, 0.25, None),
                                           (0, 0, 0, 1 / 512, None), (3, 0, 0, 1 / 64, None)]:
        got = _pixels(client.get(f"/dzi/photo_files/{level}/{col}_{row}.png"))
        assert np.array_equal(got, img.read(scale, window)), (level, col, row)
    assert _pixels(client.get(f"/dzi/photo_files/{top}/0_0.jpg")).shape == (128, 128, 3)
    assert client.get(f"/dzi/photo_files/{top}/3_0.png").status_code == 404
    assert client.get(f"/dzi/photo_files/{top}/0_0.gif").status_code == 400


# ----------------------------------------------------------------------------------- the log
def test_log_names_scale_region_and_tiles(root, caplog, img):
    # a fresh app: nothing cached
    with TestClient(create_app(root)) as c, caplog.at_level(logging.INFO, logger="ligcodec.serve"):
        c.get("/iiif/3/photo/128,0,128,128/max/0/default.png")
        c.get("/iiif/3/photo/128,0,128,128/max/0/default.png", headers={"If-None-Match": "*"})
        c.get("/iiif/3/photo/128,64,128,126/max/0/default.png")
        c.get("/iiif/3/photo/full/75,48/0/default.png")  # the coarse levels: rendered whole once
        c.get("/iiif/3/photo/0,0,256,190/128,95/0/default.png")
        c.get("/iiif/3/photo/256,0,44,190/22,95/0/default.png")
    lines = [r.getMessage() for r in caplog.records if r.name == "ligcodec.serve"]

    def line(part):
        return next(m for m in lines if part in m and " 200 " in m)

    def tiles(scale, window):
        return ",".join(str(t) for t in img.model.tiles_drawn(scale, window))

    first = line("/128,0,128,128/")
    assert "scale=1 " in first and "region=128,0,128,128 " in first and "level_cache" not in first
    assert f"tiles={tiles(1.0, (128, 0, 128, 128))} decoded={tiles(1.0, (128, 0, 128, 128))} " in first
    assert any(" 304 " in m for m in lines)
    second = line("/128,64,128,126/")  # the first read's tiles are cached now: only the others are decoded
    new = sorted(set(img.model.tiles_drawn(1.0, (128, 64, 128, 126))) - set(img.model.tiles_drawn(1.0, (128, 0, 128, 128))))
    assert f"tiles={tiles(1.0, (128, 64, 128, 126))} decoded={','.join(map(str, new)) or '-'} " in second
    everything = tiles(0.25, (0, 0, 75, 48))
    assert f"scale=0.25 region=0,0,75,48 exact=1 tiles={everything} " in line("/full/75,48/")
    assert "level_cache=render" in line("/full/75,48/")
    assert "scale=0.5 " in line("/0,0,256,190/") and "level_cache=render" in line("/0,0,256,190/")
    assert "tiles=- decoded=- bytes_read=0 level_cache=hit" in line("/256,0,44,190/")


# ---------------------------------------------------------------------------- concurrency
def test_concurrent_requests_match_serial(root, img):
    """24 tile requests at once through the thread pool (on one shared LigImage) give the same
    pixels as one at a time."""
    import anyio

    app = create_app(root, threads=4)
    urls = [f"/iiif/3/photo/{x},{y},128,128/{128 // f},{128 // f}/0/default.png"
            for f in (1, 2) for x in (0, 128) for y in (0, 62) for _ in range(3)]

    async def fetch_all():
        transport = _httpx.ASGITransport(app=app)
        async with _httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            out = [None] * len(urls)

            async def one(i):
                r = await c.get(urls[i])
                assert r.status_code == 200, (urls[i], r.status_code, r.text)
                out[i] = r.content

            async with anyio.create_task_group() as tg:
                for i in range(len(urls)):
                    tg.start_soon(one, i)
            return out

    bodies = anyio.run(fetch_all)
    for u, b in zip(urls, bodies):
        x, y, _, _ = (int(v) for v in u.split("/")[4].split(","))
        f = 128 // int(u.split("/")[5].split(",")[0])
        assert np.array_equal(_pixels_bytes(b), img.read(1 / f, (x // f, y // f, 128 // f, 128 // f))), u


# --------------------------------------------------------------------------- pages, command
def test_pages(client):
    r = client.get("/")
    assert r.status_code == 200 and "/view/photo" in r.text and "/view/gray16" in r.text
    r = client.get("/view/photo?iiif=1")
    assert r.status_code == 200
    assert "openseadragon.min.js" in r.text or "npm ci --prefix" in r.text


def test_command(root, tmp_path):
    from click.testing import CliRunner

    from ligcodec.serve.command import serve

    res = CliRunner().invoke(serve, ["--help"])
    assert res.exit_code == 0 and "--port" in res.output and "127.0.0.1" in res.output
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(root / "photo.lig", tmp_path / "a" / "x.lig")
    shutil.copy(root / "photo.lig", tmp_path / "b" / "x.lig")
    res = CliRunner().invoke(serve, [str(tmp_path), "--port", "0"])
    assert res.exit_code != 0 and "share a name" in res.output


def test_import_ligcodec_does_not_import_the_web_stack():
    code = ("import sys, ligcodec, ligcodec.serve, ligcodec.serve.command; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'anyio', 'httpx')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
