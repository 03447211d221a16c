"""One tile's bitstream (spec section 4): quantise, order, entropy-code; and back."""

from __future__ import annotations

import struct

import numpy as np
from constriction import stream

from ..errors import LigFormatError
from ..render import Gaussians

_COUNT = struct.Struct("<I")
_STREAM = struct.Struct("<iiff")
#: Symbols beyond this magnitude are not representable (the quantised Laplace's range is int32,
#: and a tile never needs more).
MAX_SYMBOL = 1 << 24


def quantise(g: Gaussians, origin, pos_step, chol_step, colour_step) -> tuple[np.ndarray, ...]:
    """Integer symbols (qx, qy, q_chol [N, 3], q_col [N, C]) of ``g`` (colours already transformed).

    Positions are quantised relative to the tile origin; Gaussians are sorted by (qy, qx).
    """
    rel = (g.means - np.asarray(origin, np.float64)) / pos_step - 0.5
    q = np.clip(np.round(rel), -MAX_SYMBOL, MAX_SYMBOL).astype(np.int64)
    qc = np.clip(np.round(g.chol / np.asarray(chol_step)), -MAX_SYMBOL, MAX_SYMBOL).astype(np.int64)
    qk = np.clip(np.round(g.colours / np.asarray(colour_step)), -MAX_SYMBOL, MAX_SYMBOL).astype(np.int64)
    order = np.lexsort((q[:, 0], q[:, 1]))
    return q[order, 0], q[order, 1], qc[order], qk[order]


def dequantise(qx, qy, qc, qk, origin, pos_step, chol_step, colour_step):
    means = np.stack([origin[0] + (qx + 0.5) * pos_step, origin[1] + (qy + 0.5) * pos_step], 1)
    return means, qc * np.asarray(chol_step, np.float64), qk * np.asarray(colour_step, np.float64)


def _laplace_params(s: np.ndarray) -> tuple[float, float]:
    loc = float(np.median(s))
    scale = float(np.mean(np.abs(s - loc)))
    return loc, max(scale, 0.05)


#: Attribute of each stream, for the bits-per-attribute report.
def stream_attribute(i: int) -> str:
    return "position" if i < 2 else "covariance" if i < 5 else "colour"


def encode_chunk(qx, qy, qc, qk, stats: dict | None = None) -> bytes:
    """Entropy-code the symbol streams of one tile (see spec section 4).

    ``stats``, if given, accumulates the bits each attribute costs (each stream coded alone).
    """
    n = len(qx)
    if n == 0:
        return b""
    dqy = np.diff(qy, prepend=0)
    streams = [qx, dqy] + [qc[:, k] for k in range(3)] + [qk[:, c] for c in range(qk.shape[1])]
    head = [_COUNT.pack(len(streams))]
    models = []
    for i, s in enumerate(streams):
        lo, hi = int(s.min()), int(s.max())
        loc, scale = (0.0, 1.0) if i == 0 else _laplace_params(s)
        loc, scale = float(np.float32(loc)), float(np.float32(scale))  # what the decoder will see
        head.append(_STREAM.pack(lo, hi, loc, scale))
        models.append(_model(i, lo, hi, loc, scale))
    coder = stream.stack.AnsCoder()
    for i, (s, (m, lo)) in reversed(list(enumerate(zip(streams, models)))):
        if m is not None:  # a constant stream (lo == hi) codes no symbols
            coder.encode_reverse(_symbols(s, lo, m), m[0])
            if stats is not None:
                alone = stream.stack.AnsCoder()
                alone.encode_reverse(_symbols(s, lo, m), m[0])
                key = stream_attribute(i)
                stats[key] = stats.get(key, 0) + alone.num_bits()
        if stats is not None:
            stats["side"] = stats.get("side", 0) + 8 * _STREAM.size
    words = coder.get_compressed().astype("<u4")
    return b"".join(head) + _COUNT.pack(len(words)) + words.tobytes()


def _model(i, lo, hi, loc, scale):
    if lo == hi:
        return None, lo
    if i == 0:
        return (stream.model.Uniform(hi - lo + 1), True), lo
    return (stream.model.QuantizedLaplace(lo, hi, loc, scale), False), lo


def _symbols(s, lo, m):
    # Uniform models take symbols 0..size-1; quantised Laplace takes the integers themselves.
    return (s - lo if m[1] else s).astype(np.int32)


def decode_chunk(data: bytes, n: int, channels: int, where: str):
    """Inverse of :func:`encode_chunk`: ``(qx, qy, qc [n, 3], qk [n, C])``, int64."""
    if n == 0:
        if data:
            raise LigFormatError(f"{where}: {len(data)} bytes for 0 Gaussians")
        return (np.zeros(0, np.int64),) * 2 + (np.zeros((0, 3), np.int64), np.zeros((0, channels), np.int64))
    try:
        (ns,) = _COUNT.unpack_from(data, 0)
        if ns != 5 + channels:
            raise LigFormatError(f"{where}: {ns} streams, expected {5 + channels}")
        pos = _COUNT.size
        models = []
        for i in range(ns):
            lo, hi, loc, scale = _STREAM.unpack_from(data, pos)
            pos += _STREAM.size
            if lo > hi or min(lo, hi) < -MAX_SYMBOL or max(lo, hi) > MAX_SYMBOL or not (
                np.isfinite(loc) and np.isfinite(scale) and scale > 0
            ):
                raise LigFormatError(f"{where}: stream {i} has an invalid model (range [{lo}, {hi}], scale {scale})")
            models.append(_model(i, lo, hi, float(loc), float(scale)))
        (nw,) = _COUNT.unpack_from(data, pos)
        pos += _COUNT.size
        if pos + 4 * nw != len(data):
            raise LigFormatError(f"{where}: {nw} compressed words do not fit the chunk's {len(data)} bytes")
        words = np.frombuffer(data, "<u4", nw, pos).astype(np.uint32)
    except struct.error:
        raise LigFormatError(f"{where}: chunk of {len(data)} bytes is too short for its stream table") from None
    out = []
    try:
        coder = stream.stack.AnsCoder(words)
        for m, lo in models:
            if m is None:
                out.append(np.full(n, lo, np.int64))
                continue
            s = np.asarray(coder.decode(m[0], n), np.int64)
            out.append(s + lo if m[1] else s)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # constriction's Rust panics are BaseExceptions (pyo3)
        raise LigFormatError(f"{where}: entropy decoding failed: {e}") from None
    qx, dqy = out[0], out[1]
    qy = np.cumsum(dqy)
    return qx, qy, np.stack(out[2:5], 1), np.stack(out[5:], 1)
