"""The decision path without gRPC, at 10,000 campaigns (and 100,000 and 1,000,000, marked slow).

Run: make bench-decision (10k) or make bench (all). Each benchmark checks its answer before it is timed;
none asserts a time. The stage benchmarks (test_stages.py, test_faiss_search.py) are the reference the
whole path is read against (same run, same machine).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.catalogs import large_world
from personabid.client import sample_auction
from personabid.decision.match import match
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.snapshot import Snapshot
from personabid.decision.uservec import user_vector
from personabid.demo import read_world
from personabid.openrtb.request import BidRequest
from personabid.reload import warm_up
from personabid.spend.control import SpendControl, SpendSettings
from personabid.spend.store import MemoryStore


def _decide_benchmark(benchmark: BenchmarkFixture, decider: Decider, requests: list[BidRequest]) -> None:
    decisions = [decider.decide(r) for r in requests[:100]]
    assert sum(1 for d in decisions if d.bids) >= 60, "most demo users should get a bid"
    cycle = itertools.cycle(requests)
    benchmark(lambda: decider.decide(next(cycle)))


def test_decide_10k_campaigns(
    benchmark: BenchmarkFixture, decider: Decider, requests: list[BidRequest]
) -> None:
    _decide_benchmark(benchmark, decider, requests)


def test_decide_10k_campaigns_with_spend_control(
    benchmark: BenchmarkFixture, decider: Decider, requests: list[BidRequest]
) -> None:
    # As the server decides: budgets, frequency caps and pacing checked, every bid reserving its cost.
    spending = Decider(decider.snapshot, decider.settings, spend=SpendControl(MemoryStore(), SpendSettings()))
    _decide_benchmark(benchmark, spending, requests)


def _large(campaigns: int) -> tuple[Decider, list[BidRequest]]:
    world = large_world(campaigns)
    decider = Decider(Snapshot.load(world / "index", world / "model"), DecisionSettings())
    warm_up(decider)
    rng = np.random.default_rng(2026)
    demo = read_world(world)
    return decider, [sample_auction(demo, rng) for _ in range(512)]


@pytest.mark.slow
def test_decide_100k_campaigns(benchmark: BenchmarkFixture) -> None:
    _decide_benchmark(benchmark, *_large(100_000))


@pytest.mark.slow
def test_decide_1m_campaigns(benchmark: BenchmarkFixture) -> None:
    _decide_benchmark(benchmark, *_large(1_000_000))


def test_faiss_match_10k(benchmark: BenchmarkFixture, decider: Decider, requests: list[BidRequest]) -> None:
    bundle = decider.snapshot.bundle
    profile = requests[0].user
    user = user_vector(profile.tag_vector, profile.tags, bundle.vocab)
    assert user is not None
    rows, scores = match(bundle.searcher, bundle.persona_rows, user, 100)
    assert np.all(np.diff(scores) <= 1e-6) and len(rows) > 0
    benchmark(match, bundle.searcher, bundle.persona_rows, user, 100)
