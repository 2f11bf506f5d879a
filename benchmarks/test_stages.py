"""The decision's stages one by one, at K = 10, 50 and 100 candidates (10,000 campaigns).

The candidates are real: the top K campaigns FAISS matches for a demo-world user, so that the filters
see the mix of targeting a request meets. Each benchmark checks its answer (against the definition,
written out plainly) before it is timed; none asserts a time.

The request-level filters run once per request; the impression's steps (a creative that fits, the deals,
the floor) once per impression, on an impression that offers a banner of two sizes and a video, blocks a
creative attribute and carries two deals, one of them closed to personabid's seat.
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
from personabid.decision.creatives import fit
from personabid.decision.deals import deal_terms
from personabid.decision.eligibility import NAMES
from personabid.decision.match import match
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.pricing import price
from personabid.decision.slots import needs_of
from personabid.decision.uservec import user_vector
from personabid.demo import read_world
from personabid.index.campaigns import CampaignSpec, CampaignTable, Creative
from personabid.openrtb.request import Banner, BidRequest, Deal, Format, Imp, Pmp, Video
from personabid.spend.control import SpendControl, SpendSettings
from personabid.spend.store import MemoryStore

KS = (10, 50, 100)
NOW = 1_763_900_000  # inside the demo world's schedules
BCAT = ("IAB25", "IAB7-39")
PAGE = ("IAB12",)
WLANG = ("en", "de")
FLOOR = 1.5
# The impression of the creative, deal and floor steps.
SIZES = ((300, 250), (320, 50))
BATTR = (3,)  # expandable (automatic): some demo creatives carry it
VIDEO_MIMES = ("video/mp4",)
VIDEO_MAX_SECONDS = 20  # the demo's videos last 15 or 30 seconds
VIDEO_PROTOCOLS = (3, 7)  # VAST 3.0 and 4.0
OPEN_DEAL, CLOSED_DEAL = "deal-1", "deal-2"
IMP = Imp(
    id="1",
    banner=Banner(
        w=SIZES[0][0], h=SIZES[0][1], format=tuple(Format(w=w, h=h) for w, h in SIZES[1:]), battr=BATTR
    ),
    video=Video(mimes=VIDEO_MIMES, maxduration=VIDEO_MAX_SECONDS, protocols=VIDEO_PROTOCOLS),
    pmp=Pmp(
        deals=(
            Deal(id=OPEN_DEAL, bidfloor=2.0),
            Deal(id=CLOSED_DEAL, bidfloor=1.0, wseat=("another-seat",)),
        )
    ),
    bidfloor=FLOOR,
)


@pytest.fixture(scope="module")
def specs(bench_dir: Path, decider: Decider) -> list[CampaignSpec]:
    """The campaigns as the world specifies them, row for row: what the filters' checks read."""
    table = decider.snapshot.bundle.campaigns
    specs, _ = read_world(bench_dir).campaigns(len(table))
    assert [s.id for s in specs] == table.campaign_id.tolist()
    return specs


def _candidates(decider: Decider, request: BidRequest, k: int) -> tuple[np.ndarray, np.ndarray]:
    bundle = decider.snapshot.bundle
    user = user_vector(request.user.tag_vector, request.user.tags, bundle.vocab)
    assert user is not None
    rows, scores = match(bundle.searcher, bundle.persona_rows, user, 200)
    assert len(rows) >= k
    return rows[:k], scores[:k]


def test_user_vector_sparse_tags(
    benchmark: BenchmarkFixture, decider: Decider, requests: list[BidRequest]
) -> None:
    vocab, tags = decider.snapshot.bundle.vocab, requests[0].user.tags
    vector = user_vector(None, tags, vocab)
    assert vector is not None and vector.shape == (1, vocab.dims)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert all(vector[0, vocab.position(tag.id)] > 0 for tag in tags if tag.weight > 0)
    benchmark(user_vector, None, tags, vocab)


def test_user_vector_dense(benchmark: BenchmarkFixture, decider: Decider, requests: list[BidRequest]) -> None:
    vocab = decider.snapshot.bundle.vocab
    dense = vocab.dense({tag.id: tag.weight for tag in requests[0].user.tags})
    vector = user_vector(dense, (), vocab)
    assert vector is not None
    np.testing.assert_allclose(vector[0], dense / np.linalg.norm(dense), rtol=1e-5)
    benchmark(user_vector, dense, (), vocab)


def _blocked(table: CampaignTable, rows: np.ndarray) -> tuple[str, str]:
    """An advertiser domain and an app bundle of the candidates, to block: badv and bapp remove some."""
    bundles = [str(b) for b in table.bundle[rows] if b]
    return str(table.adomain[rows[0]]), bundles[0] if bundles else "com.nobody.app"


def _filter_cases(
    table: CampaignTable, request: BidRequest, badv: str, bapp: str
) -> dict[str, Callable[..., np.ndarray]]:
    """Each step as f(rows, scores) -> mask, as the pipeline applies it: the request-level filters on a
    request that blocks categories, an advertiser and an app and allows two languages; the spend
    filters; the impression's steps on IMP."""
    device = request.device
    context = filters.context_for(
        table,
        NOW,
        device.devicetype,
        device.geo.country,
        device.os,
        bcat=BCAT,
        badv=(badv,),
        region=device.geo.region,
        site_categories=PAGE,
        bapp=(bapp,),
        wlang=WLANG,
    )
    spend = SpendControl(MemoryStore(), SpendSettings())
    settings = DecisionSettings()
    return {
        **filters.request_predicates(table, context),
        "budget": lambda r, s: spend.budget_left(table, r) > 0,
        "frequency": lambda r, s: spend.under_cap(table, r, "user-1"),
        "pacing": lambda r, s: spend.paced_in(table, r),
        # The impression's needs are read off its objects once per impression, as the pipeline does.
        "creative": lambda r, s: fit(table, r, needs_of(table, IMP)) >= 0,
        "deal": lambda r, s: deal_terms(table, r, IMP, settings.seat, settings.currencies).eligible,
        "floor": lambda r, s: filters.floor_reachable(table, r, FLOOR),
    }


def _plays_video(c: Creative) -> bool:
    return c.mime in VIDEO_MIMES and c.duration <= VIDEO_MAX_SECONDS and c.protocol in VIDEO_PROTOCOLS


def _fits(c: Creative) -> bool:
    """Whether IMP takes creative `c`, by the definition (creatives.py's docstring), written out."""
    if any(a in BATTR for a in c.attr):
        return False
    if c.type == "banner":
        return (c.w, c.h) in SIZES
    return c.type == "video" and _plays_video(c)  # no audio, no native offered


# What each step keeps, by its definition, row by row from the campaigns' specs (for the checks, not
# for speed).
def _expected(
    name: str,
    specs: list[CampaignSpec],
    request: BidRequest,
    rows: np.ndarray,
    scores: np.ndarray,
    badv: str,
    bapp: str,
) -> np.ndarray:
    device = request.device
    country, os = device.geo.country.upper(), device.os.lower()
    plain: dict[str, Callable[[int, CampaignSpec], bool]] = {
        "similarity": lambda i, s: scores[i] >= s.min_match,
        "schedule": lambda i, s: s.start <= NOW and (s.end == 0 or s.end > NOW),
        "bcat": lambda i, s: not any(s.category == b or s.category.startswith(b + "-") for b in BCAT),
        "badv": lambda i, s: s.adomain != badv,
        "bapp": lambda i, s: s.bundle != bapp,
        # A campaign that states no language bids only where no language is asked for.
        "wlang": lambda i, s: s.language in WLANG,
        # The request names no region: region-targeted campaigns are out.
        "geo": lambda i, s: (not s.countries or country in s.countries) and not s.regions,
        "site_category": lambda i, s: (
            not any(c == b or c.split("-", 1)[0] == b for c in PAGE for b in s.blocked_categories)
        ),
        "device": lambda i, s: (
            (not s.device_types or device.devicetype in s.device_types) and (not s.os or os in s.os)
        ),
        "budget": lambda i, s: True,  # nothing spent yet
        "frequency": lambda i, s: True,  # the user has seen nothing
        "pacing": lambda i, s: True,  # every campaign starts the day at rate 1
        "creative": lambda i, s: any(_fits(c) for c in s.creatives),
        # Through the open deal, or in the open auction; the closed deal's members only if not bound to it.
        "deal": lambda i, s: OPEN_DEAL in s.deals or not s.deal_only,
        "floor": lambda i, s: s.max_bid >= FLOOR,
    }
    return np.array([bool(plain[name](i, specs[int(r)])) for i, r in enumerate(rows)])


SPEND_FILTERS = ("budget", "frequency", "pacing")
FILTERS = tuple(name for name in NAMES if name not in SPEND_FILTERS)
IMPRESSION_STEPS = ("creative", "deal", "floor")


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("name", FILTERS + SPEND_FILTERS + IMPRESSION_STEPS)
def test_filter(
    benchmark: BenchmarkFixture,
    decider: Decider,
    requests: list[BidRequest],
    specs: list[CampaignSpec],
    name: str,
    k: int,
) -> None:
    table = decider.snapshot.bundle.campaigns
    rows, scores = _candidates(decider, requests[1], k)
    badv, bapp = _blocked(table, rows)
    mask_of = _filter_cases(table, requests[1], badv, bapp)[name]
    mask = mask_of(rows, scores)
    assert mask.dtype == bool and mask.shape == (k,)
    np.testing.assert_array_equal(mask, _expected(name, specs, requests[1], rows, scores, badv, bapp))
    benchmark(mask_of, rows, scores)


@pytest.mark.parametrize("k", KS)
def test_creative_fit_kernel(
    benchmark: BenchmarkFixture,
    decider: Decider,
    requests: list[BidRequest],
    specs: list[CampaignSpec],
    k: int,
) -> None:
    """The kernel alone, on the impression's needs read beforehand: which creative each candidate shows."""
    table = decider.snapshot.bundle.campaigns
    rows, _ = _candidates(decider, requests[1], k)
    needs = needs_of(table, IMP)
    chosen = fit(table, rows, needs)
    expected = []
    for row in rows.tolist():
        first = next((i for i, c in enumerate(specs[row].creatives) if _fits(c)), None)
        expected.append(-1 if first is None else int(table.creative_offsets[row]) + first)
    np.testing.assert_array_equal(chosen, expected)
    assert chosen.dtype == np.int64 and (chosen >= 0).any()
    benchmark(fit, table, rows, needs)


@pytest.mark.parametrize("k", KS)
def test_pctr_features(
    benchmark: BenchmarkFixture, decider: Decider, requests: list[BidRequest], k: int
) -> None:
    model, table = decider.snapshot.model, decider.snapshot.bundle.campaigns
    rows, scores = _candidates(decider, requests[2], k)
    context, slot = request_tokens(4, "ios", "USA"), slot_token(320, 50)
    indices = candidate_features(model.spec, table, rows, scores, context, slot)
    assert indices.shape == (k, model.spec.width) and indices.min() >= 0
    benchmark(candidate_features, model.spec, table, rows, scores, context, slot)


@pytest.mark.parametrize("k", KS)
def test_pctr_kernel(
    benchmark: BenchmarkFixture, decider: Decider, requests: list[BidRequest], k: int
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
