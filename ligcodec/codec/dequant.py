"""Covariance dequantisation (spec section 5), one implementation for the encoder and the decoder.

It holds an ``exp``: numpy's and numba's may differ in the last bit, so both sides call this
numba routine and the decoder rebuilds exactly the covariances the encoder's final colour solve
saw.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def dequantise_chol_into(q0, q1, q2, s0, s1, s2, out, row):
    """``out[row] = (q0 s0, q1 s1 exp(q2 s2), q2 s2)``: the one implementation of the covariance
    dequantisation (spec section 5), used by the encoder and the decoder alike."""
    l22 = q2 * s2
    out[row, 0] = q0 * s0
    out[row, 1] = (q1 * s1) * np.exp(l22)
    out[row, 2] = l22


@numba.njit(cache=True, nogil=True)
def dequantise_chol_rows(qc, s0, s1, s2, out):
    for r in range(qc.shape[0]):
        dequantise_chol_into(np.float64(qc[r, 0]), np.float64(qc[r, 1]), np.float64(qc[r, 2]), s0, s1, s2, out, r)
