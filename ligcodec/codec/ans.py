"""A numba decoder for one chunk's ANS stream (spec section 4), bit-exact with constriction.

constriction encodes (``AnsCoder``: 32-bit words, 64-bit state, 24-bit precision); reading
goes through this decoder instead because constriction's decode holds the GIL and costs
~60-400 ns a symbol through Python, where this loop costs a few ns and runs in parallel over
chunks. It follows the spec's description of the coder and the models, so it is also the
spec's executable reading: tests check it against constriction on random streams.
"""

from __future__ import annotations

import numba
import numpy as np

PRECISION = 24
_MASK = (1 << PRECISION) - 1
#: Stream kinds of :func:`decode_streams`.
CONST, UNIFORM, TABLE = 0, 1, 2
#: Weights below this are set to 0 before quantisation (every symbol still gets the smallest
#: fixed-point probability); it keeps subnormal numbers, whose handling some CPU modes change,
#: out of the table, so that encoder and decoder build it bit for bit alike.
TABLE_FLOOR = 2.0**-64


@numba.njit(cache=True, nogil=True)
def _ratio(k):
    """``r_k = 1 - 2^(-k/8)`` from exactly-rounded operations (spec section 4)."""
    c = 1.0 / np.sqrt(np.sqrt(np.sqrt(2.0)))
    cj = 1.0
    for _ in range(k & 7):
        cj = cj * c
    return 1.0 - cj * 2.0 ** -(k >> 3)


@numba.njit(cache=True, nogil=True)
def geometric_weights(lo, hi, loc, k, weights):
    """The geometric table's weights ``r_k^|lo + i - loc|`` into ``weights[: hi - lo + 1]``
    (spec section 4): the powers by sequential products, those below :data:`TABLE_FLOOR` set to
    0. The encoder's and the decoder's tables both come from here."""
    n = hi - lo + 1
    r = _ratio(k)
    p = 1.0
    for j in range(max(loc - lo, hi - loc) + 1):  # p = r^j; symbols loc + j and loc - j
        v = p if p >= TABLE_FLOOR else 0.0
        if loc - lo + j < n:
            weights[loc - lo + j] = v
        if j > 0 and loc - lo - j >= 0:
            weights[loc - lo - j] = v
        p = p * r


@numba.njit(cache=True, nogil=True)
def geometric_cdf(lo, hi, loc, k, weights, cdf):
    """The fixed-point table of ``G(lo, hi, loc, k)`` into ``cdf[: n + 1]`` (``weights`` is
    scratch of at least ``n`` float64): ``cdf_i = floor(P_i (2^24 - n) / S) + i``."""
    n = hi - lo + 1
    geometric_weights(lo, hi, loc, k, weights)
    total = 0.0
    for i in range(n):
        total += weights[i]
    scale = float((1 << PRECISION) - n) / total
    cum = 0.0
    for i in range(n):
        cdf[i] = np.uint32(np.int64(cum * scale) + i)
        cum += weights[i]
    cdf[n] = np.uint32(1 << PRECISION)


#: Symbol lookup of a table stream: the top :data:`LOOKUP_BITS` bits of the state's low 24 bits
#: pick a bucket, whose first and last possible symbols a table holds, and a binary search
#: between those two finishes (the decoded symbols are those of a binary search over the whole
#: table; only the speed differs). For the codec's tables (most of the mass near the centre) a
#: bucket holds one or two symbols, so the search is mostly zero or one step; a forged table of
#: many tiny probabilities costs no more than the plain binary search. A table of m symbols gets
#: about 2m buckets, at most 2^LOOKUP_BITS (the lookup stays in L1, and building it costs about
#: as much as building the table).
LOOKUP_BITS = 10


@numba.njit(cache=True, nogil=True)
def lookup_bits(m):
    """Bucket bits for a table of ``m`` symbols: about 2m buckets, 16 to 2^LOOKUP_BITS."""
    bits = 4
    while bits < LOOKUP_BITS and (1 << bits) < 2 * m:
        bits += 1
    return bits


@numba.njit(cache=True, nogil=True)
def symbol_lookup(cdf, m, bits, start):
    """``start[b]`` (``b <= 2^bits``): the largest symbol ``i < m`` with
    ``cdf[i] <= b << (24 - bits)``."""
    shift = PRECISION - bits
    i = 0
    for b in range((1 << bits) + 1):
        q = b << shift
        while i + 1 < m and cdf[i + 1] <= q:
            i += 1
        start[b] = i


@numba.njit(cache=True, nogil=True)
def decode_streams(words, kinds, los, his, locs, ks, n, out):
    """Pop ``n`` symbols per stream off the ANS stack ``words`` (uint32, as
    ``AnsCoder.get_compressed()`` wrote them) into ``out[s, :]`` (int64, offset by ``los[s]``).
    Returns 0, or -1 if the words cannot be an ANS stream (a last word of 0)."""
    width = 2
    for s in range(len(kinds)):
        if kinds[s] == TABLE:
            width = max(width, his[s] - los[s] + 2)
    weights = np.empty(width, np.float64)
    cdf = np.empty(width, np.uint32)
    start = np.empty((1 << LOOKUP_BITS) + 1, np.int32)
    pos = len(words)
    state = np.uint64(0)
    if pos > 0:
        pos -= 1
        if words[pos] == 0:
            return -1
        state = np.uint64(words[pos])
        while pos > 0:
            pos -= 1
            state = (state << np.uint64(32)) | np.uint64(words[pos])
            if state >= np.uint64(1 << 32):
                break
    mask = np.uint64(_MASK)
    shift = np.uint64(PRECISION)
    for s in range(len(kinds)):
        kind = kinds[s]
        lo = los[s]
        if kind == CONST:
            for j in range(n):
                out[s, j] = lo
            continue
        m = his[s] - lo + 1
        if kind == TABLE:
            geometric_cdf(lo, his[s], locs[s], ks[s], weights, cdf)
            bucket = PRECISION - lookup_bits(m)
            symbol_lookup(cdf, m, PRECISION - bucket, start)
        else:
            ppb = (1 << PRECISION) // m
            sh = -1  # m = 2^b (format 3's gap low bits): the symbol is q >> (24 - b), no division
            if ppb * m == 1 << PRECISION:
                sh = 0
                while (1 << sh) < ppb:
                    sh += 1
        for j in range(n):
            q = np.int64(state & mask)
            if kind == TABLE:
                a = np.int64(start[q >> bucket])  # the largest a with cdf[a] <= q is in [a, b)
                b = np.int64(start[(q >> bucket) + 1]) + 1
                while b - a > 1:
                    mid = (a + b) >> 1
                    if cdf[mid] <= q:
                        a = mid
                    else:
                        b = mid
                sym = a
                left = np.int64(cdf[a])
                prob = np.int64(cdf[a + 1]) - left
            elif sh >= 0:
                sym = q >> sh
                left = sym << sh
                prob = ppb
            else:
                sym = q // ppb
                if sym >= m - 1:
                    sym = m - 1
                left = sym * ppb
                prob = ppb if sym < m - 1 else (1 << PRECISION) - left
            state = (state >> shift) * np.uint64(prob) + np.uint64(q - left)
            if state < np.uint64(1 << 32) and pos > 0:
                pos -= 1
                state = (state << np.uint64(32)) | np.uint64(words[pos])
            out[s, j] = sym + lo
    return 0
