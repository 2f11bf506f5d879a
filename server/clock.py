"""The server's clock: real time, or real time run faster for a market simulation.

One clock per process, read by everything that asks what time it is in the market's terms: the decision
(schedules, hour features, the time of a bid's record), spend control (the UTC day budgets reset on,
pacing's planned curve, how long a bid stays in flight), the arrival stamps of notices and the event log's
day files. At speed 1 it is the wall clock; at speed 1440 a day passes in a minute, and budgets, pacing and
the log all see that same compressed day. It runs on the monotonic clock from its start, so that a step of
the wall clock (NTP) never moves it backwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MAX_SPEED = 100_000.0  # a day in under a second: faster than any simulation can feed a server


class Clock:
    """`now()`: `start` + the real seconds since construction x `speed`, in unix seconds."""

    def __init__(
        self,
        speed: float = 1.0,
        start: float | None = None,
        *,
        ticks: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(speed, int | float) or not math.isfinite(speed) or not 0.0 < speed <= MAX_SPEED:
            raise ValueError(f"clock speed={speed!r}: expected a number in (0, {MAX_SPEED:g}]")
        if start is not None and (not math.isfinite(start) or start < 0):
            raise ValueError(f"clock start={start!r}: expected unix seconds")
        self.speed = float(speed)
        self.start = time.time() if start is None else float(start)
        self._ticks = ticks  # real seconds from an arbitrary origin: time.monotonic, or a test's
        self._origin = ticks()

    def now(self) -> float:
        """Unix seconds on this clock."""
        return self.start + (self._ticks() - self._origin) * self.speed

    def __repr__(self) -> str:
        return f"Clock(speed={self.speed:g}, start={self.start:.3f})"
