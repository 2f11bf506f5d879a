"""The in-process state that grows with traffic stays under its caps, and each cap counts what it refused.

Pending bids, frequency views and deduplication keys were bounded only by time: a flood of bids with no
notifications would hold one pending record per bid for `inflight_seconds`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from personabid.client import sample_request
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.reasons import NoBid
from personabid.decision.snapshot import Snapshot
from personabid.spend.control import SpendControl
from personabid.spend.store import MemoryStore, Reservation, Settlement, StoreFull, StoreLimits
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World
from tests.bid_records import bid_record
from tests.conftest import ThreadedServer, server_settings
from tests.test_pipeline import persona_request

DAY = "20261130"
NOW = 1_800_000_000.0


def capped_store(**limits: int) -> tuple[MemoryStore, Counter[str]]:
    counts: Counter[str] = Counter()
    return MemoryStore(StoreLimits(**limits), on_capped=lambda store: counts.update([store])), counts


def reserve(store: MemoryStore, key: str, now: float = NOW, expires: float = NOW + 60) -> bool:
    return store.reserve(Reservation(DAY, "c1", 0, key, 1_000, expires, bid_record(key), now))


def test_a_bid_past_the_pending_cap_is_refused_and_counted() -> None:
    store, counts = capped_store(max_pending=3)
    for i in range(3):
        assert reserve(store, f"a:{i}")
    try:
        reserve(store, "a:3")
    except StoreFull as exc:
        assert "max_pending_bids" in str(exc)
    else:
        raise AssertionError("the fourth bid in flight was accepted past a cap of 3")
    assert counts == {"pending": 1}


def test_a_notified_bid_frees_its_pending_slot() -> None:
    store, _ = capped_store(max_pending=1)
    assert reserve(store, "a:0")
    store.apply(Settlement("release", "loss:a:0", 3600, DAY, "c1", "a:0", None, NOW))
    assert reserve(store, "a:1")


def test_an_expired_bid_frees_its_pending_slot() -> None:
    store, counts = capped_store(max_pending=1)
    assert reserve(store, "a:0", expires=NOW + 5)
    assert reserve(store, "a:1", now=NOW + 6, expires=NOW + 60)
    assert counts == {}


def test_the_least_recent_frequency_history_is_evicted_and_counted() -> None:
    store, counts = capped_store(max_frequency_keys=2)
    store.add_view("u1", "c1", NOW, 3600)
    store.add_view("u2", "c1", NOW + 1, 3600)
    store.add_view("u1", "c1", NOW + 2, 3600)  # u1 is now the most recent
    store.add_view("u3", "c1", NOW + 3, 3600)  # evicts u2
    assert store.views("u1", ["c1"], [3600], NOW + 4) == [2]
    assert store.views("u2", ["c1"], [3600], NOW + 4) == [0]
    assert counts == {"frequency": 1}


def test_frequency_histories_out_of_their_window_go_before_any_eviction() -> None:
    store, counts = capped_store(max_frequency_keys=2)
    store.add_view("u1", "c1", NOW, 10)
    store.add_view("u2", "c1", NOW, 10)
    store.add_view("u3", "c1", NOW + 20, 10)  # both older histories have left their window
    store.add_view("u4", "c1", NOW + 21, 10)
    assert counts == {}
    assert store.views("u3", ["c1"], [10], NOW + 22) == [1]


def test_the_oldest_deduplication_key_is_evicted_and_counted() -> None:
    store, counts = capped_store(max_events=2)
    for i in range(3):
        assert (
            store.apply(Settlement("mark", f"click:a:{i}:b", 3600, DAY, "c1", f"a:{i}", None, NOW + i))[0]
            == "applied"
        )
    assert counts == {"dedupe": 1}
    assert (
        store.apply(Settlement("mark", "click:a:2:b", 3600, DAY, "c1", "a:2", None, NOW + 3))[0]
        == "duplicate"
    )


@settings(max_examples=60, deadline=None)
@given(
    cap=st.integers(1, 20),
    operations=st.lists(
        st.tuples(st.sampled_from(["reserve", "view", "click"]), st.integers(0, 200), st.floats(0, 600)),
        min_size=1,
        max_size=300,
    ),
)
def test_no_store_grows_past_its_cap_whatever_the_traffic(
    cap: int, operations: list[tuple[str, int, float]]
) -> None:
    store, counts = capped_store(max_pending=cap, max_frequency_keys=cap, max_events=cap)
    refused = 0
    for step, (kind, n, later) in enumerate(operations):
        now = NOW + step + later
        if kind == "reserve":
            try:
                reserve(store, f"a:{n}", now=now, expires=now + 60)
            except StoreFull:
                refused += 1
        elif kind == "view":
            store.add_view(f"u{n}", "c1", now, 3600)
        else:
            store.apply(Settlement("mark", f"click:{n}", 3600, DAY, "c1", f"a:{n}", None, now))
        assert len(store._pending) <= cap
        assert len(store._views) <= cap
        assert len(store._events) <= cap
    assert counts["pending"] == refused


@pytest.fixture(scope="module")
def decider(demo_dir: Path) -> Decider:
    snapshot = Snapshot.load(demo_dir / "index", demo_dir / "model")
    return Decider(snapshot, DecisionSettings(), clock=lambda: NOW)


def test_a_worker_at_its_pending_cap_answers_a_no_bid_that_says_so(decider: Decider) -> None:
    store, counts = capped_store(max_pending=1)
    spending = Decider(decider.snapshot, decider.settings, clock=lambda: NOW, spend=SpendControl(store))
    first = spending.decide(replace(persona_request(decider, 5), id="first"))
    assert len(first.bids) == 1
    second = spending.decide(replace(persona_request(decider, 5), id="second"))
    assert second.nbr == NoBid.CAPACITY_REACHED
    assert "max_pending_bids" in second.detail
    assert counts == {"pending": 1}


def test_a_server_counts_the_bids_its_pending_cap_refused(demo_dir: Path, world: World) -> None:
    running = ThreadedServer(server_settings(demo_dir, max_pending_bids=1)).start()
    try:
        rng = np.random.default_rng(8)
        with grpc.insecure_channel(running.addr) as channel:
            stub = pb_grpc.BidderStub(channel)
            requests = [sample_request(world, rng) for _ in range(40)]
            for request in requests:
                # No tmax: on a loaded machine a decision past its tmax is dropped after its reservation
                # was made, which would fill the cap of one without a bid to show for it.
                request.ClearField("tmax")
            answers = [stub.Bid(request, timeout=10) for request in requests]
        registry = running.server.registry
        refused = registry.get_sample_value("personabid_state_capped_total", {"store": "pending"})
    finally:
        running.stop()
    bids = sum(1 for a in answers if a.seatbid)
    capped = sum(1 for a in answers if a.nbr == NoBid.CAPACITY_REACHED)
    assert bids == 1, "exactly one bid fits in flight under a cap of one"
    assert capped >= 1
    assert refused == capped
