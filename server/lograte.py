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


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> (window start, lines written in the window, lines left out since the last one written)
        self._windows: dict[str, tuple[float, int, int]] = {}

    def log(
        self, level: int, kind: str, message: str, *args: object, exc_info: bool | BaseException = False
    ) -> bool:
        """Write `message % args` unless `kind` has used its lines for this interval; True if written."""
        with self._lock:
            now = self._clock()
            start, written, suppressed = self._windows.get(kind, (now, 0, 0))
            if now - start >= self._interval:
                start, written = now, 0
            if written >= self._burst:
                self._windows[kind] = (start, written, suppressed + 1)
                return False
            self._windows[kind] = (start, written + 1, 0)
        if suppressed:
            message += " (%d similar line(s) left out)"
            args = (*args, suppressed)
        self._logger.log(level, message, *args, exc_info=exc_info)
        return True
