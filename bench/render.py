"""Rasteriser speed: forward/backward at several sizes, scale 1 and 1/4, vs Pillow's JPEG 2000.

    python bench/render.py            # full table (a few minutes)
    python bench/render.py --quick    # < 1 minute; last line: forward_vs_jpeg2000_decode=<ratio>

Gaussians are laid out as the codec stores them: centres on a jittered grid, in raster order of
64-px tiles (spatially coherent). One row also shuffles them to show the cost of a random order.
The ratio is our forward MP/s (200k Gaussians, 2048^2, sigma ~3 px, scale 1, full render() call
including projection and binning) divided by Pillow's JPEG 2000 decode MP/s of
photo_unsplash_janice_gill.jpg re-encoded at ~1 bpp, both timed in this run.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import DATA, best_time, isa_description, jpeg2000_bytes, print_table  # noqa: E402
from ligcodec.render import Gaussians, render  # noqa: E402
from ligcodec.render.contract import output_size  # noqa: E402
from ligcodec.render.raster import project, rasterize_backward  # noqa: E402


def make_gaussians(n, size, sigma=(2.0, 4.0), channels=3, seed=0, shuffle=False):
    rng = np.random.default_rng(seed)
    cells = int(np.ceil(np.sqrt(n)))
    step = size / cells
    gy, gx = np.divmod(np.arange(cells * cells)[:n], cells)
    means = (np.stack([gx, gy], 1) + rng.uniform(0, 1, (n, 2))) * step
    tile = (means // 64).astype(np.int64)
    order = np.lexsort((means[:, 0], tile[:, 0], tile[:, 1]))
    if shuffle:
        order = rng.permutation(n)
    scales = rng.uniform(sigma[0], sigma[1], (n, 2))
    g = Gaussians.from_scale_rotation(
        means[order], scales, rng.uniform(0, np.pi, n), rng.uniform(0, 0.3, (n, channels)).astype(np.float32)
    )
    return g


def time_backward(g, size, scale, repeat):
    params, cols = project(g, scale)
    ow, oh = output_size(size, size, scale)
    grad = np.random.default_rng(1).normal(size=(oh, ow, g.channels)).astype(np.float32)
    return best_time(lambda: rasterize_backward(params, cols, (0, 0, ow, oh), grad), repeat)


def headline_vs_jpeg2000(g, size, rounds):
    """Our render and Pillow's JPEG 2000 decode timed alternately, best of ``rounds`` each, so
    that a noisy neighbour slows both rather than one."""
    import time

    from PIL import Image

    path = DATA / "large" / "photo_unsplash_janice_gill.jpg"
    with Image.open(path) as im:
        img = im.convert("RGB")
    data = jpeg2000_bytes(img, 1.0)
    bpp = len(data) * 8 / (img.width * img.height)

    def decode():
        with Image.open(io.BytesIO(data)) as im:
            im.load()

    decode()
    render(g, (size, size))
    ours, theirs = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        render(g, (size, size))
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        decode()
        theirs.append(time.perf_counter() - t)
    return size * size / min(ours) / 1e6, img.width * img.height / min(theirs) / 1e6, min(theirs), bpp, img.size


def scale_ratio_alternating(g, size, rounds):
    """Scale 1 and scale 1/4 renders of the same Gaussians timed alternately, best of ``rounds``
    each: the s1/s0.25 acceptance ratio, robust to a neighbour slowing one of them."""
    import time

    for s in (1.0, 0.25):
        render(g, (size, size), scale=s)
    best = {1.0: [], 0.25: []}
    for _ in range(rounds):
        for s in (1.0, 0.25):
            t = time.perf_counter()
            render(g, (size, size), scale=s)
            best[s].append(time.perf_counter() - t)
    return min(best[1.0]), min(best[0.25])


def peak_rss_mb(n, size):
    """Peak RSS of a fresh process that renders n Gaussians to size^2 (includes Python + numba).

    Read from the child's ``VmHWM`` (its own address space), not ``ru_maxrss``: Linux folds the
    high-water mark of the address space that ``execve`` replaces into ``ru_maxrss``, and
    subprocess's vfork child replaces this process's, so ``ru_maxrss`` reported this benchmark's
    own peak (984-1032 MB in earlier runs) rather than the render's (~540 MB)."""
    code = (
        "import sys; sys.path.insert(0, %r); from bench.render import make_gaussians;"
        "from ligcodec.render import render; g = make_gaussians(%d, %d); render(g, (%d, %d));"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    ) % (str(Path(__file__).resolve().parents[1]), n, size, size, size)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]) / 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the acceptance rows (< 1 minute)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    repeat = 3 if args.quick else 5

    configs = [(200_000, 2048, (2.0, 4.0), False)]
    if not args.quick:
        configs = [
            (50_000, 2048, (1.0, 4.0), False),
            (200_000, 2048, (1.0, 4.0), False),
            (200_000, 2048, (2.0, 4.0), False),
            (200_000, 2048, (2.0, 4.0), True),
            (1_000_000, 2048, (1.0, 4.0), False),
            (200_000, 4096, (1.0, 4.0), False),
            (1_000_000, 4096, (1.0, 4.0), False),
        ]
    render(make_gaussians(1000, 256), (256, 256))  # compile the kernels before timing anything
    # The table's header line: AVX-512 and AVX2 builds of the kernels run at different speeds.
    isa = isa_description()
    print(f"instruction set: {isa}", flush=True)

    rows = []
    headline = None
    for n, size, sigma, shuffle in configs:
        g = make_gaussians(n, size, sigma, shuffle=shuffle)
        # Forward at both scales timed alternately (so the s1/s0.25 column compares like with
        # like on a noisy machine), then the backward.
        t_fwds = dict(zip((1.0, 0.25), scale_ratio_alternating(g, size, rounds=repeat + 2)))
        for scale in (1.0, 0.25):
            t_fwd, t_bwd = t_fwds[scale], time_backward(g, size, scale, repeat)
            row = {
                "gaussians": n,
                "image": f"{size}^2",
                "sigma px": f"{sigma[0]:g}-{sigma[1]:g}",
                "order": "random" if shuffle else "tiled",
                "scale": scale,
                "forward ms": f"{t_fwd * 1e3:.1f}",
                "full-res MP/s": f"{size * size / t_fwd / 1e6:.1f}",
                "backward ms": f"{t_bwd * 1e3:.1f}",
                "bwd/fwd": f"{t_bwd / t_fwd:.2f}",
            }
            rows.append(row)
            if scale == 1.0:
                t1 = t_fwd
            else:
                row["s1/s0.25"] = f"{t1 / t_fwd:.1f}x"
            if (n, size, sigma, shuffle, scale) == (200_000, 2048, (2.0, 4.0), False, 1.0):
                headline = size * size / t_fwd / 1e6

    if not args.quick:
        rss = peak_rss_mb(1_000_000, 4096)
        print(f"peak RSS rendering 1M Gaussians to 4096^2 (fresh process): {rss:.0f} MB")

    cols = ["gaussians", "image", "sigma px", "order", "scale", "forward ms", "full-res MP/s", "backward ms", "bwd/fwd", "s1/s0.25"]
    print(f"instruction set: {isa}")
    print_table(rows, cols)
    t1, t4 = scale_ratio_alternating(make_gaussians(200_000, 2048), 2048, rounds=15)
    print(f"scale 1 vs 1/4 timed alternately (200k Gaussians, 2048^2, best of 15 each): {t1 * 1e3:.1f} ms vs "
          f"{t4 * 1e3:.2f} ms = {t1 / t4:.1f}x")
    if args.json:
        args.json.write_text(json.dumps([dict(r, isa=isa) for r in rows], indent=1))
    if not (DATA / "large" / "photo_unsplash_janice_gill.jpg").exists():
        print(f"JPEG 2000 reference image not found under {DATA}; no ratio")
        return 0
    ours, mps, t, bpp, (w, h) = headline_vs_jpeg2000(make_gaussians(200_000, 2048), 2048, rounds=7)
    print(f"table row above: {headline:.1f} MP/s; timed alternately with JPEG 2000 below: {ours:.1f} MP/s")
    print(f"Pillow JPEG 2000 decode of {w}x{h} at {bpp:.2f} bpp: {t * 1e3:.1f} ms = {mps:.1f} MP/s")
    print(f"ours, 200k Gaussians on 2048^2 (sigma 2-4 px), scale 1: {ours:.1f} MP/s")
    print(f"forward_vs_jpeg2000_decode={ours / mps:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
