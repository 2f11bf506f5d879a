"""Spend control as the decision path and the notification handler see it.

At decision time it answers, per candidate campaign, from a cache refreshed every `refresh_seconds`:
is there budget left, does the campaign take part in this auction (pacing), is the user under the
campaign's frequency cap (one store read per request, only for capped campaigns). The winning bid's
cost is then reserved in the store, atomically against the budget, before the bid is sent.

When the store cannot be reached, the control says so (StateUnavailable) and stays out of the store for
`retry_seconds`, so that every request is still answered within its tmax: the bidder then does not bid,
rather than bid on budgets it cannot check.

With `leases` (a shared store: Redis), nothing on the decision path calls the store: budgets are the
slices of them this worker leased (spend/lease.py: the bounds on over- and underspend), frequency caps
a local view (spend/frequency.py: the bound on overshoot), and a keeper thread (spend/flusher.py) runs
`keep` every `flush_seconds` to write the bids reserved, top leases up and refresh the view. An outage
is then noticed by the keeper (within `heartbeat_seconds` plus the store's timeout when idle, at its
next flush under traffic) or by a notice: from then on decisions raise StateUnavailable as before, and
the bids reserved but not yet written wait in memory for the store to come back.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from personabid.bidrecord import BidRecord
from personabid.errors import InvalidRequest
from personabid.index.campaigns import CampaignTable
from personabid.spend.frequency import LocalViews
from personabid.spend.lease import LeaseBook, LeaseStore
from personabid.spend.pacing import PacingParams, next_rates, planned_fraction
from personabid.spend.store import (
    MICROS_PER_CPM,
    Reservation,
    Settlement,
    SpendStore,
    StateUnavailable,
    cost_micros,
    utc_day,
)

log = logging.getLogger(__name__)
MICROS = 1_000_000

# Notification types and what each does to the spend state.
MODES = {"win": "bill", "impression": "bill", "loss": "release", "click": "mark", "conversion": "mark"}

# What budget_left says of a campaign without a budget: more than any bid costs, and safe to subtract from.
UNLIMITED = np.iinfo(np.int64).max // 4


@dataclass(frozen=True)
class SpendSettings:
    inflight_seconds: float = 60.0  # a bid not notified by then stops counting against its budget
    dedupe_seconds: float = 2 * 86_400.0  # how long a notification's identity is remembered
    refresh_seconds: float = 1.0
    retry_seconds: float = 1.0  # after a store error, how long to answer without the store
    budget_share: float = 1.0  # the part of each daily budget this process may commit
    pacing: PacingParams = field(default_factory=PacingParams)
    # Spend from leased slices of the shared budgets, without a store call per decision (spend/lease.py).
    leases: bool = False
    lease_bids: int = 4  # the smallest slice: this many maximum bids of the campaign
    lease_share: float = 0.25  # ... or this share of what is free, when more: 1 / (4 x workers)
    lease_timeout_seconds: float = 30.0  # a worker not heard of for this long loses its leases
    flush_seconds: float = 0.005  # real seconds the keeper gathers work before a turn (spend/flusher.py)
    heartbeat_seconds: float = 0.1  # real seconds between an idle keeper's turns: the store hears it
    frequency_refresh_seconds: float = 0.5  # real seconds between reads of the users' views


@dataclass(frozen=True)
class Notification:
    """A notice of what became of a bid, as it arrived: validate_notification judges it."""

    type: str  # win, loss, impression, click, conversion
    auction_id: str
    imp_id: str
    bid_id: str
    campaign_id: str
    price: float = 0.0  # CPM; 0 on an impression means "as bid"
    loss_reason: int = 0
    cur: str = ""  # the price's currency; "": USD
    timestamp_ms: int = 0  # unix milliseconds of the event, as the exchange stamped it; 0: not stamped
    arrived: float = 0.0  # unix seconds it reached the server, which stand in for a missing stamp

    @property
    def ts(self) -> float:
        """Unix seconds of the event; 0.0 when neither stamped nor arrived (spend control then uses its
        own clock)."""
        return self.timestamp_ms / 1000.0 if self.timestamp_ms else self.arrived

    @property
    def identity(self) -> str:
        return f"{self.type}:{self.auction_id}:{self.imp_id}:{self.bid_id}"

    @property
    def bid_key(self) -> str:
        return f"{self.auction_id}:{self.imp_id}"


def validate_notification(note: Notification, where: str = "event") -> None:
    """Raise InvalidRequest, naming the field (under `where`) and the value, for a notice that cannot be
    applied."""
    if note.type not in MODES:
        # A type the wire has no name for arrives as its number, and is shown as one.
        shown: object = int(note.type) if note.type.lstrip("-").isdecimal() else note.type
        raise InvalidRequest(f"{where}.type", shown, "must be WIN, LOSS, IMPRESSION, CLICK or CONVERSION")
    for name in ("auction_id", "imp_id", "campaign_id"):
        if not getattr(note, name):
            raise InvalidRequest(f"{where}.{name}", "", "must not be empty")
    if not math.isfinite(note.price) or note.price < 0:
        raise InvalidRequest(f"{where}.price", note.price, "must be a finite, non-negative CPM")
    if note.type == "win" and note.price == 0:
        raise InvalidRequest(f"{where}.price", note.price, "a win carries its clearing price")
    if note.cur not in ("", "USD"):
        raise InvalidRequest(f"{where}.cur", note.cur, "unsupported currency; supported: ['USD']")
    if note.timestamp_ms < 0:
        raise InvalidRequest(f"{where}.timestamp_ms", note.timestamp_ms, "must not be negative")


@dataclass
class _View:
    """Cached spend state of one campaign table, aligned with its rows."""

    table: CampaignTable
    budgets: np.ndarray  # int64 micros, 0 = no budget
    committed: np.ndarray  # int64 micros spent or in flight
    spent: np.ndarray  # int64 micros spent
    rates: np.ndarray  # float64 pacing rates
    budgeted: np.ndarray  # int64 rows with a budget
    row_of: dict[str, int]  # campaign id -> row, budgeted campaigns only
    budgeted_ids: list[str]  # the ids of `budgeted`, in its order: each pacing step names them all
    ids: list[str]  # every campaign's id, by row: caps are asked by id, a few dozen a decision
    refreshed: float = 0.0
    day: str = ""  # the UTC day the cache holds; "" until the first full read
    term: int = -1  # the pacing interval last stepped
    throttled: bool = False  # some campaign's rate is under 1 (kept by set_rates)

    def set_rates(self, rows: np.ndarray, rates: np.ndarray | list[float] | float) -> None:
        """The throttle rates of `rows`; every write of the rates goes through here, so that `throttled`
        stays true to them."""
        self.rates[rows] = rates
        self.throttled = bool((self.rates < 1.0).any())


class SpendControl:
    def __init__(
        self,
        store: SpendStore,
        settings: SpendSettings = SpendSettings(),
        clock: Callable[[], float] = time.time,
        rng: np.random.Generator | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.rng = rng or np.random.default_rng()
        self._on_error = on_error or (lambda: None)
        self._down_until = 0.0
        self._outage_started: float | None = None
        self._outage_lock = threading.Lock()
        self._view: _View | None = None
        self._book: LeaseBook | None = None
        self._views = LocalViews()
        if settings.leases:
            if not hasattr(store, "lease"):
                raise ValueError(f"leases need a shared store that grants them, not {type(store).__name__}")
            self._book = LeaseBook()
        self._leasing: LeaseStore | None = store if settings.leases else None  # type: ignore[assignment]
        # The name of this worker's leases in the shared store: unique across processes and machines.
        self.worker = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        # Set when a decision leaves the keeper work (a bid to write, a lease asked about): wakes it.
        self.work = threading.Event()
        self._heard = -math.inf  # monotonic seconds of the keeper's last word with the store
        self._views_read = -math.inf  # ... and of its last refresh of the frequency view

    # -- availability --------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self.clock() >= self._down_until

    @property
    def outage_started(self) -> float | None:
        """When the current outage of the store began (clock time), or None while it answers."""
        return self._outage_started

    def _use(self, action: Callable[[], Any]) -> Any:
        if not self.available:
            raise StateUnavailable("the spend store is unreachable; retrying shortly")
        try:
            result = action()
        except StateUnavailable as exc:
            self._went_down(exc)
            self._on_error()
            raise
        self._came_back()
        return result

    def _went_down(self, error: StateUnavailable) -> None:
        now = self.clock()
        self._down_until = now + self.settings.retry_seconds
        # One line at the start of an outage and one at its end, however many requests meet it: the
        # metrics count the failed calls.
        with self._outage_lock:  # the refresh thread and the event loop both call the store
            if self._outage_started is not None:
                return
            self._outage_started = now
            log.warning("spend store unreachable (%s): answering no-bid 506 until it answers again", error)

    def _came_back(self) -> None:
        if self._outage_started is None:  # the common case, read without the lock
            return
        with self._outage_lock:
            if self._outage_started is not None:
                log.warning("spend store reachable again after %.1f s", self.clock() - self._outage_started)
                self._outage_started = None

    # -- cached state --------------------------------------------------------------------------------

    def _view_of(self, table: CampaignTable) -> _View:
        view = self._view
        if view is None or view.table is not table:
            budgets = np.round(table.daily_budget * MICROS * self.settings.budget_share).astype(np.int64)
            budgeted = np.flatnonzero(budgets > 0)
            zeros = np.zeros(len(table), dtype=np.int64)
            ids = [str(c) for c in table.campaign_id.tolist()]
            row_of = {ids[r]: int(r) for r in budgeted.tolist()}
            rates = np.ones(len(table))
            view = _View(table, budgets, zeros, zeros.copy(), rates, budgeted, row_of, list(row_of), ids)
            view.set_rates(budgeted, self.settings.pacing.initial_rate)
            if self._book is not None:
                smallest = np.round(table.max_bid * MICROS_PER_CPM * self.settings.lease_bids)
                self._book.bind(ids, smallest.astype(np.int64))
            # Decisions read the cache, which the server refreshes in the background (refresh_seconds);
            # until the first refresh every budget looks unspent, and reservations still check the store.
            self._view = view
        return view

    def refresh(self, table: CampaignTable) -> None:
        """Bring the cache up to date: every budgeted campaign on a new day (or a new table), else only
        the campaigns whose spend moved since the last refresh, so that the cost follows the traffic and
        not the catalog's size. Once per pacing interval, step the controller (the process that wins the
        interval's lead) or read the rates it wrote (every other process)."""
        view = self._view_of(table)
        if not self.available:
            raise StateUnavailable("the spend store is unreachable; retrying shortly")
        now = self.clock()
        day = utc_day(now)
        if day != view.day:
            rows = view.budgeted
            view.committed[:] = 0
            view.spent[:] = 0
        else:
            touched = self._use(
                lambda: self.store.touched(day, view.refreshed - self.settings.refresh_seconds)
            )
            rows = np.array([view.row_of[c] for c in touched if c in view.row_of], dtype=np.int64)
        ids = [str(c) for c in table.campaign_id[rows]]
        spent = self._use(lambda: self.store.spent(day, ids, now))
        if ids:
            view.spent[rows] = [s for s, _ in spent]
            view.committed[rows] = [s + i for s, i in spent]
        view.day, view.refreshed = day, now
        self._pace(view, now, day)

    def _pace(self, view: _View, now: float, day: str) -> None:
        pacing = self.settings.pacing
        term = int(now // pacing.interval)
        if term == view.term or view.budgeted.size == 0:
            return
        view.term = term
        ids = view.budgeted_ids
        if self._use(lambda: self.store.lead(f"{day}:{term}", pacing.interval * 2)):
            old = view.rates[view.budgeted]
            new = next_rates(
                old, view.spent[view.budgeted], view.budgets[view.budgeted], planned_fraction(now), pacing
            )
            view.set_rates(view.budgeted, new)
            changed = np.flatnonzero(new != old)
            # Most campaigns sit at rate 1 behind their plan: write only what moved.
            self._use(lambda: self.store.set_pacing({ids[i]: float(new[i]) for i in changed}))
        else:
            rates = self._use(lambda: self.store.pacing(ids))
            known = np.array([r is not None for r in rates], dtype=bool)
            view.set_rates(view.budgeted[known], [r for r in rates if r is not None])

    # -- decision time -------------------------------------------------------------------------------

    def budget_left(self, table: CampaignTable, rows: np.ndarray) -> np.ndarray:
        """int64 (len(rows),) micros each campaign may still commit; a large number without a budget."""
        view = self._view_of(table)
        if self._book is not None:
            left = self._book.left(rows)  # the lease: what this worker may still commit
            if not self.work.is_set():
                self.work.set()
        else:
            left = view.budgets[rows] - view.committed[rows]
        return np.where(view.budgets[rows] > 0, left, UNLIMITED)

    def paced_in(self, table: CampaignTable, rows: np.ndarray) -> np.ndarray:
        """bool (len(rows),): the campaigns that take part in this auction, by their throttle rates."""
        view = self._view_of(table)
        # While no campaign is throttled (a day's start, a catalog behind its plan or without budgets)
        # every candidate takes part: nothing to draw.
        if not view.throttled:
            return np.ones(len(rows), dtype=bool)
        return self.rng.random(len(rows)) < view.rates[rows]

    def under_cap(self, table: CampaignTable, rows: np.ndarray, user: str) -> np.ndarray:
        """bool (len(rows),): the user has seen each campaign fewer times than its cap allows."""
        keep = np.ones(len(rows), dtype=bool)
        # Without leases the store may know at once that the user saw nothing: asked first, before the
        # candidates' caps are read. (The local views' `knows` marks the user for the next refresh, so
        # it is asked only when some cap applies.)
        if not user or (self._book is None and not self.store.may_have_views(user)):
            return keep
        capped = np.flatnonzero(table.freq_cap[rows] > 0)
        if capped.size == 0:
            return keep
        # Most users a bid is considered for have seen none of the campaigns: they are answered before a
        # list of ids is built (tens of them a decision, about as much as the rest of the caps' work).
        if self._book is not None:
            if not self.available:
                raise StateUnavailable("the spend store is unreachable; retrying shortly")
            if not self._views.knows(user):
                return keep
        capped_rows = rows[capped]
        every_id = self._view_of(table).ids
        ids = [every_id[r] for r in capped_rows.tolist()]
        windows = table.freq_window[capped_rows].tolist()
        now = self.clock()
        if self._book is not None:
            seen = self._views.counts(user, ids, windows, now)
        else:
            seen = self._use(lambda: self.store.views(user, ids, windows, now))
        keep[capped] = np.array(seen) < table.freq_cap[capped_rows]
        return keep

    def reserve(self, table: CampaignTable, row: int, price: float, key: str, record: BidRecord) -> bool:
        """Reserve the cost of a bid at `price` CPM for `key` ("auction:imp"), keeping its `record` until
        its win; False if over budget."""
        now = self.clock()
        amount = cost_micros(price)
        view = self._view_of(table)
        # The win counts a view against the cap in force when the bid was made (the decision's record
        # says it already; a record made without it is copied with it).
        cap, window = int(table.freq_cap[row]), float(table.freq_window[row])
        if record.freq_cap != cap or record.freq_window != window:
            record = replace(record, freq_cap=cap, freq_window=window)
        reservation = Reservation(
            day=utc_day(now),
            campaign=str(table.campaign_id[row]),
            budget=int(view.budgets[row]),
            key=key,
            amount=amount,
            expires=now + self.settings.inflight_seconds,
            record=record,
            now=now,
        )
        if self._book is not None:
            ok = self._take(row, reservation, budgeted=bool(view.budgets[row] > 0))
        else:
            ok = self._use(lambda: self.store.reserve(reservation))
        if ok:
            view.committed[row] += amount
        elif view.budgets[row] > 0:
            # Whatever the cache said, the store knows better: stop offering this campaign for now.
            view.committed[row] = max(view.committed[row], view.budgets[row])
        return bool(ok)

    def _take(self, row: int, reservation: Reservation, budgeted: bool) -> bool:
        """Reserve out of this worker's lease, in memory; the keeper writes it to the store."""
        book = self._book
        assert book is not None
        if not self.available:
            raise StateUnavailable("the spend store is unreachable; retrying shortly")
        book.roll(reservation.day)
        if not self.work.is_set():
            self.work.set()
        if budgeted:
            return book.take(row, reservation.amount, reservation)
        book.put(reservation)
        return True

    # -- the keeper's turn (leases) ------------------------------------------------------------------

    def keep(self) -> None:
        """Write the bids reserved since the last turn, ask for slices of the campaigns running low, and
        refresh the frequency view when it is due. Raises StateUnavailable when the store fails (and
        marks it down, as a decision's call would have)."""
        book, store = self._book, self._leasing
        if book is None or store is None or not self.available:
            return
        now = self.clock()
        book.roll(utc_day(now))
        self._flush(now)
        view = self._view
        if view is not None and len(view.budgets) == len(book.held):  # else a new table is being bound
            asks = book.asks(view.budgets, self.settings.lease_share, now)
            if asks:
                dead_before = now - self.settings.lease_timeout_seconds
                granted = self._use(lambda: store.lease(self.worker, [a for _, a in asks], now, dead_before))
                book.grant(asks, granted, retry_at=now + self.settings.refresh_seconds)
        if time.monotonic() - self._views_read >= self.settings.frequency_refresh_seconds:
            self._views_read = time.monotonic()
            users = self._views.due()
            if users:
                self._views.fill(self._use(lambda: store.viewed(users)))

    def _flush(self, now: float, heartbeat: bool = True) -> None:
        book, store = self._book, self._leasing
        assert book is not None and store is not None
        idle = time.monotonic() - self._heard < self.settings.heartbeat_seconds
        if not book.queued and (idle or not heartbeat):
            return
        bids = book.drain()
        try:
            reclaimed = self._use(lambda: store.flush(self.worker, bids, now))
        except StateUnavailable:
            book.requeue(bids)  # no bid accepted is lost: they go with the next flush
            raise
        self._heard = time.monotonic()
        if reclaimed:
            log.warning(
                "%d leases of this worker were reclaimed (silent for over %.0f s); they are dropped",
                len(reclaimed),
                self.settings.lease_timeout_seconds,
            )
            book.forfeit(reclaimed)

    def close(self) -> None:
        """Write every bid reserved and give the leases back (at shutdown, after the last decision)."""
        book, store = self._book, self._leasing
        if book is None or store is None:
            return
        try:
            self._flush(self.clock(), heartbeat=False)
            held = book.give_back()
            self._use(lambda: store.give_back(self.worker, held))
        except StateUnavailable:
            if book.queued:
                log.error("spend store unreachable at shutdown: %d reserved bids not written", book.queued)

    def leased(self, campaign: str) -> int:
        """Micros of `campaign`'s budget today this worker holds and has not reserved."""
        return self._book.holding(campaign) if self._book is not None else 0

    # -- notifications -------------------------------------------------------------------------------

    def apply(self, note: Notification) -> tuple[str, BidRecord | None]:
        """Apply a notification; returns (status, the bid's record when the bid was known)."""
        if self._book is not None and self._book.holds(note.bid_key):
            # The bid was reserved here and is not yet written: write it (and those queued with it) first.
            self._flush(self.clock(), heartbeat=False)
        now = self.clock()
        ts = note.ts or now
        price = cost_micros(note.price) if note.price > 0 else None
        status, record = self._use(
            lambda: self.store.apply(
                Settlement(
                    mode=MODES[note.type],
                    event=note.identity,
                    ttl=self.settings.dedupe_seconds,
                    day=utc_day(ts),
                    campaign=note.campaign_id,
                    key=note.bid_key,
                    price=price,
                    now=now,
                )
            )
        )
        billed = status == "applied" and note.type in ("win", "impression")
        if billed and record is not None and record.user and record.freq_cap > 0:
            user, window = record.user, record.freq_window
            self._use(lambda: self.store.add_view(user, note.campaign_id, ts, window))
            if self._book is not None:
                self._views.add(user, note.campaign_id, ts)
        return status, record

    def first_time(self, event: str) -> bool:
        """Remember `event` (an identity of the caller's making) for dedupe_seconds, in the store shared by
        the workers; True the first time it is seen, False for a repeat. Conversions are deduplicated by
        their order this way, as notices are by their identity."""
        now = self.clock()
        status, _ = self._use(
            lambda: self.store.apply(
                Settlement(
                    mode="mark",
                    event=event,
                    ttl=self.settings.dedupe_seconds,
                    day=utc_day(now),
                    campaign="",
                    key="",
                    price=None,
                    now=now,
                )
            )
        )
        return status != "duplicate"

    def summary(self) -> dict[str, float]:
        """Aggregates for metrics over the budgeted campaigns, money in currency units: today's budgets
        (this process's share of them), spent, and remaining (spend in flight counted as spent); campaigns
        out of budget, the mean pacing rate."""
        view = self._view
        if view is None or view.budgeted.size == 0:
            return {
                "remaining": 0.0,
                "exhausted": 0.0,
                "pacing_rate": 1.0,
                "budgeted": 0.0,
                "budget": 0.0,
                "spent": 0.0,
            }
        budgets, committed = view.budgets[view.budgeted], view.committed[view.budgeted]
        return {
            "remaining": float(np.maximum(budgets - committed, 0).sum()) / MICROS,
            "exhausted": float(np.count_nonzero(committed >= budgets)),
            "pacing_rate": float(view.rates[view.budgeted].mean()),
            "budgeted": float(view.budgeted.size),
            "budget": float(budgets.sum()) / MICROS,
            "spent": float(view.spent[view.budgeted].sum()) / MICROS,
        }

    def probe(self) -> bool:
        """Try the store now, whatever the back-off says; True when it answers."""
        try:
            self.store.ping()
        except StateUnavailable as exc:
            self._went_down(exc)
            return False
        self._down_until = 0.0
        self._came_back()
        return True
