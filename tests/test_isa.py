"""The kernel tests again, compiled for AVX2 (no AVX-512), whatever CPU runs the suite.

numba compiles for the host CPU: on an AVX-512 machine the explicit 16-lane float32 vectors of
render/simd.py become single zmm instructions, on an AVX2-only one pairs of ymm instructions,
and LLVM vectorises (and, under fastmath, reassociates) the other loops at a different width. The
decoder is written to give the same bits either way (explicit IR, no fast-math flags), but the
encoder's fits are not, so an AVX2 build encodes other bytes, and a tolerance tuned on one
machine can fail on the other (it did: the spec-reader test, 1.15 % of 16-bit samples off by one
code value against 1 % allowed). So CI, whatever its CPU, also runs a subset of the
kernel-sensitive tests in a subprocess built for Haswell.

How: ``NUMBA_CPU_NAME=haswell`` alone is not enough. numba then still passes the *host's* feature
flags (+avx512f, ...) to LLVM, which keeps using zmm registers; ``NUMBA_CPU_FEATURES`` must be
set too (``-avx512f``: the Haswell model's own features, AVX2 and FMA, minus AVX-512, which it
lacks anyway). :func:`test_avx2_build_is_in_effect` checks in the subprocess that no zmm register
is emitted. The subprocess has its own numba cache (``NUMBA_CACHE_DIR``, a stable directory under
the system temp directory, ``LIGCODEC_ISA_CACHE`` to override): only the first run, or one after
the kernels' sources change, compiles (~2 min of CPU); a rerun takes ~25 s of CPU.

On a machine without AVX-512 the host run already is the AVX2 path: the subprocess then runs the
same code a second time (harmless, only slower). Inside the subprocess, and in any run that pins
``NUMBA_CPU_NAME`` itself, the subprocess test skips (no recursion); so it does on CPUs other than
x86-64, which have no Haswell to compile for.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: What the subprocess sets: a Haswell (AVX2 + FMA, no AVX-512) code generator.
AVX2_ENV = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "-avx512f"}
#: Set in the subprocess only: test_avx2_build_is_in_effect runs there and nowhere else.
CHILD_MARK = "LIGCODEC_ISA_SUBPROCESS"

#: The kernel-sensitive tests run again for AVX2 (chosen by what they compile: numba's compile
#: time, not the tests, is most of the cost): whole encodes decoded by the spec-only reader (the
#: fit's tiled forward, backward and binning kernels, ANS and dequantisation, the decoder's
#: one-call renderer, and the float32 error bound of its pixels), that renderer against a per-tile
#: reference at scales 1 to 0.3 and its region reads bit for bit, every box-width path (4x4, 8x2,
#: 16 lanes, wide spans; tiled and banded) and needle-thin Gaussians against the dense reference,
#: and the numba gradients against autograd. Left out for time: the rest of test_render.py
#: (test_forward_matches_reference compiles the banded path again for other channel counts, and
#: test_reduced_path_matches_reference_and_tiled_path alone runs for about a minute).
SUBSET = [
    "tests/test_isa.py::test_avx2_build_is_in_effect",
    "tests/test_spec.py::test_spec_reader_decodes_like_ligcodec",
    "tests/test_decoder_draw.py",
    "tests/test_render.py::test_small_and_large_paths_match_reference",
    "tests/test_render.py::test_wide_and_thin_gaussians_match_reference",
    "tests/test_grad.py::test_gradients_match_autograd_of_reference",
]


def _cache_dir() -> Path:
    if os.environ.get("LIGCODEC_ISA_CACHE"):
        return Path(os.environ["LIGCODEC_ISA_CACHE"])
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"ligcodec-numba-haswell-{user}"


#: test_avx2_build_is_in_effect's reason to skip (outside the subprocess).
_NOT_IN_SUBPROCESS = "only meaningful in the AVX2 subprocess of test_kernels_pass_on_the_avx2_code_path"


def test_kernels_pass_on_the_avx2_code_path():
    """SCENARIO: the tests in SUBSET run in a subprocess whose numba compiles for Haswell (AVX2,
    FMA, no AVX-512), with a numba cache of its own (the gradient tests' torch cases left out:
    torch's kernels are not numba's).
    EXPECTED RESULT: all pass there as well, and the subprocess confirms that its code has no
    AVX-512 registers (its probe ran, not skipped)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"AVX2 is an x86-64 instruction set; this is {platform.machine()}")
    if os.environ.get("NUMBA_CPU_NAME"):
        pytest.skip(f"numba is already pinned to NUMBA_CPU_NAME={os.environ['NUMBA_CPU_NAME']}: "
                    "this run is the other code path itself")
    env = dict(os.environ, **AVX2_ENV, NUMBA_CACHE_DIR=str(_cache_dir()), **{CHILD_MARK: "1"})
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-k", "not torch", *SUBSET]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    flags = " ".join(f"{k}={v}" for k, v in env.items() if k in AVX2_ENV or k == "NUMBA_CACHE_DIR")
    assert proc.returncode == 0, f"the AVX2 run ({flags}) failed:\n{out[-6000:]}"
    assert _NOT_IN_SUBPROCESS not in out, f"the AVX2 probe did not run:\n{out[-3000:]}"


def test_avx2_build_is_in_effect():
    """SCENARIO: inside the AVX2 subprocess (skipped elsewhere), numba compiles a small float32
    loop that LLVM vectorises (with zmm registers wherever AVX-512 is enabled).
    EXPECTED RESULT: numba targets haswell and the machine code uses ymm registers, never zmm: the
    environment really selects the AVX2 code path (NUMBA_CPU_NAME alone would not)."""
    if not os.environ.get(CHILD_MARK):
        pytest.skip(_NOT_IN_SUBPROCESS)
    from numba.core import config

    from bench.common import vector_asm

    asm = vector_asm()
    assert config.CPU_NAME == "haswell" and config.CPU_FEATURES == AVX2_ENV["NUMBA_CPU_FEATURES"]
    assert "ymm" in asm and "zmm" not in asm
