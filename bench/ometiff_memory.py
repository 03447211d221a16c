"""Peak memory of writing a pyramidal OME-TIFF from a large ``.lig`` (:func:`ligcodec.ometiff.write_ome_pyramid`).

Encoding a gigapixel image takes hours on two cores, so the large file is forged: a small real
image is encoded as one tile, and that tile's chunks are copied to every tile of a large grid
(each copy at its own offset: the spec forbids chunks that share bytes). Decoding it is the same
work as decoding any file with that many Gaussians per tile.

Each size is written in a child process that reports its peak RSS (``VmHWM`` of
``/proc/self/status``) and wall time::

    python bench/ometiff_memory.py                      # 8192^2 (64 MP) and 32768^2 (1 GP)
    python bench/ometiff_memory.py --sides 4096 8192    # other sizes
    python bench/ometiff_memory.py --lig big.lig        # a file you have

The 1 GP write takes ~9 minutes on two (shared, busy) cores, rendering most of that time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def encode_seed(path, side: int = 256, gaussians: int = 1500) -> None:
    """A one-tile ``.lig`` of a ``side`` x ``side`` crop of scikit-image's astronaut (a real photo)."""
    import numpy as np

    import ligcodec
    from ligcodec.fit import FitConfig

    try:
        from skimage.data import astronaut

        img = astronaut()[40 : 40 + side, 140 : 140 + side]
    except ImportError:  # a smooth synthetic image instead
        y, x = np.mgrid[0:side, 0:side] / side
        img = (np.stack([np.sin(6 * x + 2 * y), np.cos(5 * y - x), np.sin(3 * x * y)], -1) * 0.45 + 0.5)
        img = (img * 255).astype(np.uint8)
    ligcodec.encode(img, path, gaussians=gaussians, effort=1, workers=1, config=FitConfig(tile=side))


def forge_lig(seed, path, width: int, height: int) -> None:
    """Write ``path``: a ``width`` x ``height`` ``.lig`` whose every tile holds a copy of the
    chunks of the one-tile file ``seed`` (tile size = the seed's)."""
    from ligcodec.container import LigReader, write_lig

    with LigReader(seed) as r:
        h = r.header
        if h.n_tiles != 1 or h.alpha_mask:
            raise ValueError(f"{seed}: the seed must have exactly one tile and no alpha mask")
        per_level = [(r.chunk(lvl, 0), r.entry(lvl, 0).count) for lvl in range(h.levels)]
    header = dataclasses.replace(h, width=width, height=height, metadata={"forged_from": os.fspath(seed)})
    n = header.n_tiles
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        write_lig(f, header, [[c] * n for c in per_level])
    os.replace(tmp, path)


def _child(lig, out, tile, compression) -> None:
    """Runs in a fresh process: write the pyramid, print one JSON line."""
    from ligcodec import open as lig_open
    from ligcodec.ometiff import write_ome_pyramid

    t = time.perf_counter()
    with lig_open(lig) as img:
        write_ome_pyramid(img, out, tile=tile, compression=compression)
    wall = time.perf_counter() - t
    status = Path("/proc/self/status").read_text()
    kb = {k: int(v.split()[0]) for k, v in (ln.split(":", 1) for ln in status.splitlines()) if k in ("VmHWM", "VmRSS")}
    print(json.dumps({"wall_s": wall, "vmhwm_mb": kb["VmHWM"] / 1024, "tiff_mb": os.path.getsize(out) / 2**20}))


def _baseline() -> float:
    """Peak RSS of a process that only imports ligcodec, numba kernels and tifffile."""
    code = ("import ligcodec, ligcodec.ometiff, tifffile, numpy; from pathlib import Path; "
            "s = Path('/proc/self/status').read_text(); "
            "print([int(l.split()[1]) for l in s.splitlines() if l.startswith('VmHWM')][0] / 1024)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=ROOT).stdout)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sides", type=int, nargs="+", default=[8192, 32768], help="square image sides to forge")
    ap.add_argument("--lig", help="measure this file instead of forged ones")
    ap.add_argument("--tile", type=int, default=256, help="TIFF tile size")
    ap.add_argument("--compression", default="zlib", help="TIFF compression (zlib, lzw, jpeg, zstd, none)")
    ap.add_argument("--gaussians", type=int, default=1500, help="Gaussians of the 256^2 seed tile")
    ap.add_argument("--keep", action="store_true", help="keep the forged .lig and .ome.tif files")
    ap.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    compression = None if args.compression.lower() == "none" else args.compression
    if args._child:
        _child(*args._child, args.tile, compression)
        return

    work = Path(tempfile.mkdtemp(prefix="ometiff_memory_"))
    jobs = []
    if args.lig:
        jobs.append(Path(args.lig))
    else:
        seed = work / "seed.lig"
        t = time.perf_counter()
        encode_seed(seed, gaussians=args.gaussians)
        print(f"seed: 256x256, {args.gaussians} Gaussians, {seed.stat().st_size} bytes ({time.perf_counter() - t:.1f} s)")
        for side in args.sides:
            p = work / f"forged_{side}.lig"
            t = time.perf_counter()
            forge_lig(seed, p, side, side)
            print(f"forged {p.name}: {p.stat().st_size / 2**20:.0f} MB in {time.perf_counter() - t:.1f} s")
            jobs.append(p)
    base = _baseline()
    rows = []
    for lig in jobs:
        out = work / (lig.stem + ".ome.tif")
        cmd = [sys.executable, __file__, "--tile", str(args.tile), "--compression", args.compression,
               "--_child", str(lig), str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        if r.returncode:
            sys.exit(f"child failed on {lig}:\n{r.stderr}")
        res = json.loads(r.stdout.strip().splitlines()[-1])
        import ligcodec

        with ligcodec.open(lig) as img:
            w, h = img.dimensions
            levels = img.level_count
        rows.append((f"{w}x{h}", w * h / 1e6, levels, res["wall_s"], res["vmhwm_mb"], res["tiff_mb"]))
        print(f"{w}x{h}: {res}", flush=True)
        if not args.keep:
            out.unlink(missing_ok=True)
            if not args.lig:
                lig.unlink(missing_ok=True)
    print(f"\nbaseline peak RSS (imports only): {base:.0f} MB; TIFF tile {args.tile}, compression {args.compression}, "
          f"{os.cpu_count()} CPUs\n")
    print("| image | MP | levels | write s | MP/s (all levels) | peak RSS MB | TIFF MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, mp, levels, wall, rss, mb in rows:
        print(f"| {name} | {mp:.0f} | {levels} | {wall:.1f} | {mp * 4 / 3 / wall:.1f} | {rss:.0f} | {mb:.0f} |")
    if not args.keep:
        for p in work.iterdir():
            p.unlink()
        work.rmdir()
    else:
        print(f"\nfiles kept in {work}")


if __name__ == "__main__":
    main()
