import os
from pathlib import Path

import numpy as np
import pytest

from ligcodec.render import Gaussians

DATA = Path(os.environ.get("LIGCODEC_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


def random_gaussians(rng, n, width, height, channels=3, sigma=(0.5, 4.0), margin=5.0):
    """N Gaussians scattered over (and a little beyond) a width x height image."""
    means = rng.uniform([-margin, -margin], [width + margin, height + margin], (n, 2))
    scales = rng.uniform(sigma[0], sigma[1], (n, 2))
    angles = rng.uniform(0, np.pi, n)
    colours = rng.normal(0, 1, (n, channels)).astype(np.float32)
    return Gaussians.from_scale_rotation(means, scales, angles, colours)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def data_dir():
    if not DATA.is_dir():
        pytest.skip(f"real test images not found at {DATA}")
    return DATA
