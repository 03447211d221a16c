"""Tour: serve a ``.lig`` over HTTP (IIIF Image API 3.0 and Deep Zoom), fetch a tile like a viewer.

    python examples/serve_and_view.py [output_dir]
    ligcodec serve output_dir/          # then open http://127.0.0.1:8000/ (the OpenSeadragon viewer)

Encodes a small image, starts the same server as ``ligcodec serve`` on a free loopback port for a
few seconds (in a thread, with uvicorn), and reads its info.json, a tile at half scale, the Deep
Zoom descriptor and a 304 revalidation with plain urllib. The tile is exactly
``LigImage.read(0.5, region)``: the server renders the scale a request asks for, from the tiles
under it, instead of decoding the full image and shrinking it.
"""

REQUIRES = ("starlette", "uvicorn")  # the [serve] extra; tests/test_examples.py skips without them

import io
import json
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

import ligcodec
from ligcodec.fit import FitConfig

KODIM23 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak" / "kodim23.png"


def _photo() -> np.ndarray:
    """A 384x256 crop of kodim23 if it is here, else a synthetic image."""
    if KODIM23.is_file():
        return np.asarray(Image.open(KODIM23).convert("RGB"))[100:356, 200:584]
    y, x = np.mgrid[0:256, 0:384].astype(np.float32)
    return (np.stack([x / 384, y / 256, 0.5 + 0.5 * np.sin(x / 11)], -1) * 255).astype(np.uint8)


def _get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:  # 304 and errors arrive as exceptions
        return e.code, e.headers, e.read()


def main(out_dir: Path) -> None:
    import uvicorn

    from ligcodec.serve import create_app

    path = out_dir / "parrots.lig"
    # A quick encode (few optimiser steps): the point here is the server, not the quality.
    r = ligcodec.encode(_photo(), path, gaussians=2000, effort=1, steps=40, workers=1, config=FitConfig(tile=128))
    print(f"encoded {path.name}: {r.bytes} bytes, PSNR {r.psnr:.1f} dB, in {r.seconds:.1f} s")

    # The app `ligcodec serve out_dir` runs, on a free port of this machine only.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(out_dir), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        status, headers, body = _get(f"{base}/iiif/3/parrots/info.json")
        info = json.loads(body)
        print(f"GET /iiif/3/parrots/info.json -> {status}: {info['width']}x{info['height']}, "
              f"{info['profile']}, tiles {info['tiles']}")

        # A tile as OpenSeadragon asks for it at scale factor 2: region in full-res px, size in output px.
        t = time.perf_counter()
        status, headers, body = _get(f"{base}/iiif/3/parrots/128,0,256,256/128,128/0/default.png")
        tile = np.asarray(Image.open(io.BytesIO(body)))
        print(f"GET .../128,0,256,256/128,128/0/default.png -> {status} {headers['Content-Type']}, "
              f"{tile.shape[1]}x{tile.shape[0]}, {len(body)} bytes, {1e3 * (time.perf_counter() - t):.0f} ms")
        with ligcodec.open(path) as img:
            same = np.array_equal(tile, img.read(0.5, (64, 0, 128, 128)))
        print("  equals LigImage.read(0.5, (64, 0, 128, 128)):", same)
        assert same
        Image.fromarray(tile).save(out_dir / "tile.png")

        # Caching: the ETag comes from the file's checksums; asking again with it costs no render.
        status, _, _ = _get(f"{base}/iiif/3/parrots/128,0,256,256/128,128/0/default.png",
                            {"If-None-Match": headers["ETag"]})
        print(f"  again with If-None-Match: {headers['ETag']} -> {status}")
        assert status == 304

        status, _, body = _get(f"{base}/dzi/parrots.dzi")
        print(f"GET /dzi/parrots.dzi -> {status}: {body.decode().splitlines()[1][:110]}...")
        status, _, body = _get(f"{base}/iiif/3/parrots/full/max/45/default.png")
        print(f"GET .../full/max/45/default.png -> {status}: {body.decode().strip()}")
        print(f"wrote {out_dir / 'tile.png'}; to browse: ligcodec serve {out_dir}  (viewer at /view/parrots)")
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as d:
            main(Path(d))
