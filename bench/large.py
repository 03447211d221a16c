"""Large images: streaming encode speed and memory by size, 1 vs 2 workers, region reads, and the
whole image at 1/4 scale vs Pillow's JPEG 2000 ``reduce=2``.

    python bench/large.py                       # 4, 16, 64, 256 MP at --effort 1
    python bench/large.py --sizes 4 16 --effort 6
    python bench/large.py --giga                # adds the 1 GP (32768^2) image
    python bench/large.py --sizes 4 --giga --resume  # hours: Ctrl-C stops, the same command goes on
    python bench/large.py --sizes 1024 --reads-only --decode   # reads and decodes of existing files
    python bench/large.py --sizes 4 --workers-test   # 1 vs 2 workers on the 4 MP image
    python bench/large.py --sizes 4 16 64 256 --reads-only --repeat-from 64   # decode cost per MP

``--repeat-from 64`` makes a missing larger file out of the 64 MP file's chunks, repeated 2 x 2
(or 4 x 4) over a grid twice (four times) as wide: a valid file whose tiles are real encoded
tiles, for read benchmarks at sizes whose effort-1 encode would take hours on 2 cores (chunk
positions are relative to their tile and colour steps are per level, so a chunk means the same
thing at any tile). Its pixels are the 64 MP file's, tiled; its encode columns stay empty.

Test images are mosaics of 512x512 crops of the real photos in ../shared/data (aerial, satellite,
pathology, microscopy, photos), chosen by a fixed pseudo-random sequence, written once as tiled,
zlib-compressed BigTIFFs into --workdir (default /tmp/ligcodec-large) and reused. Each encode runs
as `ligcodec encode` in a child process; peak RSS is the largest sum of the resident memory of
that process and its workers, sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import DATA, best_time, isa_description, jpeg2000_bytes, print_table  # noqa: E402

BLOCK = 512
PHOTOS = [
    "large/photo_unsplash_janice_gill.jpg", "large/sat_nasa_bluemarble_day_5400x2700.jpg",
    "large/histo_openslide_CMU-1-Small-Region_HE.png", "medium/aerial_uscsipi_2_2_01.png",
    "medium/aerial_uscsipi_2_2_04.png", "medium/aerial_uscsipi_2_2_07.png",
    "medium/histo_visium_mouse_brain_coronal_HE.png", "medium/micro_vectra_multiplexIF_3ch.png",
    "medium/photo_ici_flower_foveon_rgb8.png", "medium/photo_wiki_006.png", "medium/photo_wiki_018.png",
    "medium/photo_wiki_021.png",
]
SIDES = {4: 2048, 16: 4096, 64: 8192, 256: 16384, 1024: 32768}


def build_mosaic(side: int, path: Path):
    """A side x side RGB mosaic of 512^2 crops of real photos, as a tiled BigTIFF (streamed)."""
    import tifffile
    from PIL import Image

    if path.exists():
        return
    photos = []
    for rel in PHOTOS:
        with Image.open(DATA / rel) as im:
            photos.append(np.asarray(im.convert("RGB")))
    rng = np.random.default_rng(7)
    nb = side // BLOCK
    choice = rng.integers(0, len(photos), (nb, nb))
    frac = rng.uniform(0, 1, (nb, nb, 2))

    def tiles():
        for ty in range(side // 256):
            for tx in range(side // 256):
                by, bx = ty * 256 // BLOCK, tx * 256 // BLOCK
                p = photos[choice[by, bx]]
                oy = int(frac[by, bx, 0] * (p.shape[0] - BLOCK))
                ox = int(frac[by, bx, 1] * (p.shape[1] - BLOCK))
                iy, ix = ty * 256 % BLOCK, tx * 256 % BLOCK
                yield p[oy + iy : oy + iy + 256, ox + ix : ox + ix + 256]

    tmp = path.with_suffix(".part")
    tifffile.imwrite(tmp, tiles(), shape=(side, side, 3), dtype=np.uint8, tile=(256, 256), photometric="rgb",
                     compression="zlib", bigtiff=True)
    tmp.replace(path)


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
        todo += children.get(p, [])
    return total


def run_measured(cmd, interruptible: bool = False) -> tuple[float, float, float, bool]:
    """(wall seconds, peak tree RSS in MB, CPU seconds of it and its workers, interrupted) of a
    command. Ctrl-C (SIGINT to the process group) stops the command; with ``interruptible`` its
    figures so far are returned, otherwise the interrupt propagates."""
    import resource

    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    interrupted = False
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        if not interruptible:
            raise
        interrupted, rc = True, proc.wait()
    th.join()
    if rc and not interrupted:
        raise SystemExit(f"command failed ({rc}): {' '.join(map(str, cmd))}")
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    return time.perf_counter() - t0, peak[0] / 2**20, cpu, interrupted


def encode(src: Path, out: Path, effort: int, workers: int, resume: bool = False, extra=()):
    """(wall s, peak RSS MB, CPU s, parts) of encoding ``src``. With ``resume`` an interrupted run
    (Ctrl-C, a lost session) continues from the tiles in its journal, and the parts' times add up:
    each part appends its figures to ``out + ".runs.json"``, removed when a fresh run starts."""
    import json

    log = Path(str(out) + ".runs.json")
    going_on = resume and log.exists() and Path(str(out) + ".partial").exists()  # an unfinished run
    parts = json.loads(log.read_text()) if going_on else []
    cmd = [sys.executable, "-m", "ligcodec.cli", "encode", str(src), str(out), "--effort", str(effort),
           "--workers", str(workers), "--force", "--resume" if resume else "--no-resume", "-q", *extra]
    secs, rss, cpu, stopped = run_measured(cmd, interruptible=resume)
    parts.append({"seconds": secs, "rss_mb": rss, "cpu_s": cpu, "date": time.strftime("%Y-%m-%d %H:%M"),
                  "interrupted": stopped})
    if resume:
        log.write_text(json.dumps(parts, indent=1))
    if stopped:
        raise SystemExit(f"interrupted after {secs:.0f} s: run again with --resume to continue from "
                         f"{out}.partial")
    return (sum(p["seconds"] for p in parts), max(p["rss_mb"] for p in parts), sum(p["cpu_s"] for p in parts),
            len(parts))


def repeat_lig(src: Path, out: Path, reps: int):
    """Write ``out``: the file ``src`` with its tile grid repeated ``reps x reps`` times."""
    import dataclasses

    from ligcodec.container import LigReader, write_lig

    with LigReader(src) as r:
        h = r.header
        if h.alpha_mask or h.width % h.tile or h.height % h.tile:
            raise SystemExit(f"{src}: only files without alpha whose sides are whole tiles can be repeated")
        nx, ny = h.grid
        big = dataclasses.replace(h, width=h.width * reps, height=h.height * reps,
                                  metadata={**h.metadata, "bench": f"{src.name} repeated {reps}x{reps}"})
        chunks = [[(r.chunk(lvl, (ty % ny) * nx + tx % nx), r.entry(lvl, (ty % ny) * nx + tx % nx).count)
                   for ty in range(ny * reps) for tx in range(nx * reps)] for lvl in range(h.levels)]
    with open(out, "wb") as f:
        write_lig(f, big, chunks)


def region_reads(lig: Path, side: int):
    """Latency of 1024^2 reads at full scale: cold (new tiles), warm (same region again)."""
    import ligcodec

    rng = np.random.default_rng(3)
    with ligcodec.open(lig) as img:
        img.read(1.0, (0, 0, 256, 256))  # load the compiled kernels
        x, y = (int(v) for v in rng.integers(0, side - 1024, 2))
        t = time.perf_counter()
        img.read(1.0, (x, y, 1024, 1024))
        cold = time.perf_counter() - t
        warm = best_time(lambda: img.read(1.0, (x, y, 1024, 1024)), repeat=5, warmup=0)
        # The window equals the same pixels of a larger read that starts on tile boundaries.
        ax, ay = x - x % 256, y - y % 256
        big = img.read(1.0, (ax, ay, min(1536, side - ax), min(1536, side - ay)))
        same = np.array_equal(big[y - ay : y - ay + 1024, x - ax : x - ax + 1024], img.read(1.0, (x, y, 1024, 1024)))
    return cold, warm, same


def whole_reads(lig: Path):
    """Best-of-3 seconds of ``img[::4, ::4]`` and ``img[:, :]`` (the whole image at 1/4 and at full
    scale, in memory), each from a fresh open: no tile cache carried over."""
    import ligcodec

    def read(step):
        with ligcodec.open(lig) as img:
            return img[::step, ::step]

    read(4)  # numba's compiled kernels loaded once, as a long-running reader would have them
    return best_time(lambda: read(4), repeat=3, warmup=0), best_time(lambda: read(1), repeat=3, warmup=0)


def j2k_reads(src: Path, bpp: float):
    """Best-of-3 seconds of Pillow's JPEG 2000 decode at ``reduce=2`` and in full, of the source
    coded at ``bpp``, and that file's bpp."""
    import io

    import tifffile
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    a = tifffile.imread(src)
    data = jpeg2000_bytes(Image.fromarray(a), bpp)
    del a

    def j2k():
        with Image.open(io.BytesIO(data)) as im:
            im.reduce = 2
            im.load()

    def j2k_full():
        with Image.open(io.BytesIO(data)) as im:
            im.load()

    side = Image.open(io.BytesIO(data)).size
    return (best_time(j2k, repeat=3, warmup=0), best_time(j2k_full, repeat=3, warmup=0),
            len(data) * 8 / (side[0] * side[1]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64, 256], choices=sorted(SIDES))
    ap.add_argument("--giga", action="store_true", help="also the 1 GP (32768^2) image")
    ap.add_argument("--effort", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workers-test", action="store_true", help="also encode the smallest size with 1 worker")
    ap.add_argument("--resume", action="store_true",
                    help="continue an interrupted encode from its journal (Ctrl-C stops one cleanly); "
                         "the parts' seconds add up in the table")
    ap.add_argument("--j2k-max", type=int, default=64, help="largest size (MP) for the JPEG 2000 comparison")
    ap.add_argument("--decode", action="store_true",
                    help="also time `ligcodec decode` of the whole file to a tiled TIFF at scale 1 and 1/4 "
                         "(seconds and peak RSS: the output is written in bands, in bounded memory)")
    ap.add_argument("--reads-only", action="store_true",
                    help="no encode: measure the reads of the .lig files already in --workdir (the encode "
                         "columns come from their .runs.json, if a --resume run left one)")
    ap.add_argument("--repeat-from", type=int, choices=sorted(SIDES), metavar="MP",
                    help="with --reads-only: make a missing larger file from this size's file, its tiles "
                         "repeated (see above)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ligcodec-large"))
    args = ap.parse_args(argv)
    sizes = args.sizes + ([1024] if args.giga else [])
    print(isa_description(), file=sys.stderr, flush=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for mp in sizes:
        side = SIDES[mp]
        src = args.workdir / f"mosaic_{side}.tif"
        out = args.workdir / f"mosaic_{side}_e{args.effort}.lig"
        repeated = False
        if args.reads_only and args.repeat_from and not out.exists() and mp > args.repeat_from:
            base = SIDES[args.repeat_from]
            repeat_lig(args.workdir / f"mosaic_{base}_e{args.effort}.lig", out, side // base)
            repeated = True
        else:
            t = time.perf_counter()
            build_mosaic(side, src)
            print(f"[{mp} MP] mosaic {src} ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
        runs = [args.workers] + ([1] if args.workers_test and mp == min(sizes) and args.workers != 1 else [])
        if args.reads_only:
            rows.append(_logged_row(out, side, args.effort, args.workers))
            runs = []
        for wk in runs:
            secs, rss, cpu, parts = encode(src, out, args.effort, wk, args.resume)
            size = out.stat().st_size
            row = {"MP": f"{side * side / 1e6:.0f}", "side": side, "effort": args.effort, "workers": wk,
                   "encode s": f"{secs:.0f}", "s/MP": f"{secs / (side * side / 1e6):.2f}",
                   "CPU s/MP": f"{cpu / (side * side / 1e6):.2f}", "parts": parts,
                   "peak RSS MB": f"{rss:.0f}", "bpp": f"{size * 8 / side**2:.3f}"}
            print(row, file=sys.stderr, flush=True)
            rows.append(row)
        if repeated:
            rows[-1]["bpp"] += f" ({args.repeat_from} MP x{(side // SIDES[args.repeat_from]) ** 2})"
        cold, warm, same = region_reads(out, side)
        rows[-1].update({"1024^2 read cold ms": f"{cold * 1e3:.0f}", "warm ms": f"{warm * 1e3:.0f}",
                         "window==full": same})
        quarter, full = whole_reads(out)
        mpx = side * side / 1e6
        rows[-1].update({"[::4,::4] s": f"{quarter:.3f}", "[::4,::4] ms/MP": f"{quarter * 1e3 / mpx:.1f}",
                         "full s": f"{full:.2f}", "full ms/MP": f"{full * 1e3 / mpx:.1f}"})
        if args.decode:
            for scale, name in ((1.0, "decode s=1"), (0.25, "decode s=1/4")):
                tif = args.workdir / f"decoded_{side}.tif"
                secs, rss, _, _ = run_measured([sys.executable, "-m", "ligcodec.cli", "decode", str(out), "-o", str(tif),
                                                "--scale", str(scale), "--force", "-q"])
                tif.unlink()
                rows[-1].update({f"{name} s": f"{secs:.1f}", f"{name} RSS MB": f"{rss:.0f}"})
        if mp <= args.j2k_max and not repeated:
            j_quarter, j_full, jbpp = j2k_reads(src, out.stat().st_size * 8 / side**2)
            rows[-1].update({"J2K reduce=2 s": f"{j_quarter:.3f}", "J2K full s": f"{j_full:.2f}",
                             "J2K bpp": f"{jbpp:.3f}", "[::4,::4] x": f"{j_quarter / quarter:.2f}",
                             "full x": f"{j_full / full:.2f}"})
        print(rows[-1], file=sys.stderr, flush=True)
    print_table(rows, ["MP", "side", "effort", "workers", "encode s", "s/MP", "CPU s/MP", "parts", "peak RSS MB", "bpp",
                       "1024^2 read cold ms", "warm ms", "window==full", "[::4,::4] s", "[::4,::4] ms/MP",
                       "J2K reduce=2 s", "[::4,::4] x", "full s", "full ms/MP", "J2K full s", "full x", "J2K bpp"]
                + (["decode s=1 s", "decode s=1 RSS MB", "decode s=1/4 s", "decode s=1/4 RSS MB"] if args.decode else []))


def _logged_row(out: Path, side: int, effort: int, workers: int) -> dict:
    """The table row of an existing encode, from the parts its --resume runs logged (if any)."""
    import json

    if not out.exists():
        raise SystemExit(f"--reads-only: {out} does not exist; encode it first")
    row = {"MP": f"{side * side / 1e6:.0f}", "side": side, "effort": effort, "workers": workers,
           "bpp": f"{out.stat().st_size * 8 / side**2:.3f}"}
    log = Path(str(out) + ".runs.json")
    if log.exists():
        parts = json.loads(log.read_text())
        secs, cpu = sum(p["seconds"] for p in parts), sum(p["cpu_s"] for p in parts)
        row.update({"encode s": f"{secs:.0f}", "s/MP": f"{secs / (side * side / 1e6):.2f}",
                    "CPU s/MP": f"{cpu / (side * side / 1e6):.2f}", "parts": len(parts),
                    "peak RSS MB": f"{max(p['rss_mb'] for p in parts):.0f}"})
    return row


if __name__ == "__main__":
    main()
