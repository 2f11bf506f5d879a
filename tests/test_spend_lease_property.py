"""Lease-based spend against a slow reference ledger: random reservations, wins (at prices below and above
the bid, at any worker, before or after the bid is flushed), impressions, losses and expiries over one to
four workers on one real Redis. The final spend is the reference's, and nothing ever commits more than
the budget."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from personabid.spend.control import Notification, SpendControl, SpendSettings
from personabid.spend.lease import LeaseAsk
from personabid.spend.redis_store import RedisStore
from personabid.spend.store import cost_micros, utc_day
from tests.bid_records import bid_record
from tests.conftest import RedisServer
from tests.test_spend_control import ROWS, Clock, table

NOON = 1_800_057_600.0 + 12 * 3600
INFLIGHT = 60.0


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    yield server.url
    server.stop()


@dataclass
class Ledger:
    """The slow reference: every bid the workers accepted and what became of it."""

    budget: int
    spent: int = 0
    open: dict[str, tuple[int, int]] = field(default_factory=dict)  # bid key -> (micros reserved, worker)

    def committed(self) -> int:
        return self.spent + sum(amount for amount, _ in self.open.values())


# (what, which worker, a value, whether that worker's keeper takes a turn first)
reserve = st.tuples(
    st.just("reserve"), st.integers(0, 3), st.integers(50, 500), st.sampled_from([True, True, False])
)  # cents CPM
keep = st.tuples(st.just("keep"), st.integers(0, 3), st.just(0), st.just(False))
win = st.tuples(st.just("win"), st.integers(0, 3), st.integers(10, 150), st.just(False))  # % of the bid
impression = st.tuples(st.just("impression"), st.integers(0, 3), st.just(0), st.just(False))
loss = st.tuples(st.just("loss"), st.integers(0, 3), st.just(0), st.just(False))
expire = st.tuples(st.just("expire"), st.just(0), st.just(0), st.just(False))
steps = st.lists(
    st.one_of(reserve, reserve, reserve, keep, win, impression, loss, expire), min_size=10, max_size=80
)


def early_words(client: redis.Redis) -> int:
    """Prices that notices billed before their bids were flushed: Redis counts them twice (in spend and
    in the worker's lease) until the flush."""
    words = [client.get(k) for k in client.scan_iter("pb:early:*")]
    return sum(max(0, int(float(w))) for w in words if w is not None and w != b"release")


def redis_committed(store: RedisStore, client: redis.Redis, day: str, now: float) -> int:
    spent, inflight = store.spent(day, ["c1"], now)[0]
    return spent - early_words(client) + inflight + sum(store.leases(day, "c1").values())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    workers=st.integers(1, 4),
    budget=st.integers(2_000, 200_000),
    lease_bids=st.integers(1, 3),
    share=st.sampled_from([0.0, 0.1, 0.25]),
    plan=steps,
    picks=st.randoms(use_true_random=False),
)
def test_lease_spend_matches_the_reference_and_never_commits_past_the_budget(
    redis_url: str,
    workers: int,
    budget: int,
    lease_bids: int,
    share: float,
    plan: list[tuple[str, int, int, bool]],
    picks: object,
) -> None:
    client = redis.Redis.from_url(redis_url)
    stores = [RedisStore(redis_url, timeout=1.0) for _ in range(workers + 1)]
    try:
        client.flushdb()
        clock = Clock(NOON)
        spend_settings = SpendSettings(
            leases=True, lease_bids=lease_bids, lease_share=share, inflight_seconds=INFLIGHT,
            lease_timeout_seconds=1e9, frequency_refresh_seconds=1e9,
        )  # fmt: skip
        pool = [SpendControl(stores[w], spend_settings, clock=clock) for w in range(workers)]
        campaigns = table(budget=budget / 1e6)
        ref = Ledger(budget)
        store = stores[-1]
        accepted = early = 0
        for number, (op, who, value, turn) in enumerate(plan):
            spend = pool[who % workers]
            spend.budget_left(campaigns, ROWS)  # a decision asks first: the keeper leases what it asked for
            if turn:
                spend.keep()
            if op == "reserve":
                key = f"a{number}:1"
                amount = cost_micros(value / 100)
                if spend.reserve(campaigns, 0, value / 100, key, bid_record(key)):
                    ref.open[key] = (amount, who % workers)
                    accepted += 1
            elif op == "keep":
                spend.keep()
            elif op == "expire":
                clock.now += INFLIGHT + 1
                ref.open.clear()
            elif ref.open:
                key = picks.choice(sorted(ref.open))  # type: ignore[attr-defined]
                amount, bidder = ref.open.pop(key)
                auction = key.split(":")[0]
                early += bidder != who % workers and pool[bidder]._book.queued > 0  # type: ignore[union-attr]
                if op == "win":
                    price = amount * value / 100 / 1000  # CPM
                    spend.apply(Notification("win", auction, "1", "b", "c1", price=price))
                    ref.spent += min(cost_micros(price), amount)
                elif op == "impression":
                    spend.apply(Notification("impression", auction, "1", "b", "c1"))
                    ref.spent += amount
                else:
                    spend.apply(Notification("loss", auction, "1", "b", "c1"))
            assert ref.committed() <= budget, "the workers accepted more than the budget"
            assert redis_committed(store, client, utc_day(clock.now), clock.now) <= budget
        event(f"bids accepted: {'none' if not accepted else 'under 5' if accepted < 5 else '5 or more'}")
        event(f"notices before their bid's flush: {min(early, 2)}+")
        for spend in pool:
            spend.close()
        day = utc_day(clock.now)
        spent, inflight = store.spent(day, ["c1"], clock.now)[0]
        leases, words = store.leases(day, "c1"), early_words(client)
        assert spent == ref.spent
        assert spent + inflight == ref.committed() <= budget
        assert leases == {}, "every lease was given back"
        assert words == 0
    finally:
        for store in stores:
            store.close()
        client.close()


@dataclass(frozen=True)
class Held:
    """One campaign's state before the asks: what was spent, what is in flight (live and expired) and
    the leases of other workers (alive or silent past the lease timeout)."""

    budget: int
    spent: int
    live: int
    expired: int
    alive_lease: int
    dead_lease: int


held = st.builds(
    Held,
    budget=st.integers(0, 10**12),
    spent=st.integers(0, 10**11),
    live=st.integers(0, 10**11),
    expired=st.integers(0, 10**11),
    alive_lease=st.integers(0, 10**11),
    dead_lease=st.integers(0, 10**11),
)


def reference_grants(campaigns: list[Held], asks: list[tuple[int, int, float]]) -> list[int]:
    """One ask at a time, in order (campaign index, smallest slice, share): what is free is the budget
    less the spend, the live amounts in flight and the live workers' leases, this worker's included."""
    mine = [0] * len(campaigns)
    grants = []
    for c, smallest, share in asks:
        h = campaigns[c]
        free = h.budget - h.spent - h.live - h.alive_lease - mine[c]
        grant = max(0, min(free, max(smallest, math.floor(free * share))))
        mine[c] += grant
        grants.append(grant)
    return grants


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    campaigns=st.lists(held, min_size=1, max_size=8),
    asks=st.lists(
        st.tuples(st.integers(0, 7), st.integers(1, 10**9), st.sampled_from([0.0, 0.05, 0.25, 1.0])),
        min_size=1,
        max_size=1_200,  # more than two scripts' worth
    ),
)
def test_a_lease_of_many_campaigns_grants_what_asking_for_each_in_turn_would(
    redis_url: str, campaigns: list[Held], asks: list[tuple[int, int, float]]
) -> None:
    asks = [(c % len(campaigns), smallest, share) for c, smallest, share in asks]
    client = redis.Redis.from_url(redis_url)
    store = RedisStore(redis_url, timeout=5.0)
    day, now, timeout = utc_day(NOON), NOON, 30.0
    try:
        client.flushdb()
        client.zadd("pb:workers", {"alive": now - 1, "dead": now - timeout - 1})
        for c, h in enumerate(campaigns):
            client.set(f"pb:spend:{day}:c{c}", h.spent)
            client.zadd(f"pb:inflight:c{c}", {"live": now + 60, "expired": now - 1})
            client.hset(f"pb:inflight_amount:c{c}", mapping={"live": h.live, "expired": h.expired})
            client.hset(f"pb:inflight_amount:c{c}", "total", h.live + h.expired)
            client.hset(f"pb:lease:{day}:c{c}", mapping={"alive": h.alive_lease, "dead": h.dead_lease})
        sent = [
            LeaseAsk(day=day, campaign=f"c{c}", budget=campaigns[c].budget, smallest=smallest, share=share)
            for c, smallest, share in asks
        ]
        grants = store.lease("me", sent, now, dead_before=now - timeout)
        assert grants == reference_grants(campaigns, asks)
    finally:
        store.close()
        client.close()
