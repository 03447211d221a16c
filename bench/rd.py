"""Rate-distortion on Kodak (or `--medium`): ligcodec vs Pillow's JPEG, WebP, AVIF and JPEG 2000 at matched sizes.

    python bench/rd.py --quick          # 4 images, 0.25 / 0.5 / 1 bpp
    python bench/rd.py                  # all 24, 0.125 / 0.25 / 0.5 / 1 / 2 bpp, plot
    python bench/rd.py --bpp 1 --images kodim23
    python bench/rd.py --medium --effort 1  # the 9 images of ../shared/data/medium (photos, aerial,
                                            # histology, microscopy) instead of Kodak
    python bench/rd.py --merge a.json b.json --plot rd.png  # the tables of runs saved with --json
                                            # (e.g. two halves of Kodak side by side), no encoding

For every image and target, ligcodec encodes with ``bpp=target``; its actual file size (the whole
.lig file) is the anchor, and each classical codec gets its highest quality whose file is no
larger. Rows give mean bpp, PSNR (RGB, 8-bit) and MS-SSIM over the images, and mean encode /
decode seconds; "seam" is the mean over images of ``seam_ratio(decoded) / seam_ratio(source) - 1``
at the .lig's tile size (bench/metrics.py: steps across tile borders against steps elsewhere;
#16 asks for ligcodec within ±10 %; the other codecs' column is the same measure at the same
borders, for scale; images encoded as one tile have no borders and are left out of the mean);
"worst miss" is the largest ``|bpp / target - 1|`` of the .lig files (#16: ±5 %), "fitted twice"
how many of them the rate control fitted again with another count. A second table gives the
Bjøntegaard delta rate of ligcodec against each codec over the targets from 0.25 to 1 bpp (mean
curves: mean bpp and PSNR per target), and the PSNR gap at 2 bpp when that target ran. Settings of
the classical codecs as in ../shared/docs/background.md (JPEG optimize, WebP method 6, AVIF speed 4,
JPEG 2000 irreversible with mct=1, one layer).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import DATA, print_table  # noqa: E402
from bench.metrics import bd_rate, ms_ssim, psnr, seam_ratio  # noqa: E402

QUICK = ["kodim01", "kodim05", "kodim13", "kodim23"]


def _pil_codec(fmt, **opts):
    def enc(img, q):
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format=fmt, quality=int(q), **opts)
        return buf.getvalue()

    return enc


def _j2k(img, ratio):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG2000", irreversible=True, mct=1, quality_mode="rates",
                              quality_layers=[float(ratio)])
    return buf.getvalue()


CODECS = {
    # name: (encode(img, param), low param, high param, higher param = bigger file?)
    "JPEG": (_pil_codec("JPEG", optimize=True), 1, 95, True),
    "WebP": (_pil_codec("WEBP", method=6), 0, 100, True),
    "AVIF": (_pil_codec("AVIF", speed=4), 0, 100, True),
    "JPEG2000": (_j2k, 2.0, 2000.0, False),
}


def best_under(img, budget, enc, lo, hi, bigger_up):
    """Largest-quality encoding whose size is <= budget bytes (bisection; None if none fits)."""
    integer = isinstance(lo, int)
    best = None
    for _ in range(30 if not integer else 8):
        mid = (lo + hi) // 2 if integer else (lo * hi) ** 0.5
        data = enc(img, mid)
        fits = len(data) <= budget
        if fits:
            best = data
        if fits == bigger_up:
            lo = mid + (1 if integer else 0)
        else:
            hi = mid - (1 if integer else 0)
        if (integer and lo > hi) or (not integer and hi / lo < 1.01):
            break
    if best is None and not integer:
        data = enc(img, hi if not bigger_up else lo)
        best = data if len(data) <= budget else None
    return best


def decode_pil(data):
    from PIL import Image

    t = time.perf_counter()
    with Image.open(io.BytesIO(data)) as im:
        out = np.asarray(im.convert("RGB"))
    return out, time.perf_counter() - t


def save_rows(rows, path):
    """Write ``rows`` as JSON (``"TARGET|CODEC"`` -> the rows), as ``--json`` does and ``--merge`` reads."""
    Path(path).write_text(json.dumps({f"{k[0]}|{k[1]}": v for k, v in rows.items()}, indent=1))


def load_rows(paths):
    """The rows of several :func:`save_rows` files together. Rows that name their image (all since
    2026-12-07) must not repeat one at a target: a merge counts each image once."""
    rows = {}
    for path in paths:
        for key, rs in json.loads(Path(path).read_text()).items():
            t, codec = key.split("|", 1)
            rows.setdefault((float(t), codec), []).extend(rs)
    for (t, codec), rs in rows.items():
        names = [r["image"] for r in rs if "image" in r]
        if len(names) != len(set(names)):
            raise SystemExit(f"--merge: an image appears twice at {t} bpp for {codec}; merge disjoint runs")
    return rows


def run(paths, targets, workers, effort=None, codecs=None, keep=None, json_path=None, **encode_kw):
    import ligcodec
    from PIL import Image

    codecs = {k: v for k, v in CODECS.items() if codecs is None or k in codecs}
    rows = {(t, c): [] for t in targets for c in ["ligcodec", *codecs]}
    tmp = Path(keep or tempfile.mkdtemp())
    tmp.mkdir(parents=True, exist_ok=True)
    for path in paths:
        img = np.asarray(Image.open(path).convert("RGB"))
        npx = img.shape[0] * img.shape[1]
        tile = None
        for target in targets:
            out = tmp / (f"{path.stem}_{target:g}bpp.lig" if keep else f"{path.stem}.lig")
            if effort is not None:
                encode_kw["effort"] = effort
            r = ligcodec.encode(img, out, bpp=target, workers=workers, **encode_kw)
            ligcodec.decode(out)  # warm: the first decode in a process loads numba's compiled kernels
            t = time.perf_counter()
            dec = ligcodec.decode(out)
            tdec = time.perf_counter() - t
            size = out.stat().st_size
            with ligcodec.open(out) as lig:
                tile = lig.header.tile
            seam0 = seam_ratio(img, tile)
            first = r.rounds[0][0][1] * 8 / npx if r.rounds else None  # the count model's first coding
            rows[(target, "ligcodec")].append(dict(image=path.stem, bpp=size * 8 / npx, psnr=psnr(dec, img),
                                                   msssim=ms_ssim(dec, img), enc=r.seconds, dec=tdec, seam=seam_ratio(dec, tile) / seam0 - 1,
                                                   fits=r.passes, first=first))
            refit = f" (fitted twice: first coding {first:.3f} bpp)" if r.passes > 1 and first else ""
            print(f"  {path.stem} @ {target} bpp: ligcodec {size * 8 / npx:.3f} bpp{refit} "
                  f"{rows[(target, 'ligcodec')][-1]['psnr']:.2f} dB", end="", flush=True)
            for name, (enc, lo, hi, up) in codecs.items():
                t = time.perf_counter()
                data = best_under(img, size, enc, lo, hi, up)
                tenc = time.perf_counter() - t
                if data is None:
                    print(f" | {name} n/a", end="")
                    continue
                d, tdec = decode_pil(data)
                rows[(target, name)].append(dict(image=path.stem, bpp=len(data) * 8 / npx, psnr=psnr(d, img),
                                                 msssim=ms_ssim(d, img), enc=tenc, dec=tdec, seam=seam_ratio(d, tile) / seam0 - 1))
                print(f" | {name} {rows[(target, name)][-1]['psnr']:.2f}", end="", flush=True)
            print(flush=True)
        if json_path:  # after every image, so that a run stopped part-way keeps what it measured
            save_rows(rows, json_path)
    return rows


def bd_table(rows, targets, codecs):
    """ligcodec's BD-rate against each codec over the targets in [0.25, 1] (mean curves), and the
    PSNR difference at the 2 bpp target if it ran."""
    def curve(codec, ts):
        ts = [t for t in ts if rows.get((t, codec))]
        return [_mean(rows[(t, codec)], "bpp") for t in ts], [_mean(rows[(t, codec)], "psnr") for t in ts]

    band = [t for t in targets if 0.25 <= t <= 1.0]
    out = []
    for codec in codecs:
        ours, theirs = curve("ligcodec", band), curve(codec, band)
        bd = bd_rate(*ours, *theirs) if len(ours[0]) >= 2 and len(theirs[0]) >= 2 else float("nan")
        two = ""
        if rows.get((2.0, codec)) and rows.get((2.0, "ligcodec")):
            two = f"{_mean(rows[(2.0, 'ligcodec')], 'psnr') - _mean(rows[(2.0, codec)], 'psnr'):+.2f}"
        out.append({"vs codec": codec, "BD-rate 0.25-1 bpp": f"{bd:+.1f} %", "targets": len(band),
                    "PSNR gap at 2 bpp (dB)": two})
    return out


def _seam_cell(rs) -> str:
    """The seam column: the mean over the images that have tile borders (a one-tile file has none:
    its ratio is nan), and how many those are where not all."""
    seams = [r["seam"] for r in rs if np.isfinite(r.get("seam", np.nan))]
    if not seams:
        return "no borders"
    some = f" ({len(seams)} of {len(rs)})" if len(seams) < len(rs) else ""
    return f"{100 * np.mean(seams):+.1f} %{some}"


def _mean(rs, key):
    """The mean of ``key`` over ``rs`` (nan where a row lacks it: rows rebuilt from a log)."""
    return float(np.mean([r.get(key, np.nan) for r in rs]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bpp", type=float, nargs="+")
    ap.add_argument("--images", nargs="+", help="Kodak names, e.g. kodim23 (with --medium: file stems)")
    ap.add_argument("--medium", action="store_true", help="the images of ../shared/data/medium instead of Kodak")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--effort", type=int, help="ligcodec --effort (default: the encoder's)")
    ap.add_argument("--codecs", nargs="+", choices=sorted(CODECS), help="compare with these only (default: all)")
    ap.add_argument("--plot", type=Path, help="write a matplotlib PNG here")
    ap.add_argument("--json", type=Path, help="save the rows here (after every image) for --merge")
    ap.add_argument("--keep", type=Path, help="keep every .lig here (STEM_TARGETbpp.lig), e.g. to re-read its seams")
    ap.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                    help="encode nothing: the tables (and --plot) of these --json files together")
    args = ap.parse_args(argv)
    if args.merge:
        rows = load_rows(args.merge)
        targets = sorted({t for t, _ in rows})
        codecs = [c for c in CODECS if any(c == k[1] for k in rows)]
        label = "merged runs"
    else:
        targets = args.bpp or ([0.25, 0.5, 1.0] if args.quick else [0.125, 0.25, 0.5, 1.0, 2.0])
        paths = sorted((DATA / "medium").glob("*.png")) if args.medium else sorted((DATA / "kodak").glob("kodim*.png"))
        names = args.images or (QUICK if args.quick and not args.medium else None)
        if names:
            paths = [p for p in paths if p.stem in names]
        if not paths:
            print(f"no {'medium' if args.medium else 'Kodak'} images under {DATA}")
            return 0
        codecs = args.codecs or list(CODECS)
        rows = run(paths, targets, args.workers, args.effort, args.codecs, args.keep, args.json)
        label = "medium" if args.medium else "Kodak"
    report(rows, targets, codecs)
    if args.plot:
        n = max(len(rs) for rs in rows.values())
        plot(rows, targets, ["ligcodec", *codecs], f"{label} ({n} images)", args.plot)
    return 0


def report(rows, targets, codecs):
    """Print the per-target table and the BD-rate table of ``rows``."""
    table = []
    order = ["ligcodec", *CODECS]
    for (t, codec), rs in sorted(rows.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
        if not rs:
            continue
        table.append({"target bpp": t, "codec": codec, "images": len(rs),
                      "bpp": f"{_mean(rs, 'bpp'):.3f}", "PSNR dB": f"{_mean(rs, 'psnr'):.2f}",
                      "MS-SSIM": f"{_mean(rs, 'msssim'):.4f}",
                      "encode s": f"{_mean(rs, 'enc'):.2f}", "decode ms": f"{1e3 * _mean(rs, 'dec'):.1f}",
                      "seam": _seam_cell(rs),
                      "worst miss": f"{100 * max(abs(r['bpp'] / t - 1) for r in rs):.1f} %" if codec == "ligcodec" else "",
                      "fitted twice": sum(r.get("fits", 1) > 1 for r in rs) if codec == "ligcodec" else ""})
    print_table(table, ["target bpp", "codec", "images", "bpp", "PSNR dB", "MS-SSIM", "encode s", "decode ms", "seam",
                        "worst miss", "fitted twice"])
    print_table(bd_table(rows, targets, codecs),
                ["vs codec", "BD-rate 0.25-1 bpp", "targets", "PSNR gap at 2 bpp (dB)"])


def plot(rows, targets, codecs, title, path):
    """PSNR and MS-SSIM against bpp, the mean curves of ``rows``, as a PNG at ``path``."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install -e '.[bench]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for codec in codecs:
        pts = [(_mean(rs, "bpp"), _mean(rs, "psnr"), _mean(rs, "msssim"))
               for t in targets if (rs := rows.get((t, codec)))]
        if pts:
            b, p, m = zip(*pts)
            ax[0].plot(b, p, "o-", label=codec, lw=2.5 if codec == "ligcodec" else 1.2)
            ax[1].plot(b, m, "o-", label=codec, lw=2.5 if codec == "ligcodec" else 1.2)
    ax[0].set(xlabel="bits per pixel", ylabel="PSNR (dB)", title=title)
    ax[1].set(xlabel="bits per pixel", ylabel="MS-SSIM", title="same files")
    ax[0].legend()
    ax[0].grid(alpha=0.3)
    ax[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    sys.exit(main())
