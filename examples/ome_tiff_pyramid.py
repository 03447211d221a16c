"""Tour: write a ``.lig`` as a tiled, pyramidal OME-TIFF (for QuPath, OMERO, Bio-Formats, napari).

    python examples/ome_tiff_pyramid.py [output_dir]

:func:`ligcodec.ometiff.write_ome_pyramid` renders each power-of-two level band by band (tiles of
one band of rows at a time), so a gigapixel ``.lig`` converts in bounded memory. The command line
does the same: ``ligcodec decode x.lig -o x.ome.tif --pyramid``.
"""

REQUIRES = ("tifffile",)  # tests/test_examples.py skips this example without them

import sys
import tempfile
from pathlib import Path

import numpy as np

import ligcodec
from ligcodec.fit import FitConfig
from ligcodec.ometiff import write_ome_pyramid


def main(out_dir: Path) -> None:
    import tifffile

    try:  # a real photo when scikit-image is installed, else a synthetic one
        from skimage import data

        photo = data.coffee()  # 600 x 400
    except ImportError:
        y, x = np.mgrid[0:400, 0:600] / 60.0
        photo = (np.stack([np.sin(x + y), np.cos(x * 1.3), np.sin(y * 0.7 - x)], -1) * 110 + 128).astype(np.uint8)
    lig = out_dir / "photo.lig"
    ligcodec.encode(photo, lig, gaussians=2500, effort=1, workers=1, config=FitConfig(tile=256))

    tif = out_dir / "photo.ome.tif"
    # tile=128 here to show several tiles on this small image; 256 or 512 suit large ones
    sizes = write_ome_pyramid(lig, tif, tile=128, compression="zlib",
                              progress=lambda i, n: print(f"  writing level {i + 1}/{n}"))
    print(f"wrote {tif} ({tif.stat().st_size} bytes), levels {sizes}")

    with tifffile.TiffFile(tif) as tf, ligcodec.open(lig) as img:
        series = tf.series[0]
        print("OME:", tf.is_ome, "axes", series.axes, "levels", [lvl.shape for lvl in series.levels])
        for i, lvl in enumerate(series.levels):
            page = lvl.keyframe
            print(f"  level {i}: {lvl.shape}, tiles {page.tile}, {page.compression.name}")
            assert np.array_equal(lvl.asarray(), img.read(1 / 2**i))
        # tifffile can also hand the pyramid to zarr/dask lazily:
        # zarr.open(series.aszarr(), mode="r")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as d:
            main(Path(d))
