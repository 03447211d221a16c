"""numba's cache is keyed on every kernel source of the package (ligcodec/_numba_cache.py)."""

import hashlib

from ligcodec import _numba_cache


def test_kernel_caches_are_stamped_with_all_kernel_sources():
    """SCENARIO: the cached kernels of the decoder (banded.forward inlines kernels.splat, which
    calls the LLVM intrinsics of simd.py; batch.decode_chunks calls ans and dequant).
    EXPECTED RESULT: each cache is stamped with the digest of every numba source of the package
    (so an edit to simd.py makes the callers' caches stale, which numba's per-file stamp
    missed), and that digest covers simd.py's bytes."""
    from ligcodec.codec import batch
    from ligcodec.render import banded

    assert _numba_cache.INSTALLED
    digest = _numba_cache.sources_digest()
    for fn in (banded.forward, banded.setup_owned, batch.decode_chunks):
        assert fn._cache._cache_file._source_stamp == digest, fn
    names = [p.name for p in _numba_cache._kernel_sources()]
    for name in ("simd.py", "kernels.py", "banded.py", "ans.py", "batch.py", "dequant.py"):
        assert name in names
    simd = next(p for p in _numba_cache._kernel_sources() if p.name == "simd.py")
    h = hashlib.sha256()
    for p in _numba_cache._kernel_sources():
        body = p.read_bytes() + (b"#" if p == simd else b"")  # one more byte in simd.py ...
        h.update(str(p.relative_to(_numba_cache._PACKAGE)).encode() + b"\0" + body + b"\0")
    assert h.digest() != digest  # ... is another stamp


# A fresh interpreter that counts numba's registry refreshes while it reads a file, then compiles a
# new function that needs the registries (np.linalg, a list), which numba's compiler refreshes for.
_CHILD = r"""
import sys
import numpy as np
from numba.core import base

calls = []
numba_refresh = base.BaseContext.refresh
def refresh(self):
    calls.append(1)
    return numba_refresh(self)
base.BaseContext.refresh = refresh

import ligcodec
px = ligcodec.open(sys.argv[1]).read()
np.save(sys.argv[2], px)
refreshes_while_reading = len(calls)

import numba
@numba.njit
def later(a):
    return np.linalg.norm(a) + sorted([3.0, 1.0, 2.0])[0]
print(refreshes_while_reading, later(np.full(4, 0.5)), len(calls) > refreshes_while_reading)
"""


def test_cached_kernels_load_without_numbas_registry_refresh(tmp_path):
    """SCENARIO: a fresh process reads a .lig whose decode kernels are in numba's on-disk cache (a
    first child fills it), then compiles a new numba function that needs numpy's and the list
    registries.
    EXPECTED RESULT: the read refreshes numba's registries zero times (the cold-start cost that
    ligcodec/_numba_cache.py removes), its pixels equal this process's read of the same file, and
    the later compilation still refreshes and computes the right value (1.0 + 1.0)."""
    import subprocess
    import sys

    import numpy as np

    import ligcodec

    assert _numba_cache.LIGHT_LOADS
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8)
    lig = tmp_path / "small.lig"
    ligcodec.encode(img, lig, gaussians=120, effort=1, workers=1)
    out = []
    for run in range(2):  # the first child fills the cache, if this process has not already
        npy = tmp_path / f"px{run}.npy"
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(lig), str(npy)], capture_output=True,
                              text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out.append(proc.stdout.split())
        np.testing.assert_array_equal(np.load(npy), ligcodec.open(lig).read())
    refreshes, value, later_refreshed = out[1]
    assert refreshes == "0"
    assert float(value) == 2.0 and later_refreshed == "True"
