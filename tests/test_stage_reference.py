"""The decision path against a slow, obviously correct reference: a plain loop over the matched campaigns.

The reference takes the match step's candidates and judges each campaign as its catalog entry states it
(strings and tuples, not code tables and bitsets): each filter a plain `if`, then the model's pCTR of that
one campaign, the price by the formula, the best bid of each impression, and when nothing survives the
reason of the stage where the last candidate fell (PROGRESS across impressions). Budgets, frequency caps
and pacing are asked of a twin SpendControl one campaign at a time. Compared with Decider.decide on a few
small random worlds, some with random targeting, schedules, similarity floors and capped bids, with and
without spend control: the same bids (impression, campaign, creative, price) and the same no-bid reasons.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personabid import wire
from personabid.client import sample_request
from personabid.ctr.features import (
    LOGGED_TAGS,
    MULTI_VALUED,
    NO_TAG,
    request_tokens,
    slot_token,
    tag_token,
    time_tokens,
)
from personabid.decision.candidates import candidate_features
from personabid.decision.consent import consent_refusal
from personabid.decision.match import match
from personabid.decision.pipeline import Decider, Decision, DecisionSettings
from personabid.decision.reasons import PROGRESS, NoBid
from personabid.decision.request import AuctionRequest, Impression
from personabid.decision.snapshot import Snapshot
from personabid.decision.uservec import strongest_tags, user_vector
from personabid.demo import CATALOG_FILE, DemoSpec, build_demo
from personabid.index.campaigns import CampaignSpec, build_table
from personabid.index.catalog import read_catalog
from personabid.spend.control import SpendControl, SpendSettings
from personabid.spend.pacing import PacingParams
from personabid.spend.store import MICROS_PER_CPM, MemoryStore, Settlement, utc_day
from personabid.world import COUNTRIES, DEVICES, SIZES, World
from tests.bid_records import bid_record
from tests.demo_world import TEST_WORLD
from tests.tcf import tc_string

NOW = 1_800_000_000
# Small worlds build in well under a second each. The first keeps the demo's campaigns as they are; the
# others get random targeting, schedules, similarity floors and capped bids, which demo catalogs lack.
WORLDS = [(41, False), (42, True), (43, True)]
REGIONS = ("CA", "NY", "TX")
OS_NAMES = tuple(sorted({os for _, os in DEVICES}))
SITE_CATEGORIES = ("IAB1", "IAB1-2", "IAB3", "IAB3-1", "IAB9", "IAB9-5", "IAB12", "IAB19-3")
REFERENCE = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True, repr=False)
class RefWorld:
    seed: int
    world: World
    snapshot: Snapshot
    specs: list[CampaignSpec]  # by campaign row

    def __repr__(self) -> str:
        # Hypothesis prints the arguments of a failing example; the whole catalog would be megabytes.
        return f"RefWorld(seed={self.seed}, campaigns={len(self.specs)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # Hypothesis's printer would otherwise walk every dataclass field


def targeted(specs: list[CampaignSpec], rng: np.random.Generator) -> list[CampaignSpec]:
    """The campaigns with random countries, regions, devices, OS, blocked site categories, schedules,
    similarity floors and capped bids."""

    def some(values: tuple[str, ...], most: int) -> tuple[str, ...]:
        return tuple(rng.choice(values, size=int(rng.integers(1, most + 1)), replace=False).tolist())

    out = []
    for spec in specs:
        changes: dict[str, object] = {}
        countries = some(COUNTRIES, 3) if rng.random() < 0.4 else ()
        if countries:
            changes["countries"] = countries
        if rng.random() < 0.15:
            country = str(rng.choice(countries or COUNTRIES))
            changes["regions"] = tuple(f"{country}-{r}" for r in some(REGIONS, 2))
        if rng.random() < 0.3:
            changes["device_types"] = tuple(
                sorted(int(t) for t in rng.choice(9, int(rng.integers(1, 5)), False))
            )
        if rng.random() < 0.25:
            changes["os"] = some(OS_NAMES, 2)
        if rng.random() < 0.2:
            changes["blocked_categories"] = some(SITE_CATEGORIES, 2)
        if rng.random() < 0.2:
            start = NOW + int(rng.integers(-3600, 3600))
            changes["start"] = start
            changes["end"] = 0 if rng.random() < 0.5 else start + int(rng.integers(1, 7200))
        if rng.random() < 0.3:
            changes["min_match"] = float(np.round(rng.uniform(0.0, 0.6), 3))
        if rng.random() < 0.3:
            # A base bid far above a shared cap: these campaigns bid exactly their max bid, so prices tie
            # (the pCTR decides) and a floor drawn equal to a cap is met exactly.
            changes["base_bid"] = float(rng.choice([20.0, 50.0]))
            changes["max_bid"] = float(rng.choice([2.0, 3.0]))
        out.append(replace(spec, **changes))  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module", params=WORLDS, ids=[f"seed {s}{' targeted' if t else ''}" for s, t in WORLDS])
def ref_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RefWorld:
    seed, retarget = request.param
    directory = tmp_path_factory.mktemp(f"world{seed}")
    build_demo(directory, DemoSpec(seed=seed, campaigns=200, impressions=60_000))
    world = World(seed)
    snapshot = Snapshot.load(directory / "index", directory / "model")
    catalog = read_catalog(directory / CATALOG_FILE, world.vocab)
    by_id = {spec.id: spec for spec in catalog.campaigns}
    specs = [by_id[str(c)] for c in snapshot.bundle.campaigns.campaign_id]
    if retarget:
        specs = targeted(specs, np.random.default_rng(seed))
        table, _, persona_rows = build_table(specs)
        assert np.array_equal(persona_rows, snapshot.bundle.persona_rows), "the rows must stay the index's"
        snapshot = Snapshot(
            bundle=dataclasses.replace(snapshot.bundle, campaigns=table), model=snapshot.model
        )
    return RefWorld(seed, world, snapshot, specs)


# -- the reference -----------------------------------------------------------------------------------------


def parent(category: str) -> str:
    return category.split("-", 1)[0]


def request_checks(
    spec: CampaignSpec,
    row: int,
    score: float,
    request: AuctionRequest,
    spend: SpendControl | None,
    ref: RefWorld,
) -> list[tuple[Callable[[], bool], NoBid]]:
    """The request-level filters in the pipeline's order, each with the no-bid it answers when it removes
    the last candidate."""
    table = ref.snapshot.bundle.campaigns
    country, region = request.country.upper(), request.region.upper()
    page = set(request.categories) | {parent(c) for c in request.categories}
    rows = np.array([row], dtype=np.int32)
    checks: list[tuple[Callable[[], bool], NoBid]] = [
        (lambda: bool(score >= np.float32(spec.min_match)), NoBid.UNMATCHED_USER),
        (lambda: spec.start <= NOW and (spec.end == 0 or spec.end > NOW), NoBid.NO_ELIGIBLE_CAMPAIGN),
        (
            lambda: spec.category not in request.bcat and parent(spec.category) not in request.bcat,
            NoBid.NO_ELIGIBLE_CAMPAIGN,
        ),
        (lambda: spec.adomain not in request.badv, NoBid.NO_ELIGIBLE_CAMPAIGN),
        (
            lambda: (
                (not spec.countries or country in spec.countries)
                and (not spec.regions or (region != "" and f"{country}-{region}" in spec.regions))
            ),
            NoBid.NO_ELIGIBLE_CAMPAIGN,
        ),
        (lambda: not page.intersection(spec.blocked_categories), NoBid.NO_ELIGIBLE_CAMPAIGN),
        (
            lambda: (
                (not spec.device_types or request.devicetype in spec.device_types)
                and (not spec.os or request.os.lower() in spec.os)
            ),
            NoBid.NO_ELIGIBLE_CAMPAIGN,
        ),
    ]
    if spend is not None:
        # Pacing draws one number per campaign that reaches it, in match order: the pipeline's one draw
        # per survivor, from a twin generator.
        checks += [
            (lambda: bool(spend.budget_left(table, rows)[0] > 0), NoBid.BUDGET_EXHAUSTED),
            (lambda: bool(spend.under_cap(table, rows, request.user_id)[0]), NoBid.FREQUENCY_CAPPED),
            (lambda: bool(spend.paced_in(table, rows)[0]), NoBid.PACED),
        ]
    return checks


@dataclass(frozen=True)
class RefBid:
    imp_id: str
    campaign_id: str
    creative_id: str
    price: float


def reference_decide(
    ref: RefWorld, request: AuctionRequest, spend: SpendControl | None, top_k: int
) -> tuple[list[RefBid], NoBid | None]:
    """Bids, or no bid and its reason, for a valid request without tmax, one campaign at a time."""
    if request.coppa == 1:
        return [], NoBid.COPPA_RESTRICTED
    if request.gdpr == 1 and consent_refusal(request.consent) is not None:
        return [], NoBid.NO_CONSENT
    bundle, model = ref.snapshot.bundle, ref.snapshot.model
    user = user_vector(request.tag_vector, request.tags, bundle.vocab)
    if user is None:
        return [], NoBid.UNMATCHED_USER
    rows, scores = match(bundle.index, bundle.persona_rows, user, top_k)

    survivors: list[tuple[int, float]] = []
    furthest = -1  # the index of the check the furthest candidate failed
    reasons: list[NoBid] = []
    for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
        checks = request_checks(ref.specs[row], row, score, request, spend, ref)
        reasons = [reason for _, reason in checks]
        passed = 0
        for check, _ in checks:
            if not check():
                break
            passed += 1
        if passed == len(checks):
            survivors.append((row, score))
        else:
            furthest = max(furthest, passed)
    if not survivors:
        return [], reasons[furthest] if reasons else NoBid.UNMATCHED_USER

    context: dict[str, Any] = {
        **request_tokens(request.devicetype, request.os, request.country),
        **time_tokens(NOW),
    }
    if MULTI_VALUED in model.spec.fields:
        tag_tokens = np.array([*(tag_token(t) for t in bundle.vocab.tags), NO_TAG], dtype=np.uint64)
        context[MULTI_VALUED] = tag_tokens[strongest_tags(user, LOGGED_TAGS)]

    bids: list[RefBid] = []
    overall = NoBid.NO_ELIGIBLE_CAMPAIGN
    for imp in request.impressions:
        outcome = reference_impression(ref, request, imp, survivors, context, spend)
        if isinstance(outcome, RefBid):
            bids.append(outcome)
        elif PROGRESS[outcome] > PROGRESS[overall]:
            overall = outcome
    return (bids, None) if bids else ([], overall)


def reference_impression(
    ref: RefWorld,
    request: AuctionRequest,
    imp: Impression,
    survivors: list[tuple[int, float]],
    context: dict[str, Any],
    spend: SpendControl | None,
) -> RefBid | NoBid:
    table, model = ref.snapshot.bundle.campaigns, ref.snapshot.model
    any_size = imp.w == 0 or imp.h == 0
    # A campaign can bid when its max bid reaches the floor and it has a creative of the slot's size;
    # the floor is judged first, so an impression whose floor no candidate reaches is below floor.
    reach = [(row, score) for row, score in survivors if ref.specs[row].max_bid >= imp.bidfloor]
    if not reach:
        return NoBid.BELOW_FLOOR
    fits = [
        (row, score)
        for row, score in reach
        if any_size or any((c.w, c.h) == (imp.w, imp.h) for c in ref.specs[row].creatives)
    ]
    if not fits:
        return NoBid.NO_ELIGIBLE_CAMPAIGN

    offers: list[tuple[float, float, int]] = []  # (price, pctr, row), in match order; price 0: no bid
    short_of_budget = False  # a bid the remaining budget could not cover
    for row, score in fits:
        spec = ref.specs[row]
        features = candidate_features(
            model.spec,
            table,
            np.array([row], dtype=np.int32),
            np.array([score], dtype=np.float32),
            context,
            slot_token(imp.w, imp.h),
        )
        pctr = float(model.pctr(features)[0])
        bid = min(spec.base_bid * pctr / model.avg_ctr, spec.max_bid)
        if not (bid > 0 and bid >= imp.bidfloor):
            bid = 0.0
        rows = np.array([row], dtype=np.int32)
        if bid > 0 and spend is not None and spend.budget_left(table, rows)[0] < round(bid * MICROS_PER_CPM):
            bid = 0.0  # no bid whose cost the remaining budget cannot cover
            short_of_budget = True
        offers.append((bid, pctr, row))

    refused = False  # a reservation the store refused: the campaign's budget ran out meanwhile
    while True:
        best = -1  # the highest price, then the highest pCTR, then the first matched
        for i, (bid, pctr, _) in enumerate(offers):
            if bid > 0 and (best < 0 or (bid, pctr) > offers[best][:2]):
                best = i
        if best < 0:
            return NoBid.BUDGET_EXHAUSTED if refused or short_of_budget else NoBid.BELOW_FLOOR
        bid, pctr, row = offers[best]
        key = f"{request.id}:{imp.id}"
        if spend is None or spend.reserve(table, row, bid, key, bid_record(key)):
            break
        offers[best], refused = (0.0, pctr, row), True

    spec = ref.specs[row]
    creative = next(c for c in spec.creatives if any_size or (c.w, c.h) == (imp.w, imp.h))
    return RefBid(imp.id, spec.id, creative.id, bid)


# -- the comparison ----------------------------------------------------------------------------------------


@st.composite
def auctions(draw: st.DrawFn, ref: RefWorld) -> AuctionRequest:
    """A valid request without tmax: a user of the world (or a campaign's own persona, which matches it
    closely), in a random context, on one to four slots whose floors range from 0 to above every max bid."""
    table = ref.snapshot.bundle.campaigns
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    users = ref.world.users(1, rng)
    source = draw(st.sampled_from(["user", "user", "persona", "sparse"]))
    vector: np.ndarray | None
    tags: tuple[tuple[str, float], ...] = ()
    if source == "persona":
        spec = ref.specs[draw(st.integers(0, len(ref.specs) - 1))]
        vector = np.asarray(spec.personas[0], dtype=np.float32)
    elif source == "sparse":
        weights = users.vectors[0]
        vector = None
        tags = tuple((ref.world.vocab.tags[p], float(weights[p])) for p in np.flatnonzero(weights))
    else:
        vector = users.vectors[0]
    max_bids = sorted(set(table.max_bid.tolist()))
    floors = st.one_of(
        st.sampled_from([0.0, 0.1, 1.0, 2.0]),
        st.sampled_from(max_bids),  # exactly a campaign's cap: reachable, and only just
        st.floats(0.0, max_bids[-1] * 1.2),
        st.just(max_bids[-1] * 2),
    )
    sizes = st.one_of(st.sampled_from(SIZES), st.sampled_from([(0, 0), (300, 0), (1, 1)]))
    impressions = tuple(
        Impression(id=f"imp-{i}", w=w, h=h, bidfloor=draw(floors))
        for i, (w, h) in enumerate(draw(st.lists(sizes, min_size=1, max_size=4)))
    )
    categories = st.lists(st.sampled_from(SITE_CATEGORIES), max_size=3)
    gdpr = draw(st.sampled_from([0, 0, 1]))
    return AuctionRequest(
        id=f"auction-{seed}",
        impressions=impressions,
        tag_vector=vector,
        tags=tags,
        user_id=f"user-{draw(st.integers(0, 3))}",
        devicetype=draw(st.one_of(st.just(int(users.devicetype[0])), st.integers(0, 8))),
        os=draw(st.one_of(st.just(str(users.os[0])), st.sampled_from([*OS_NAMES, "", "iOS", "linux"]))),
        country=draw(
            st.one_of(st.just(str(users.country[0])), st.sampled_from([*COUNTRIES, "", "usa", "ATA"]))
        ),
        region=draw(st.sampled_from(["", *REGIONS, "ca", "ZZ"])),
        categories=tuple(draw(categories)),
        bcat=tuple(
            draw(st.lists(st.sampled_from(sorted(set(table.category.tolist()) | {"IAB1"})), max_size=3))
        ),
        badv=tuple(draw(st.lists(st.sampled_from(sorted(set(table.adomain.tolist()))), max_size=3))),
        coppa=draw(st.sampled_from([0] * 9 + [1])),
        gdpr=gdpr,
        consent=draw(st.sampled_from([tc_string({1, 3, 4}), tc_string({1, 3, 4}), "", tc_string({1, 2})]))
        if gdpr
        else "",
    )


@dataclass(frozen=True)
class SpendState:
    """Spend already made today, views already seen and the pacing start: applied alike to two stores."""

    seed: int
    exhausted: float  # share of campaigns with no budget left
    nearly: float  # share of campaigns with a few micros left, less than most bids cost
    capped: float  # share of capped campaigns the users have seen up to their cap
    initial_rate: float

    def control(self, ref: RefWorld) -> SpendControl:
        table = ref.snapshot.bundle.campaigns
        rng = np.random.default_rng(self.seed)
        spend = SpendControl(
            MemoryStore(),
            SpendSettings(pacing=PacingParams(initial_rate=self.initial_rate)),
            clock=lambda: NOW,
            rng=np.random.default_rng(self.seed),
        )
        day = utc_day(NOW)
        for row in range(len(table)):
            campaign, budget = str(table.campaign_id[row]), round(float(table.daily_budget[row]) * 1_000_000)
            draw = rng.random()
            # "Nearly" leaves 1 to 3000 micros: less than most bids cost (a 1 CPM bid costs 1000).
            spent = budget if draw < self.exhausted else budget - int(rng.integers(1, 3000))
            if draw < self.exhausted + self.nearly:
                spend.store.apply(
                    Settlement("bill", f"win:x{row}", 3600, day, campaign, f"x{row}:1", spent, NOW)
                )
            if table.freq_cap[row] > 0 and rng.random() < self.capped:
                for user in range(4):
                    for i in range(int(table.freq_cap[row])):
                        spend.store.add_view(
                            f"user-{user}", campaign, NOW - 60 - i, float(table.freq_window[row])
                        )
        spend.refresh(table)
        return spend


spend_states = st.builds(
    SpendState,
    seed=st.integers(0, 2**32 - 1),
    exhausted=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
    nearly=st.sampled_from([0.0, 0.3, 0.6, 1.0]),
    capped=st.sampled_from([0.0, 0.5, 1.0]),
    initial_rate=st.sampled_from([1.0, 0.5, 0.05]),
)


def pipeline_outcome(decision: Decision) -> tuple[list[RefBid], NoBid | None]:
    bids = [RefBid(b.imp_id, b.campaign_id, b.creative_id, b.price) for b in decision.bids]
    return bids, decision.nbr


def assert_same(got: tuple[list[RefBid], NoBid | None], expected: tuple[list[RefBid], NoBid | None]) -> None:
    (bids, nbr), (ref_bids, ref_nbr) = got, expected
    assert nbr == ref_nbr, f"no-bid reason {nbr!r}, the reference's {ref_nbr!r}"
    assert [(b.imp_id, b.campaign_id, b.creative_id) for b in bids] == [
        (b.imp_id, b.campaign_id, b.creative_id) for b in ref_bids
    ]
    assert [b.price for b in bids] == pytest.approx([b.price for b in ref_bids], rel=1e-9)


@REFERENCE
@given(data=st.data())
def test_pipeline_bids_as_the_reference_loop_without_spend_control(
    ref_world: RefWorld, data: st.DataObject
) -> None:
    request = data.draw(auctions(ref_world))
    settings_ = DecisionSettings()
    decider = Decider(ref_world.snapshot, settings_, clock=lambda: NOW)
    expected = reference_decide(ref_world, request, None, settings_.top_k)
    assert_same(pipeline_outcome(decider.decide(request)), expected)


@REFERENCE
@given(data=st.data())
def test_pipeline_bids_as_the_reference_loop_with_spend_control(
    ref_world: RefWorld, data: st.DataObject
) -> None:
    request = data.draw(auctions(ref_world))
    state = data.draw(spend_states)
    settings_ = DecisionSettings()
    decider = Decider(ref_world.snapshot, settings_, clock=lambda: NOW, spend=state.control(ref_world))
    expected = reference_decide(ref_world, request, state.control(ref_world), settings_.top_k)
    assert_same(pipeline_outcome(decider.decide(request)), expected)


def test_no_bid_for_want_of_budget_is_budget_exhausted(demo_dir: Path) -> None:
    snapshot = Snapshot.load(demo_dir / "index", demo_dir / "model")
    table = snapshot.bundle.campaigns
    # No pacing step (it would throttle campaigns ahead of plan): budget is the only thing in the way.
    spend = SpendControl(
        MemoryStore(),
        SpendSettings(pacing=PacingParams(step=0.0)),
        clock=lambda: NOW,
        rng=np.random.default_rng(0),
    )
    day = utc_day(NOW)
    for row, campaign in enumerate(table.campaign_id):
        # 10 micros left, and every bid that clears a floor of 0.1 CPM costs at least 100.
        budget = round(float(table.daily_budget[row]) * 1_000_000)
        spend.store.apply(
            Settlement("bill", f"win:x{row}", 3600, day, str(campaign), f"x{row}:1", budget - 10, NOW)
        )
    spend.refresh(table)
    unlimited = Decider(snapshot, DecisionSettings(), clock=lambda: NOW)
    short = Decider(snapshot, DecisionSettings(), clock=lambda: NOW, spend=spend)
    world, rng = World(TEST_WORLD.seed), np.random.default_rng(5)
    requests = [wire.to_auction(sample_request(world, rng)) for _ in range(20)]
    requests = [replace(r, tmax_ms=None) for r in requests if unlimited.decide(r).bids]
    assert requests, "some sample requests must get a bid when budgets are not in the way"
    assert {short.decide(r).nbr for r in requests} == {NoBid.BUDGET_EXHAUSTED}
