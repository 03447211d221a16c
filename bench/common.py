"""Shared helpers of the benchmarks: timing, data paths, table printing."""

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
