"""One error hierarchy for everything ligcodec rejects.

Every error is a ``ValueError`` so that callers who only know "bad input" can catch that, while
callers who care can tell a bad argument from a corrupt file. Messages say what is wrong, where
(which argument, byte offset or tile) and what to do about it.
"""


class LigError(ValueError):
    """Base class of every error ligcodec raises on purpose."""


class LigInputError(LigError):
    """An argument is invalid: NaN parameters, a region outside the image, a bad scale, ..."""


class LigIndexError(LigInputError, IndexError):
    """An index or slice of an image is out of range (an ``IndexError`` too, as numpy raises)."""


class LigSizeError(LigInputError):
    """A size is zero, negative or so large that honouring it would exhaust memory."""


class LigFormatError(LigError):
    """A ``.lig`` file (or another input file) is corrupt, truncated or of an unknown version."""
