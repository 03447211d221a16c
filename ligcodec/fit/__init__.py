"""The encoder's optimisation (numpy + numba on the CPU; torch only for ``backend="torch"``).

``ligcodec.fit`` is both this package and the function :func:`fit`: the package module is made
callable, so ``ligcodec.fit(image, 10000)`` and ``ligcodec.fit.FitConfig`` both work.
"""

import sys
import types

from .optimise import FitSettings, fit_level, psnr
from .plan import FitConfig
from .tiles import fit

__all__ = ["FitConfig", "FitSettings", "fit", "fit_level", "psnr"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
