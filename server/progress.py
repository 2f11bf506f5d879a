"""Progress of long offline jobs: a tqdm bar on a terminal, plain log lines otherwise (CI, files)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from tqdm import tqdm


class Progress(Protocol):
    # What update returns is not used (tqdm's says whether it redrew the bar).
    def update(self, n: int = 1) -> object: ...


class _LogProgress:
    """Logs at most every `every` seconds, and at the end."""

    def __init__(self, log: logging.Logger, what: str, total: int | None, unit: str, every: float) -> None:
        self.log, self.what, self.total, self.unit, self.every = log, what, total, unit, every
        self.done = 0
        self.started = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.report(now)

    def report(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-9)
        of = f"/{self.total}" if self.total else ""
        self.log.info("%s: %d%s %s (%.0f %s/s)", self.what, self.done, of, self.unit, rate, self.unit)


@contextmanager
def progress(
    log: logging.Logger, what: str, total: int | None = None, unit: str = "rows", every: float = 5.0
) -> Iterator[Progress]:
    if sys.stderr.isatty():
        with tqdm(total=total, desc=what, unit=unit, unit_scale=True, leave=False) as bar:
            yield bar
        return
    plain = _LogProgress(log, what, total, unit, every)
    yield plain
    plain.report(time.monotonic())
