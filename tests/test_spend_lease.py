"""Spend from leased slices of shared budgets, through a real Redis: what a decision costs the store (no
command), how slices are granted, written back, reclaimed and given back, and where notices land."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from personabid.spend.control import Notification, SpendControl, SpendSettings
from personabid.spend.lease import LeaseAsk
from personabid.spend.redis_store import LEASE_BATCH, RedisStore
from personabid.spend.store import MemoryStore, StateUnavailable, utc_day
from tests.bid_records import bid_record
from tests.conftest import RedisServer
from tests.test_spend_control import ROWS, Clock, table

NOON = 1_800_057_600.0 + 12 * 3600
DAY = utc_day(NOON)


OPENED: list[RedisStore] = []


@pytest.fixture(autouse=True)
def close_stores() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def opened(url: str) -> RedisStore:
    OPENED.append(RedisStore(url, timeout=1.0))
    return OPENED[-1]


def worker(url: str, clock: Clock, **settings: object) -> SpendControl:
    values: dict[str, object] = {"leases": True, "lease_bids": 2, "frequency_refresh_seconds": 0.0}
    values.update(settings)
    return SpendControl(opened(url), SpendSettings(**values), clock=clock)  # type: ignore[arg-type]


def ledger(url: str, now: float) -> tuple[int, int, dict[str, int]]:
    """(spent, in flight, leases by worker) of campaign c1 today, as Redis holds them."""
    store = opened(url)
    spent, inflight = store.spent(DAY, ["c1"], now)[0]
    return spent, inflight, store.leases(DAY, "c1")


def leased(spend: SpendControl, budget: float = 0.1) -> None:
    """Ask about c1 as a decision does, then let the keeper take its turn: c1 is then leased."""
    spend.budget_left(table(budget=budget), ROWS)
    spend.keep()


def commands(client: redis.Redis) -> int:
    """Commands Redis has run so far, the INFO that asks not counted."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def calls_of(client: redis.Redis, command: str) -> int:
    """How often Redis has run `command` (a subcommand as "script|exists")."""
    return int(client.info("commandstats").get(f"cmdstat_{command}", {"calls": 0})["calls"])


def test_decisions_and_reservations_send_no_command_to_redis(redis_server: RedisServer) -> None:
    clock = Clock(NOON)
    spend = worker(redis_server.url, clock)
    campaigns = table(budget=1.0, cap=3)
    leased(spend, budget=1.0)
    with redis.Redis.from_url(redis_server.url) as client:
        before = commands(client)
        for i in range(200):
            assert spend.budget_left(campaigns, ROWS)[0] > 0
            assert spend.under_cap(campaigns, ROWS, f"user-{i}")[0]
            spend.paced_in(campaigns, ROWS)
            assert spend.reserve(campaigns, 0, 1.0, f"a{i}:1", bid_record(f"a{i}:1"))
        assert commands(client) == before
        spend.keep()
        assert commands(client) > before, "the keeper's turn writes them"
    assert ledger(redis_server.url, NOON)[1] == 200 * 1_000


def test_a_campaign_without_a_lease_is_out_of_budget_until_the_keeper_leases_it(
    redis_server: RedisServer,
) -> None:
    spend = worker(redis_server.url, Clock(NOON))
    campaigns = table(budget=0.1)
    assert spend.budget_left(campaigns, ROWS)[0] == 0
    assert not spend.reserve(campaigns, 0, 4.0, "a1:1", bid_record("a1:1"))
    spend.keep()
    # The smallest slice is two maximum bids (5 CPM), the share a quarter of the 100,000 micros free.
    assert spend.budget_left(campaigns, ROWS)[0] == 25_000
    assert spend.reserve(campaigns, 0, 4.0, "a1:1", bid_record("a1:1"))
    assert spend.budget_left(campaigns, ROWS)[0] == 21_000


def test_leases_of_racing_workers_never_add_up_to_more_than_the_budget(redis_server: RedisServer) -> None:
    clock = Clock(NOON)
    workers = [worker(redis_server.url, clock) for _ in range(4)]
    for _ in range(10):  # each asks again as its lease runs out, until nothing is free
        for spend in workers:
            leased(spend)
            while spend.reserve(table(), 0, 5.0, f"{spend.worker}-{clock.now}:1", bid_record()):
                clock.now += 0.001
    _, inflight, leases = ledger(redis_server.url, clock.now)
    assert inflight + sum(leases.values()) <= 100_000
    assert inflight > 100_000 - 4 * 5_000, "every worker holds less than one bid of what was not spent"


def test_the_asks_for_many_campaigns_go_to_redis_as_one_script_a_batch(redis_server: RedisServer) -> None:
    """A fresh worker asks for the slices of hundreds of campaigns at once: one script call for each
    LEASE_BATCH of them, not one a campaign."""
    client = redis.Redis.from_url(redis_server.url)
    store = opened(redis_server.url)
    asks = [
        LeaseAsk(DAY, f"c{i}", budget=100_000, smallest=5_000, share=0.25) for i in range(2 * LEASE_BATCH + 1)
    ]
    before = calls_of(client, "evalsha")
    grants = store.lease("w1", asks, NOON, NOON - 30.0)
    calls = calls_of(client, "evalsha") - before
    client.close()
    assert (calls, grants) == (3, [25_000] * len(asks))


def test_a_win_at_another_worker_after_the_flush_bills_its_price(redis_server: RedisServer) -> None:
    clock = Clock(NOON)
    mine, other = worker(redis_server.url, clock), worker(redis_server.url, clock)
    leased(mine)
    assert mine.reserve(table(), 0, 4.0, "a1:1", bid_record("a1:1"))
    mine.keep()
    status, record = other.apply(Notification("win", "a1", "1", "b", "c1", price=3.0))
    assert (status, record is not None) == ("applied", True)
    assert ledger(redis_server.url, clock.now)[:2] == (3_000, 0)


@pytest.mark.parametrize(("price", "billed"), [(3.0, 3_000), (9.0, 4_000), (0.0, 4_000)])
def test_a_bill_at_another_worker_before_the_flush_is_capped_at_the_bid_by_the_flush(
    redis_server: RedisServer, price: float, billed: int
) -> None:
    clock = Clock(NOON)
    mine, other = worker(redis_server.url, clock), worker(redis_server.url, clock)
    leased(mine)
    assert mine.reserve(table(), 0, 4.0, "a1:1", bid_record("a1:1"))
    kind = "win" if price else "impression"  # an impression without a price bills the bid
    assert other.apply(Notification(kind, "a1", "1", "b", "c1", price=price))[0] == "applied"
    mine.keep()
    spent, inflight, leases = ledger(redis_server.url, clock.now)
    assert (spent, inflight) == (billed, 0)
    assert leases[mine.worker] == 25_000 - 4_000


def test_a_loss_at_another_worker_before_the_flush_frees_the_bid_when_flushed(
    redis_server: RedisServer,
) -> None:
    clock = Clock(NOON)
    mine, other = worker(redis_server.url, clock), worker(redis_server.url, clock)
    leased(mine)
    assert mine.reserve(table(), 0, 4.0, "a1:1", bid_record("a1:1"))
    other.apply(Notification("loss", "a1", "1", "b", "c1"))
    mine.keep()
    assert ledger(redis_server.url, clock.now)[:2] == (0, 0)


def test_a_notice_at_the_same_worker_writes_its_bid_first(redis_server: RedisServer) -> None:
    clock = Clock(NOON)
    spend = worker(redis_server.url, clock)
    leased(spend)
    assert spend.reserve(table(), 0, 4.0, "a1:1", bid_record("a1:1"))
    status, record = spend.apply(Notification("win", "a1", "1", "b", "c1", price=9.0))
    assert (status, record and record.request_id) == ("applied", "a1")
    assert ledger(redis_server.url, clock.now)[:2] == (4_000, 0)


def test_a_flush_sent_twice_applies_each_bid_once(redis_server: RedisServer) -> None:
    clock = Clock(NOON)
    spend = worker(redis_server.url, clock)
    leased(spend)
    assert spend.reserve(table(), 0, 4.0, "a1:1", bid_record("a1:1"))
    bids = spend._book.drain()  # type: ignore[union-attr]
    store = opened(redis_server.url)
    for _ in range(2):  # as a flush whose answer was lost is sent again
        store.flush(spend.worker, bids, clock.now)
    assert ledger(redis_server.url, clock.now)[1:] == (4_000, {spend.worker: 21_000})


def test_the_keepers_turns_ask_redis_nothing_about_its_scripts(redis_server: RedisServer) -> None:
    """Lease, flush and refresh each take one round trip: no SCRIPT EXISTS before the scripts' calls."""
    clock = Clock(NOON)
    spend = worker(redis_server.url, clock)
    leased(spend)
    assert spend.reserve(table(), 0, 4.0, "a1:1", bid_record("a1:1"))
    spend.keep()
    spend.refresh(table())
    with redis.Redis.from_url(redis_server.url) as client:
        assert calls_of(client, "evalsha") >= 3  # lease, flush and the refresh's spent
        assert calls_of(client, "script|exists") == 0


def test_a_keeper_whose_scripts_redis_forgot_loads_them_again(redis_server: RedisServer) -> None:
    """A Redis restarted or told SCRIPT FLUSH answers NOSCRIPT: the store loads the script and sends the
    turn again, and each bid counts once."""
    clock = Clock(NOON)
    spend = worker(redis_server.url, clock)
    leased(spend)
    assert spend.reserve(table(), 0, 4.0, "a1:1", bid_record("a1:1"))
    with redis.Redis.from_url(redis_server.url) as client:
        client.script_flush()
        loads = calls_of(client, "script|load")
        spend.keep()
        assert calls_of(client, "script|load") > loads
    assert ledger(redis_server.url, clock.now)[1:] == (4_000, {spend.worker: 21_000})


def test_a_dead_workers_lease_is_reclaimed(redis_server: RedisServer) -> None:
    clock = Clock(NOON)
    dead = worker(redis_server.url, clock, lease_timeout_seconds=30.0)
    alive = worker(redis_server.url, clock, lease_timeout_seconds=30.0)
    leased(dead)
    clock.now += 31  # the dead worker is not heard of again
    leased(alive)
    leases = ledger(redis_server.url, clock.now)[2]
    assert dead.worker not in leases
    assert leases[alive.worker] == 25_000, "a quarter of all of the budget: the dead lease is free again"


def test_a_worker_whose_lease_was_reclaimed_drops_it_at_its_next_flush(redis_server: RedisServer) -> None:
    clock = Clock(NOON)
    slow = worker(redis_server.url, clock, lease_timeout_seconds=30.0)
    leased(slow)
    clock.now += 31
    leased(worker(redis_server.url, clock, lease_timeout_seconds=30.0))
    assert slow.reserve(table(), 0, 4.0, "a1:1", bid_record("a1:1")), "it cannot know before it flushes"
    slow.keep()
    assert slow.leased("c1") == 0
    assert not slow.reserve(table(), 0, 4.0, "a2:1", bid_record("a2:1"))


def test_closing_writes_every_bid_and_gives_the_leases_back(redis_server: RedisServer) -> None:
    clock = Clock(NOON)
    spend = worker(redis_server.url, clock)
    leased(spend)
    assert spend.reserve(table(), 0, 4.0, "a1:1", bid_record("a1:1"))
    spend.close()
    assert ledger(redis_server.url, clock.now) == (0, 4_000, {})


def test_an_outage_seen_by_the_keeper_stops_bids_and_keeps_what_was_reserved(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    clock = Clock(NOON)
    spend = worker(server.url, clock, retry_seconds=1.0)
    try:
        leased(spend)
        assert spend.reserve(table(), 0, 4.0, "a1:1", bid_record("a1:1"))
        server.stop()
        with pytest.raises(StateUnavailable):
            spend.keep()
        with pytest.raises(StateUnavailable):
            spend.reserve(table(), 0, 4.0, "a2:1", bid_record("a2:1"))
        with pytest.raises(StateUnavailable):
            spend.under_cap(table(cap=2), ROWS, "u1")
        server.start()
        clock.now += 2
        assert spend.probe()
        spend.keep()
        assert ledger(server.url, clock.now)[1] == 4_000, "the bid reserved before the outage is written"
    finally:
        server.stop()


def test_frequency_caps_of_two_workers_overshoot_at_most_by_the_other_workers_views(
    redis_server: RedisServer,
) -> None:
    """Each worker wins its own notices and neither refreshes: together they show at most
    cap + (workers - 1) x cap; after one refresh, neither shows the user the campaign again."""
    clock = Clock(NOON)
    cap = 3
    campaigns = table(cap=cap)
    workers = [worker(redis_server.url, clock) for _ in range(2)]
    for spend in workers:
        leased(spend)
    shown = 0
    for i in range(20):
        spend = workers[i % 2]
        if spend.under_cap(campaigns, ROWS, "u1")[0]:
            assert spend.reserve(campaigns, 0, 1.0, f"a{i}:1", bid_record(f"a{i}:1", user="u1"))
            spend.apply(Notification("win", f"a{i}", "1", "b", "c1", price=1.0))
            shown += 1
        clock.now += 1
    assert cap < shown <= cap + (len(workers) - 1) * cap
    for spend in workers:
        spend.keep()  # the refresh: each reads what the other recorded
    assert not any(spend.under_cap(campaigns, ROWS, "u1")[0] for spend in workers)


def test_a_refreshed_view_keeps_counting_views_within_their_window(redis_server: RedisServer) -> None:
    clock = Clock(NOON)
    campaigns = table(cap=1)  # a window of an hour
    mine, other = worker(redis_server.url, clock), worker(redis_server.url, clock)
    leased(other)
    assert mine.under_cap(campaigns, ROWS, "u1")[0]  # asked about: read at the next refresh
    assert other.reserve(campaigns, 0, 1.0, "a1:1", bid_record("a1:1", user="u1"))
    other.apply(Notification("win", "a1", "1", "b", "c1", price=1.0))
    mine.keep()
    assert not mine.under_cap(campaigns, ROWS, "u1")[0]
    clock.now += 3601
    assert mine.under_cap(campaigns, ROWS, "u1")[0]


def test_leases_need_a_store_that_grants_them() -> None:
    with pytest.raises(ValueError, match="MemoryStore"):
        SpendControl(MemoryStore(), SpendSettings(leases=True))
