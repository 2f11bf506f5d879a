"""The spend store's contract, held by both implementations: in-process and a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personabid.spend.redis_store import RedisStore
from personabid.spend.store import MemoryStore, Reservation, Settlement, SpendStore, utc_day
from tests.bid_records import bid_record
from tests.conftest import RedisServer

DAY = "20261123"
NOW = 1_800_000_000.0


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SpendStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server = RedisServer(tmp_path).start()
    try:
        yield RedisStore(server.url, timeout=1.0)
    finally:
        server.stop()


def reserve(
    store: SpendStore, key: str, amount: int, budget: int = 10_000, expires: float = NOW + 60.0
) -> bool:
    return store.reserve(Reservation(DAY, "c1", budget, key, amount, expires, bid_record(key), NOW))


def test_reservation_within_budget_is_granted(store: SpendStore) -> None:
    assert reserve(store, "a:1", 6_000)


def test_reservation_past_budget_is_refused(store: SpendStore) -> None:
    assert reserve(store, "a:1", 6_000)
    assert not reserve(store, "a:2", 6_000)


def test_spend_in_flight_counts_until_it_expires(store: SpendStore) -> None:
    assert reserve(store, "a:1", 6_000, expires=NOW + 5)
    assert store.spent(DAY, ["c1"], NOW) == [(0, 6_000)]
    assert store.spent(DAY, ["c1"], NOW + 6) == [(0, 0)]
    assert store.reserve(Reservation(DAY, "c1", 10_000, "a:2", 6_000, NOW + 70, bid_record("a:2"), NOW + 6))


def test_win_moves_its_price_from_flight_to_spend(store: SpendStore) -> None:
    reserve(store, "a:1", 6_000)
    status, pending = store.apply(Settlement("bill", "win:a:1:b", 3600, DAY, "c1", "a:1", 4_000, NOW))
    assert (status, pending) == ("applied", bid_record("a:1"))
    assert store.spent(DAY, ["c1"], NOW) == [(4_000, 0)]


def test_duplicate_win_counts_once(store: SpendStore) -> None:
    reserve(store, "a:1", 6_000)
    store.apply(Settlement("bill", "win:a:1:b", 3600, DAY, "c1", "a:1", 4_000, NOW))
    status, _ = store.apply(Settlement("bill", "win:a:1:b", 3600, DAY, "c1", "a:1", 4_000, NOW))
    assert status == "duplicate"
    assert store.spent(DAY, ["c1"], NOW) == [(4_000, 0)]


def test_impression_after_a_win_is_not_billed_again(store: SpendStore) -> None:
    reserve(store, "a:1", 6_000)
    store.apply(Settlement("bill", "win:a:1:b", 3600, DAY, "c1", "a:1", 4_000, NOW))
    status, _ = store.apply(Settlement("bill", "impression:a:1:b", 3600, DAY, "c1", "a:1", None, NOW))
    assert status == "billed already"
    assert store.spent(DAY, ["c1"], NOW) == [(4_000, 0)]


def test_impression_without_price_bills_the_reserved_amount(store: SpendStore) -> None:
    reserve(store, "a:1", 6_000)
    store.apply(Settlement("bill", "impression:a:1:b", 3600, DAY, "c1", "a:1", None, NOW))
    assert store.spent(DAY, ["c1"], NOW) == [(6_000, 0)]


def test_loss_releases_the_reservation(store: SpendStore) -> None:
    reserve(store, "a:1", 6_000)
    status, pending = store.apply(Settlement("release", "loss:a:1:b", 3600, DAY, "c1", "a:1", None, NOW))
    assert (status, pending) == ("applied", bid_record("a:1"))
    assert store.spent(DAY, ["c1"], NOW) == [(0, 0)]


def test_spend_is_kept_per_day(store: SpendStore) -> None:
    store.apply(Settlement("bill", "win:a:1:b", 3600, DAY, "c1", "a:1", 4_000, NOW))
    assert store.spent("20261124", ["c1"], NOW) == [(0, 0)]


def test_views_count_within_their_window(store: SpendStore) -> None:
    for t in (NOW - 100, NOW - 50, NOW - 10):
        store.add_view("u1", "c1", t, 60)
    assert store.views("u1", ["c1", "c2"], [60, 60], NOW) == [2, 0]


def test_one_leader_per_term(store: SpendStore) -> None:
    assert store.lead("20261123:1", 120)
    assert not store.lead("20261123:1", 120)
    assert store.lead("20261123:2", 120)


def test_pacing_rates_are_shared(store: SpendStore) -> None:
    store.set_pacing({"c1": 0.25})
    assert store.pacing(["c1", "c2"]) == [0.25, None]


def test_touched_lists_campaigns_that_moved_or_are_in_flight(store: SpendStore) -> None:
    store.reserve(Reservation(DAY, "c1", 10_000, "a:1", 1_000, NOW + 60, bid_record("a:1"), NOW))
    store.apply(Settlement("bill", "win:b:1:b", 3600, DAY, "c2", "b:1", 1_000, NOW))
    assert sorted(store.touched(DAY, NOW - 1)) == ["c1", "c2"]
    assert store.touched(DAY, NOW + 30) == ["c1"], "c1 stays touched while its bid is in flight"
    assert store.touched("20261124", NOW - 1) == []


@given(st.lists(st.floats(min_value=-1e10, max_value=1e11), min_size=1, max_size=5))
def test_the_utc_day_of_any_moment_is_its_calendar_day(moments: list[float]) -> None:
    # In any order: the day remembered from the moment before must not answer for another day.
    for now in moments:
        assert utc_day(now) == time.strftime("%Y%m%d", time.gmtime(now))
