"""Quantiser variants on fitted tiles, at an equal size against the base shift curve (issue #16).

    python bench/quant_tiles.py                          # every variant, 8 Kodak tiles (~40 min)
    python bench/quant_tiles.py --variants deadzone0.1 --tiles kodim13:1 kodim23:4
    python bench/quant_tiles.py --workdir /tmp/qt        # where the fits are cached

Each tile (256 px, 1,600 Gaussians, effort 7's fit, cached in ``--workdir``) is quantised as the
encoder does (``quantise_tile`` with the refinement) at base step shifts +4 / +8 / +12 eighths: that
curve of (bytes, PSNR) is what the encoder's own rate trade-off reaches. Each variant codes the same
fit at +8 and +12; its gain is its PSNR less the base curve's at its size (log-linear between the
two nearest shifts), averaged over the two. Bytes: the chunks' (``encode_chunk``) plus any raw bits
a variant adds.

Variants (all encoder-side simulations; none is in the format):

- ``area<a>``: colour step of each Gaussian times ``(l11 l22)^-a`` in eighths of an octave (the
  decoder could compute it from the covariance): rate-distortion theory's step for a Gaussian whose
  colour error weighs its area.
- ``deadzone<t>``: level-1 colour indices rounded towards 0 by ``t`` (``sign(x) floor(|x| + 0.5 - t)``).
- ``prune<f>``: after the refinement, the fraction ``f`` of level 1 whose removal costs least (the
  fit's second-order measure at the quantised state) is dropped before the colours are solved.
- ``halfpos<f>``: the fraction ``f`` of level 1 with the largest colours get positions at half the
  step (2 raw bits each, counted).
- ``klt<m>``: colours coded in the orthonormal KLT basis of the tile's detail (as a per-image basis
  in the header would be; its ~40 bytes are not counted) instead of YCoCg, with the colour step
  times ``m`` (``sqrt(8/3)`` = 1.63 gives the same RGB error per step as YCoCg's inverse, whose
  columns have squared gains 3, 2 and 3).

Results and the commit they ran on: BENCHMARKS.md, thirteenth session.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ligcodec.codec import colour  # noqa: E402
from ligcodec.codec import quantise as Q  # noqa: E402
from ligcodec.codec.encoder import (DEFAULT_QUANT_LSQ, DEFAULT_QUANT_REFINE, choose_steps,  # noqa: E402
                                    encode_settings)
from ligcodec.codec.tile import dequantise_chol  # noqa: E402
from ligcodec.codec.tile_writer import encode_chunk  # noqa: E402
from ligcodec.fit.optimise import _removal_cost, loss_grads, lsq_colours  # noqa: E402
from ligcodec.fit.plan import level_target, plan_tile  # noqa: E402
from ligcodec.fit.tiles import fit_tile, render_parts  # noqa: E402
from ligcodec.model import as_float  # noqa: E402
from ligcodec.render import Gaussians  # noqa: E402

from bench.common import DATA  # noqa: E402

TILES = [f"{stem}:{t}" for stem in ("kodim13", "kodim16", "kodim23", "kodim05") for t in (1, 4)]
KINDS = ("area", "deadzone", "prune", "halfpos", "klt")
VARIANTS = ["area0.25", "area0.5", "deadzone0.1", "deadzone0.2", "prune0.03", "halfpos0.1", "halfpos0.25"]
COUNT, TILE = 1600, 256


def fitted_tiles(names, workdir: Path):
    """``{name: (target, fitted parts, cfg)}``, fitting (effort 7, seed = tile number) what is not cached."""
    cfg = encode_settings(workers=1).cfg
    out = {}
    for name in names:
        stem, t = name.split(":")
        cache = workdir / f"{stem}-{t}.pkl"
        if cache.exists():
            out[name] = pickle.loads(cache.read_bytes())
            continue
        from PIL import Image

        sub = "kodak" if stem.startswith("kodim") else "medium"
        img = np.asarray(Image.open(DATA / sub / f"{stem}.png").convert("RGB"))
        ty, tx = divmod(int(t), img.shape[1] // TILE)
        tgt = as_float(img[ty * TILE:(ty + 1) * TILE, tx * TILE:(tx + 1) * TILE])
        t0 = time.perf_counter()
        out[name] = (tgt, fit_tile(tgt, COUNT, cfg, int(t)), cfg)
        print(f"fitted {name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        cache.write_bytes(pickle.dumps(out[name]))
    return out


def quantise_variant(g, target, scale, steps, level, kind: str, arg: float):
    """One level quantised as ``quantise_level`` does after the refinement, with variant ``kind``:
    ``(QuantisedLevel, raw bits added)``."""
    ps, cs = steps.pos_step, np.asarray(steps.chol_step)
    detail = level == 1 and len(g) > 0
    if kind == "prune" and detail:
        g = _pruned(g, target, scale, steps, arg)
    q, qc = Q.round_means(g.means, ps), Q.round_chol(g.chol, cs)
    means, extra = (q + 0.5) * ps, 0
    if kind == "halfpos" and detail:
        k = int(arg * len(g))
        sel = np.argsort(-(g.colours.astype(np.float64) ** 2).sum(1), kind="stable")[:k]
        # The half-step cell inside the coarse one, so that the coarse index (what is sorted and coded) stays.
        half = np.clip(np.floor(g.means[sel] / (ps / 2)), 2 * q[sel], 2 * q[sel] + 1)
        means[sel], extra = (half + 0.5) * (ps / 2), 2 * k
    geo = lsq_colours(Gaussians(means, dequantise_chol(qc, cs), g.colours), target, scale, DEFAULT_QUANT_LSQ)
    step = np.broadcast_to(np.asarray(steps.colour_step[level]), geo.colours.shape)
    if kind == "area" and len(g):
        eighths = np.clip(np.round(8 * arg * (geo.chol[:, 0] + geo.chol[:, 2]) / math.log(2)), -24, 24)
        step = step * 2.0 ** (-eighths / 8)[:, None]
    rounding = _deadzone(arg) if kind == "deadzone" and detail else np.round
    if kind == "klt" and len(g):
        # The render is linear in the colours and the basis orthonormal, so solving and rounding
        # in the rotated space is the same least-squares problem.
        v, step = klt_basis(target), step * arg
        rot = Gaussians(geo.means, geo.chol, (geo.colours.astype(np.float64) @ v).astype(np.float32))
        qk = Q._quantise_colours(rot, np.ascontiguousarray((target @ v).astype(np.float32)), scale, step, "none",
                                 Q.COLOUR_ROUNDS, DEFAULT_QUANT_LSQ).astype(np.int64)
        deq = Gaussians(geo.means, geo.chol, ((qk * step) @ v.T).astype(np.float32))
    else:
        qk = Q._quantise_colours(geo, target, scale, step, "ycocg", Q.COLOUR_ROUNDS, DEFAULT_QUANT_LSQ,
                                 rounding).astype(np.int64)
        deq = Gaussians(geo.means, geo.chol, colour.inverse(qk * step, "ycocg"))
    order = np.lexsort((q[:, 0], q[:, 1]))
    return Q.QuantisedLevel(q[order, 0], q[order, 1], qc[order], qk[order], deq.take(order)), extra


def klt_basis(target) -> np.ndarray:
    """The encoder's KLT basis (columns) for ``target``'s colour detail, as an array."""
    return np.asarray(colour.klt_matrix(colour.detail_covariance(target)), np.float64)


def _deadzone(t):
    return lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5 - t)


def _pruned(g, target, scale, steps, frac):
    """``g`` less the ``frac`` of it whose removal costs least, judged at its plainly quantised state."""
    ql, _ = quantise_variant(g, target, scale, steps, 1, "base", 0)
    d = ql.gaussians
    params = tuple(np.ascontiguousarray(a, np.float64) for a in (d.means, d.chol, d.colours))
    _, _, grads = loss_grads(*params, target, scale)
    cost = _removal_cost(params, grads, scale, target.size)
    q = Q.round_means(g.means, steps.pos_step)
    order = np.lexsort((q[:, 0], q[:, 1]))  # ql's rows are g's in this order
    keep = np.ones(len(g), bool)
    keep[order[np.argsort(cost, kind="stable")[: int(frac * len(g))]]] = False
    return g.take(np.nonzero(keep)[0])


def fit_rmse(target, parts) -> float:
    """The float fit's RMS error, which the encoder scales its steps by (``choose_steps``)."""
    return math.sqrt(float(np.mean((np.clip(render_parts(parts, target.shape), 0, 1) - target) ** 2)))


def code_tile(target, parts, cfg, rmse, shift, kind, arg, refined):
    """(PSNR, bytes) of the tile coded at ``shift`` with a variant; ``refined`` caches the refinement
    per (shift, level), which no variant changes."""
    steps = choose_steps(None, rmse, cfg.levels, 3, shift)
    levels, extra, plan = [], 0, plan_tile(COUNT, target.shape, cfg)
    for li, g in enumerate(parts):
        below = render_parts([q.gaussians for q in levels], target.shape) if levels else None
        lt, scale = level_target(target, plan[li], below), plan[li].scale
        key = (shift, li)
        if key not in refined:
            refined[key] = Q.refine_for_grid(g, lt, scale, steps, DEFAULT_QUANT_REFINE, DEFAULT_QUANT_LSQ)
        ql, bits = quantise_variant(refined[key], lt, scale, steps, li, kind, arg)
        levels.append(ql)
        extra += bits
    nbytes = sum(len(encode_chunk(q.qx, q.qy, q.qc, q.qk)) for q in levels) + extra / 8
    rec = render_parts([q.gaussians for q in levels], target.shape)
    return -10 * math.log10(float(np.mean((np.clip(rec, 0, 1) - target) ** 2))), nbytes


def gain_vs_curve(curve, point):
    """dB of ``point = (psnr, bytes)`` above the base ``curve`` [(psnr, bytes)] at its size."""
    xs = np.log([b for _, b in sorted(curve, key=lambda c: c[1])])
    ys = np.array([p for p, _ in sorted(curve, key=lambda c: c[1])])
    x = math.log(point[1])
    i = int(np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2))
    return point[0] - (ys[i] + (ys[i + 1] - ys[i]) * (x - xs[i]) / (xs[i + 1] - xs[i]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiles", nargs="+", default=TILES,
                    help="IMAGE:TILE (row-major 256-px tiles; kodim* from kodak/, other stems from medium/)")
    ap.add_argument("--variants", nargs="+", default=VARIANTS)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ligcodec-quant-tiles"))
    args = ap.parse_args(argv)
    unknown = [v for v in args.variants if v.rstrip("0123456789.") not in KINDS or not v[-1].isdigit()]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}: a kind of {', '.join(KINDS)} and a number, "
                 f"e.g. area0.25")
    if not (DATA / "kodak").is_dir():
        print(f"no Kodak images in {DATA / 'kodak'}", file=sys.stderr)
        return 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    tiles = fitted_tiles(args.tiles, args.workdir)
    gains = {v: [] for v in args.variants}
    for name, (target, parts, cfg) in tiles.items():
        refined, rmse = {}, fit_rmse(target, parts)
        curve = [code_tile(target, parts, cfg, rmse, s, "base", 0, refined) for s in (4, 8, 12)]
        for v in args.variants:
            kind, arg = v.rstrip("0123456789."), float(v.lstrip("abcdefghijklmnopqrstuvwxyz"))
            points = [code_tile(target, parts, cfg, rmse, s, kind, arg, refined) for s in (8, 12)]
            gains[v].append(float(np.mean([gain_vs_curve(curve, p) for p in points])))
        line = ", ".join(f"{v} {gains[v][-1]:+.3f}" for v in args.variants)
        print(f"{name}: {line}", file=sys.stderr, flush=True)
    print("| variant | mean dB at equal size | min | max | tiles |")
    print("|---|---|---|---|---|")
    for v, g in gains.items():
        print(f"| {v} | {np.mean(g):+.3f} | {min(g):+.3f} | {max(g):+.3f} | {len(g)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
