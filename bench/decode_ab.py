"""#16's decode bar: full and 1/4 decode of a file by this checkout against another version of
ligcodec (a git worktree) decoding its own file, in alternating processes.

    git worktree add /tmp/old 6dc08b8          # the code of #16's filing
    PYTHONPATH=/tmp/old python -c "import ligcodec; ligcodec.encode('kodim05.png', '/tmp/old.lig', bpp=1)"
    python -c "import ligcodec; ligcodec.encode('kodim05.png', '/tmp/new.lig', bpp=1)"
    python bench/decode_ab.py --other /tmp/old /tmp/old.lig /tmp/new.lig

Each process decodes its file ``--repeat`` times at full scale and at 1/4 (``ligcodec.decode``,
after one warm-up each, which loads numba's kernels) and reports the best of each. The table
gives the median of those bests over ``--pairs`` pairs and the median of the pair-by-pair ratios
(this checkout over the other): these machines are noisy, and neighbouring processes see the
same noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, isa_description, print_table  # noqa: E402

_CHILD = """
import json, sys, time, ligcodec
path, n = sys.argv[1], int(sys.argv[2])
best = {}
for scale in (1.0, 0.25):
    ligcodec.decode(path, scale=scale)
    b = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        ligcodec.decode(path, scale=scale)
        b = min(b, time.perf_counter() - t)
    best[scale] = 1e3 * b
print(json.dumps(best))
"""


def _run(tree: Path, path: Path, repeat: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(repeat)], env=env, check=True,
                         capture_output=True, text=True, cwd=tree).stdout
    return {float(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", type=Path, required=True,
                    help="the other version's source tree (a git worktree)")
    ap.add_argument("other_file", type=Path, help="the file the other version decodes")
    ap.add_argument("this_file", type=Path, help="the file this checkout decodes")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=51)
    args = ap.parse_args(argv)
    print(isa_description())
    runs = {"other": [], "this": []}
    for i in range(args.pairs):
        runs["other"].append(_run(args.other, args.other_file, args.repeat))
        runs["this"].append(_run(ROOT, args.this_file, args.repeat))
        print(f"  pair {i + 1}: full {runs['other'][-1][1.0]:.2f} / {runs['this'][-1][1.0]:.2f} ms, "
              f"1/4 {runs['other'][-1][0.25]:.2f} / {runs['this'][-1][0.25]:.2f} ms", flush=True)
    scales = (("full", 1.0), ("1/4", 0.25))
    rows = []
    for name, tree in (("other", args.other), ("this", ROOT)):
        medians = {f"{lbl} ms": f"{statistics.median(r[s] for r in runs[name]):.2f}" for lbl, s in scales}
        rows.append({"version": f"{name} ({tree})", **medians})
    pairs = list(zip(runs["other"], runs["this"]))
    ratios = {f"{lbl} ms": f"{statistics.median(b[s] / a[s] for a, b in pairs):.3f}" for lbl, s in scales}
    rows.append({"version": "this / other, pair by pair (median)", **ratios})
    print_table(rows, ["version", "full ms", "1/4 ms"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
