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


def test_decode_imports_no_encoder(tmp_path):
    """SCENARIO: a fresh process opens a .lig, decodes it whole and reads it at half scale.
    EXPECTED RESULT: none of the encode side was imported: not torch, not constriction (the
    writer's entropy coder; the reader is numba), not ``ligcodec.fit``, not the encode pipeline."""
    import numpy as np

    import ligcodec

    path = tmp_path / "a.lig"
    ligcodec.encode(np.full((24, 32, 3), 90, np.uint8), path, gaussians=12, effort=1, workers=1)
    code = (
        "import sys, ligcodec;"
        f"ligcodec.decode({str(path)!r});"
        f"im = ligcodec.open({str(path)!r}); im.read(scale=0.5); im.close();"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'constriction')"
        " or m.startswith(('ligcodec.fit', 'ligcodec.codec.encoder', 'ligcodec.codec.tile_writer'))];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
