"""The keeper: a thread that runs SpendControl.keep off the event loop, `flush_seconds` after a decision
gave it work (a bid to write, a campaign to lease) and every `heartbeat_seconds` when idle, so that
decisions spend leases in memory while the shared store is written and read in the background."""

from __future__ import annotations

import logging
import threading

from personabid.lograte import RateLimitedLog
from personabid.spend.control import SpendControl
from personabid.spend.store import StateUnavailable

log = logging.getLogger(__name__)


class Keeper:
    def __init__(self, spend: SpendControl) -> None:
        self.spend = spend
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spend-keeper", daemon=True)
        self._log = RateLimitedLog(log)

    def start(self) -> Keeper:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop turning, then write what is queued and give the leases back (SpendControl.close)."""
        self._stop.set()
        self.spend.work.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.spend.close()

    def _run(self) -> None:
        settings, work = self.spend.settings, self.spend.work
        while not self._stop.is_set():
            # Idle, a turn every heartbeat_seconds (the store hears that this worker is alive); under
            # traffic a decision's work wakes it, and it then gathers flush_seconds' worth of bids.
            work.wait(settings.heartbeat_seconds)
            if self._stop.wait(settings.flush_seconds):
                break
            work.clear()
            try:
                self.spend.keep()
            except StateUnavailable:
                pass  # SpendControl marked the store down and logged it; the server probes it
            except Exception as exc:  # a bug here must not stop the writes of the bids that follow
                # Bounded: a fault that repeats every turn (every few milliseconds) writes a line a while.
                self._log.log(logging.ERROR, "keeper", "spend keeper turn failed", exc_info=exc)
