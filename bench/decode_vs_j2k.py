"""Full decode time of ligcodec vs Pillow's JPEG 2000 on the same images at the same size.

    python bench/decode_vs_j2k.py DIR      # DIR holds kodimNN.lig files (e.g. left by bench/rd.py)

For each .lig, JPEG 2000 (irreversible, mct=1, one layer) is encoded at the .lig's exact byte
count and both are decoded alternately, best of 7 wall-clock times each, in this one process.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import DATA, print_table  # noqa: E402


def main(argv=None):
    import ligcodec
    from PIL import Image

    argv = sys.argv[1:] if argv is None else argv
    files = sorted(Path(argv[0]).glob("kodim*.lig"))
    rows = []
    for f in files:
        img = np.asarray(Image.open(DATA / "kodak" / f"{f.stem}.png").convert("RGB"))
        size = f.stat().st_size
        ratio = img.size * 8 / (8 * size)  # uncompressed bits / compressed bits
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG2000", irreversible=True, mct=1, quality_mode="rates",
                                  quality_layers=[ratio])
        data = buf.getvalue()

        def j2k():
            with Image.open(io.BytesIO(data)) as im:
                im.load()

        ligcodec.decode(f)
        ours, theirs = [], []
        for _ in range(7):
            t = time.perf_counter()
            ligcodec.decode(f)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            j2k()
            theirs.append(time.perf_counter() - t)
        rows.append({"image": f.stem, "lig bytes": size, "j2k bytes": len(data),
                     "ligcodec ms": f"{1e3 * min(ours):.1f}", "JPEG2000 ms": f"{1e3 * min(theirs):.1f}",
                     "ratio": f"{min(theirs) / min(ours):.2f}"})
    o = np.mean([float(r["ligcodec ms"]) for r in rows])
    j = np.mean([float(r["JPEG2000 ms"]) for r in rows])
    rows.append({"image": "mean", "lig bytes": "", "j2k bytes": "", "ligcodec ms": f"{o:.1f}",
                 "JPEG2000 ms": f"{j:.1f}", "ratio": f"{j / o:.2f}"})
    print_table(rows, ["image", "lig bytes", "j2k bytes", "ligcodec ms", "JPEG2000 ms", "ratio"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
