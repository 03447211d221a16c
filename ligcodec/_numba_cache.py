"""numba's on-disk cache, keyed on every kernel source of the package, not only the caller's file.

numba decides whether a cached function is stale from its own source file alone. A kernel inlines
helpers and LLVM intrinsics from other modules (``render/simd.py`` into ``kernels.py``, ``decoder.py``
and ``banded.py``), so after editing ``simd.py`` the callers' caches kept the old code until their
own files changed: an A/B benchmark or a test could run yesterday's kernel. Here every cached
function of ligcodec is stamped with one digest of all the package's numba sources, so an edit to
any of them recompiles everything that might inline it. Installed from ``ligcodec/__init__.py``,
before any kernel is defined; functions outside ligcodec keep numba's own locators.

It uses numba's locator classes (``numba.core.caching``), which are not a stable API: if they
are missing, numba's default stamping stays in place (and the trap with it).

The same cached functions also load without numba's registry refresh. numba's ``Cache.load_overload``
refreshes the target context before each load: it imports and installs every lowering registry
(numpy, lists, dicts, random, ...), which only a compilation needs, and it was the largest single
step of a cold ``ligcodec decode`` after ``import numba`` (bench/cold.py). A load needs only the
runtime (NRT) that the object code links against, so ours initialise that alone; a compilation in
the same process still refreshes first (numba's compiler does so itself). numba's own functions and
other packages' keep numba's ``load_overload``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_PREFIX = "LigcodecStamped"  # the names of our locator classes: how a cache is known to be ligcodec's


def _kernel_sources() -> list[Path]:
    """The package's modules that define or inline numba code."""
    out = []
    for p in sorted(_PACKAGE.rglob("*.py")):
        text = p.read_text(encoding="utf-8", errors="replace")
        if "njit" in text or "numba.extending" in text or "from numba import" in text:
            out.append(p)
    return out


def sources_digest() -> bytes:
    h = hashlib.sha256()
    for p in _kernel_sources():
        h.update(str(p.relative_to(_PACKAGE)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.digest()


def _install() -> bool:
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    bases = [getattr(caching, n, None) for n in ("UserProvidedCacheLocator", "InTreeCacheLocator",
                                                  "UserWideCacheLocator")]
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    if impl is None or any(b is None for b in bases) or not hasattr(impl, "_locator_classes"):
        return False
    digest = sources_digest()
    root = str(_PACKAGE)

    def make(base):
        class PackageStamped(base):
            def get_source_stamp(self):
                return digest

            @classmethod
            def from_function(cls, py_func, py_file):
                if not str(Path(py_file).resolve()).startswith(root):
                    return None
                return super().from_function(py_func, py_file)

        PackageStamped.__name__ = f"{_PREFIX}{base.__name__}"
        return PackageStamped

    ours = [make(b) for b in bases]
    impl._locator_classes = ours + [c for c in impl._locator_classes if not c.__name__.startswith(_PREFIX)]
    return True


def _is_ours(cache) -> bool:
    impl = getattr(cache, "_impl", None)
    return type(getattr(impl, "locator", None)).__name__.startswith(_PREFIX)


def _install_light_loads() -> bool:
    """Cache loads of ligcodec's functions initialise numba's runtime only, not every registry."""
    try:
        from numba.core import caching
        from numba.core.runtime import rtsys
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    cache = getattr(caching, "Cache", None)
    needed = ("load_overload", "_load_overload", "_guard_against_spurious_io_errors")
    if cache is None or not all(hasattr(cache, n) for n in needed) or not hasattr(rtsys, "initialize"):
        return False
    numba_load = getattr(cache.load_overload, "numba_load_overload", cache.load_overload)

    def load_overload(self, sig, target_context):
        if not _is_ours(self):
            return numba_load(self, sig, target_context)
        rtsys.initialize(target_context)  # the NRT that cached object code calls (a no-op when done)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    load_overload.numba_load_overload = numba_load
    cache.load_overload = load_overload
    return True


INSTALLED = _install()
#: Whether cache loads of ligcodec's functions skip numba's registry refresh (see the docstring).
LIGHT_LOADS = INSTALLED and _install_light_loads()
