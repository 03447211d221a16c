"""The encoder's journal: finished tiles on disk, so an interrupted encode resumes where it stopped.

``OUT.lig.partial`` is written while ``OUT.lig`` is encoded and removed when the file is complete.
It starts with a record naming what is being encoded (a key over the input's identity and every
setting that changes the bytes) and the per-tile budgets; then one record per finished piece of
work, in the order it finishes: a tile's fitted float Gaussians (pass 1), a tile's coded chunks
(pass 2, once every tile is fitted and the quantiser steps are known). When a ``bpp=`` encode codes
the tiles again with other steps, a round record (its step shift and the sizes of the rounds before
it) starts a new round: the coded chunks before it no longer count. When it fits the tiles again with
another count, a recount record (the count and its per-tile budgets) starts over: no fit or coded
chunk before it counts. Each record is ``u32 length, u32 CRC-32`` (little-endian) of a msgpack
map, followed by that tile's chunk payloads. A crash can only truncate the last record; reading
stops at the first incomplete or damaged one, and the tiles before it are kept.

The final ``.lig`` is assembled by copying payloads out of the journal, so the encoder never
holds all compressed tiles in memory.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

import msgpack
import numpy as np

from ..container import crc32
from ..errors import LigInputError

_REC = struct.Struct("<II")
MAGIC = "ligcodec-journal-4"  # 2: records carry the digest of the tile's pixels; 3: format 3 chunks; 4: format 4


@dataclass
class ChunkRef:
    """A payload stored in the journal: ``len()``, ``crc`` and ``read()`` its bytes."""

    path: str
    offset: int
    length: int
    crc: int

    def __len__(self):
        return self.length

    def read(self, f) -> bytes:
        f.seek(self.offset)
        return f.read(self.length)


@dataclass
class TileRecord:
    tile: int
    chunks: list  # [(ChunkRef, count)] per part (per level)
    err: float
    digest: str | None = None  # of the tile's input pixels (:func:`tile_digest`)


#: Record kinds: a tile's fitted float Gaussians (pass 1) and its coded chunks (pass 2).
KINDS = ("fit", "code")


class Journal:
    """Append-only record of finished work for one encode (``key``): per kind, per tile."""

    def __init__(self, path, key: str, budgets: list[int] | None = None):
        self.path = str(path)
        self.key = key
        self.budgets = budgets
        self.records: dict[str, dict[int, TileRecord]] = {k: {} for k in KINDS}
        self._f = None
        self._reader = None
        self._good = 0
        #: The rate loop's round (:func:`~ligcodec.codec.encoder.next_shift`): the step shift the
        #: coded tiles belong to, and ``[shift, file size]`` of the rounds before it.
        self.shift = 0
        self.history: list[list[int]] = []
        #: The Gaussian count of a recount (:meth:`recount`), None before one.
        self.count: int | None = None

    @property
    def tiles(self) -> dict[int, TileRecord]:
        """The coded tiles."""
        return self.records["code"]

    @classmethod
    def open(cls, path, key: str, resume: bool) -> "Journal":
        """The journal at ``path`` if ``resume`` and it belongs to ``key``; else a fresh one."""
        j = cls(path, key)
        if resume and os.path.exists(path):
            other = j._scan()
            if other:  # hours of someone's tiles: never thrown away without being asked
                raise LigInputError(
                    f"{path} holds the finished tiles of a different encode ({other}): run that encode's "
                    "command again to finish it, or start over with --no-resume (resume=False), which "
                    "discards them")
        if j.budgets is None:  # fresh (or an empty or torn journal): start over
            j.records = {k: {} for k in KINDS}
        return j

    def _scan(self):
        """Load the records of this encode; a reason string if the journal is another encode's."""
        size = os.path.getsize(self.path)
        with open(self.path, "rb") as f:
            first = _read_record(f, size)
            if not first:  # empty, or torn while its first record was written: nothing to keep
                return None
            if first[0].get("magic") != MAGIC:
                return "written by another version of ligcodec"
            if first[0].get("key") != self.key:
                return "another input, other options, or the input file changed since"
            self.budgets = list(first[0]["budgets"])
            good = f.tell()
            while (rec := _read_record(f, size)) is not None:
                meta, payload_at = rec
                if meta.get("kind") == "recount":
                    try:
                        count, budgets = int(meta["count"]), [int(b) for b in meta["budgets"]]
                    except (KeyError, TypeError, ValueError):
                        break
                    if len(budgets) != len(self.budgets):
                        break
                    self._reset(budgets, count)
                    good = f.tell()
                    continue
                if meta.get("kind") == "round":
                    try:
                        shift, history = int(meta["shift"]), [[int(s), int(z)] for s, z in meta["history"]]
                    except (KeyError, TypeError, ValueError):
                        break
                    self.shift, self.history, self.records["code"] = shift, history, {}
                    good = f.tell()
                    continue
                try:
                    refs, at = [], payload_at
                    for length, crc, count in meta["chunks"]:
                        refs.append((ChunkRef(self.path, at, int(length), int(crc)), int(count)))
                        at += int(length)
                    f.seek(payload_at)
                    data = f.read(at - payload_at)
                    if len(data) != at - payload_at or crc32(data) != meta["crc"] or meta["kind"] not in KINDS:
                        break
                    t = int(meta["tile"])
                    self.records[meta["kind"]][t] = TileRecord(t, refs, float(meta["err"]), meta.get("digest"))
                except (KeyError, TypeError, ValueError):
                    break
                good = f.tell()
        self._good = good

    def start(self, budgets: list[int]):
        """Open for appending: keep the valid records found by :meth:`open`, or begin anew."""
        if self.budgets is not None and os.path.exists(self.path):
            self._f = open(self.path, "r+b")
            self._f.truncate(self._good)  # drop a torn last record
            self._f.seek(self._good)
            return
        self._reset(budgets, None)
        self._f = open(self.path, "wb")
        self._write({"magic": MAGIC, "key": self.key, "budgets": self.budgets}, b"")

    def recount(self, count: int, budgets: list[int]) -> None:
        """Fit again with ``count`` Gaussians split as ``budgets``: nothing recorded so far counts."""
        self._write({"kind": "recount", "count": int(count), "budgets": [int(b) for b in budgets]}, b"")
        self._reset(budgets, int(count))

    def _reset(self, budgets, count: int | None):
        self.budgets, self.count = list(budgets), count
        self.records = {k: {} for k in KINDS}
        self.shift, self.history = 0, []

    def new_round(self, shift: int, history: list) -> None:
        """Start coding round ``shift`` (after the rounds ``history``): the coded tiles so far no
        longer count (their bytes stay in the journal, unreferenced, until it is removed)."""
        self._write({"kind": "round", "shift": int(shift), "history": [[int(s), int(z)] for s, z in history]}, b"")
        self.shift, self.history, self.records["code"] = int(shift), [list(h) for h in history], {}

    def add(self, kind: str, tile: int, parts, err: float, digest: str | None = None) -> None:
        """Record ``parts = [(payload bytes, count)]`` of ``tile`` (flushed before returning)."""
        payload = b"".join(p for p, _ in parts)
        meta = {"kind": kind, "tile": tile, "chunks": [(len(p), crc32(p), n) for p, n in parts], "err": err,
                "crc": crc32(payload), "digest": digest}
        at = self._write(meta, payload)
        refs = []
        for p, n in parts:
            refs.append((ChunkRef(self.path, at, len(p), crc32(p)), n))
            at += len(p)
        self.records[kind][tile] = TileRecord(tile, refs, err, digest)

    def read(self, ref: ChunkRef) -> bytes:
        """The bytes of a recorded part (checked against its CRC)."""
        if self._reader is None:
            self._reader = open(self.path, "rb")
        data = ref.read(self._reader)
        if len(data) != ref.length or crc32(data) != ref.crc:
            raise OSError(f"{self.path}: record at byte {ref.offset} is damaged")
        return data

    def _write(self, meta, payload) -> int:
        m = msgpack.packb(meta, use_bin_type=True)
        self._f.write(_REC.pack(len(m), crc32(m)) + m)
        at = self._f.tell()
        self._f.write(payload)
        self._f.flush()
        return at

    def close(self):
        for f in (self._f, self._reader):
            if f:
                f.close()
        self._f = self._reader = None

    def remove(self):
        self.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def tile_digest(pixels: np.ndarray) -> str:
    """A digest of a tile's input pixels: a resumed encode checks that the input did not change
    (a file rewritten with the same size and modification time keeps the journal's key)."""
    a = np.ascontiguousarray(pixels)
    return hashlib.blake2b(a.tobytes() + str((a.shape, a.dtype.str)).encode(), digest_size=16).hexdigest()


def _read_record(f, size):
    """``(meta dict, offset of its payload)`` or None at the end or at a damaged record."""
    head = f.read(_REC.size)
    if len(head) < _REC.size:
        return None
    n, crc = _REC.unpack(head)
    if n > size - f.tell():
        return None
    m = f.read(n)
    if len(m) != n or crc32(m) != crc:
        return None
    try:
        meta = msgpack.unpackb(m, raw=False)
    except Exception:
        return None
    if not isinstance(meta, dict):
        return None
    at = f.tell()
    if "chunks" in meta:
        try:
            f.seek(at + sum(c[0] for c in meta["chunks"]))
        except (TypeError, IndexError, ValueError):
            return None
    return meta, at
