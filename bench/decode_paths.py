"""The decoder's draw against render()'s two paths, on the same Gaussians: is the decoder on the
fastest path it may take?

    python bench/decode_paths.py                          # the 16 MP mosaic of bench/large.py
    python bench/decode_paths.py --lig FILE --scales 0.125 0.25 1

For a file's Gaussians (all tiles, both levels) it times, at each scale, the whole image drawn by
- ``decoder``: :func:`ligcodec.render.decoder.draw`, which follows the format's rule (each tile's
  Gaussians clipped to the pixels the tile owns, spec section 6): :mod:`ligcodec.render.banded`
  with every box clipped to its tile's pixels, in one call;
and, for reference, ``render()``'s paths, which sum every Gaussian into every pixel it reaches
(not the format's rule: their pixels differ near tile borders, by the amount the table gives):
- ``banded``: ``render()``'s banded path;
- ``tiled``: ``render()``'s tiled path (projection, binning into 256 x 32 screen tiles, draw).
Decoding the chunks is not timed: it is the same for all of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import best_time, isa_description, print_table  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lig", type=Path, default=Path("/tmp/ligcodec-large/mosaic_4096_e1.lig"),
                    help="a .lig file (default: bench/large.py's 16 MP mosaic at effort 1)")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.125, 0.25, 0.5, 1.0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    if not args.lig.exists():
        raise SystemExit(f"{args.lig} not found: run `python bench/large.py --sizes 16` first, or give --lig")

    import ligcodec
    from ligcodec.render import Gaussians, decoder, kernels
    from ligcodec.render.contract import CUTOFF_Q, aa_variance
    from ligcodec.render.raster import _render_banded

    img = ligcodec.open(args.lig)
    m = img.model
    n_tiles = m.n_tiles
    means, chol, cols, seg = m.gather(list(range(n_tiles)), list(range(len(m.levels))))
    g = Gaussians(means, chol, cols)
    print(f"{args.lig}: {m.width}x{m.height}, {len(g)} Gaussians; {isa_description()}", file=sys.stderr)
    rows = []
    for s in args.scales:
        owned = m.owned_rects(s, (0, 0, *ligcodec.render.output_size(m.width, m.height, s)))
        ow, oh = ligcodec.render.output_size(m.width, m.height, s)
        rects = np.array([r for _, r, _ in owned], np.int64)

        def draw():
            return decoder.draw(means, chol, cols, seg, rects, s, 0, 0, np.empty((oh, ow, m.channels), np.float32))

        def banded():
            out = np.empty((oh, ow, m.channels), np.float32)
            return _render_banded(g, s, (0, 0, ow, oh), out, oh)

        def tiled():
            params, pc = kernels.project(means, chol, cols, s, aa_variance(s), CUTOFF_Q)
            return ligcodec.render.rasterize(params, pc, (0, 0, ow, oh))

        ref = draw()
        assert np.array_equal(np.clip(ref, 0, 1), img.read_float(s)), "the decoder's draw is not what a read gives"
        row = {"scale": s, "output MP": f"{ow * oh / 1e6:.2f}"}
        for name, fn in (("decoder", draw), ("banded", banded), ("tiled", tiled)):
            got = fn()
            if got is None:  # the banded path declines incoherent Gaussians above MAX_SCALE
                row[f"{name} ms"] = "-"
                continue
            row[f"{name} ms"] = f"{best_time(fn, repeat=args.repeat) * 1e3:.1f}"
            if name != "decoder":
                row[f"{name} max |diff| (code values)"] = f"{np.abs(got - ref).max() * 255:.2f}"
        rows.append(row)
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
