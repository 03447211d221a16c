"""Tour: open ``.lig`` files with Pillow, including fast reduced-size loads.

    python examples/pillow_plugin.py [output_dir]

``import ligcodec.pillow`` registers the format (Pillow has no plugin entry points, so the import
is required). Then ``Image.open`` reads ``.lig`` like any other format; ``reduce()``, ``draft()``
and ``thumbnail()`` render at the reduced scale instead of decoding full resolution first.
"""

REQUIRES = ("skimage",)  # tests/test_examples.py skips this example without them

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import ligcodec
import ligcodec.pillow  # registers ".lig" with Pillow
from ligcodec.fit import FitConfig


def main(out_dir: Path) -> None:
    from skimage import data

    path = out_dir / "chelsea.lig"
    ligcodec.encode(data.chelsea(), path, gaussians=3000, effort=1, workers=1, config=FitConfig(tile=128))

    with Image.open(path) as im:  # reads the header only
        print(im.format, im.mode, im.size, im.info)
        t = time.perf_counter()
        small = im.reduce(4)  # rendered at scale 1/4: the full image is never decoded
        print(f"reduce(4) -> {small.size} in {1000 * (time.perf_counter() - t):.0f} ms")

    with Image.open(path) as im:
        print("draft ->", im.draft("RGB", (150, 100)), "size now", im.size)  # largest 2^k with size >= request
        im.load()  # renders at that scale

    with Image.open(path) as im:
        im.thumbnail((100, 100))  # uses draft(): renders at 1/2, then resizes
        im.save(out_dir / "thumb.jpg")
        print("thumbnail", im.size, "->", out_dir / "thumb.jpg")

    # The pixels are exactly LigImage.read at the same scale.
    with Image.open(path) as im, ligcodec.open(path) as img:
        assert np.array_equal(np.asarray(im.reduce(2)), img.read(0.5))
        im.load()
        assert np.array_equal(np.asarray(im), img.read())
        im.convert("L").save(out_dir / "grey.png")  # ...and everything Pillow does works from here
    print("converted to PNG:", out_dir / "grey.png")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as d:
            main(Path(d))
