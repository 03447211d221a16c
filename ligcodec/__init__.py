"""ligcodec: large images as levels of 2D Gaussians."""

# First: stamps numba's kernel caches with all kernel sources before any kernel is defined.
from . import _numba_cache
from .errors import LigError, LigFormatError, LigIndexError, LigInputError, LigSizeError
from .image import LigImage, decode, open  # noqa: A004
from .model import Model
from .render import Gaussians

__version__ = "0.1.0"
#: Whether the kernel caches carry the package-wide stamp (see ligcodec/_numba_cache.py).
KERNEL_CACHES_STAMPED = _numba_cache.INSTALLED

__all__ = ["Gaussians", "LigError", "LigFormatError", "LigIndexError", "LigInputError", "LigImage", "LigSizeError",
           "Model", "decode", "encode", "fit", "open"]


def encode(image, path, **kwargs):
    """Encode an image array into a ``.lig`` file (see :func:`ligcodec.codec.ratecontrol.encode`)."""
    from .codec.ratecontrol import encode as _encode

    return _encode(image, path, **kwargs)


def fit(image, *args, **kwargs):
    """Fit a multi-level Gaussian model (see :func:`ligcodec.fit.fit`)."""
    from .fit import fit as _fit

    return _fit(image, *args, **kwargs)
