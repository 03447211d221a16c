"""Shared helpers of the benchmarks: timing, data paths, table printing, the instruction set."""

from __future__ import annotations

import io
import os
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LIGCODEC_DATA", ROOT.parent / "shared" / "data"))


def best_time(fn, repeat: int = 5, warmup: int = 1) -> float:
    """Best wall time of ``repeat`` calls after ``warmup`` (these machines are noisy: the minimum
    is the most repeatable statistic for CPU-bound code)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def median_time(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _cpu_model_and_flags():
    """(model name, set of flags) from /proc/cpuinfo; (platform's guess, None) elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        import platform

        return platform.processor() or platform.machine() or "unknown CPU", None
    model, flags = None, None
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model name", "cpu model") and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and flags is None:
            flags = set(value.split())
    return model or "unknown CPU", flags


def vector_asm() -> str:
    """The machine code numba emits here for a small float32 loop that LLVM vectorises: its
    registers (zmm: AVX-512, ymm: AVX/AVX2) show which instruction set the kernels get."""
    from numba import njit

    @njit(cache=False)
    def axpy(y, a, x):
        for i in range(y.size):
            y[i] += a * x[i]

    x = np.ones(64, np.float32)
    axpy(x, np.float32(2.0), x)
    return "\n".join(axpy.inspect_asm().values())


def isa_description() -> str:
    """One line saying which instruction set the numba kernels ran on: the host CPU model, whether
    it has AVX-512F (/proc/cpuinfo flags), the CPU numba compiles for (``NUMBA_CPU_NAME``, else
    the host's, as llvmlite names it) and its features (``NUMBA_CPU_FEATURES``, else the host's),
    and the widest vector registers in a small function numba compiles here (zmm: AVX-512, ymm:
    AVX/AVX2). The last is what the kernels use: ``NUMBA_CPU_NAME=haswell`` alone keeps the
    host's AVX-512 features (and zmm); with ``NUMBA_CPU_FEATURES=-avx512f`` too it is AVX2."""
    import llvmlite.binding as ll
    from numba.core import config

    model, flags = _cpu_model_and_flags()
    avx512 = "unknown" if flags is None else ("yes" if "avx512f" in flags else "no")
    target = config.CPU_NAME or ll.get_host_cpu_name()
    source = "NUMBA_CPU_NAME" if config.CPU_NAME else "host"
    features = "host" if config.CPU_FEATURES is None else repr(config.CPU_FEATURES)

    asm = vector_asm()
    widest = next((f"{r} ({isa})" for r, isa in (("zmm", "AVX-512"), ("ymm", "AVX/AVX2"), ("xmm", "SSE"))
                   if r in asm), "no vector registers")
    return (f"CPU: {model}; AVX-512F: {avx512}; numba target: {target} ({source}), features: {features}; "
            f"vector code: {widest}")


def print_table(rows, columns):
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)) + " |")


def jpeg2000_bytes(img, bpp: float) -> bytes:
    """Pillow/OpenJPEG JPEG 2000 at about ``bpp`` (irreversible, mct=1 for RGB, one layer)."""
    bands = len(img.getbands())
    buf = io.BytesIO()
    img.save(
        buf,
        format="JPEG2000",
        irreversible=True,
        mct=1 if bands == 3 else 0,
        quality_mode="rates",
        quality_layers=[8.0 * bands / bpp],
    )
    return buf.getvalue()


def load_rgb(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
