"""Log lines that any client can cause, written at a bounded rate.

A line per bad request lets an attacker fill the disk at the rate it can send requests. A `RateLimitedLog`
writes at most `burst` lines per `interval` seconds for each kind of event and counts the rest; the next
line written says how many were left out, so the log stays truthful about volume.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class Windows:
    """At most `burst` admissions per `interval` seconds for each kind; counts what it turns away."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> (window start, admitted in the window, turned away since the last one admitted)
        self._windows: dict[str, tuple[float, int, int]] = {}

    def admit(self, kind: str) -> int | None:
        """None when `kind` has used its admissions for this interval; else how many were turned away
        since its last admission."""
        with self._lock:
            now = self._clock()
            start, written, suppressed = self._windows.get(kind, (now, 0, 0))
            if now - start >= self._interval:
                start, written = now, 0
            if written >= self._burst:
                self._windows[kind] = (start, written, suppressed + 1)
                return None
            self._windows[kind] = (start, written + 1, 0)
        return suppressed


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._windows = Windows(interval, burst, clock)

    def log(
        self, level: int, kind: str, message: str, *args: object, exc_info: bool | BaseException = False
    ) -> bool:
        """Write `message % args` unless `kind` has used its lines for this interval; True if written."""
        suppressed = self._windows.admit(kind)
        if suppressed is None:
            return False
        if suppressed:
            message += " (%d similar line(s) left out)"
            args = (*args, suppressed)
        self._logger.log(level, message, *args, exc_info=exc_info)
        return True


class RateLimitFilter(logging.Filter):
    """The same bound for a library's own logger, whose lines a client can cause (uvicorn's on malformed
    HTTP): each message template is a kind; a record over its kind's burst is dropped and counted, and the
    next one let through says how many were left out."""

    def __init__(
        self, interval: float = 10.0, burst: int = 5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._windows = Windows(interval, burst, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        suppressed = self._windows.admit(f"{record.name}:{record.msg}")
        if suppressed is None:
            return False
        if suppressed:
            record.msg = f"{record.msg} (%d similar line(s) left out)"
            record.args = (*(record.args if isinstance(record.args, tuple) else ()), suppressed)
        return True
