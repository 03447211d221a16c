"""ligcodec: large images as levels of 2D Gaussians."""

from .errors import LigError, LigFormatError, LigInputError, LigSizeError
from .model import Model
from .render import Gaussians

__version__ = "0.1.0"

__all__ = ["Gaussians", "LigError", "LigFormatError", "LigInputError", "LigSizeError", "Model", "fit"]


def fit(image, *args, **kwargs):
    """Fit a multi-level Gaussian model (see :func:`ligcodec.fit.fit`); imports torch on first use."""
    from .fit import fit as _fit

    return _fit(image, *args, **kwargs)
