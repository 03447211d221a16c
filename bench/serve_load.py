"""Load test of `ligcodec serve` against JPEG 2000 served the same way: random IIIF tiles, loopback.

    python bench/serve_load.py                          # 64 MP (8192^2), 16 clients, 30 s per server
    python bench/serve_load.py --side 2048 --seconds 5  # a quick run (4 MP)
    python bench/serve_load.py --servers lig j2k-area   # a subset

Each server runs in its own process on 127.0.0.1 and answers the same IIIF Image API URLs, parsed
by the same code (``ligcodec.serve.iiif``), rendered in a pool of ``--threads`` worker threads and
encoded by the same JPEG encoder; only the pixels' source differs:

* ``lig``: ``ligcodec serve`` itself (one LigImage, its decoded-tile cache of 4096 tiles per level);
* ``lig-nocache``: the same with a one-tile cache, so every request decodes its tiles again;
* ``j2k-pillow``: a JPEG 2000 file of the same size decoded by Pillow (OpenJPEG) per request, as
  Pillow can: ``im.reduce = k`` and ``crop``; Pillow decodes the whole image at that resolution
  (it has no area decoding: measured, a crop costs the full decode), so this is what a server
  built on Pillow pays;
* ``j2k-area``: the same file decoded per request by OpenJPEG through glymur with an area and a
  resolution level (``Jp2k(path)[y0:y1:f, x0:x1:f]``): only the code-blocks under the tile, which
  is what JPEG 2000 tile servers do (needs ``pip install glymur``; skipped without it).

The J2K file has 1024^2 tiles and 6 resolutions, rate-controlled (``quality_mode='rates'``) to
within 3 % of the .lig's bytes. ``--clients`` asyncio clients, each on one keep-alive connection,
request for ``--seconds`` seconds tiles that OpenSeadragon would request from info.json: a scale
factor drawn uniformly from its ``scaleFactors``, then a tile of that level uniformly (the same
seeded sequence for every server). Errors are non-200 answers, broken connections and requests
over ``--timeout``. The client runs on the same machine and takes part of its CPU.

The source is the mosaic of ``bench/large.py`` (512^2 crops of the photos in ../shared/data),
cached with the encodes under ``--workdir`` (default /tmp/ligcodec-serve-load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import print_table

SERVERS = ("lig", "lig-nocache", "j2k-pillow", "j2k-area")


# ---------------------------------------------------------------------------------- the files
def prepare(side: int, effort: int, workers: int, workdir: Path) -> tuple[Path, Path]:
    """The mosaic, its .lig (``ligcodec encode --effort``) and a J2K of the same size, cached."""
    from bench.large import build_mosaic

    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / f"mosaic_{side}.tif"
    lig = workdir / f"mosaic_{side}_e{effort}.lig"
    jp2 = workdir / f"mosaic_{side}_e{effort}.jp2"
    if not src.exists():
        t = time.perf_counter()
        build_mosaic(side, src)
        print(f"mosaic {src}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    if not lig.exists():
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ligcodec.cli", "encode", str(src), str(lig), "--effort", str(effort),
                        "--workers", str(workers), "-q"], check=True)
        print(f"encode {lig}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    if not jp2.exists():
        _write_j2k(src, jp2, lig.stat().st_size)
    return lig, jp2


def _write_j2k(src: Path, out: Path, target: int):
    """Tiled JPEG 2000 (1024^2 tiles, 6 resolutions) within 3 % of ``target`` bytes."""
    import tifffile
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    im = Image.fromarray(tifffile.imread(src))
    raw = im.width * im.height * 3
    ratio = raw / target
    tmp = out.with_suffix(".part")
    for attempt in range(4):
        t = time.perf_counter()
        im.save(tmp, format="JPEG2000", irreversible=True, mct=1, quality_mode="rates", quality_layers=[ratio],
                tile_size=(1024, 1024), num_resolutions=6)
        size = tmp.stat().st_size
        print(f"J2K rate {ratio:.1f}: {size} bytes for {target} ({time.perf_counter() - t:.0f} s)", file=sys.stderr,
              flush=True)
        if abs(size / target - 1) <= 0.03:
            break
        ratio *= size / target
    tmp.replace(out)


# ------------------------------------------------------------------------------ the J2K servers
def j2k_app(path: Path, mode: str, threads: int, max_pixels: int = 1 << 24):
    """A Starlette app answering IIIF tile URLs from a JPEG 2000 file (``mode`` pillow or area)."""
    import anyio
    from PIL import Image
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from ligcodec.serve import iiif, render

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as im:
        width, height = im.size
    if mode == "area":
        import glymur

        glymur.set_option("lib.num_threads", 1)
    limiter = {}

    def decode(region, size):
        """Pixels of ``region`` (full-res x0, y0, x1, y1) at ``size``: a power-of-2 reduction,
        then (for edge tiles whose size rounds) a resize to the exact size."""
        x0, y0, x1, y1 = (int(v) for v in region)
        f = max(1, 2 ** round(math.log2((x1 - x0) / size[0])))
        k = min(int(math.log2(f)), 5)
        f = 2**k
        if mode == "pillow":
            with Image.open(path) as im:
                im.reduce = k
                im.load()
                a = np.asarray(im.crop((x0 // f, y0 // f, math.ceil(x1 / f), math.ceil(y1 / f))))
        else:
            import glymur

            a = glymur.Jp2k(str(path))[y0:y1:f, x0:x1:f]
        if a.shape[1] != size[0] or a.shape[0] != size[1]:
            a = np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BILINEAR))
        return a

    async def info(request):
        return JSONResponse(iiif.info(f"{request.base_url}iiif/3/x", width, height, 3, 256, max_pixels))

    async def image(request):
        p = request.path_params
        try:
            req = iiif.parse(p["region"], p["size"], p["rotation"], p["qf"], width, height, 3, max_pixels)
        except iiif.IIIFError as e:
            return PlainTextResponse(e.reason, status_code=e.status)
        if "l" not in limiter:
            limiter["l"] = anyio.CapacityLimiter(threads)

        def work():
            return render.encode(decode(req.region, req.size), req.format)

        body = await anyio.to_thread.run_sync(work, limiter=limiter["l"])
        return Response(body, media_type=render.MEDIA_TYPES[req.format])

    return Starlette(routes=[Route("/iiif/3/{name}/info.json", info),
                             Route("/iiif/3/{name}/{region}/{size}/{rotation}/{qf}", image)])


def _serve_j2k(path: Path, mode: str, threads: int):
    """``--_serve j2k-pillow|j2k-area FILE``: the J2K server in this process, on a free port."""
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"serving at http://127.0.0.1:{sock.getsockname()[1]}/", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(j2k_app(path, mode, threads), log_level="warning", access_log=False,
                                  lifespan="off")).run(sockets=[sock])


def start(kind: str, lig: Path, jp2: Path, threads: int) -> tuple[subprocess.Popen, str]:
    if kind.startswith("lig"):
        cmd = [sys.executable, "-m", "ligcodec.serve", str(lig), "--port", "0", "--quiet", "--threads", str(threads)]
        if kind == "lig-nocache":
            cmd += ["--cache-tiles", "1"]
    else:
        cmd = [sys.executable, __file__, "--_serve", kind, str(jp2), "--threads", str(threads)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not m:
        proc.kill()
        raise SystemExit(f"{kind}: the server did not start: {line}{proc.stderr.read()}")
    return proc, f"127.0.0.1:{m.group(1)}"


def stop(proc: subprocess.Popen):
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------- the client
def tile_urls(name: str, width: int, height: int, tile: int, factors, n: int, seed: int) -> list:
    """``n`` IIIF tile requests as OpenSeadragon makes them: level uniform, then tile uniform."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        f = rng.choice(factors)
        lw, lh = math.ceil(width / f), math.ceil(height / f)
        col, row = rng.randrange(math.ceil(lw / tile)), rng.randrange(math.ceil(lh / tile))
        x, y = col * tile * f, row * tile * f
        rw, rh = min(tile * f, width - x), min(tile * f, height - y)
        sw, sh = min(tile, lw - col * tile), min(tile, lh - row * tile)
        out.append((f, f"/iiif/3/{name}/{x},{y},{rw},{rh}/{sw},{sh}/0/default.jpg"))
    return out


async def _get(reader, writer, path: str) -> tuple[int, int]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if not m:
        raise ConnectionError("no Content-Length")
    body = await reader.readexactly(int(m.group(1)))
    return status, len(body)


async def _client(addr, urls, deadline, timeout, results):
    host, port = addr.split(":")
    reader = writer = None
    for f, url in urls:
        if time.perf_counter() >= deadline:
            break
        t = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, int(port))
            status, nbytes = await asyncio.wait_for(_get(reader, writer, url), timeout)
            results.append((f, time.perf_counter() - t, status, nbytes))
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ValueError) as e:
            results.append((f, time.perf_counter() - t, type(e).__name__, 0))
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def load(addr: str, urls_per_client, seconds: float, timeout: float) -> tuple[list, float]:
    async def run():
        results = []
        t0 = time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(*(_client(addr, u, deadline, timeout, results) for u in urls_per_client))
        return results, time.perf_counter() - t0

    return asyncio.run(run())


def summarise(kind: str, results: list, wall: float) -> dict:
    ok = [r for r in results if r[2] == 200]
    lat = sorted(r[1] for r in ok)
    errors = len(results) - len(ok)

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")

    kinds = {}
    for r in results:
        if r[2] != 200:
            kinds[str(r[2])] = kinds.get(str(r[2]), 0) + 1
    if kinds:
        print(f"{kind} errors: {kinds}", file=sys.stderr)
    by_f = {}
    for f, t, *_ in ok:
        by_f.setdefault(f, []).append(t)
    return {"server": kind, "tiles": len(ok), "errors": errors, "tiles/s": f"{len(ok) / wall:.1f}",
            "p50 ms": f"{pct(0.5):.0f}", "p99 ms": f"{pct(0.99):.0f}", "max ms": f"{pct(1.0):.0f}",
            "MB/s": f"{sum(r[3] for r in ok) / wall / 1e6:.2f}",
            "p50 ms by factor": " ".join(f"{f}:{statistics.median(v) * 1e3:.0f}" for f, v in sorted(by_f.items())),
            "wall s": f"{wall:.1f}"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--side", type=int, default=8192, help="image side in px (8192: 64 MP; 2048 for a quick run)")
    ap.add_argument("--seconds", type=float, default=30.0, help="load per server")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="render threads of every server")
    ap.add_argument("--timeout", type=float, default=120.0, help="a request slower than this is an error")
    ap.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    ap.add_argument("--effort", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="encode processes (only when the .lig is not cached)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ligcodec-serve-load"))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--_serve", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._serve:
        return _serve_j2k(Path(args._serve[1]), args._serve[0].removeprefix("j2k-"), args.threads)

    lig, jp2 = prepare(args.side, args.effort, args.workers, args.workdir)
    import ligcodec
    from ligcodec.serve.app import served_tile_size
    from ligcodec.serve.iiif import scale_factors

    with ligcodec.open(lig) as img:
        w, h = img.dimensions
        tile = served_tile_size(img.header.tile)
    factors = scale_factors(w, h, tile)
    name = lig.stem
    urls = [tile_urls(name, w, h, tile, factors, 100_000, args.seed * 1000 + c) for c in range(args.clients)]
    print(f"{lig.name}: {w}x{h}, {lig.stat().st_size * 8 / (w * h):.3f} bpp ({lig.stat().st_size} bytes); "
          f"{jp2.name}: {jp2.stat().st_size} bytes; scale factors {factors}; {args.clients} clients, "
          f"{args.seconds:.0f} s per server, {args.threads} render threads", file=sys.stderr, flush=True)
    rows = []
    for kind in args.servers:
        if kind == "j2k-area":
            try:
                import glymur  # noqa: F401
            except ImportError:
                print("j2k-area: skipped (pip install glymur)", file=sys.stderr)
                continue
        proc, addr = start(kind, lig, jp2, args.threads)
        try:
            results, wall = load(addr, urls, args.seconds, args.timeout)
        finally:
            stop(proc)
        rows.append(summarise(kind, results, wall))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print_table(rows, ["server", "tiles", "errors", "tiles/s", "p50 ms", "p99 ms", "max ms", "MB/s", "wall s",
                       "p50 ms by factor"])
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
