"""Can level 0 stand alone at reduced scale? Level 0 alone vs both levels, PSNR against the
box-downsampled original, for a few Kodak images at one rate.

    python bench/levels.py                              # default split, kodim05/13/21/23, 1 bpp
    python bench/levels.py --share 0.25 --downsample 4  # a bigger level 0 fitted at 1/4
    python bench/levels.py --move 1 2 3                 # also: move level-1 Gaussians of
                                                        # sigma >= T px into level 0 after the fit
    python bench/levels.py --progressive --images all   # what `encode --progressive` gives a user

``--move`` needs no new fit: the render is a sum, so which chunks a Gaussian is stored in does not
change the full-resolution image; the question is how much of the file a 1/4 read would then need.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import DATA, print_table  # noqa: E402


def psnr(a, ref):
    return 10 * np.log10(1 / np.mean((np.clip(a, 0, 1).astype(np.float64) - ref) ** 2))


def materialise(img):
    """The decoded Gaussians of every tile and level of an open file, as a plain Model."""
    from ligcodec.model import Model
    from ligcodec.render import Gaussians

    m = img.model
    levels = [[None] * m.n_tiles for _ in m.levels]
    for t in range(m.n_tiles):
        for lvl in range(len(m.levels)):
            means, chol, colours, _ = m.gather([t], [lvl])
            levels[lvl][t] = Gaussians(means.copy(), chol.copy(), colours.copy())
    return Model(m.width, m.height, m.channels, m.tile, levels)


def sigma_max(g):
    """Largest standard deviation (px) of each Gaussian, from its log-Cholesky factor."""
    l11, l21, l22 = np.exp(g.chol[:, 0]), g.chol[:, 1], np.exp(g.chol[:, 2])
    sxx, sxy, syy = l11**2, l11 * l21, l21**2 + l22**2
    half_tr, det = (sxx + syy) / 2, sxx * syy - sxy**2
    return np.sqrt(half_tr + np.sqrt(np.maximum(half_tr**2 - det, 0)))


def moved(model, threshold):
    """``model`` with every level-1 Gaussian of sigma >= threshold moved into level 0."""
    from ligcodec.model import Model
    from ligcodec.render import Gaussians

    l0, l1 = [], []
    for g0, g1 in zip(model.levels[0], model.levels[1]):
        big = sigma_max(g1) >= threshold
        l0.append(Gaussians(*(np.concatenate([a, b[big]]) for a, b in
                              ((g0.means, g1.means), (g0.chol, g1.chol), (g0.colours, g1.colours)))))
        l1.append(Gaussians(g1.means[~big], g1.chol[~big], g1.colours[~big]))
    return Model(model.width, model.height, model.channels, model.tile, [l0, l1])


def progressive_rows(names, bpp):
    """Default vs ``progressive=True`` files of each image at ``bpp``, as a user reads them: full
    decode PSNR and its margin over JPEG at the same size, the 1/4 read (all levels of a default
    file, level 0 alone of a progressive one) against the 4x4 area-averaged image, the share of
    the file that read touches, and its time (open included, best of 7 after 2 warm-ups, timed
    after every encode has finished: reads in the seconds after an encode, while its worker
    processes wind down, measured up to 30x slower, and the first file timed can still be)."""
    import ligcodec
    from PIL import Image

    from bench.common import best_time
    from bench.metrics import psnr as psnr8
    from bench.rd import CODECS, best_under, decode_pil
    from ligcodec.fit.tiles import downsample

    rows, files = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in names:
            img = np.asarray(Image.open(DATA / "kodak" / f"kodim{k}.png").convert("RGB"))
            quarter = downsample(img.astype(np.float32) / 255, 4)
            for prog in (False, True):
                path = Path(tmp) / f"kodim{k}{'p' if prog else ''}.lig"
                ligcodec.encode(img, path, bpp=bpp, workers=2, progressive=prog)
                size = path.stat().st_size
                jpeg, _ = decode_pil(best_under(img, size, *CODECS["JPEG"]))
                with ligcodec.open(path) as im:
                    full = psnr8(im.read(), img)
                with ligcodec.open(path) as im:
                    q = im.read(0.25)
                    touched = im.bytes_read / size
                rows.append({"image": f"kodim{k}", "file": "progressive" if prog else "default",
                             "bpp": f"{size * 8 / (img.shape[0] * img.shape[1]):.3f}", "full PSNR": f"{full:.2f}",
                             "- JPEG": f"{full - psnr8(jpeg, img):+.2f}",
                             "1/4 read PSNR": f"{psnr(q.astype(np.float32) / 255, quarter):.2f}",
                             "1/4 read bytes": f"{touched:.2f}"})
                files.append(path)
                print(rows[-1], file=sys.stderr, flush=True)
        for row, path in zip(rows, files):
            def read_quarter(path=path):
                with ligcodec.open(path) as im:
                    im.read(0.25)

            row["1/4 read ms"] = f"{1e3 * best_time(read_quarter, repeat=7, warmup=2):.2f}"
    return rows


def main(argv=None):
    import ligcodec
    from PIL import Image

    from ligcodec.fit.tiles import FitConfig, downsample

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", nargs="+", default=["05", "13", "21", "23"])
    ap.add_argument("--bpp", type=float, default=1.0)
    ap.add_argument("--share", type=float, default=FitConfig.level0_fraction)
    ap.add_argument("--downsample", type=int, default=FitConfig.downsample)
    ap.add_argument("--move", type=float, nargs="*", default=[], help="sigma thresholds (px)")
    ap.add_argument("--progressive", action="store_true",
                    help="compare default and progressive files at --bpp instead (--images all: all 24)")
    args = ap.parse_args(argv)
    if not (DATA / "kodak").exists():
        print(f"Kodak images not found under {DATA}")
        return 0
    if args.progressive:
        names = [f"{i:02d}" for i in range(1, 25)] if args.images == ["all"] else args.images
        rows = progressive_rows(names, args.bpp)
        cols = ["image", "file", "bpp", "full PSNR", "- JPEG", "1/4 read PSNR", "1/4 read bytes", "1/4 read ms"]
        for f in ("default", "progressive"):
            sel = [r for r in rows if r["file"] == f]
            rows.append({"image": f"mean ({len(sel)})", "file": f, **{c: f"{np.mean([float(r[c]) for r in sel]):.3f}"
                                                                      for c in cols[2:]}})
        print_table(rows, cols)
        return 0
    cfg = FitConfig(level0_fraction=args.share, downsample=args.downsample)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.images:
            ref = np.asarray(Image.open(DATA / "kodak" / f"kodim{k}.png").convert("RGB")).astype(np.float32) / 255
            path = Path(tmp) / f"kodim{k}.lig"
            r = ligcodec.encode(ref, path, bpp=args.bpp, config=cfg, workers=2)
            with ligcodec.open(path) as img:
                model = materialise(img)
            quarter, half = downsample(ref, 4), downsample(ref, 2)
            row = {"image": f"kodim{k}", "share": args.share, "downsample": args.downsample, "bpp": f"{r.bpp:.3f}",
                   "full PSNR": f"{r.psnr:.2f}", "moved": "", "level-0 share": f"{args.share:.2f}",
                   "1/4 level 0": f"{psnr(model.render(0.25, levels=[0]), quarter):.2f}",
                   "1/4 both": f"{psnr(model.render(0.25), quarter):.2f}",
                   "1/2 level 0": f"{psnr(model.render(0.5, levels=[0]), half):.2f}",
                   "1/2 both": f"{psnr(model.render(0.5), half):.2f}"}
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
            for t in args.move:
                mm = moved(model, t)
                n0, n1 = mm.level_counts()
                rows.append({**row, "moved": f"sigma >= {t:g}", "level-0 share": f"{n0 / (n0 + n1):.2f}",
                             "1/4 level 0": f"{psnr(mm.render(0.25, levels=[0]), quarter):.2f}",
                             "1/2 level 0": f"{psnr(mm.render(0.5, levels=[0]), half):.2f}"})
    print_table(rows, ["image", "share", "downsample", "bpp", "full PSNR", "moved", "level-0 share",
                       "1/4 level 0", "1/4 both", "1/2 level 0", "1/2 both"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
