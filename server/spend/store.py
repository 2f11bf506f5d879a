"""The live spend state, behind one interface: in-process (one worker) or Redis (several).

Money is integer micros of the campaign's currency: a CPM price p costs p * 1000 micros per impression.
Spend is kept per campaign and UTC day, so budgets reset at midnight UTC. A bid's cost is reserved when
it is placed ("in flight") and counted against the budget until its win or loss arrives or it expires, so
a burst of simultaneous wins cannot overspend. Every operation that checks and changes is atomic.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from personabid.bidrecord import BidRecord
from personabid.spend.pacing import DAY

MAX_TERMS = 1024  # pacing intervals remembered by the in-process store's lead()
MICROS_PER_CPM = 1000  # a CPM price of 1.0 costs 0.001 per impression = 1000 micros


def cost_micros(price_cpm: float) -> int:
    return round(price_cpm * MICROS_PER_CPM)


class StateUnavailable(Exception):
    """The shared state store cannot be reached."""


class StoreFull(Exception):
    """A bounded store of per-bid state is at its cap: the bid is not made (no spend can be lost)."""


@dataclass(frozen=True)
class StoreLimits:
    """Caps on the in-process state that grows with traffic (README: "Memory under load").

    Without them only time bounds these stores: pending bids live `inflight_seconds`, frequency views their
    campaign's window, deduplication keys two days, so memory would grow with the request rate.
    """

    max_pending: int = 200_000  # bids in flight awaiting their win or loss; at the cap no new bid is made
    max_frequency_keys: int = 500_000  # (user, campaign) view histories; the least recent one goes first
    max_events: int = 1_000_000  # notification identities kept for deduplication; the oldest goes first


@dataclass(frozen=True)
class Reservation:
    """A bid's cost, held against its campaign's budget for the day from the bid until its win or loss
    arrives or it expires, with the bid's record for the event log."""

    day: str  # the UTC day (utc_day) whose spend it counts against
    campaign: str
    budget: int  # micros the campaign may spend that day; 0: no limit
    key: str  # the bid: "auction:imp"
    amount: int  # micros
    expires: float  # unix seconds after which it no longer counts
    record: BidRecord
    now: float  # unix seconds of the reservation


@dataclass(frozen=True)
class Settlement:
    """What one notification does to the spend state, applied atomically with its deduplication.

    `mode` is "bill" (a win or a billed impression: the first of them for bid `key` adds `price`, or the
    reserved amount when None, to spend and ends the reservation), "release" (a loss: ends the
    reservation) or "mark" (a click or a conversion: only recorded)."""

    mode: str
    event: str  # the notification's identity, remembered `ttl` seconds to deduplicate it
    ttl: float
    day: str  # the UTC day whose spend a bill adds to
    campaign: str
    key: str  # the bid: "auction:imp"
    price: int | None  # micros, the clearing price; None: the amount reserved
    now: float


# Called with the name of a store ("pending", "frequency", "dedupe") whenever its cap refuses or evicts.
OnCapped = Callable[[str], None]


class SpendStore(Protocol):
    def reserve(self, reservation: Reservation) -> bool:
        """Hold the reservation's amount and keep its record if spent + in flight + amount <= budget
        (budget 0: no limit); False, and nothing held, otherwise."""
        ...

    def apply(self, settlement: Settlement) -> tuple[str, BidRecord | None]:
        """Apply one notification's settlement atomically with its deduplication. Returns (status, the
        record the bid was reserved with, when a bill or a release ends a reservation still held) where
        status is "duplicate" (its event was seen within its ttl), "billed already" or "applied"."""
        ...

    def touched(self, day: str, since: float) -> list[str]:
        """Campaigns whose spend changed on `day` at or after `since`, or whose reservations were still in
        flight then: the ones a cache refreshed at `since` must read again."""
        ...

    def spent(self, day: str, campaigns: list[str], now: float) -> list[tuple[int, int]]:
        """(spent, in flight) micros of each campaign on `day`."""
        ...

    def add_view(self, user: str, campaign: str, now: float, window: float) -> None: ...

    def views(self, user: str, campaigns: list[str], windows: list[float], now: float) -> list[int]:
        """How often `user` saw each campaign within its window."""
        ...

    def may_have_views(self, user: str) -> bool:
        """False only when `user` surely has no view in the store: their caps then need no lookup."""
        ...

    def pacing(self, campaigns: list[str]) -> list[float | None]: ...

    def set_pacing(self, rates: dict[str, float]) -> None: ...

    def lead(self, term: str, ttl: float) -> bool:
        """True for exactly one caller per `term`: who runs the pacing step for that interval."""
        ...

    def ping(self) -> None: ...


@dataclass
class _Campaign:
    inflight: dict[str, tuple[int, float]] = field(default_factory=dict)  # key -> (amount, expires)
    expiries: list[tuple[float, str]] = field(default_factory=list)  # heap; entries may be stale
    total: int = 0  # sum of the amounts in flight

    def add(self, key: str, amount: int, expires: float) -> None:
        self.inflight[key] = (amount, expires)
        self.total += amount
        heapq.heappush(self.expiries, (expires, key))

    def pop(self, key: str) -> tuple[int, float] | None:
        entry = self.inflight.pop(key, None)
        if entry is not None:
            self.total -= entry[0]
        return entry

    def sweep(self, now: float) -> int:
        """Drop what expired by `now` and return what is still in flight: amortised O(log n) a bid."""
        while self.expiries and self.expiries[0][0] <= now:
            expires, key = heapq.heappop(self.expiries)
            entry = self.inflight.get(key)
            if entry is not None and entry[1] == expires:
                self.pop(key)
        return self.total


class MemoryStore:
    """In-process state for a single worker. Bounded by time (what expires goes) and by count
    (`StoreLimits`): a flood of bids or users cannot grow it past its caps, and each cap counts what it
    refused or evicted through `on_capped`."""

    def __init__(self, limits: StoreLimits = StoreLimits(), on_capped: OnCapped | None = None) -> None:
        self.limits = limits
        self._on_capped = on_capped or (lambda store: None)
        self._lock = threading.Lock()
        self._spent: dict[tuple[str, str], int] = {}
        self._campaigns: dict[str, _Campaign] = {}
        self._pending: dict[str, tuple[BidRecord, float]] = {}  # key -> (record, expires)
        self._pending_expiries: list[tuple[float, str]] = []  # heap; entries may be stale
        self._events: OrderedDict[str, float] = OrderedDict()
        # (user, campaign) -> (window, view times); least recently viewed first
        self._views: OrderedDict[tuple[str, str], tuple[float, deque[float]]] = OrderedDict()
        # How many view histories each user has: most users a bid is considered for have none, and
        # their caps are then answered without a lookup per campaign.
        self._viewers: dict[str, int] = {}
        self._pacing: dict[str, float] = {}
        self._terms: OrderedDict[str, None] = OrderedDict()
        self._touched: dict[tuple[str, str], float] = {}

    def _touch(self, day: str, campaign: str, until: float) -> None:
        self._touched[(day, campaign)] = max(self._touched.get((day, campaign), 0.0), until)

    def _sweep_pending(self, now: float) -> None:
        """Drop pending records that expired by `now`: amortised O(log n) a bid."""
        heap = self._pending_expiries
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            entry = self._pending.get(key)
            if entry is not None and entry[1] == expires:
                del self._pending[key]

    def reserve(self, reservation: Reservation) -> bool:
        r = reservation
        with self._lock:
            state = self._campaigns.setdefault(r.campaign, _Campaign())
            inflight = state.sweep(r.now)
            if r.budget > 0 and self._spent.get((r.day, r.campaign), 0) + inflight + r.amount > r.budget:
                return False
            self._sweep_pending(r.now)
            if r.key not in self._pending and len(self._pending) >= self.limits.max_pending:
                self._on_capped("pending")
                raise StoreFull(
                    f"{len(self._pending)} bids in flight, the cap (max_pending_bids); "
                    "no new bid until some are notified or expire"
                )
            state.add(r.key, r.amount, r.expires)
            self._pending[r.key] = (r.record, r.expires)
            heapq.heappush(self._pending_expiries, (r.expires, r.key))
            self._touch(r.day, r.campaign, r.expires)
            return True

    def apply(self, settlement: Settlement) -> tuple[str, BidRecord | None]:
        mode, event, ttl, day = settlement.mode, settlement.event, settlement.ttl, settlement.day
        campaign, key, price, now = settlement.campaign, settlement.key, settlement.price, settlement.now
        with self._lock:
            if not self._first_time(event, ttl, now):
                return "duplicate", None
            if mode == "mark":
                return "applied", None
            if mode == "bill" and not self._first_time(f"billed:{key}", ttl, now):
                return "billed already", None
            reserved = self._campaigns.setdefault(campaign, _Campaign()).pop(key)
            pending = self._pending.pop(key, None)
            self._touch(day, campaign, now)
            if mode == "bill":
                held = reserved[0] if reserved else 0
                # A clearing price above the bid (a notice's price is the exchange's to fill in, not
                # signed) spends the bid: no notice can charge a campaign more than it offered.
                amount = held if price is None or (held and price > held) else price
                self._spent[(day, campaign)] = self._spent.get((day, campaign), 0) + amount
            return "applied", pending[0] if pending else None

    def _first_time(self, event: str, ttl: float, now: float) -> bool:
        events = self._events
        # Entries are in insertion order with one ttl, so the oldest expire first.
        while events and next(iter(events.values())) <= now:
            events.popitem(last=False)
        if event in events:
            return False
        if len(events) >= self.limits.max_events:
            # The oldest identity is forgotten early: a duplicate of it arriving later would be applied
            # again, so the count of evictions is what an operator watches to size the cap.
            events.popitem(last=False)
            self._on_capped("dedupe")
        events[event] = now + ttl
        return True

    def touched(self, day: str, since: float) -> list[str]:
        with self._lock:
            return [c for (d, c), until in self._touched.items() if d == day and until >= since]

    def spent(self, day: str, campaigns: list[str], now: float) -> list[tuple[int, int]]:
        with self._lock:
            out = []
            for campaign in campaigns:
                state = self._campaigns.get(campaign)
                out.append((self._spent.get((day, campaign), 0), state.sweep(now) if state else 0))
            self._sweep_pending(now)
            return out

    def add_view(self, user: str, campaign: str, now: float, window: float) -> None:
        with self._lock:
            views = self._views
            entry = views.get((user, campaign))
            if entry is None:
                self._sweep_views(now)
                if len(views) >= self.limits.max_frequency_keys:
                    # The least recently seen pair goes: its user may then see that campaign more often
                    # than its cap allows, which the count of evictions makes visible.
                    (evicted, _), _ = views.popitem(last=False)
                    self._forget_viewer(evicted)
                    self._on_capped("frequency")
                entry = views[(user, campaign)] = (window, deque())
                self._viewers[user] = self._viewers.get(user, 0) + 1
            else:
                views.move_to_end((user, campaign))
                entry = views[(user, campaign)] = (max(window, entry[0]), entry[1])
            seen = entry[1]
            seen.append(now)
            while seen and seen[0] <= now - entry[0]:
                seen.popleft()

    def _sweep_views(self, now: float, limit: int = 64) -> None:
        """Drop up to `limit` of the least recently seen histories whose every view is out of its window."""
        views = self._views
        for _ in range(limit):
            if not views:
                return
            key, (window, seen) = next(iter(views.items()))
            if seen and seen[-1] > now - window:
                return
            del views[key]
            self._forget_viewer(key[0])

    def _forget_viewer(self, user: str) -> None:
        left = self._viewers[user] - 1
        if left:
            self._viewers[user] = left
        else:
            del self._viewers[user]

    def may_have_views(self, user: str) -> bool:
        return user in self._viewers

    def views(self, user: str, campaigns: list[str], windows: list[float], now: float) -> list[int]:
        with self._lock:
            if user not in self._viewers:
                return [0] * len(campaigns)
            out = []
            for campaign, window in zip(campaigns, windows, strict=True):
                entry = self._views.get((user, campaign))
                seen = entry[1] if entry is not None else ()
                out.append(sum(1 for t in seen if t > now - window))
            return out

    def pacing(self, campaigns: list[str]) -> list[float | None]:
        with self._lock:
            return [self._pacing.get(c) for c in campaigns]

    def set_pacing(self, rates: dict[str, float]) -> None:
        with self._lock:
            self._pacing.update(rates)

    def lead(self, term: str, ttl: float) -> bool:
        with self._lock:
            if term in self._terms:
                return False
            self._terms[term] = None
            while len(self._terms) > MAX_TERMS:  # a term is asked about only while it is current
                self._terms.popitem(last=False)
            return True

    def ping(self) -> None:
        return None


def utc_day(now: float) -> str:
    """The UTC day of unix seconds `now`, "YYYYMMDD"."""
    global _day
    start, end, text = _day
    if start <= now < end:  # every bid reads it, and nearly every bid falls on the day the one before did
        return text
    start = now - now % DAY
    text = time.strftime("%Y%m%d", time.gmtime(start))
    _day = (start, start + DAY, text)
    return text


# The last day utc_day named: its first second, the next day's, and its name (one tuple, swapped whole).
_day: tuple[float, float, str] = (0.0, 0.0, "")
