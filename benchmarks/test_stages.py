"""The decision's stages one by one, at K = 10, 50 and 100 candidates (10,000 campaigns).

The candidates are real: the top K campaigns FAISS matches for a demo-world user, so that the filters
see the mix of targeting a request meets. Each benchmark checks its answer (against the definition,
written out plainly) before it is timed; none asserts a time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from personabid.ctr.features import request_tokens, slot_token
from personabid.decision import filters
from personabid.decision.candidates import candidate_features
from personabid.decision.match import match
from personabid.decision.pipeline import Decider
from personabid.decision.pricing import price
from personabid.decision.request import AuctionRequest
from personabid.decision.uservec import user_vector
from personabid.demo import read_world
from personabid.index.campaigns import CampaignSpec, CampaignTable
from personabid.spend.control import SpendControl, SpendSettings
from personabid.spend.store import MemoryStore

KS = (10, 50, 100)
NOW = 1_763_900_000  # inside the demo world's schedules
BCAT = ("IAB25", "IAB7-39")
PAGE = ("IAB12",)
SIZE = "300x250"
FLOOR = 1.5


@pytest.fixture(scope="module")
def specs(bench_dir: Path, decider: Decider) -> list[CampaignSpec]:
    """The campaigns as the world specifies them, row for row: what the filters' checks read."""
    table = decider.snapshot.bundle.campaigns
    specs, _ = read_world(bench_dir).campaigns(len(table))
    assert [s.id for s in specs] == table.campaign_id.tolist()
    return specs


def _candidates(decider: Decider, request: AuctionRequest, k: int) -> tuple[np.ndarray, np.ndarray]:
    bundle = decider.snapshot.bundle
    user = user_vector(request.tag_vector, request.tags, bundle.vocab)
    assert user is not None
    rows, scores = match(bundle.index, bundle.persona_rows, user, 200)
    assert len(rows) >= k
    return rows[:k], scores[:k]


def test_user_vector_sparse_tags(
    benchmark: BenchmarkFixture, decider: Decider, requests: list[AuctionRequest]
) -> None:
    vocab, request = decider.snapshot.bundle.vocab, requests[0]
    vector = user_vector(None, request.tags, vocab)
    assert vector is not None and vector.shape == (1, vocab.dims)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert all(vector[0, vocab.position(tag)] > 0 for tag, weight in request.tags if weight > 0)
    benchmark(user_vector, None, request.tags, vocab)


def test_user_vector_dense(
    benchmark: BenchmarkFixture, decider: Decider, requests: list[AuctionRequest]
) -> None:
    vocab = decider.snapshot.bundle.vocab
    dense = vocab.dense(dict(requests[0].tags))
    vector = user_vector(dense, (), vocab)
    assert vector is not None
    np.testing.assert_allclose(vector[0], dense / np.linalg.norm(dense), rtol=1e-5)
    benchmark(user_vector, dense, (), vocab)


def _filter_cases(table: CampaignTable, request: AuctionRequest) -> dict[str, Callable[..., np.ndarray]]:
    """Each filter as f(rows, scores) -> mask, on a request that blocks a category and an advertiser."""
    context = filters.context_for(
        table,
        NOW,
        request.devicetype,
        request.country,
        request.os,
        bcat=BCAT,
        badv=(str(table.adomain[0]),),
        site_categories=PAGE,
    )
    size_code = table.code_of("sizes", SIZE)
    spend = SpendControl(MemoryStore(), SpendSettings())
    return {
        "similarity": lambda r, s: filters.similarity_floor(table, r, s),
        "schedule": lambda r, s: filters.schedule(table, r, context.now),
        "bcat": lambda r, s: filters.blocked_category(table, r, context.blocked_categories),
        "badv": lambda r, s: filters.blocked_advertiser(table, r, context.blocked_domains),
        "geo": lambda r, s: filters.geo(table, r, context.country_code, context.region_code),
        "site_category": lambda r, s: filters.site_category(table, r, context.site_categories),
        "device": lambda r, s: filters.device(table, r, context.devicetype, context.os_code),
        "floor": lambda r, s: filters.floor_reachable(table, r, FLOOR),
        "size": lambda r, s: filters.creative_size(table, r, size_code),
        "budget": lambda r, s: spend.budget_left(table, r) > 0,
        "frequency": lambda r, s: spend.under_cap(table, r, "user-1"),
        "pacing": lambda r, s: spend.paced_in(table, r),
    }


# What each filter keeps, by its definition, row by row from the campaigns' specs (for the checks, not
# for speed).
def _expected(
    name: str,
    table: CampaignTable,
    specs: list[CampaignSpec],
    request: AuctionRequest,
    rows: np.ndarray,
    scores: np.ndarray,
) -> np.ndarray:
    country, os = request.country.upper(), request.os.lower()
    plain: dict[str, Callable[[int, CampaignSpec], bool]] = {
        "similarity": lambda i, s: scores[i] >= s.min_match,
        "schedule": lambda i, s: s.start <= NOW and (s.end == 0 or s.end > NOW),
        "bcat": lambda i, s: not any(s.category == b or s.category.startswith(b + "-") for b in BCAT),
        "badv": lambda i, s: s.adomain != str(table.adomain[0]),
        # The request names no region: region-targeted campaigns are out.
        "geo": lambda i, s: (not s.countries or country in s.countries) and not s.regions,
        "site_category": lambda i, s: (
            not any(c == b or c.split("-", 1)[0] == b for c in PAGE for b in s.blocked_categories)
        ),
        "device": lambda i, s: (
            (not s.device_types or request.devicetype in s.device_types) and (not s.os or os in s.os)
        ),
        "floor": lambda i, s: s.max_bid >= FLOOR,
        "size": lambda i, s: any(f"{c.w}x{c.h}" == SIZE for c in s.creatives),
        "budget": lambda i, s: True,  # nothing spent yet
        "frequency": lambda i, s: True,  # the user has seen nothing
        "pacing": lambda i, s: True,  # every campaign starts the day at rate 1
    }
    return np.array([bool(plain[name](i, specs[int(r)])) for i, r in enumerate(rows)])


FILTERS = ("similarity", "schedule", "bcat", "badv", "geo", "site_category", "device", "floor", "size")
SPEND_FILTERS = ("budget", "frequency", "pacing")


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("name", FILTERS + SPEND_FILTERS)
def test_filter(
    benchmark: BenchmarkFixture,
    decider: Decider,
    requests: list[AuctionRequest],
    specs: list[CampaignSpec],
    name: str,
    k: int,
) -> None:
    table = decider.snapshot.bundle.campaigns
    rows, scores = _candidates(decider, requests[1], k)
    mask_of = _filter_cases(table, requests[1])[name]
    mask = mask_of(rows, scores)
    assert mask.dtype == bool and mask.shape == (k,)
    np.testing.assert_array_equal(mask, _expected(name, table, specs, requests[1], rows, scores))
    benchmark(mask_of, rows, scores)


@pytest.mark.parametrize("k", KS)
def test_pctr_features(
    benchmark: BenchmarkFixture, decider: Decider, requests: list[AuctionRequest], k: int
) -> None:
    model, table = decider.snapshot.model, decider.snapshot.bundle.campaigns
    rows, scores = _candidates(decider, requests[2], k)
    context, slot = request_tokens(4, "ios", "USA"), slot_token(320, 50)
    indices = candidate_features(model.spec, table, rows, scores, context, slot)
    assert indices.shape == (k, model.spec.width) and indices.min() >= 0
    benchmark(candidate_features, model.spec, table, rows, scores, context, slot)


@pytest.mark.parametrize("k", KS)
def test_pctr_kernel(
    benchmark: BenchmarkFixture, decider: Decider, requests: list[AuctionRequest], k: int
) -> None:
    model, table = decider.snapshot.model, decider.snapshot.bundle.campaigns
    rows, scores = _candidates(decider, requests[2], k)
    indices = candidate_features(
        model.spec, table, rows, scores, request_tokens(4, "ios", "USA"), slot_token(320, 50)
    )
    pctr = model.pctr(indices)
    assert pctr.shape == (k,) and np.all((pctr > 0) & (pctr < 1))
    # The same pCTR for the same features, whatever the other candidates beside them.
    np.testing.assert_allclose(model.pctr(indices[:1]), pctr[:1], rtol=1e-6)
    benchmark(model.pctr, indices)


@pytest.mark.parametrize("k", KS)
def test_price_kernel(benchmark: BenchmarkFixture, decider: Decider, k: int) -> None:
    table = decider.snapshot.bundle.campaigns
    rng = np.random.default_rng(k)
    rows = rng.choice(len(table), size=k, replace=False)
    base, cap = table.base_bid[rows], table.max_bid[rows]
    pctr = rng.uniform(0.005, 0.08, size=k).astype(np.float32)
    bids = price(base, cap, pctr, 0.02, 0.5)
    expected = np.minimum(base * pctr.astype(np.float64) / 0.02, cap)
    np.testing.assert_allclose(bids, np.where(expected >= 0.5, expected, 0.0), rtol=1e-6)
    benchmark(price, base, cap, pctr, 0.02, 0.5)
