"""The rate loop's first guess (:func:`~ligcodec.codec.encoder.next_shift` takes over from it): the
payload of a tile's fitted Gaussians at several quantiser step shifts, without a coding round.

A coding round refines the covariances for the grid, solves the colours on the quantised geometry
and rounds them in groups (:mod:`.quantise`): seconds per tile. Rounding the fitted Gaussians as
they are and entropy-coding them takes milliseconds, and that payload follows the coded one to
about a per cent (BENCHMARKS.md, twenty-second session), so a file aimed at a size starts at the
shift that lands it instead of at the effort's base shift, and is seldom coded twice.
"""

from __future__ import annotations

import numpy as np

from ..render import Gaussians
from . import colour
from .quantise import QuantSteps, round_chol, round_means
from .tile import MAX_SYMBOL
from .tile_writer import encode_chunk

#: Probed shifts are this far apart; the payload in between is interpolated in log. It falls
#: nearly geometrically with the shift (about 1.5 % a unit at 1 bpp), so every fourth suffices.
PROBE_EVERY = 4
#: The coded payload over the plainly rounded one at the same steps: the refinement and the colour
#: solves spend slightly more bits than rounding alone (BENCHMARKS.md, twenty-second session).
CODED_OVER_PLAIN = 1.003


def plain_payload(parts: list[Gaussians], steps: list[QuantSteps], transform) -> list[int]:
    """Bytes of the chunks of one tile's levels ``parts`` (tile-local, as fitted) rounded plainly
    to each of ``steps`` (the positions and covariances as :mod:`.quantise` rounds them, the
    colours to the nearest step) and entropy-coded as the spec's section 5 codes them."""
    out = []
    for s in steps:
        cs, total = np.asarray(s.chol_step), 0
        for li, g in enumerate(parts):
            if not len(g):
                continue
            q, qc = round_means(g.means, s.pos_step), round_chol(g.chol, cs)
            qk = np.clip(np.round(colour.forward(g.colours, transform) / np.asarray(s.colour_step[li])),
                         -MAX_SYMBOL, MAX_SYMBOL).astype(np.int64)
            order = np.lexsort((q[:, 0], q[:, 1]))  # the coder's order, as quantise_level sorts
            total += len(encode_chunk(q[order, 0], q[order, 1], qc[order], qk[order]))
        out.append(total)
    return out


def probed_shifts(base: int, span: int) -> list[int]:
    """The shifts to probe: ``base - span`` to ``base + span``, every :data:`PROBE_EVERY`."""
    return list(range(base - span, base + span + 1, PROBE_EVERY))


def payload_at(shifts, payloads, shift: float) -> float:
    """The coded payload expected at ``shift`` from the plain ``payloads`` probed at ``shifts``."""
    return CODED_OVER_PLAIN * float(np.exp(np.interp(shift, shifts, np.log(np.maximum(payloads, 1)))))


def landing_shift(shifts, payloads, target: float) -> int:
    """The whole shift in the probed range whose expected payload is nearest ``target`` bytes."""
    whole = np.arange(shifts[0], shifts[-1] + 1)
    return int(whole[np.argmin([abs(payload_at(shifts, payloads, s) - target) for s in whole])])
