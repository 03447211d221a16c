"""Fitting quality vs Gaussians vs seconds (unquantised float model), one row per setting.

    python bench/fit.py --quick                       # 4 Kodak images, 10k Gaussians, default settings
    python bench/fit.py --gaussians 10000 40000       # all 24 Kodak images
    python bench/fit.py --medium 500000               # 3 medium images (2K flower, aerial, photo) at 500k
    python bench/fit.py --medium 500000 --medium-images photo_ici_flower_foveon_rgb8.png
    python bench/fit.py --quick --levels 1 2          # one level vs two at equal budget
    python bench/fit.py --quick --set steps=400 --set lr_means=0.3   # FitSettings overrides

Rows give the mean PSNR (RGB, 8-bit peak, clamped render) over the images, seconds per image
(2 cores), and the tile-border band PSNR (8-px bands along internal tile edges) vs interiors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import DATA, load_rgb, print_table  # noqa: E402
import ligcodec  # noqa: E402
from ligcodec.fit import FitConfig, FitSettings  # noqa: E402

QUICK = ["kodim01", "kodim05", "kodim13", "kodim23"]
MEDIUM = ["photo_ici_flower_foveon_rgb8.png", "aerial_uscsipi_2_2_01.png", "photo_wiki_006.png"]


def border_mask(h, w, tile, band=8):
    """True on pixels within ``band`` px of an internal tile edge."""
    m = np.zeros((h, w), bool)
    for x in range(tile, w, tile):
        m[:, max(0, x - band) : x + band] = True
    for y in range(tile, h, tile):
        m[max(0, y - band) : y + band, :] = True
    return m


def psnr_masked(a, b, mask):
    mse = float(np.mean((a[mask] - b[mask]) ** 2))
    return 10 * np.log10(1 / mse) if mse > 0 else float("inf")


def run(image_paths, gaussians, levels, overrides, tile, cfg_over=None):
    rows = []
    for path in image_paths:
        img = load_rgb(path)
        ref = img.astype(np.float32) / 255
        settings = FitSettings(**overrides)
        cfg = FitConfig(levels=levels, tile=tile, level=settings, **(cfg_over or {}))
        t = time.perf_counter()
        model = ligcodec.fit(img, gaussians, config=cfg)
        secs = time.perf_counter() - t
        # Quantise the render to 8 bits as a decoder would output it.
        out = np.round(np.clip(model.render(), 0, 1) * 255) / 255
        full = psnr_masked(out, ref, np.ones(img.shape[:2], bool))
        m = border_mask(*img.shape[:2], model.tile)  # tile 0: the one the fit chose for the image
        rows.append(dict(image=Path(path).stem, psnr=full, secs=secs,
                         border=psnr_masked(out, ref, m) if m.any() else float("nan"),
                         interior=psnr_masked(out, ref, ~m)))
        print(f"  {Path(path).stem}: {full:.2f} dB, {secs:.1f} s, border {rows[-1]['border']:.2f} / interior {rows[-1]['interior']:.2f}", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"Kodak subset {QUICK}")
    ap.add_argument("--gaussians", type=int, nargs="+", default=[10000])
    ap.add_argument("--levels", type=int, nargs="+", default=[2])
    ap.add_argument("--tile", type=int, default=FitConfig.tile, help="tile edge (default 0: chosen per image)")
    ap.add_argument("--medium", type=int, nargs="*", help="fit the medium images with these budgets")
    ap.add_argument("--medium-images", nargs="+", default=MEDIUM, help=f"files under medium/ (default {MEDIUM})")
    ap.add_argument("--images", nargs="*", help="explicit image paths instead of Kodak")
    ap.add_argument("--set", action="append", default=[], help="FitSettings override NAME=VALUE")
    ap.add_argument("--cfg", action="append", default=[], help="FitConfig override NAME=VALUE (tile, content_weight, ...)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    cfg_over = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.cfg)}

    kodak = sorted((DATA / "kodak").glob("kodim*.png"))
    if args.quick:
        kodak = [p for p in kodak if p.stem in QUICK]
    if args.images:
        kodak = [Path(p) for p in args.images]
    if not kodak and not args.medium:
        print(f"no images under {DATA}; nothing to do")
        return 0
    table = []
    jobs = []
    if args.medium is None or args.images or args.quick:
        jobs += [(kodak, n, lv, "kodak" if not args.images else "images") for n in args.gaussians for lv in args.levels]
    for n in args.medium or []:
        jobs.append(([DATA / "medium" / m for m in args.medium_images], n, args.levels[-1], "medium"))
    for paths, n, lv, label in jobs:
        print(f"{label}: {n} Gaussians, {lv} level(s), tile {args.tile or 'auto'}, {overrides or 'defaults'}", flush=True)
        rows = run(paths, n, lv, overrides, args.tile, cfg_over)
        desc = {**overrides, **cfg_over, **({"tile": args.tile} if args.tile != FitConfig.tile else {})}
        table.append({
            "set": f"{label} ({len(rows)})", "gaussians": n, "levels": lv, "settings": json.dumps(desc) if desc else "defaults",
            "PSNR dB": f"{np.mean([r['psnr'] for r in rows]):.2f}",
            "s/image": f"{np.mean([r['secs'] for r in rows]):.1f}",
            "max s": f"{np.max([r['secs'] for r in rows]):.1f}",
            "border dB": f"{np.nanmean([r['border'] for r in rows]):.2f}",
            "interior dB": f"{np.mean([r['interior'] for r in rows]):.2f}",
        })
    print_table(table, ["set", "gaussians", "levels", "settings", "PSNR dB", "s/image", "max s", "border dB", "interior dB"])
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
