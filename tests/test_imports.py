"""Decoding and CPU fitting must work without torch (it is an optional extra)."""

import subprocess
import sys


def test_render_and_fit_do_not_import_torch():
    code = (
        "import sys, numpy as np, ligcodec;"
        "from ligcodec.render import Gaussians, render;"
        "g = Gaussians.from_scale_rotation([[4, 4]], [[2, 1]], [0.3], [[1.0]]); render(g, (8, 8));"
        "m = ligcodec.fit(np.full((16, 16), 100, np.uint8), 20, steps=8, workers=1); m.render(scale=0.5);"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
