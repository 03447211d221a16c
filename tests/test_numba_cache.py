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
