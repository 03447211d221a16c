"""Large images: streaming encode speed and memory by size, 1 vs 2 workers, region reads, and the
whole image at 1/4 scale vs Pillow's JPEG 2000 ``reduce=2``.

    python bench/large.py                       # 4, 16, 64, 256 MP at --effort 1
    python bench/large.py --sizes 4 16 --effort 6
    python bench/large.py --giga                # adds the 1 GP (32768^2) image
    python bench/large.py --sizes 4 --giga --resume  # hours: Ctrl-C stops, the same command goes on
    python bench/large.py --sizes 1024 --reads-only --decode   # reads and decodes of existing files
    python bench/large.py --sizes 4 --workers-test   # 1 vs 2 workers on the 4 MP image

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
from bench.common import DATA, best_time, jpeg2000_bytes, print_table  # noqa: E402

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


def quarter_vs_j2k(src: Path, lig: Path, bpp: float):
    """Seconds for img[::4, ::4] of the whole .lig vs Pillow JPEG 2000 reduce=2 at the same bpp."""
    import io

    import tifffile
    from PIL import Image

    import ligcodec

    Image.MAX_IMAGE_PIXELS = None
    a = tifffile.imread(src)
    data = jpeg2000_bytes(Image.fromarray(a), bpp)
    del a

    def j2k():
        with Image.open(io.BytesIO(data)) as im:
            im.reduce = 2
            im.load()

    def quarter():  # a fresh open each time: no tile cache carried over, like a fresh J2K decode
        with ligcodec.open(lig) as img:
            return img[::4, ::4]

    quarter()  # numba's compiled kernels loaded once, as a long-running reader would have them
    ours = best_time(quarter, repeat=3, warmup=0)
    theirs = best_time(j2k, repeat=3, warmup=0)
    with ligcodec.open(lig) as img:
        return ours, theirs, len(data) * 8 / (img.shape[0] * img.shape[1])


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
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ligcodec-large"))
    args = ap.parse_args(argv)
    sizes = args.sizes + ([1024] if args.giga else [])
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for mp in sizes:
        side = SIDES[mp]
        src = args.workdir / f"mosaic_{side}.tif"
        t = time.perf_counter()
        build_mosaic(side, src)
        print(f"[{mp} MP] mosaic {src} ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
        out = args.workdir / f"mosaic_{side}_e{args.effort}.lig"
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
        cold, warm, same = region_reads(out, side)
        rows[-1].update({"1024^2 read cold ms": f"{cold * 1e3:.0f}", "warm ms": f"{warm * 1e3:.0f}",
                         "window==full": same})
        if args.decode:
            for scale, name in ((1.0, "decode s=1"), (0.25, "decode s=1/4")):
                tif = args.workdir / f"decoded_{side}.tif"
                secs, rss, _, _ = run_measured([sys.executable, "-m", "ligcodec.cli", "decode", str(out), "-o", str(tif),
                                                "--scale", str(scale), "--force", "-q"])
                tif.unlink()
                rows[-1].update({f"{name} s": f"{secs:.1f}", f"{name} RSS MB": f"{rss:.0f}"})
        if mp <= args.j2k_max:
            ours, theirs, jbpp = quarter_vs_j2k(src, out, out.stat().st_size * 8 / side**2)
            rows[-1].update({"[::4,::4] s": f"{ours:.3f}", "J2K reduce=2 s": f"{theirs:.3f}",
                             "J2K bpp": f"{jbpp:.3f}"})
        print(rows[-1], file=sys.stderr, flush=True)
    print_table(rows, ["MP", "side", "effort", "workers", "encode s", "s/MP", "CPU s/MP", "parts", "peak RSS MB", "bpp",
                       "1024^2 read cold ms", "warm ms", "window==full", "[::4,::4] s", "J2K reduce=2 s", "J2K bpp"]
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
