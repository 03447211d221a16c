"""The device-agnostic torch path on a real GPU (run through the `device` tool when one is lent).

    python bench/cuda_check.py IMAGE.png [--gaussians 20000] [--steps 300]

Fits the same image with the same settings twice, ``backend="numba"`` (CPU kernels) and
``backend="torch"`` (CUDA when available), one worker each, and prints a table of seconds and
fit PSNR. The CUDA tests in tests/test_grad.py check correctness; this checks that the encoder's
fit runs end to end on the GPU and what it costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import print_table  # noqa: E402
from ligcodec.fit import fit  # noqa: E402
from ligcodec.fit.optimise import psnr  # noqa: E402
from ligcodec.source import read_image  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image")
    ap.add_argument("--gaussians", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=300)
    a = ap.parse_args(argv)
    import torch

    img = read_image(a.image)
    ref = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 65535.0)
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    rows = []
    for backend in ("numba", "torch"):
        t0 = time.perf_counter()
        model = fit(img, a.gaussians, workers=1, steps=a.steps, backend=backend)
        dt = time.perf_counter() - t0
        out = np.clip(model.render(), 0, 1)
        rows.append({"backend": backend, "device": dev if backend == "torch" else "cpu", "gaussians": a.gaussians,
                     "steps": a.steps, "fit s": f"{dt:.1f}", "PSNR dB": f"{psnr(out.reshape(ref.shape), ref):.2f}"})
    print_table(rows, ["backend", "device", "gaussians", "steps", "fit s", "PSNR dB"])


if __name__ == "__main__":
    main()
