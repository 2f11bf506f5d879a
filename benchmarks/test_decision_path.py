"""The decision path without gRPC at 10,000 campaigns, and its costliest stages.

Run: make bench-decision. Each benchmark checks its answer before it is timed; none asserts a time.
The stage benchmarks are the reference the whole path is read against (same run, same machine).
"""

from __future__ import annotations

import itertools

import numpy as np
from pytest_benchmark.fixture import BenchmarkFixture

from personabid.decision.match import match
from personabid.decision.pipeline import Decider
from personabid.decision.pricing import price
from personabid.decision.request import AuctionRequest
from personabid.decision.score import candidate_features, request_tokens, slot_token
from personabid.decision.uservec import user_vector


def test_decide_10k_campaigns(
    benchmark: BenchmarkFixture, decider: Decider, requests: list[AuctionRequest]
) -> None:
    decisions = [decider.decide(r) for r in requests[:100]]
    assert sum(1 for d in decisions if d.bids) >= 60, "most demo users should get a bid"
    cycle = itertools.cycle(requests)
    benchmark(lambda: decider.decide(next(cycle)))


def test_faiss_match_10k(
    benchmark: BenchmarkFixture, decider: Decider, requests: list[AuctionRequest]
) -> None:
    bundle = decider.snapshot.index
    user = user_vector(requests[0].tag_vector, requests[0].tags, bundle.vocab)
    assert user is not None
    rows, scores = match(bundle.index, bundle.persona_rows, user, 100)
    assert np.all(np.diff(scores) <= 1e-6) and len(rows) > 0
    benchmark(match, bundle.index, bundle.persona_rows, user, 100)


def test_pctr_100_candidates(benchmark: BenchmarkFixture, decider: Decider) -> None:
    model, table = decider.snapshot.model, decider.snapshot.index.campaigns
    rows = np.arange(100, dtype=np.int32)
    scores = np.linspace(0.3, 0.95, 100, dtype=np.float32)
    context, slot = request_tokens(4, "ios", "USA"), slot_token(320, 50)

    def score() -> np.ndarray:
        return model.pctr(candidate_features(model.spec, table, rows, scores, context, slot))

    pctr = score()
    assert pctr.shape == (100,) and np.all((pctr > 0) & (pctr < 1))
    benchmark(score)


def test_price_100_candidates(benchmark: BenchmarkFixture, decider: Decider) -> None:
    table = decider.snapshot.index.campaigns
    pctr = np.full(100, 0.02, dtype=np.float32)
    base, cap = table.base_bid[:100], table.max_bid[:100]
    bids = price(base, cap, pctr, 0.02, 0.0)
    np.testing.assert_allclose(bids, np.minimum(base, cap))
    benchmark(price, base, cap, pctr, 0.02, 0.0)
