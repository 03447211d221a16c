"""A `.lig` reader written from spec/lig-format.md alone (no ligcodec imports).

It exists to check that the specification is complete. Only the standard library,
numpy, msgpack and constriction are used.

    read_lig(path, backend="constriction", strict=False)
        -> {"header": dict, "chunks": {(level, tile): {...}}}
    render_full(decoded) -> np.ndarray [H, W, C] float64   (scale 1, before clamping)
    to_samples(image, bit_depth) -> uint8/uint16 array     (clamp, scale, round)

`backend="spec"` decodes with a pure-Python transcription of the spec's own fixed-point
table and ANS pseudo-code instead of constriction (used to check that section 4's
pseudo-code is enough on its own). `strict=True` also rejects a chunk whose ANS words are not
used up exactly, a check the spec does not require and ligcodec does not make.
"""

from __future__ import annotations

import bisect
import math
import struct
import zlib

import msgpack
import numpy as np

# Section 1 constants.
MAGIC = bytes.fromhex("894C49470D0A1A0A")
VERSION_MAJOR = 4
VERSION_MINOR = 0
OLDEST_MAJOR = 2
MAX_GAP_SHIFT = 20
MAX_PARTS = 16
PREFIX_SIZE = 20
INDEX_ENTRY_SIZE = 24
MAX_HEADER_SIZE = 16777216
MAX_GAUSSIANS_PER_CHUNK = 16777216
MAX_SYMBOL = 8388607
MIN_CHUNK_BYTES_PER_GAUSSIAN = 1
MAX_LOG_SCALE = 20
MAX_AMPLITUDE = 65536
MAX_TILE_WORK = 64
TABLE_BASE = 512
TABLE_PER_GAUSSIAN = 16
LEGACY_TABLE_PER_BYTE = 64
TABLE_MAX = 65536
PRECISION = 24
MAX_MATRIX_ENTRY = 2  # section 2, colour_matrix (2.4)


# --------------------------------------------------------------------------- header


def _check_header(h, size):
    if not isinstance(h, dict):
        raise ValueError("header (offset 20): not a msgpack map")

    def need(key):
        if key not in h:
            raise ValueError(f"header (offset 20): missing required key {key!r}")
        return h[key]

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    for k in ("width", "height"):
        v = need(k)
        if not is_int(v) or not 1 <= v <= 2**24:
            raise ValueError(f"header: {k}={v!r} out of range 1..2^24")
    c = need("channels")
    if not is_int(c) or not 1 <= c <= 4:
        raise ValueError(f"header: channels={c!r} out of range 1..4")
    bd = need("bit_depth")
    if bd not in (8, 16) or not is_int(bd):
        raise ValueError(f"header: bit_depth={bd!r} not 8 or 16")
    t = need("tile")
    if not is_int(t) or t < 16:
        raise ValueError(f"header: tile={t!r} < 16")
    L = need("levels")
    if not is_int(L) or not 1 <= L <= 8:
        raise ValueError(f"header: levels={L!r} out of range 1..8")
    ct = need("colour_transform")
    if ct not in ("ycocg", "matrix", "none"):
        raise ValueError(f"header: colour_transform={ct!r} unknown")
    if ct != "none" and c < 3:
        raise ValueError(f"header: colour_transform {ct!r} with {c} channel(s)")
    cm = h.get("colour_matrix")
    if (ct == "matrix") != (cm is not None):
        raise ValueError("header: colour_matrix goes with colour_transform 'matrix', and only with it")
    if cm is not None and not (isinstance(cm, (list, tuple)) and len(cm) == 3
                               and all(isinstance(r, (list, tuple)) and len(r) == 3 for r in cm)
                               and all(is_num(v) and abs(v) <= MAX_MATRIX_ENTRY for r in cm for v in r)):
        raise ValueError(f"header: colour_matrix={cm!r} not 3 x 3 numbers within MAX_MATRIX_ENTRY")
    ps = need("pos_step")
    if not is_num(ps) or ps <= 0:
        raise ValueError(f"header: pos_step={ps!r} not > 0")
    cs = need("chol_step")
    if not isinstance(cs, (list, tuple)) or len(cs) != 3 or not all(is_num(v) and v > 0 for v in cs):
        raise ValueError(f"header: chol_step={cs!r} not 3 floats > 0")
    cols = need("colour_step")
    if (
        not isinstance(cols, (list, tuple))
        or len(cols) != L
        or not all(
            isinstance(row, (list, tuple)) and len(row) == c and all(is_num(v) and v > 0 for v in row)
            for row in cols
        )
    ):
        raise ValueError(f"header: colour_step is not [[float > 0 x {c}] x {L}]")
    if "level0_scale" in h:  # 2.1, optional
        v = h["level0_scale"]
        if not is_num(v) or not 0 < v < 1 or L < 2:
            raise ValueError(f"header: level0_scale={v!r} not in (0, 1) with 2+ levels")
    if "deblock" in h:  # 2.3, optional
        v = h["deblock"]
        ok = isinstance(v, (list, tuple)) and len(v) == 2 and type(v[0]) is int and 1 <= v[0] <= 16
        if not ok or not is_num(v[1]) or not v[1] >= 0:
            raise ValueError(f"header: deblock={v!r} not [K in 1..16, T >= 0]")


# --------------------------------------------------------------------------- models


def _laplace_weights(lo, hi, loc, k):
    """Section 4, the geometric table G(lo, hi, loc, k): float64 weights w_0..w_(n-1)."""
    c = 1.0 / math.sqrt(math.sqrt(math.sqrt(2.0)))
    cj = [1.0]
    for _ in range(7):
        cj.append(cj[-1] * c)
    t = math.ldexp(cj[k % 8], -(k // 8))
    r = 1.0 - t
    m = max(loc - lo, hi - loc)
    p = [1.0] * (m + 1)
    for j in range(1, m + 1):
        p[j] = p[j - 1] * r
    tiny = 2.0**-64
    p = [0.0 if v < tiny else v for v in p]
    return [p[abs(lo + i - loc)] for i in range(hi - lo + 1)]


def _categorical_cdf(w):
    """Section 4: constriction's Categorical(w, perfect=False) at 24-bit precision."""
    n = len(w)
    S = 0.0
    for v in w:
        S += v
    scale = (2**PRECISION - n) / S
    cdf = []
    P = 0.0
    for i in range(n):
        cdf.append(math.floor(P * scale) + i)
        P += w[i]
    cdf.append(2**PRECISION)
    return cdf


class _SpecAns:
    """Section 4: the ANS decoder as written in the spec (32-bit words, 64-bit state)."""

    def __init__(self, words):
        self.words = list(words)
        if not self.words:
            self.state = 0
        else:
            self.state = self.words.pop()
            if self.state == 0:
                raise ValueError("last ANS word is 0")
            while self.words and self.state < 2**32:
                self.state = (self.state << 32) | self.words.pop()

    def _decode_one(self, find, cdf_at):
        q = self.state & (2**PRECISION - 1)
        i = find(q)
        lo, hi = cdf_at(i), cdf_at(i + 1)
        self.state = (self.state >> PRECISION) * (hi - lo) + (q - lo)
        if self.state < 2**32 and self.words:
            self.state = (self.state << 32) | self.words.pop()
        return i

    def decode_categorical(self, cdf, n):
        m = len(cdf) - 1
        find = lambda q: bisect.bisect_right(cdf, q, 0, m) - 1  # noqa: E731
        return [self._decode_one(find, cdf.__getitem__) for _ in range(n)]

    def decode_uniform(self, m, n):
        u = 2**PRECISION // m
        find = lambda q: min(q // u, m - 1)  # noqa: E731
        cdf_at = lambda i: 2**PRECISION if i >= m else i * u  # noqa: E731
        return [self._decode_one(find, cdf_at) for _ in range(n)]

    def is_empty(self):
        return self.state == 0 and not self.words


class _ConstrictionAns:
    def __init__(self, words):
        import constriction  # the coder named by the spec (stream is an attribute, not a module)

        self.constriction = constriction
        self.coder = constriction.stream.stack.AnsCoder(np.asarray(words, dtype=np.uint32))

    def decode_categorical_weights(self, w, n):
        model = self.constriction.stream.model.Categorical(np.asarray(w, dtype=np.float64), perfect=False)
        return [int(v) for v in self.coder.decode(model, n)]

    def decode_uniform(self, m, n):
        return [int(v) for v in self.coder.decode(self.constriction.stream.model.Uniform(m), n)]

    def is_empty(self):
        return self.coder.is_empty()


# --------------------------------------------------------------------------- chunk


def _varint(buf, pos, end, where):
    v = 0
    for i in range(4):
        if pos >= end:
            raise ValueError(f"{where}: stream table runs past the chunk end (byte {pos})")
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return v, pos
    raise ValueError(f"{where}: varint longer than 4 bytes (byte {pos - 4})")


def _unzz(u):
    return u >> 1 if u % 2 == 0 else -(u >> 1) - 1


def _decode_parts(buf, off, length, n, C, where, backend, strict, major, minor):
    """Section 4: a 4.x chunk is a byte P, P - 1 varint lengths, then P parts, part i a 3.x chunk
    of the Gaussians floor(i n / P) .. floor((i + 1) n / P) - 1. Returns the streams of the whole
    chunk as _decode_chunk does (qx, dqy, ...)."""
    if major < 4:
        return _decode_chunk(buf, off, length, n, C, where, backend, strict, major, minor)
    end = off + length
    P = buf[off]
    if not 1 <= P <= min(MAX_PARTS, n):
        raise ValueError(f"{where}: {P} parts for {n} Gaussians")
    pos = off + 1
    lengths = []
    for _ in range(P - 1):
        L, pos = _varint(buf, pos, end, where)
        lengths.append(L)
    if sum(lengths) > end - pos:
        raise ValueError(f"{where}: part lengths {lengths} run past the chunk end")
    lengths.append(end - pos - sum(lengths))
    parts = []
    for i, L in enumerate(lengths):
        m = (i + 1) * n // P - i * n // P
        parts.append(_decode_chunk(buf, pos, L, m, C, f"{where}, part {i}", backend, strict, 3, 0))
        pos += L
    streams = [np.concatenate(s) for s in zip(*parts)]
    qy = np.concatenate([np.cumsum(p[1]) for p in parts])  # each part's dqy starts from 0
    streams[1] = np.diff(qy, prepend=0)
    return streams


def _decode_chunk(buf, off, length, n, C, where, backend, strict, major=3, minor=0):
    end = off + length
    pos = off
    S = 5 + C
    entries = []
    grid = None
    for s in range(S):
        if s == 0 and major >= 3:  # section 4, positions: zz(x0), W - 1, zz(y0), byte s
            u, pos = _varint(buf, pos, end, where)
            x0 = _unzz(u)
            wm1, pos = _varint(buf, pos, end, where)
            u, pos = _varint(buf, pos, end, where)
            y0 = _unzz(u)
            if pos >= end:
                raise ValueError(f"{where}: stream table runs past the chunk end (byte {pos})")
            shift = buf[pos]
            pos += 1
            if shift > MAX_GAP_SHIFT or max(abs(x0), abs(y0)) > MAX_SYMBOL or wm1 > 2 * MAX_SYMBOL:
                raise ValueError(f"{where}: positions entry out of range (x0 {x0}, W - 1 {wm1}, y0 {y0}, s {shift})")
            grid = (x0, wm1 + 1, y0, shift)
            entries.append(("uniform", 0, 2**shift - 1, None, None))
        elif s == 0:
            u, pos = _varint(buf, pos, end, where)
            lo = _unzz(u)
            d, pos = _varint(buf, pos, end, where)
            hi = lo + d
            entries.append(("uniform", lo, hi, None, None))
        else:
            u, pos = _varint(buf, pos, end, where)
            loc = _unzz(u)
            a, pos = _varint(buf, pos, end, where)
            b, pos = _varint(buf, pos, end, where)
            if pos >= end:
                raise ValueError(f"{where}: stream table runs past the chunk end (byte {pos})")
            k = buf[pos]
            pos += 1
            entries.append(("geometric", loc - a, loc + b, loc, k))
        _, lo, hi, _, _ = entries[-1]
        if lo < -MAX_SYMBOL or hi > MAX_SYMBOL:
            raise ValueError(f"{where}: stream {s + 1} symbol range [{lo}, {hi}] outside +-MAX_SYMBOL")
    # Section 4: the widest table a chunk of n Gaussians may use (2.0/2.1: TABLE_MAX, bounded by
    # the chunk's length instead).
    legacy = major == 2 and minor < 2
    limit = TABLE_MAX if legacy else min(TABLE_MAX, TABLE_BASE + TABLE_PER_GAUSSIAN * n)
    values = sum(hi - lo + 1 for kind, lo, hi, _, _ in entries if kind == "geometric" and lo != hi and hi - lo + 1 <= limit)
    if legacy and values > 4096 + LEGACY_TABLE_PER_BYTE * length:
        raise ValueError(f"{where}: 2.1 chunk's tables hold {values} values, too many for {length} bytes")
    rest = end - pos
    if rest % 4:
        raise ValueError(f"{where}: {rest} bytes of ANS data is not a whole number of 32-bit words (byte {pos})")
    words = struct.unpack_from(f"<{rest // 4}I", buf, pos)
    try:
        coder = _ConstrictionAns(words) if backend == "constriction" else _SpecAns(words)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{where}: ANS data does not decode ({e})") from None
    streams = []
    try:
        for kind, lo, hi, loc, k in entries:
            if lo == hi:
                streams.append(np.full(n, lo, dtype=np.int64))
                continue
            m = hi - lo + 1
            if kind == "uniform" or m > limit:
                sym = coder.decode_uniform(m, n)
            else:
                w = _laplace_weights(lo, hi, loc, k)
                if backend == "constriction":
                    sym = coder.decode_categorical_weights(w, n)
                else:
                    sym = coder.decode_categorical(_categorical_cdf(w), n)
            streams.append(np.asarray(sym, dtype=np.int64) + lo)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{where}: ANS data does not decode ({e})") from None
    if strict and not coder.is_empty():
        # Not required by section 7 (ligcodec itself accepts left-over words); opt-in.
        raise ValueError(f"{where}: ANS data left over after {n} Gaussians")
    if grid is not None:
        streams[0], streams[1] = _raster_positions(streams[0], streams[1], grid, where)
    return streams


def _raster_positions(low, high, grid, where):
    """Section 4, positions: (qx, dqy) from the gaps' low bits and high parts, so that the caller
    reads every file alike (qy = the running sum of dqy)."""
    x0, W, y0, shift = grid
    R = 0
    qx, qy = [], []
    for lo_bits, hi_part in zip(low.tolist(), high.tolist()):
        if hi_part < 0:
            raise ValueError(f"{where}: negative position gap")
        R += hi_part * 2**shift + lo_bits
        if R > (2 * MAX_SYMBOL + 1) * W:
            raise ValueError(f"{where}: raster index {R} past (2 MAX_SYMBOL + 1) W")
        qy.append(y0 + R // W)
        qx.append(x0 + R % W)
    qy = np.asarray(qy, dtype=np.int64)
    return np.asarray(qx, dtype=np.int64), np.diff(qy, prepend=0)


# --------------------------------------------------------------------------- file


def read_lig(path, backend="constriction", strict=False):
    with open(path, "rb") as f:
        buf = f.read()
    size = len(buf)
    if size < 28:
        raise ValueError(f"file is {size} bytes, shorter than 28")
    if buf[:8] != MAGIC:
        raise ValueError("offset 0: wrong magic, not a .lig file")
    major, minor, flags, H, hcrc = struct.unpack_from("<BBHII", buf, 8)
    if major > VERSION_MAJOR:
        raise ValueError(f"offset 8: major version {major}: written by a newer ligcodec")
    if major < OLDEST_MAJOR:
        raise ValueError(f"offset 8: major version {major} is not supported (need {OLDEST_MAJOR}..{VERSION_MAJOR})")
    if not 1 <= H <= MAX_HEADER_SIZE:
        raise ValueError(f"offset 12: header length {H} outside 1..{MAX_HEADER_SIZE}")
    if PREFIX_SIZE + H + 8 > size:
        raise ValueError(f"offset 12: header length {H} runs past the end of the file")
    hbytes = buf[PREFIX_SIZE : PREFIX_SIZE + H]
    if zlib.crc32(hbytes) != hcrc:
        raise ValueError("offset 16: header CRC mismatch")
    try:
        header = msgpack.unpackb(hbytes, raw=False, strict_map_key=False)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"offset 20: header is not msgpack ({e})") from None
    _check_header(header, H)

    W, Ht, C, T, L = (header[k] for k in ("width", "height", "channels", "tile", "levels"))
    nx, ny = -(-W // T), -(-Ht // T)
    ntiles = nx * ny
    ipos = PREFIX_SIZE + H
    K, icrc = struct.unpack_from("<II", buf, ipos)
    if K != L * ntiles:
        raise ValueError(f"offset {ipos}: K={K}, expected levels x tiles = {L * ntiles}")
    tpos = ipos + 8
    if tpos + INDEX_ENTRY_SIZE * K > size:
        raise ValueError(f"offset {tpos}: index table runs past the end of the file")
    table = buf[tpos : tpos + INDEX_ENTRY_SIZE * K]
    if zlib.crc32(table) != icrc:
        raise ValueError(f"offset {ipos + 4}: index CRC mismatch")
    max_n = min(MAX_GAUSSIANS_PER_CHUNK, T * T)

    pos_step = float(header["pos_step"])
    cstep = [float(v) for v in header["chol_step"]]
    # Section 5: YCoCg's inverse, or the header's matrix.
    mix = {"ycocg": None, "matrix": header.get("colour_matrix"), "none": None}[header["colour_transform"]]
    ycocg = header["colour_transform"] == "ycocg"
    chunks = {}
    expect_off = tpos + INDEX_ENTRY_SIZE * K
    for e in range(K):
        level, tile = divmod(e, ntiles)
        where = f"chunk level {level} tile {tile} (index entry {e}, offset {tpos + 24 * e})"
        off, length, ccrc, n, _reserved = struct.unpack_from("<QIIII", table, 24 * e)
        if off + length > size:
            raise ValueError(f"{where}: chunk [{off}, {off + length}) extends past the end of the file")
        if n > max_n:
            raise ValueError(f"{where}: count {n} above {max_n}")
        if n * MIN_CHUNK_BYTES_PER_GAUSSIAN > length:
            raise ValueError(f"{where}: count {n} above the chunk's {length} bytes / MIN_CHUNK_BYTES_PER_GAUSSIAN")
        if off != expect_off:
            # Spec: "Chunks lie in index order without gaps" (not listed in section 7).
            raise ValueError(f"{where}: chunk offset {off}, expected {expect_off} (gap or overlap)")
        expect_off = off + length
        if zlib.crc32(buf[off : off + length]) != ccrc:
            raise ValueError(f"{where}: chunk CRC mismatch")
        if n == 0 and length == 0:
            continue
        if length == 0:
            raise ValueError(f"{where}: {n} Gaussians in an empty chunk")
        qx, dqy, q0, q1, q2, *cq = _decode_parts(buf, off, length, n, C, where, backend, strict, major, minor)
        qy = np.cumsum(dqy)
        if strict and n > 1 and np.any(dqy[1:] < 0):  # section 4 says >= 0; not in section 7
            raise ValueError(f"{where}: y differences are negative")
        tx, ty = tile % nx, tile // nx
        X0, Y0 = tx * T, ty * T
        means = np.stack([X0 + (qx + 0.5) * pos_step, Y0 + (qy + 0.5) * pos_step], axis=1).astype(np.float64)
        log_l11 = q0 * cstep[0]
        log_l22 = q2 * cstep[2]
        l21 = q1 * cstep[1] * np.exp(log_l22)
        chol = np.stack([log_l11, l21, log_l22], axis=1).astype(np.float64)
        steps = header["colour_step"][level]
        col = np.stack([cq[c] * float(steps[c]) for c in range(C)], axis=1).astype(np.float64)
        if ycocg:
            Y, Co, Cg = col[:, 0].copy(), col[:, 1].copy(), col[:, 2].copy()
            col[:, 0] = Y + Co - Cg
            col[:, 1] = Y + Cg
            col[:, 2] = Y - Co - Cg
        elif mix is not None:
            c0, c1, c2 = col[:, 0].copy(), col[:, 1].copy(), col[:, 2].copy()
            for i in range(3):
                m = [float(v) for v in mix[i]]
                col[:, i] = (m[0] * c0 + m[1] * c1) + m[2] * c2
        # Section 4's limits on the dequantised Gaussians (section 7 rejects a chunk breaking one).
        lim = math.exp(MAX_LOG_SCALE)
        finite = np.isfinite(means).all() and np.isfinite(chol).all() and np.isfinite(col).all()
        if not (finite and np.abs(means - [X0, Y0]).max() <= 2.0**24 and np.abs(log_l11).max() <= MAX_LOG_SCALE
                and np.abs(log_l22).max() <= MAX_LOG_SCALE and np.abs(l21).max() <= lim
                and np.abs(col).max() <= MAX_AMPLITUDE):
            raise ValueError(f"{where}: a dequantised Gaussian breaks a limit of section 4")
        area = 9 * math.pi * np.exp(log_l11 + log_l22)
        if np.minimum(area, float(T) * T).sum() > MAX_TILE_WORK * float(T) * T:
            raise ValueError(f"{where}: drawing work above MAX_TILE_WORK tiles")
        chunks[(level, tile)] = {
            "means": means,  # [N, 2] (x, y) full-res pixels
            "chol": chol,  # [N, 3] (log l11, l21, log l22): L = [[e^chol0, 0], [chol1, e^chol2]]
            "colours": col,  # [N, C] amplitudes in channel space (after inverse YCoCg)
            "q": {"qx": qx, "qy": qy, "q0": q0, "q1": q1, "q2": q2, "c": np.stack(cq, axis=1)},
        }
    alpha = None
    if header.get("alpha_mask") is not None:
        if header["alpha_mask"] is not True or C not in (2, 4):
            raise ValueError("header: alpha_mask must be true, with 2 or 4 channels")
        alpha, expect_off = _read_alpha(buf, size, header, nx, ny, expect_off)
    if expect_off != size:
        # Not stated in the spec either way; reported, not an error.
        header = dict(header)
        header["_trailing_bytes"] = size - expect_off
    return {"header": header, "chunks": chunks, "alpha": alpha}


def _read_alpha(buf, size, header, nx, ny, chunks_end):
    """Section 8: {tile: None | 0 | 1 | class map [h, w]}, and where the section's chunks begin."""
    W, Ht, T = header["width"], header["height"], header["tile"]
    if size < 16 or buf[size - 16 : size - 8] != b"LIGALPHA":
        raise ValueError(f"offset {size - 16}: alpha mask footer tag missing")
    (at,) = struct.unpack_from("<Q", buf, size - 8)
    n = nx * ny
    if at + 8 + 16 * n != size - 16:
        raise ValueError(f"offset {size - 8}: alpha table offset {at} does not end at the footer")
    k, crc = struct.unpack_from("<II", buf, at)
    table = buf[at + 8 : at + 8 + 16 * n]
    if k != n or zlib.crc32(table) != crc:
        raise ValueError(f"offset {at}: alpha table count or CRC wrong")
    out = {}
    for t in range(n):
        off, length, ccrc = struct.unpack_from("<QII", table, 16 * t)
        if off + length > at or zlib.crc32(buf[off : off + length]) != ccrc:
            raise ValueError(f"alpha entry {t}: chunk outside the section or CRC mismatch")
        data = buf[off : off + length]
        tx, ty = t % nx, t // nx
        w, h = min(T, W - tx * T), min(T, Ht - ty * T)
        if not data:
            out[t] = None
        elif len(data) == 1 and data[0] in (0, 1):
            out[t] = data[0]
        elif data[0] == 3:
            d = zlib.decompressobj()
            raw = d.decompress(data[1:], w * h + 1)
            if len(raw) != w * h or d.unconsumed_tail or d.unused_data or not d.eof:
                raise ValueError(f"alpha entry {t}: stream is not exactly {w}x{h} bytes")
            m = np.frombuffer(raw, np.uint8).reshape(h, w)
            if m.max() > 2:
                raise ValueError(f"alpha entry {t}: class above 2")
            out[t] = m
        else:
            raise ValueError(f"alpha entry {t}: bad mask chunk")
    return out, size


def apply_alpha_full(decoded, samples):
    """Section 8 at scale 1 (the footprint of output pixel (i, j) is full-res pixel (i, j)):
    alpha 0 or the top value where the class map says so. ``samples``: to_samples' output."""
    alpha = decoded.get("alpha")
    if alpha is None:
        return samples
    h = decoded["header"]
    W, T = h["width"], h["tile"]
    nx = -(-W // T)
    top = 2 ** h["bit_depth"] - 1
    out = samples.copy()
    for t, m in alpha.items():
        if m is None:
            continue
        tx, ty = t % nx, t // nx
        x0, y0 = tx * T, ty * T
        x1, y1 = min(x0 + T, W), min(y0 + T, h["height"])
        view = out[y0:y1, x0:x1, -1]
        if isinstance(m, np.ndarray):
            view[m == 0] = 0
            view[m == 1] = top
        else:
            view[...] = top if m == 1 else 0
    return out


# --------------------------------------------------------------------------- render


def render_full(decoded, batch=64):
    """Section 6 at scale 1: float image [H, W, C], sum over levels, before clamping."""
    h = decoded["header"]
    W, H, C, T, L = (h[k] for k in ("width", "height", "channels", "tile", "levels"))
    nx = -(-W // T)
    img = np.zeros((H, W, C), dtype=np.float64)
    for (level, tile), ch in decoded["chunks"].items():
        n = len(ch["means"])
        if n == 0:
            continue
        tx, ty = tile % nx, tile // nx
        x0, x1 = tx * T, min((tx + 1) * T, W)
        y0, y1 = ty * T, min((ty + 1) * T, H)
        # Pixels whose centre lies in this tile (at scale 1: exactly the tile's pixels).
        py, px = np.mgrid[y0:y1, x0:x1]
        cx = (px + 0.5).ravel()
        cy = (py + 0.5).ravel()
        a = np.exp(ch["chol"][:, 0])
        b = ch["chol"][:, 1]
        d = np.exp(ch["chol"][:, 2])
        # Sigma = L L^T = [[a^2, a b], [a b, b^2 + d^2]]; q = |L^-1 (p - mu)|^2.
        acc = np.zeros((cx.size, C))
        for s in range(0, n, batch):
            sl = slice(s, s + batch)
            dx = cx[:, None] - ch["means"][None, sl, 0]
            dy = cy[:, None] - ch["means"][None, sl, 1]
            z1 = dx / a[None, sl]
            z2 = (dy - b[None, sl] * z1) / d[None, sl]
            q = z1 * z1 + z2 * z2
            g = np.where(q <= 9.0, np.exp(-0.5 * q), 0.0)
            acc += g @ ch["colours"][sl]
        img[y0:y1, x0:x1] += acc.reshape(y1 - y0, x1 - x0, C)
    if "deblock" in h:
        border_filter(img, T, *h["deblock"])
    return img


def border_filter(img, T, K, thr):
    """Section 6's border filter at scale 1 (k = K; tile column tx starts at output column
    tx * T): across the vertical borders, then across the horizontal ones, in place."""
    for view in (img, img.transpose(1, 0, 2)):  # columns first, then rows (on the result)
        n = view.shape[1]
        borders = [b for b in range(T, n, T) if 2 <= b <= n - 2]
        es = []
        for b in borders:  # every d from the image before this pass
            p1, p0, q0, q1 = view[:, b - 2], view[:, b - 1], view[:, b], view[:, b + 1]
            d = (q0 - p0) - ((p0 - p1) + (q1 - q0)) / 2
            es.append(d * np.clip(2 - np.abs(d) / thr, 0, 1) if thr > 0 else 0 * d)
        for b, e in zip(borders, es):
            for j in range(K):
                if b - 1 - j >= 0:
                    view[:, b - 1 - j] += (e / 2) * (1 - j / K)
                if b + j < n:
                    view[:, b + j] -= (e / 2) * (1 - j / K)


def to_samples(img, bit_depth):
    """Clamp to [0, 1], scale to the bit depth and round (half to even, numpy's rint)."""
    top = 2**bit_depth - 1
    v = np.rint(np.clip(img, 0.0, 1.0) * top)
    return v.astype(np.uint8 if bit_depth == 8 else np.uint16)


if __name__ == "__main__":
    import sys

    for p in sys.argv[1:]:
        dec = read_lig(p)
        hd = dec["header"]
        print(p, {k: hd[k] for k in ("width", "height", "channels", "bit_depth", "tile", "levels", "colour_transform")})
        for key in sorted(dec["chunks"]):
            print("  level %d tile %d: %d Gaussians" % (key[0], key[1], len(dec["chunks"][key]["means"])))
