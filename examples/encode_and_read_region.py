"""Tour: encode a real photo into a ``.lig`` file, then read a region and a reduced scale.

    python examples/encode_and_read_region.py [output_dir]

The photo is scikit-image's astronaut (bundled in its wheel: no download). A ``.lig`` is read
lazily: a window decodes only the tiles under it, and a reduced scale is *rendered* at that
scale (anti-aliased), never decoded at full size and then shrunk.
"""

REQUIRES = ("skimage",)  # tests/test_examples.py skips this example without them

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import ligcodec
from ligcodec.fit import FitConfig


def main(out_dir: Path) -> None:
    from skimage import data

    photo = data.astronaut()  # 512 x 512 RGB uint8
    path = out_dir / "astronaut.lig"
    # effort=1 and a 128-px tile keep this demo to a few seconds; the defaults fit longer and better.
    r = ligcodec.encode(photo, path, quality=40, effort=1, workers=1, config=FitConfig(tile=128))
    print(f"encoded {photo.shape[1]}x{photo.shape[0]} into {r.bytes} bytes ({r.bpp:.2f} bpp, {r.gaussians} Gaussians, "
          f"PSNR {r.psnr:.1f} dB) in {r.seconds:.1f} s")

    with ligcodec.open(path) as img:
        print(img)
        print("shape", img.shape, "dtype", img.dtype, "pyramid", img.level_dimensions)

        # 1. A region, numpy-style: rows 60..220, columns 150..330 (the face). Only those tiles decode.
        before = img.bytes_read
        t = time.perf_counter()
        face = img[60:220, 150:330]
        print(f"region {face.shape} in {1000 * (time.perf_counter() - t):.0f} ms, "
              f"{img.bytes_read - before} of {path.stat().st_size} bytes read")
        # the same with read(scale, region=(x, y, w, h))
        assert np.array_equal(face, img.read(1.0, (150, 60, 180, 160)))

        # 2. A reduced scale: img[::4, ::4] renders at scale 1/4 (a 128 x 128 preview).
        t = time.perf_counter()
        quarter = img[::4, ::4]
        print(f"scale 1/4 {quarter.shape} in {1000 * (time.perf_counter() - t):.0f} ms")
        # any scale works, also non-power-of-two ones, and regions of them
        third = img.read(scale=1 / 3)
        print("scale 1/3", third.shape, "- a region of it", img.read(1 / 3, (50, 20, 60, 40)).shape)

        # 3. How close is the reduced render to the photo's box average (what a resize would give)?
        box = photo.reshape(128, 4, 128, 4, 3).mean((1, 3))
        err = quarter.astype(float) - box
        print(f"scale 1/4 vs the photo's 4x4 box average: PSNR {10 * np.log10(255**2 / (err**2).mean()):.1f} dB")

        Image.fromarray(face).save(out_dir / "face.png")
        Image.fromarray(quarter).save(out_dir / "quarter.png")
        print("wrote", out_dir / "face.png", "and", out_dir / "quarter.png")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as d:
            main(Path(d))
