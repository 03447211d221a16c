"""The files a server shows: found once under its root, named by their stem, opened on first use.

Names come from the files found, never from a request: a request names a file by its stem and
gets it only if that stem is in the table. Files are found with ``os.walk`` without following
directory links, and a file link (or a file under a linked root) is served only when it resolves
to a file inside the root, so neither ``..``, an absolute path, nor a symlink can reach a file
outside it. Two files with the same stem under one root are refused at start (rename one).

One :class:`~ligcodec.LigImage` per file is shared by all requests (its tile cache is the point:
a second viewer of the same region decodes nothing). A file replaced on disk (new size, mtime or
inode) is reopened on its next request, with a new ETag.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
import time
from pathlib import Path

from ..container import PREFIX_SIZE
from .iiif import IIIFError

log = logging.getLogger("ligcodec.serve")

#: Characters that never appear in a name this server hands out (and mark a probe for paths).
_BAD_NAME = ("/", "\\", "\x00")


class DuplicateNames(ValueError):
    pass


def file_etag(path) -> str:
    """A tag of a file's content from its own checksums: the 20-byte prefix (which holds the
    header's CRC-32), the index head (entry count and the CRC-32 of the index, whose entries hold
    every chunk's CRC-32) and, for a file with an alpha mask, its 16-byte footer; plus the size.
    Reads 28 bytes (44 with a mask) whatever the file's size."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        prefix = f.read(PREFIX_SIZE)
        if len(prefix) < PREFIX_SIZE:
            raise IIIFError(500, f"{Path(path).name}: not a .lig file (too short)")
        hsize = struct.unpack_from("<I", prefix, 12)[0]
        f.seek(PREFIX_SIZE + hsize)
        index_head = f.read(8)
        f.seek(max(0, size - 16))
        tail = f.read(16)
    h = hashlib.sha1(prefix + index_head + struct.pack("<Q", size))
    if tail.startswith(b"LIGALPHA"):
        h.update(tail)
    return h.hexdigest()[:20]


class Entry:
    """One served file: its path, its LigImage (opened lazily) and its content tag."""

    def __init__(self, name: str, path: Path, cache_tiles: int):
        self.name, self.path, self._cache_tiles = name, path, cache_tiles
        self._lock = threading.Lock()
        self._img = None
        self._stat = None
        self.etag = None
        #: Serialises reads of files with an alpha mask: LigImage reads mask chunks outside its
        #: lock, through the file handle its tile reads share (a seek/read race otherwise).
        self.read_lock = None
        #: Whole renders of the coarse pyramid levels (``scale -> array``) of the open image; see
        #: ``app.LEVEL_CACHE_TILES``. Filled under ``level_lock``, emptied when the file changes.
        self.levels: dict = {}
        self.level_lock = threading.Lock()

    def image(self):
        """The open LigImage, reopened if the file changed since it was opened."""
        st = os.stat(self.path)
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            if self._img is None or key != self._stat:
                import ligcodec

                old = self._img
                self._img = ligcodec.open(self.path, cache_tiles=self._cache_tiles)
                self.etag = file_etag(self.path)
                self._stat = key
                self.read_lock = threading.Lock() if self._img.header.alpha_mask else None
                self.levels = {}
                if old is not None:
                    log.info("%s changed on disk: reopened", self.path)
                    # No close(): a request may still be reading it; the reader closes when collected.
            return self._img


class Library:
    """``name -> Entry`` for a root that is a ``.lig`` file or a directory searched recursively."""

    def __init__(self, root, cache_tiles: int = 4096, rescan_interval: float = 2.0):
        self.root = Path(root).resolve()
        if not self.root.exists():
            raise FileNotFoundError(f"{root}: no such file or directory")
        self._cache_tiles = cache_tiles
        self._rescan_interval = rescan_interval
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._scanned = 0.0
        self.scan(strict=True)

    def _inside(self, p: Path) -> bool:
        try:
            p.resolve().relative_to(self.root if self.root.is_dir() else self.root.parent)
            return True
        except (ValueError, OSError):
            return False

    def _find(self) -> list:
        if self.root.is_file():
            return [self.root]
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                if fn.startswith(".") or p.suffix.lower() != ".lig":
                    continue
                if p.is_symlink() and not self._inside(p):
                    log.warning("%s: a link to a file outside %s; not served", p, self.root)
                    continue
                if p.is_file():
                    found.append(p)
        return found

    def scan(self, strict: bool = False) -> None:
        """Find the files again; a name found twice is an error at start, later a warning."""
        paths = self._find()
        by_name: dict[str, list] = {}
        for p in paths:
            by_name.setdefault(p.stem, []).append(p)
        dup = {n: ps for n, ps in by_name.items() if len(ps) > 1}
        if dup and strict:
            lines = "; ".join(f"{n}: " + ", ".join(str(p.relative_to(self.root)) for p in ps) for n, ps in dup.items())
            raise DuplicateNames(f"files share a name (the URL of a file is its stem): {lines}; rename them or "
                                 "serve a subdirectory")
        for n, ps in dup.items():
            log.warning("files share the name %r (%s): neither is served", n, ", ".join(map(str, ps)))
        with self._lock:
            old = self._entries
            self._entries = {n: (old[n] if n in old and old[n].path == ps[0] else Entry(n, ps[0], self._cache_tiles))
                             for n, ps in by_name.items() if len(ps) == 1}
            self._scanned = time.monotonic()

    def names(self) -> list:
        if time.monotonic() - self._scanned > self._rescan_interval:
            self.scan()
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
        """The entry called ``name``: 400 for a name that is a path, 404 for an unknown one."""
        if any(c in name for c in _BAD_NAME) or name in ("", ".", "..") or name.startswith(".."):
            raise IIIFError(400, f"{name!r} is not a file name: files are named by their stem, without folders")
        e = self._entries.get(name)
        if e is None and time.monotonic() - self._scanned > self._rescan_interval:
            self.scan()  # a file added since the last look
            e = self._entries.get(name)
        if e is None:
            raise IIIFError(404, f"no file named {name!r} here")
        if not e.path.is_file() or not self._inside(e.path):
            raise IIIFError(404, f"{name!r} is gone or no longer inside the served folder")
        return e
