"""Slices of shared budgets, spent in memory: no round trip to Redis on a bid.

With Redis, a worker does not ask Redis before each bid. It holds leases: slices of campaigns' remaining
daily budgets that Redis granted it atomically (LEASE in redis_store.py), and it reserves bids out of
them in memory (`LeaseBook.take`). A background keeper (flusher.py) writes the bids reserved since its
last turn to Redis in one round trip (FLUSH: each bid's amount moves from its worker's lease into flight
and its record is kept for its win), and asks for new slices of the campaigns running low. RTBkit's
banker works this way.

Bounds, per campaign and UTC day, with B its budget:

- Overspend: none. Redis grants only what is free, so spend + in flight + sum(leases) <= B at every
  step; a bid comes out of its worker's lease and a bill is capped at its bid (APPLY, or FLUSH for a bill
  that arrived before its bid was flushed), so spend <= B. The exceptions are failures: a worker not
  heard of for `lease_timeout_seconds` has its lease reclaimed by the next LEASE of the campaign; what it
  reserved after its last flush, and reserves until its next flush tells it, counts beyond B (at most one
  slice per such worker). A worker that dies loses nothing it flushed; the bids of its last flush
  interval are billed if their wins arrive, again at most one slice beyond B.
- Underspend: at most the leases held, one slice or less per worker. Once what is free is less than a
  bid, each worker holds less than its next bid, so the day ends at most workers x one maximum bid under
  B; leases are given back on shutdown.
- Slice: max(lease_bids maximum bids, lease_share x what is free). A few maximum bids so that a worker
  with a small budget still bids several times per top-up; a share of what is free (1 / (4 x workers)
  by default) so that all workers together hold about a quarter of what is left, which bounds the
  underspend by the remaining budget and makes a busy campaign top up a few times per halving of it.
- A notice that reaches another worker before its bid is flushed (a window of one keeper turn): APPLY
  bills its price and leaves word (early:{bid}); the FLUSH then caps the price at the bid (or frees the
  amount of a loss). That notice is answered without the bid's record, so its event-log line lacks the
  record and it counts no frequency view. A notice at the worker that made the bid flushes first.
- A campaign whose lease cannot cover a bid is filtered as out of budget (no-bid 502 when no campaign is
  left): the keeper's next turn, within `flush_seconds`, asks for a slice of every campaign a decision
  asked about that holds less than half its last slice; one that Redis refuses is asked for again after
  `refresh_seconds`. So the first request for a campaign on a worker finds it unleased.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from personabid.spend.store import Reservation, SpendStore, StoreFull


@dataclass(frozen=True)
class LeaseAsk:
    """A request for a slice of one campaign's budget on one UTC day (micros)."""

    day: str
    campaign: str
    budget: int
    smallest: int  # the smallest slice worth granting: a few maximum bids
    share: float  # the share of what is free to grant when that is more


Flushable = tuple[Reservation, bool]  # a bid reserved locally, and whether it came out of a lease


class LeaseStore(SpendStore, Protocol):
    """A shared store that grants leases (RedisStore)."""

    def lease(self, worker: str, asks: list[LeaseAsk], now: float, dead_before: float) -> list[int]: ...

    def flush(self, worker: str, bids: list[Flushable], now: float) -> list[tuple[str, str]]: ...

    def give_back(self, worker: str, leases: list[tuple[str, str]]) -> None: ...

    def viewed(self, users: list[str]) -> dict[str, dict[str, list[float]]]: ...


class LeaseBook:
    """What one worker holds of each campaign's budget today, aligned with the rows of its campaign
    table, and the bids reserved since the last flush. Thread-safe: the event loop takes, the keeper
    grants and drains."""

    def __init__(self, max_queue: int = 200_000) -> None:
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self.day = ""
        self._ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self.held = np.zeros(0, dtype=np.int64)  # micros held, by row
        self._smallest = np.zeros(0, dtype=np.int64)  # the smallest slice, by row
        self._last = np.zeros(0, dtype=np.int64)  # the last slice granted, by row
        self._wanted = np.zeros(0, dtype=bool)  # asked about since the last top-up
        self._dry_until = np.zeros(0, dtype=np.float64)  # Redis had nothing free; ask again after this
        self._queue: list[Flushable] = []
        self._queued_keys: set[str] = set()  # the bid keys in the queue

    def bind(self, ids: Sequence[str], smallest: np.ndarray) -> None:
        """Follow a new campaign table (rows `ids`), carrying what is held over by campaign id."""
        with self._lock:
            old = {
                c: (int(self.held[r]), int(self._last[r])) for c, r in self._row_of.items() if self.held[r]
            }
            n = len(ids)
            self._ids = list(ids)
            self._row_of = {c: r for r, c in enumerate(ids)}
            self.held = np.zeros(n, dtype=np.int64)
            self._last = np.zeros(n, dtype=np.int64)
            self._smallest = np.asarray(smallest, dtype=np.int64)
            self._wanted = np.zeros(n, dtype=bool)
            self._dry_until = np.zeros(n, dtype=np.float64)
            for campaign, (held, last) in old.items():
                row = self._row_of.get(campaign)
                if row is not None:
                    self.held[row], self._last[row] = held, last
            # A campaign no longer in the table keeps its lease in Redis until it is given back.

    def roll(self, day: str) -> None:
        """A new UTC day: yesterday's leases are of no use for today's budgets."""
        if day == self.day:
            return
        with self._lock:
            if day != self.day:
                self.held[:] = 0
                self._last[:] = 0
                self._dry_until[:] = 0.0
                self.day = day

    def left(self, rows: np.ndarray) -> np.ndarray:
        """int64 (len(rows),) micros held for each row; the keeper's next turn tops up those asked about."""
        self._wanted[rows] = True
        return self.held[rows]

    def take(self, row: int, amount: int, reservation: Reservation) -> bool:
        """Reserve a bid out of the row's lease; False, and nothing taken, when the lease is short."""
        with self._lock:
            if self.held[row] < amount or reservation.day != self.day:
                self._wanted[row] = True
                return False
            self._check_queue()
            self.held[row] -= amount
            self._queue.append((reservation, True))
            self._queued_keys.add(reservation.key)
            return True

    def put(self, reservation: Reservation) -> None:
        """Queue a bid of a campaign without a budget: it needs its record kept, not a lease."""
        with self._lock:
            self._check_queue()
            self._queue.append((reservation, False))
            self._queued_keys.add(reservation.key)

    def _check_queue(self) -> None:
        if len(self._queue) >= self.max_queue:
            raise StoreFull(f"{len(self._queue)} bids not yet written to the shared store, the cap")

    @property
    def queued(self) -> int:
        return len(self._queue)

    def holds(self, key: str) -> bool:
        """Whether bid `key` ("auction:imp") is reserved here and not yet written."""
        return key in self._queued_keys

    def drain(self) -> list[Flushable]:
        with self._lock:
            bids, self._queue = self._queue, []
            self._queued_keys = set()
            return bids

    def requeue(self, bids: list[Flushable]) -> None:
        """Put back bids whose flush failed, first, so that no bid accepted is lost."""
        with self._lock:
            self._queue[:0] = bids
            self._queued_keys.update(r.key for r, _ in bids)

    def asks(self, budgets: np.ndarray, share: float, now: float) -> list[tuple[int, LeaseAsk]]:
        """Slices to ask for: campaigns with a budget, asked about since the last call, holding less than
        half their last slice (and less than their smallest), and not refused by Redis just before."""
        with self._lock:
            rows = np.flatnonzero(self._wanted)  # a few of the catalog's rows: the rest is read only there
            self._wanted[rows] = False
            low = np.maximum(self._last[rows] // 2, self._smallest[rows])
            rows = rows[(self.held[rows] < low) & (budgets[rows] > 0) & (self._dry_until[rows] <= now)]
            return [
                (int(r), LeaseAsk(self.day, self._ids[r], int(budgets[r]), int(self._smallest[r]), share))
                for r in rows
            ]

    def grant(self, asks: list[tuple[int, LeaseAsk]], granted: list[int], retry_at: float) -> None:
        with self._lock:
            for (row, ask), amount in zip(asks, granted, strict=True):
                if ask.day != self.day or self._ids[row] != ask.campaign:
                    continue  # the day or the table changed meanwhile: Redis keeps it until given back
                if amount > 0:
                    self.held[row] += amount
                    self._last[row] = amount
                else:
                    self._dry_until[row] = retry_at

    def forfeit(self, reclaimed: list[tuple[str, str]]) -> None:
        """Redis reclaimed these leases, (day, campaign) (this worker was silent too long): hold nothing
        of them."""
        with self._lock:
            for day, campaign in reclaimed:
                row = self._row_of.get(campaign)
                if row is not None and day == self.day:
                    self.held[row] = 0

    def give_back(self) -> list[tuple[str, str]]:
        """Empty every lease held and say which (day, campaign) they were, for Redis to free."""
        with self._lock:
            rows = np.flatnonzero((self.held > 0) | (self._last > 0))  # held today, even if spent since
            self.held[rows] = 0
            self._last[rows] = 0
            return [(self.day, self._ids[r]) for r in rows]

    def holding(self, campaign: str) -> int:
        row = self._row_of.get(campaign)
        return int(self.held[row]) if row is not None else 0
