"""Every examples/*.py runs to completion (each a short tour of one use).

An example may declare ``REQUIRES = ("module", ...)`` at module level: it is skipped when one of
those cannot be imported here. Each runs in a subprocess with a temporary output directory as its
first argument and the environment variable ``LIGCODEC_EXAMPLE_TEST=1``.
"""

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT = int(os.environ.get("LIGCODEC_EXAMPLE_TIMEOUT", "300"))


def _requires(path: Path) -> tuple:
    """The literal ``REQUIRES`` of a script, read without running it."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "REQUIRES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return ()


def test_there_are_examples():
    names = {p.name for p in EXAMPLES}
    assert {"encode_and_read_region.py", "dask_napari_zarr.py", "pillow_plugin.py", "ome_tiff_pyramid.py"} <= names


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    missing = [m for m in _requires(script) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{script.name} needs {', '.join(missing)}")
    env = dict(os.environ, LIGCODEC_EXAMPLE_TEST="1", MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    r = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=TIMEOUT, check=False)
    assert r.returncode == 0, f"{script.name} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
