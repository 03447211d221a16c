"""#16's encode-time bar: the whole ``ligcodec encode IMAGE out.lig --bpp B`` command, one process
per Kodak image, as a user runs it (default effort and workers: every core), wall seconds each.

    python bench/encode_time.py                       # all 24 Kodak images at 1 bpp
    python bench/encode_time.py --images kodim05 kodim13 --bpp 0.5
    NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=-avx512f python bench/encode_time.py   # AVX2 code path

The times include starting Python and loading numba's cached kernels (the first image also fills
the cache where it is empty: run once before timing on a fresh checkout). Run it on an otherwise
idle machine; the table gives each image's seconds, the file's bits per pixel and the slowest and
median images.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import DATA, isa_description, print_table  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", help="Kodak names, e.g. kodim05 (default: all 24)")
    ap.add_argument("--bpp", type=float, default=1.0)
    ap.add_argument("--effort", type=int, help="ligcodec --effort (default: the encoder's)")
    args = ap.parse_args(argv)
    paths = sorted((DATA / "kodak").glob("kodim*.png"))
    if args.images:
        paths = [p for p in paths if p.stem in args.images]
    if not paths:
        named = f"named {' '.join(args.images)} " if args.images else ""
        print(f"no Kodak images {named}under {DATA / 'kodak'}")
        return 0
    print(isa_description())
    rows, times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.lig"
        for p in paths:
            cmd = [sys.executable, "-m", "ligcodec.cli", "encode", str(p), str(out), "--bpp", str(args.bpp),
                   "--force", "-q"] + (["--effort", str(args.effort)] if args.effort else [])
            t = time.perf_counter()
            subprocess.run(cmd, check=True)
            s = time.perf_counter() - t
            times.append(s)
            w, h = Image.open(p).size
            bpp = out.stat().st_size * 8 / (w * h)
            rows.append({"image": p.stem, "wall s": f"{s:.1f}", "bpp": f"{bpp:.3f}"})
            print(f"  {p.stem}: {s:.1f} s", flush=True)
    rows.append({"image": "slowest", "wall s": f"{max(times):.1f}", "bpp": ""})
    rows.append({"image": "median", "wall s": f"{statistics.median(times):.1f}", "bpp": ""})
    print_table(rows, ["image", "wall s", "bpp"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
