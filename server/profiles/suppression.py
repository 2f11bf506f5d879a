"""The suppression list: the pseudonyms of the people who asked to be forgotten.

A text file, one pseudonym per line (`#` starts a comment, blank lines are ignored), shared by the servers
(which never return a suppressed user's profile), the builder (which leaves them out of every later
build) and `personabid profiles forget` (which appends to it). The file only grows by appends of one line,
written with O_APPEND in a single write: several writers never interleave, and a reader never needs a
lock. Servers re-read it when its size or modification time changes (`refresh`, one stat per call).

Users are held by their key (`user_key`), as the profile artifact stores them.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from personabid.profiles.artifact import user_key

log = logging.getLogger(__name__)

# A pseudonym as Pseudonymizer writes it: 32 lowercase hex digits. At least 16 (the key's 64 bits) are
# accepted, so that a list of keys written by hand still works.
PSEUDONYM = re.compile(r"[0-9a-fA-F]{16,64}")


def entries(data: bytes) -> Iterator[tuple[int, int | None, bool]]:
    """(line number, the user key or None for a line that is not a pseudonym, whether it is the last line)
    of each line of a list that holds anything but a comment."""
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        text = raw.split(b"#", 1)[0].strip().decode("ascii", "replace")
        if text:
            key = user_key(text) if PSEUDONYM.fullmatch(text) else None
            yield number, key, number == len(lines)


def _read(path: Path) -> tuple[frozenset[int], int]:
    """The keys listed in `path`, and how many lines were not pseudonyms."""
    keys: set[int] = set()
    bad = 0
    for _, key, last in entries(path.read_bytes()):
        if key is not None:
            keys.add(key)
        elif not last:
            # A last line without its newline may be an append still being written; the next refresh
            # (the size will have changed) reads it whole.
            bad += 1
    return frozenset(keys), bad


class Suppression:
    """The set of suppressed user keys, read from `path` (None or a missing file: nobody suppressed)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._keys: frozenset[int] = frozenset()
        self._sorted: np.ndarray = np.empty(0, dtype=np.int64)
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()  # one re-read at a time; readers use the last complete set
        self.refresh()

    @classmethod
    def of(cls, pseudonyms: list[str]) -> Suppression:
        """A fixed list, with no file behind it."""
        held = cls(None)
        held._keys = frozenset(user_key(p) for p in pseudonyms)
        held._sorted = np.array(sorted(held._keys), dtype=np.int64)
        return held

    def refresh(self) -> bool:
        """Re-read the file if it changed since the last read; True if it was re-read. Cheap enough for
        every turn of a watch loop: one stat when nothing changed."""
        if self.path is None:
            return False
        try:
            info = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (info.st_mtime_ns, info.st_size, info.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return False
        with self._lock:
            if stamp is None:
                keys, bad = frozenset[int](), 0
            else:
                try:
                    keys, bad = _read(self.path)
                except FileNotFoundError:
                    keys, bad, stamp = frozenset(), 0, None
            if bad:
                # The lines themselves are not logged: a line that is not a pseudonym may be a raw id.
                log.warning("%s: %d lines are not pseudonyms and were ignored", self.path, bad)
            if self._stamp is not None and stamp is None:
                log.warning("%s disappeared: no user is suppressed until it is back", self.path)
            self._keys = keys
            self._sorted = np.array(sorted(keys), dtype=np.int64)
            self._stamp = stamp
        return True

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, pseudonym: object) -> bool:
        return isinstance(pseudonym, str) and self.has_key(user_key(pseudonym))

    def has_key(self, key: int) -> bool:
        return key in self._keys

    def keys(self) -> np.ndarray:
        """The suppressed keys, int64, ascending (for a build's anti-join)."""
        return self._sorted


def append(path: Path, pseudonym: str) -> None:
    """Add `pseudonym` to the list at `path` (created if missing): one line, one O_APPEND write, synced,
    so that concurrent appends never interleave and an erasure survives a crash once this returns."""
    if not PSEUDONYM.fullmatch(pseudonym):
        raise ValueError("not a pseudonym")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        line = (pseudonym + "\n").encode("ascii")
        # A file whose last line lacks its newline (edited by hand) would glue the two lines together.
        if os.fstat(descriptor).st_size and not _ends_with_newline(path):
            line = b"\n" + line
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
