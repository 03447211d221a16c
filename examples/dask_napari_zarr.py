"""Tour: a ``.lig`` as a zarr v3 / OME-NGFF multiscale pyramid, read with dask (and napari if installed).

    python examples/dask_napari_zarr.py [output_dir] [--view]

``ligcodec.zarr_store.aszarr(img)`` (also ``img.aszarr()``) is a read-only zarr store whose
chunks are rendered on demand: no pixels are written anywhere. Level ``l`` is the image rendered
at scale ``1 / 2**l``; axes are ``(c, y, x)`` as OME-NGFF requires (``axes="yxc"`` for the numpy
layout). With napari installed and ``--view``, the pyramid opens in a viewer; without napari that
part is skipped.
"""

REQUIRES = ("zarr", "dask")  # tests/test_examples.py skips this example without them

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ligcodec
from ligcodec.fit import FitConfig


def make_image(out_dir: Path) -> Path:
    """scikit-image's coffee photo (600 x 400) when available, else a synthetic pattern."""
    try:
        from skimage import data

        photo = data.coffee()
    except ImportError:
        y, x = np.mgrid[0:400, 0:600] / 60.0
        photo = (np.stack([np.sin(x + y), np.cos(x * 1.3), np.sin(y * 0.7 - x)], -1) * 110 + 128).astype(np.uint8)
    path = out_dir / "coffee.lig"
    ligcodec.encode(photo, path, gaussians=2500, effort=1, workers=1, config=FitConfig(tile=256))
    return path


def main(out_dir: Path, view: bool) -> None:
    import dask.array as da
    import zarr

    from ligcodec.zarr_store import aszarr

    path = make_image(out_dir)
    img = ligcodec.open(path)
    store = aszarr(img)

    # zarr sees an OME-NGFF 0.5 group with one array per level
    group = zarr.open_group(store, mode="r")
    ms = group.attrs["ome"]["multiscales"][0]
    print("axes", [a["name"] for a in ms["axes"]])
    for ds in ms["datasets"]:
        a = group[ds["path"]]
        print(f"  level {ds['path']}: shape {a.shape}, chunks {a.chunks}, scale {ds['coordinateTransformations'][0]['scale']}")

    # dask: lazy arrays; computing a slice renders only the chunks under it
    levels = [da.from_zarr(store, component=ds["path"]) for ds in ms["datasets"]]
    t = time.perf_counter()
    window = levels[0][:, 100:300, 200:456].compute()
    print(f"level 0 window {window.shape} in {1000 * (time.perf_counter() - t):.0f} ms")
    assert np.array_equal(np.moveaxis(window, 0, -1), img[100:300, 200:456])
    half = levels[1].compute()
    assert np.array_equal(np.moveaxis(half, 0, -1), img[::2, ::2])
    print("level 1 equals img[::2, ::2]:", half.shape)
    # dask arithmetic works as on any array: the mean colour of the image from level 1
    print("mean colour (level 1):", levels[1].mean(axis=(1, 2)).compute().round(1))
    # the numpy layout, (y, x, c): slices index like the image itself (not OME-NGFF, see aszarr)
    yxc = da.from_zarr(aszarr(img, axes="yxc"), component="0")
    assert np.array_equal(yxc[100:300, 200:456].compute(), img[100:300, 200:456])

    try:
        import napari
    except ImportError:
        print("napari is not installed: skipping the viewer (pip install napari[all])")
        return
    rgb = [lvl.transpose(1, 2, 0) for lvl in levels]  # napari's rgb=True wants channels last
    if view:
        viewer = napari.Viewer()
        viewer.add_image(rgb, multiscale=True, rgb=True, name=path.name)
        napari.run()
    else:
        print(f"napari {napari.__version__} found: run with --view to open the pyramid in a viewer")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--view"]
    if args:
        main(Path(args[0]), "--view" in sys.argv)
    else:
        with tempfile.TemporaryDirectory() as d:
            main(Path(d), "--view" in sys.argv)
