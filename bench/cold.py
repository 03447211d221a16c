"""Cold start of the command line: wall time of a fresh-process `ligcodec decode FILE -o OUT.png` of a
Kodak image, and where that time goes.

    python bench/cold.py                     # encodes kodim23 (--bpp 1 --effort 1) into a temp dir
    python bench/cold.py --lig FILE.lig      # an existing file
    python bench/cold.py --runs 9            # median of 9 runs (default 5)
    python bench/cold.py --what-if           # also: variants without scipy, gc, PNG level (measurements)

One warm-up run first fills numba's on-disk kernel cache (it compiles when any kernel source changed
since the cache was written: tens of seconds); the timed runs then load the kernels from it, as a
user's second and later decodes do. The breakdown comes from fresh child processes too (median of
--runs of them per row): each runs the same command through ``ligcodec.cli.main`` with timers around
its steps, in this order: python startup, ``import numba`` alone, the rest of ``import ligcodec``, the
rest of the command line's imports (click, ...), numba's CPU target context, its registry load
(``BaseContext.refresh``, which the first kernel load from the cache runs: its BLAS check imports
``scipy.linalg`` when scipy is installed, timed alone, first), each kernel's load from the cache,
the decode itself, the PNG write and the exit (interpreter teardown), each with the time its
garbage-collection passes took (``gc.callbacks``; those at exit are not reported by it). The
figures are wall times: run it on a quiet machine, and not while kernel sources are being edited
(the kernel cache is stamped with all of them: an edit means a recompile, which it warns about).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import DATA, isa_description, print_table

TARGET_S = 0.6  # the acceptance figure for a cold decode of a Kodak file

# Run in a fresh interpreter: the command's steps, timed. Only the standard library is imported before
# the first timer. Prints one JSON line.
CHILD = r"""
import time
T_FIRST = time.time()
import gc, json, sys
lig, out = sys.argv[1], sys.argv[2]
r = {"t_first_line": T_FIRST}

# Garbage collection: time and passes (by generation), per step. Imports that make many objects
# set off full collections.
GC = {"s": 0.0, "t": 0.0, "n": [0, 0, 0]}
def on_gc(phase, info):
    if phase == "start":
        GC["t"] = time.perf_counter()
    else:
        GC["s"] += time.perf_counter() - GC["t"]
        GC["n"][info["generation"]] += 1
gc.callbacks.append(on_gc)

# Modules compiled from source on import: no .pyc for them (PYTHONDONTWRITEBYTECODE, a fresh tree).
import importlib.machinery
PY = {"s": 0.0, "n": 0}
_source_to_code = importlib.machinery.SourceFileLoader.source_to_code
def source_to_code(self, data, path, *, _optimize=-1):
    t = time.perf_counter()
    try:
        return _source_to_code(self, data, path, _optimize=_optimize)
    finally:
        PY["s"] += time.perf_counter() - t
        PY["n"] += 1
importlib.machinery.SourceFileLoader.source_to_code = source_to_code

class step:
    def __init__(self, key):
        self.key = key
    def __enter__(self):
        self.t, self.g, self.p = time.perf_counter(), GC["s"], PY["s"]
    def __exit__(self, *exc):
        r[self.key] = r.get(self.key, 0.0) + time.perf_counter() - self.t
        r["gc " + self.key] = r.get("gc " + self.key, 0.0) + GC["s"] - self.g
        r["py " + self.key] = r.get("py " + self.key, 0.0) + PY["s"] - self.p

with step("import numba"):
    import numba
with step("import ligcodec (rest)"):
    import ligcodec
r["ligcodec"] = ligcodec.__file__
with step("import ligcodec.cli (rest)"):
    import ligcodec.cli as cli

# What the first cached kernel's load does before reading its file, done here step by step. numba's
# Cache.load_overload refreshes the target context: the CPU context, scipy (numba's BLAS check:
# numba.np.linalg.ensure_blas imports scipy.linalg.cython_blas), then the registries. ligcodec's
# own loads (ligcodec/_numba_cache.py, LIGHT_LOADS) initialise numba's runtime (NRT) alone.
from numba.core.registry import cpu_target
from numba.core.runtime import rtsys
light = getattr(ligcodec._numba_cache, "LIGHT_LOADS", False)
r["light loads"] = light
with step("numba CPU target context"):
    ctx = cpu_target.target_context
with step("scipy.linalg import (BLAS check)"):
    try:
        if not light:
            import scipy.linalg.cython_blas  # noqa: F401
        r["scipy"] = not light
    except ImportError:
        r["scipy"] = False
with step("numba registry load (rest)"):
    if light:
        rtsys.initialize(ctx)
    else:
        ctx.refresh()

from numba.core import caching, dispatcher
import ligcodec.image, ligcodec.io

kernels, depth = [], [0]
orig_compile = dispatcher.Dispatcher.compile
def compile(self, sig):
    hits, misses = sum(self._cache_hits.values()), sum(self._cache_misses.values())
    depth[0] += 1
    t, g = time.perf_counter(), GC["s"]
    try:
        return orig_compile(self, sig)
    finally:
        depth[0] -= 1
        name = getattr(self.py_func, "__module__", "?").replace("ligcodec.", "") + "." + self.py_func.__name__
        kernels.append({"name": name, "seconds": time.perf_counter() - t, "gc": GC["s"] - g,
                        "top": depth[0] == 0,
                        "hit": sum(self._cache_hits.values()) > hits,
                        "miss": sum(self._cache_misses.values()) > misses})
dispatcher.Dispatcher.compile = compile

def timed(cls_or_mod, attr, key):
    orig = getattr(cls_or_mod, attr)
    def wrapper(*a, **k):
        with step(key):
            return orig(*a, **k)
    setattr(cls_or_mod, attr, wrapper)
timed(caching.CompileResultCacheImpl, "rebuild", "of which rebuild (link code)")
timed(ligcodec.image.LigImage, "read", "read")
timed(ligcodec.io, "write_image", "PNG write")

with step("main"):
    rc = cli.main(["decode", lig, "-o", out, "--force", "-q"])
r["kernels"] = kernels
r["kernel loads (top-level)"] = sum(k["seconds"] for k in kernels if k["top"])
r["gc kernel loads (top-level)"] = sum(k["gc"] for k in kernels if k["top"])
r["py kernel loads (top-level)"] = 0.0
for key in ("", "gc ", "py "):
    r[key + "decode (read, less kernel loads)"] = r[key + "read"] - r[key + "kernel loads (top-level)"]
    r[key + "command line, open, header (rest)"] = r[key + "main"] - r[key + "read"] - r[key + "PNG write"]
r["gc passes"] = GC["n"]
r["gc total"] = GC["s"]
r["py total"], r["py files"] = PY["s"], PY["n"]
r["rc"] = rc
print(json.dumps(r))
sys.stdout.flush()
r = None
print(json.dumps({"t_last_line": time.time()}))
"""


CHILD_ENV = None  # the children's environment: this one's, or (--bytecode) without PYTHONDONTWRITEBYTECODE


def ligcodec_command() -> list[str]:
    """The console script next to this interpreter (what a user runs), else ``python -m ligcodec.cli``."""
    script = Path(sys.executable).parent / "ligcodec"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ligcodec.cli"]


def timed_run(cmd, cwd) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=cwd, env=CHILD_ENV, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    return dt


def scipy_importable(cwd) -> bool:
    """In a child: the parent has numpy and numba loaded already, and the check should not load scipy here."""
    code = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('scipy') else 1)"
    return subprocess.run([sys.executable, "-c", code], check=False, cwd=cwd, env=CHILD_ENV).returncode == 0


def breakdown(lig: Path, out: Path, cwd) -> dict:
    """One fresh child running the decode with timers (see CHILD); adds startup and exit from the clock."""
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(lig), str(out)], check=False, cwd=cwd,
                          env=CHILD_ENV, capture_output=True, text=True)
    t1 = time.time()
    if proc.returncode:
        raise SystemExit(f"breakdown child failed ({proc.returncode}):\n{proc.stderr.strip()}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    r, last = lines[0], lines[1]
    r["startup (to the first line)"] = r.pop("t_first_line") - t0
    r["exit (teardown)"] = t1 - last["t_last_line"]
    r["wall"] = t1 - t0
    return r


def encode_kodak(tmp: Path) -> Path | None:
    src = DATA / "kodak" / "kodim23.png"
    if not src.exists():
        return None
    lig = tmp / "kodim23.lig"
    cmd = ligcodec_command() + ["encode", str(src), str(lig), "--bpp", "1", "--effort", "1", "--workers", "1",
                                "--force", "-q"]
    print(f"encoding {src.name} at --bpp 1 --effort 1 ...", flush=True)
    timed_run(cmd, tmp)
    return lig


STEPS = [  # (row, key in the child's figures, how it is measured)
    ("python startup", "startup (to the first line)", "interpreter + site, to the child's first line"),
    ("import numba", "import numba", "alone, first"),
    ("import ligcodec (rest)", "import ligcodec (rest)", "package, render/codec modules, kernel defs"),
    ("import ligcodec.cli (rest)", "import ligcodec.cli (rest)", "click and the command line"),
    ("numba CPU target context", "numba CPU target context", "LLVM codegen (0: made during the imports)"),
    ("scipy.linalg import", "scipy.linalg import (BLAS check)", "numba's ensure_blas, in the registry load"),
    ("numba registry load (rest)", "numba registry load (rest)",
     "BaseContext.refresh less scipy (NRT init alone with light loads)"),
    ("kernel loads from cache", "kernel loads (top-level)", "sum over the entry points below"),
    ("  of which: rebuild", "of which rebuild (link code)", "CompileResultCacheImpl.rebuild (object code)"),
    ("decode", "decode (read, less kernel loads)", "LigImage.read less kernel loads"),
    ("PNG write", "PNG write", "ligcodec.io.write_image (Pillow import, zlib)"),
    ("CLI, open, header", "command line, open, header (rest)", "click parsing, checks, LigImage()"),
    ("exit", "exit (teardown)", "last line to process end (module teardown, its gc passes)"),
]

# --what-if: the same command with a change around it, each a fresh `python -c` running
# ligcodec.cli.main: (before the imports, after them, after main). Measurements, not proposals:
# hiding scipy in particular is no fix (it stands for an environment without scipy).
PNG_LEVEL_6 = """
from PIL import Image
_save = Image.Image.save
def save(self, fp, format=None, **params):
    if format == "PNG":
        params["compress_level"] = 6
    return _save(self, fp, format, **params)
Image.Image.save = save
"""
WHAT_IF = {
    "as is": ("", "", ""),
    "numba's own cache loads (registry refresh first)": (
        "", "from numba.core import caching\n"
            "caching.Cache.load_overload = caching.Cache.load_overload.numba_load_overload", ""),
    "scipy hidden (sys.modules['scipy'] = None)": ("sys.modules['scipy'] = None", "", ""),
    "PNG level 6 (Pillow's default, and ours before 2026-12-03)": ("", PNG_LEVEL_6, ""),
    "gc.freeze() after main (no gc passes at exit)": ("", "", "gc.freeze()"),
    "gc.disable() before main, gc.freeze() after": ("", "gc.disable()", "gc.freeze()"),
    "gc.disable() before the imports, gc.freeze() after main": ("gc.disable()", "", "gc.freeze()"),
    "  the same and scipy hidden": ("gc.disable(); sys.modules['scipy'] = None", "", "gc.freeze()"),
}


def what_if(lig: Path, out: Path, cwd, runs: int) -> list[dict]:
    times = {name: [] for name in WHAT_IF}
    for _ in range(runs):  # interleaved: a busy spell of the machine hits every variant alike
        for name, (pre, mid, post) in WHAT_IF.items():
            code = (f"import gc, sys\n{pre}\nfrom ligcodec.cli import main\n{mid}\nrc = main(sys.argv[1:])\n"
                    f"{post}\nsys.exit(rc)")
            args = ["decode", str(lig), "-o", str(out), "--force", "-q"]
            times[name].append(timed_run([sys.executable, "-c", code, *args], cwd))
    base, base_min = statistics.median(times["as is"]), min(times["as is"])
    return [{"variant": name, "median s": f"{statistics.median(t):.3f}", "min s": f"{min(t):.3f}",
             "saving ms (median / min)": "" if name == "as is" else
             f"{1e3 * (base - statistics.median(t)):.0f} / {1e3 * (base_min - min(t)):.0f}"}
            for name, t in times.items()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lig", type=Path, help="a .lig file (default: kodim23 encoded at --bpp 1 --effort 1)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs, each a fresh process (median)")
    ap.add_argument("--what-if", action="store_true",
                    help="also time variants (no scipy, no gc, PNG level): measurements")
    ap.add_argument("--bytecode", action="store_true",
                    help="run the children without PYTHONDONTWRITEBYTECODE, so that ligcodec's modules "
                         "get a .pyc (the warm-up writes them to ligcodec/__pycache__) as installed ones do")
    args = ap.parse_args(argv)
    global CHILD_ENV
    if args.bytecode:
        CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    with tempfile.TemporaryDirectory(prefix="ligcodec-cold-") as tmpdir:
        tmp = Path(tmpdir)  # also the children's working directory: no ligcodec/ there to shadow the install
        if args.lig is not None:
            lig = args.lig.resolve()
            if not lig.is_file():
                raise SystemExit(f"{lig}: no such file")
        else:
            lig = encode_kodak(tmp)
            if lig is None:
                print(f"skipped: no Kodak data at {DATA / 'kodak'} (set LIGCODEC_DATA, or give --lig FILE)")
                return 0
        out = tmp / "out.png"
        cmd = ligcodec_command() + ["decode", str(lig), "-o", str(out), "--force", "-q"]

        print(isa_description())
        has_scipy = scipy_importable(tmp)
        print(f"python {sys.version.split()[0]}; scipy importable: {'yes' if has_scipy else 'no'}")
        print(f"command: {' '.join(cmd)}")
        warm = timed_run(cmd, tmp)  # fills numba's cache if it is stale
        walls = [timed_run(cmd, tmp) for _ in range(args.runs)]
        starts = [timed_run([sys.executable, "-c", "pass"], tmp) for _ in range(args.runs)]
        parts = [breakdown(lig, out, tmp) for _ in range(args.runs)]
        variants = what_if(lig, out, tmp, args.runs) if args.what_if else None

    med = statistics.median(walls)
    print()
    print_table([
        {"measure": "warm-up run (fills the kernel cache if stale)",
         "seconds": f"{warm:.3f}" + (" (compiled)" if warm > 3 * med else "")},
        {"measure": f"cold `ligcodec decode`, median of {args.runs}", "seconds": f"{med:.3f}"},
        {"measure": "  min .. max", "seconds": f"{min(walls):.3f} .. {max(walls):.3f}"},
        {"measure": f"target (<= {TARGET_S} s)",
         "seconds": "met" if med <= TARGET_S else f"{med - TARGET_S:+.3f} over"},
    ], ["measure", "seconds"])
    if max(walls) > 3 * med:
        print("warning: a timed run took over 3x the median: a recompile (kernel sources edited meanwhile?)")

    first = parts[0]

    def ms(key):
        return 1e3 * statistics.median(p.get(key, 0.0) for p in parts)

    print(f"\nbreakdown: median of {args.runs} fresh children (`python -c CHILD`, timers around "
          f"ligcodec.cli.main), ligcodec from {first['ligcodec']}\n(gc ms: garbage collection within the "
          "step; .py compile ms: modules compiled from source, having no .pyc)")
    rows = [{"step": "python -c pass", "ms": f"{1e3 * statistics.median(starts):.0f}",
             "how": "whole process, for reference (not in the sum)"}]
    total = 0.0
    for label, key, how in STEPS:
        v = ms(key)
        if not label.startswith("  "):
            total += v
        if key.startswith("scipy") and not first["scipy"]:
            how = ("not loaded: ligcodec's light cache loads skip the refresh" if first.get("light loads")
                   else "scipy not importable: numba skips it")
        if key.startswith("numba registry") and first.get("light loads"):
            how = "skipped (ligcodec/_numba_cache.py); NRT init alone"
        rows.append({"step": label, "ms": f"{v:.0f}",
                     "gc ms": f"{ms('gc ' + key):.0f}" if "gc " + key in first else "",
                     ".py compile ms": f"{ms('py ' + key):.0f}" if "py " + key in first else "", "how": how})
    rows.append({"step": "sum of the steps", "ms": f"{total:.0f}", "gc ms": f"{ms('gc total'):.0f}",
                 ".py compile ms": f"{ms('py total'):.0f}",
                 "how": "gc passes (gen 0/1/2): " + "/".join(str(n) for n in first["gc passes"])
                 + f"; {first['py files']} modules compiled from source"})
    rows.append({"step": "child wall", "ms": f"{1e3 * statistics.median(p['wall'] for p in parts):.0f}",
                 "how": "timers add a little"})
    print_table(rows, ["step", "ms", "gc ms", ".py compile ms", "how"])
    if first["py files"]:
        flag = (CHILD_ENV or os.environ).get("PYTHONDONTWRITEBYTECODE", "")
        print(f"note: {first['py files']} modules (ligcodec's) have no .pyc and compile from source on every "
              "run "
              f"({ms('py total'):.0f} ms; PYTHONDONTWRITEBYTECODE={flag!r}). An installed package has them: "
              "--bytecode runs the children without that variable (the warm-up then writes "
              "ligcodec/**/__pycache__/*.pyc), or run `python -m compileall ligcodec` once.")

    names = [k["name"] for k in first["kernels"]]
    print(f"\nkernels the decode loads ({sum(k['top'] for k in first['kernels'])} entry points, "
          f"{len(set(names))} dispatchers; nested ones are compiled only on a cache miss):")
    krows = []
    for i, k in enumerate(first["kernels"]):
        runs = [p["kernels"][i] for p in parts if len(p["kernels"]) > i]
        misses = sum(x["miss"] for x in runs)
        state = "cache" if k["hit"] else "compiled (cache miss)" if k["miss"] else "loaded before"
        if misses and not all(x["miss"] for x in runs):
            state += f"; compiled in {misses} of {len(runs)} runs"
        krows.append({"entry point": ("" if k["top"] else "  ") + k["name"],
                      "ms": f"{1e3 * statistics.median(x['seconds'] for x in runs):.1f}",
                      "gc ms": f"{1e3 * statistics.median(x['gc'] for x in runs):.1f}", "from": state})
    print_table(krows, ["entry point", "ms", "gc ms", "from"])
    if any(k["miss"] for p in parts for k in p["kernels"]):
        print("\nwarning: kernels were compiled in the breakdown's runs (the kernel sources changed while it "
              "ran?): its medians may hide it, but rerun")

    if variants:
        print(f"\nwhat if (fresh `python -c` running ligcodec.cli.main, median of {args.runs}, interleaved; "
              "measurements, not proposals):")
        print_table(variants, ["variant", "median s", "min s", "saving ms (median / min)"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
