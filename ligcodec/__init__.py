"""ligcodec: large images as levels of 2D Gaussians."""

from .errors import LigError, LigFormatError, LigInputError, LigSizeError
from .render import Gaussians

__version__ = "0.1.0"

__all__ = ["Gaussians", "LigError", "LigFormatError", "LigInputError", "LigSizeError"]
