"""Whole-image reads of a large mosaic against Pillow's JPEG 2000, in alternating pairs.

    python bench/large_vs_j2k.py                 # the 64 MP mosaic of bench/large.py
    python bench/large_vs_j2k.py --side 4096 --pairs 9

``img[::4, ::4]`` against JPEG 2000 ``reduce=2``, and ``img[:, :]`` against a full JPEG 2000
decode, of the same source coded to the same byte count. Each pair runs one of ours then one of
theirs, each from a fresh open (no tile cache), so a slow minute of the machine hits both; the
table gives the best and median of each side and the median of the per-pair ratios. Needs the
mosaic and its effort-1 file from ``python bench/large.py --sizes N``.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import isa_description, jpeg2000_bytes, print_table  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--side", type=int, default=8192, help="mosaic side (bench/large.py: 2048, 4096, 8192)")
    ap.add_argument("--pairs", type=int, default=7, help="pairs for the 1/4 read (the full read gets half)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ligcodec-large"))
    args = ap.parse_args(argv)
    src = args.workdir / f"mosaic_{args.side}.tif"
    lig = args.workdir / f"mosaic_{args.side}_e1.lig"
    if not (src.exists() and lig.exists()):
        raise SystemExit(f"{src} or {lig} missing: run `python bench/large.py --sizes {args.side**2 // 2**20}` first")
    import tifffile
    from PIL import Image

    import ligcodec

    Image.MAX_IMAGE_PIXELS = None
    data = jpeg2000_bytes(Image.fromarray(tifffile.imread(src)), os.path.getsize(lig) * 8 / args.side**2)
    print(f"{isa_description()}\n{lig.name}: {os.path.getsize(lig)} bytes; JPEG 2000: {len(data)} bytes",
          file=sys.stderr)

    def theirs(reduce):
        with Image.open(io.BytesIO(data)) as im:
            im.reduce = reduce
            im.load()

    def ours(step):
        with ligcodec.open(lig) as img:
            img[::step, ::step]

    ours(4)  # numba's kernels loaded, as in a running reader
    theirs(2)
    rows = []
    for step, reduce, pairs in ((4, 2, args.pairs), (1, 0, max(3, args.pairs // 2))):
        a, b = [], []
        for _ in range(pairs):
            t = time.perf_counter()
            ours(step)
            a.append(time.perf_counter() - t)
            t = time.perf_counter()
            theirs(reduce)
            b.append(time.perf_counter() - t)
        rows.append({"read": f"img[::{step}, ::{step}] vs reduce={reduce}", "pairs": pairs,
                     "ours best s": f"{min(a):.3f}", "ours median s": f"{statistics.median(a):.3f}",
                     "J2K best s": f"{min(b):.3f}", "J2K median s": f"{statistics.median(b):.3f}",
                     "ratio of bests": f"{min(b) / min(a):.2f}",
                     "median pair ratio": f"{statistics.median(y / x for x, y in zip(a, b)):.2f}"})
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
