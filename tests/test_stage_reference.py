"""The decision path against a slow, obviously correct reference: a plain loop over the matched campaigns.

The user vector is a plain blend of the profile the request carries and of its signal keys through the
taxonomy's rules (the profile and what the exchange says of the user, unless privacy restricts them, and
the context). The reference takes the match
step's candidates and judges each campaign as its catalog entry states it
(strings and tuples, not code tables and bitsets): the seat and currency rules of the request, then each
request filter a plain `if` (similarity, schedule, bcat, badv, bapp, wlang, geo, site category, device;
budget, frequency and pacing, asked of a twin SpendControl one campaign at a time, unless the auction is a
test). Then, for each impression: the campaign's first creative the impression takes (a loop over its
creatives), the deal it bids through or the open auction (seat, advertiser, private auctions, floors
converted to USD by a plain table of rates), the floor against its max bid, the model's pCTR of that one
campaign, the price by the formula (a fixed-price deal at its floor), the best bid, its price in the
currency of the bids; and when nothing survives the reason of the stage where the last candidate fell
(PROGRESS across impressions). Compared with Decider.decide on a few small random worlds, some with random
targeting, schedules, similarity floors, capped bids, deals, creative attributes, plain-http creatives and
creative orders, with and without spend control: the same bids (impression, campaign, creative, price,
deal) in the same currency, the same no-bid reasons, and as many candidates removed by each filter.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personabid.client import sample_auction
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
from personabid.decision.currency import Currencies
from personabid.decision.match import match
from personabid.decision.pipeline import Decider, Decision, DecisionSettings
from personabid.decision.reasons import PROGRESS, NoBid
from personabid.decision.signals import context_keys, segment_keys
from personabid.decision.slots import slot_size
from personabid.decision.snapshot import Snapshot
from personabid.decision.uservec import strongest_tags
from personabid.demo import CATALOG_FILE, DemoSpec, build_demo
from personabid.index.campaigns import CampaignSpec, Creative, build_table
from personabid.index.catalog import read_catalog
from personabid.index.vocab import Vocabulary
from personabid.openrtb.request import (
    App,
    Audio,
    Banner,
    BidRequest,
    Content,
    Deal,
    Device,
    Format,
    Geo,
    Imp,
    Native,
    Pmp,
    Regs,
    Site,
    Tag,
    User,
    Video,
)
from personabid.profiles.taxonomy import standard
from personabid.spend.control import SpendControl, SpendSettings
from personabid.spend.pacing import PacingParams
from personabid.spend.store import MICROS_PER_CPM, MemoryStore, Settlement, utc_day
from personabid.world import COUNTRIES, DEALS, DEVICES, SIZES, World
from tests.bid_records import bid_record
from tests.demo_world import TEST_WORLD
from tests.outcomes import SEAT, takes
from tests.tcf import tc_string

NOW = 1_800_000_000
# Small worlds build in well under a second each. The first keeps the demo's campaigns as they are; the
# others get random targeting, schedules, similarity floors, capped bids, deals and creatives, which demo
# catalogs have few of.
WORLDS = [(41, False), (42, True), (43, True)]
REGIONS = ("CA", "NY", "TX")
OS_NAMES = tuple(sorted({os for _, os in DEVICES}))
SITE_CATEGORIES = ("IAB1", "IAB1-2", "IAB3", "IAB3-1", "IAB9", "IAB9-5", "IAB12", "IAB19-3")
# USD per unit: the decider's configuration and the reference's own table. XXX has no rate.
RATES = {"USD": 1.0, "EUR": 1.08, "JPY": 0.0067}
FIXED_PRICE = 3
NATIVE_REQUEST = '{"ver":"1.2","assets":[{"id":1,"required":1,"title":{"len":90}}]}'
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


def retouched(creatives: tuple[Creative, ...], rng: np.random.Generator) -> tuple[Creative, ...]:
    """The creatives in another order, some with AdCOM attributes, some served over plain http."""
    out = []
    for creative in creatives:
        if rng.random() < 0.5:
            attr = rng.choice(np.arange(1, 8), size=int(rng.integers(1, 3)), replace=False)
            creative = replace(creative, attr=tuple(sorted(int(a) for a in attr)))
        if rng.random() < 0.5:
            creative = replace(creative, landing=f"http://{creative.id}.example/")
        out.append(creative)
    order = rng.permutation(len(out)) if rng.random() < 0.5 else range(len(out))
    return tuple(out[i] for i in order)


def targeted(specs: list[CampaignSpec], rng: np.random.Generator) -> list[CampaignSpec]:
    """The campaigns with random countries, regions, devices, OS, blocked site categories, schedules,
    similarity floors, capped bids, deals and creatives."""

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
        if rng.random() < 0.25:
            changes["deals"] = some(DEALS, 2)
            changes["deal_only"] = bool(rng.random() < 0.3)
        if rng.random() < 0.4:
            changes["creatives"] = retouched(spec.creatives, rng)
        out.append(replace(spec, **changes))  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module", params=WORLDS, ids=[f"seed {s}{' targeted' if t else ''}" for s, t in WORLDS])
def ref_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RefWorld:
    seed, retarget = request.param
    directory = tmp_path_factory.mktemp(f"world{seed}")
    build_demo(directory, DemoSpec(seed=seed, campaigns=200, impressions=60_000, people=500))
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


def to_usd(amount: float, currency: str) -> float | None:
    rate = RATES.get(currency or "USD")
    return None if rate is None else amount * rate


def bid_currency(accepted: tuple[str, ...]) -> str | None:
    """USD when the exchange takes it or names no currency, else the first it takes that has a rate."""
    if not accepted or "USD" in accepted:
        return "USD"
    return next((c for c in accepted if c in RATES), None)


def restricted(request: BidRequest) -> bool:
    """Whether the user may not be profiled: COPPA, the GDPR without consent, do-not-track or
    limit-ad-tracking."""
    regs, device = request.regs, request.device
    return (
        regs.coppa == 1
        or (regs.gdpr == 1 and consent_refusal(request.user.consent) is not None)
        or device.dnt == 1
        or device.lmt == 1
    )


def user_key(request: BidRequest) -> str:
    if restricted(request):  # nobody is counted who may not be profiled
        return ""
    return request.user.buyeruid or request.user.id or request.device.ifa


def rule_vector(keys: list[str], vocab: Vocabulary) -> np.ndarray:
    """float64 (dims,) sum of the keys' rules, tag by tag, through the vocabulary's names."""
    vector = np.zeros(vocab.dims)
    for key in keys:
        for tag, weight in standard().rules(key):
            if vocab.position(tag) >= 0:
                vector[vocab.position(tag)] += weight
    return vector


def reference_user(request: BidRequest, vocab: Vocabulary) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """The blend, at the default weights (1.0, 0.6 and 0.4), of the profile the caller sent (tag_vector,
    else tags: it stands for a stored one; there is no profile store), what the exchange says of the user
    (segment keys) and the context, each a unit vector; the first two only when privacy allows."""
    text = standard().text_keys
    profile = np.zeros(vocab.dims)
    segments = np.zeros(vocab.dims)
    if not restricted(request):
        person = request.user
        segments = rule_vector(segment_keys(person, time.gmtime(NOW).tm_year, text), vocab)
        if person.tag_vector is not None and len(person.tag_vector) > 0:
            profile = np.asarray(person.tag_vector, dtype=np.float64)
        else:
            for tag in person.tags:  # a tag sent twice counts at its last weight
                if vocab.position(tag.id) >= 0:
                    profile[vocab.position(tag.id)] = tag.weight
    context = rule_vector(context_keys(request, text), vocab)
    total, sources = np.zeros(vocab.dims), []
    for name, weight, source in (
        ("profile", 1.0, profile),
        ("segments", 0.6, segments),
        ("context", 0.4, context),
    ):
        largest = np.max(np.abs(source))
        if largest > 0:  # scaled by the largest first, as weights up to float32's limit would overflow
            total += weight * (source / largest) / np.linalg.norm(source / largest)
            sources.append(name)
    norm = np.linalg.norm(total)
    if norm == 0:
        return None, ()
    return (total / norm).astype(np.float32).reshape(1, -1), tuple(sources)


def page_categories(request: BidRequest) -> set[str]:
    """The channel's categories, its sections', pages' and content's, with their parents."""
    channel = request.site or request.app
    if channel is None:
        return set()
    found = {*channel.cat, *channel.sectioncat, *channel.pagecat}
    if channel.content is not None:
        found |= set(channel.content.cat)
    return found | {parent(c) for c in found}


Check = tuple[str, Callable[[], bool], NoBid]


def request_checks(
    spec: CampaignSpec,
    row: int,
    score: float,
    request: BidRequest,
    spend: SpendControl | None,
    ref: RefWorld,
    context_only: bool,
) -> list[Check]:
    """The request-level filters in the pipeline's order: each one's name, whether the campaign passes it,
    and the no-bid it answers when it removes the last candidate."""
    table = ref.snapshot.bundle.campaigns
    device = request.device
    country, region = device.geo.country.upper(), device.geo.region.upper()
    languages = {w.lower() for w in request.wlang} | {w.split("-", 1)[0].lower() for w in request.wlangb}
    rows = np.array([row], dtype=np.int32)
    no_one = NoBid.NO_ELIGIBLE_CAMPAIGN
    # A vector of context alone meets the campaigns' similarity floors scaled (context_match_scale).
    floor = np.float32(spec.min_match) * np.float32(0.75 if context_only else 1.0)
    checks: list[Check] = [
        ("similarity", lambda: bool(score >= floor), no_one),
        ("schedule", lambda: spec.start <= NOW and (spec.end == 0 or spec.end > NOW), no_one),
        (
            "bcat",
            lambda: spec.category not in request.bcat and parent(spec.category) not in request.bcat,
            no_one,
        ),
        ("badv", lambda: spec.adomain not in request.badv, no_one),
        ("bapp", lambda: not spec.bundle or spec.bundle not in request.bapp, no_one),
        (
            "wlang",
            lambda: (
                not (request.wlang or request.wlangb) or (spec.language != "" and spec.language in languages)
            ),
            no_one,
        ),
        (
            "geo",
            lambda: (
                (not spec.countries or country in spec.countries)
                and (not spec.regions or (region != "" and f"{country}-{region}" in spec.regions))
            ),
            no_one,
        ),
        ("site_category", lambda: not page_categories(request).intersection(spec.blocked_categories), no_one),
        (
            "device",
            lambda: (
                (not spec.device_types or device.devicetype in spec.device_types)
                and (not spec.os or device.os.lower() in spec.os)
            ),
            no_one,
        ),
    ]
    if spend is not None:
        # Pacing draws one number per campaign that reaches it, in match order: the pipeline's one draw
        # per survivor, from a twin generator.
        checks += [
            ("budget", lambda: bool(spend.budget_left(table, rows)[0] > 0), NoBid.BUDGET_EXHAUSTED),
            (
                "frequency",
                lambda: bool(spend.under_cap(table, rows, user_key(request))[0]),
                NoBid.FREQUENCY_CAPPED,
            ),
            ("pacing", lambda: bool(spend.paced_in(table, rows)[0]), NoBid.PACED),
        ]
    return checks


@dataclass(frozen=True)
class RefBid:
    imp_id: str
    campaign_id: str
    creative_id: str
    price: float  # in the currency of the bids
    deal_id: str = ""


@dataclass
class RefOutcome:
    bids: list[RefBid]
    nbr: NoBid | None
    currency: str  # of the bids
    removed: Counter[str] = dataclasses.field(default_factory=Counter)  # candidates removed, by filter


def reference_decide(
    ref: RefWorld, request: BidRequest, spend: SpendControl | None, top_k: int
) -> RefOutcome:
    """Bids, or no bid and its reason, the currency of the bids and how many candidates each filter
    removed, for a valid request without tmax, one campaign at a time."""
    if (request.wseat and SEAT not in request.wseat) or SEAT in request.bseat:
        return RefOutcome([], NoBid.SEAT_BLOCKED, "USD")
    currency = bid_currency(request.cur)
    if currency is None:
        return RefOutcome([], NoBid.UNSUPPORTED_CURRENCY, "USD")
    bundle, model = ref.snapshot.bundle, ref.snapshot.model
    user, sources = reference_user(request, bundle.vocab)
    if user is None:
        return RefOutcome([], NoBid.UNMATCHED_USER, currency)
    rows, scores = match(bundle.searcher, bundle.persona_rows, user, top_k)  # as the pipeline searches
    if request.bcat and request.cattax != 1:  # blocked categories in a taxonomy the catalog is not in
        return RefOutcome([], NoBid.NO_ELIGIBLE_CAMPAIGN, currency)
    if request.test == 1:
        spend = None  # a test auction is not billed: no budget, cap or pacing

    outcome = RefOutcome([], None, currency)
    survivors: list[tuple[int, float]] = []
    furthest = -1  # the index of the check the furthest candidate failed
    reasons: list[NoBid] = []
    for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
        checks = request_checks(ref.specs[row], row, score, request, spend, ref, sources == ("context",))
        reasons = [reason for _, _, reason in checks]
        passed = 0
        for _, check, _ in checks:
            if not check():
                break
            passed += 1
        if passed == len(checks):
            survivors.append((row, score))
        else:
            outcome.removed[checks[passed][0]] += 1
            furthest = max(furthest, passed)
    if not survivors:
        outcome.nbr = reasons[furthest] if reasons else NoBid.NO_ELIGIBLE_CAMPAIGN
        return outcome

    device = request.device
    context: dict[str, Any] = {
        **request_tokens(device.devicetype, device.os, device.geo.country),
        **time_tokens(NOW),
    }
    if MULTI_VALUED in model.spec.fields:
        tag_tokens = np.array([*(tag_token(t) for t in bundle.vocab.tags), NO_TAG], dtype=np.uint64)
        context[MULTI_VALUED] = tag_tokens[strongest_tags(user, LOGGED_TAGS)]

    overall = NoBid.NO_ELIGIBLE_CAMPAIGN
    for imp in request.imp:
        answer = reference_impression(ref, request, imp, survivors, context, spend, outcome)
        if isinstance(answer, RefBid):
            outcome.bids.append(answer)
        elif PROGRESS[answer] > PROGRESS[overall]:
            overall = answer
    if not outcome.bids:
        outcome.nbr = overall
    return outcome


def first_fitting(spec: CampaignSpec, imp: Imp) -> Creative | None:
    """The campaign's first creative, in catalog order, that the impression takes."""
    for creative in spec.creatives:
        if takes(
            imp,
            creative.mtype,
            creative.w,
            creative.h,
            creative.mime,
            creative.duration,
            creative.protocol,
            creative.secure,
            set(creative.attr),
        ):
            return creative
    return None


def deal_for(spec: CampaignSpec, imp: Imp) -> tuple[Deal, float] | None:
    """The first deal of the impression the campaign buys and may buy through, and its floor in USD."""
    for deal in imp.pmp.deals if imp.pmp is not None else ():
        if deal.wseat and SEAT not in deal.wseat:
            continue
        if deal.id not in spec.deals:
            continue
        if deal.wadomain and spec.adomain not in {d.lower() for d in deal.wadomain}:
            continue
        floor = to_usd(deal.bidfloor, deal.bidfloorcur)
        if floor is not None:
            return deal, floor
    return None


@dataclass(frozen=True)
class Offer:
    row: int
    score: float
    creative: Creative
    floor: float  # USD
    deal: Deal | None


def reference_impression(
    ref: RefWorld,
    request: BidRequest,
    imp: Imp,
    survivors: list[tuple[int, float]],
    context: dict[str, Any],
    spend: SpendControl | None,
    outcome: RefOutcome,
) -> RefBid | NoBid:
    """The impression's bid, or the reason it has none; counts what its filters removed in `outcome`."""
    table, model = ref.snapshot.bundle.campaigns, ref.snapshot.model
    found = [(row, score, first_fitting(ref.specs[row], imp)) for row, score in survivors]
    fitting = [(row, score, creative) for row, score, creative in found if creative is not None]
    outcome.removed["creative"] += len(survivors) - len(fitting)
    if not fitting:
        return NoBid.NO_FITTING_CREATIVE

    open_floor = to_usd(imp.bidfloor, imp.bidfloorcur)
    private = imp.pmp is not None and imp.pmp.private_auction == 1
    bought = {d for spec in ref.specs for d in spec.deals}
    unpriced = open_floor is None or any(
        (not d.wseat or SEAT in d.wseat) and d.id in bought and to_usd(d.bidfloor, d.bidfloorcur) is None
        for d in (imp.pmp.deals if imp.pmp is not None else ())
    )
    eligible: list[Offer] = []
    for row, score, creative in fitting:
        spec = ref.specs[row]
        through = deal_for(spec, imp)
        if through is not None:
            eligible.append(Offer(row, score, creative, through[1], through[0]))
        elif not private and open_floor is not None and not spec.deal_only:
            eligible.append(Offer(row, score, creative, open_floor, None))
    outcome.removed["deal"] += len(fitting) - len(eligible)
    if not eligible:
        return NoBid.UNSUPPORTED_CURRENCY if unpriced else NoBid.NO_ELIGIBLE_CAMPAIGN
    reach = [offer for offer in eligible if ref.specs[offer.row].max_bid >= offer.floor]
    outcome.removed["floor"] += len(eligible) - len(reach)
    if not reach:
        return NoBid.BELOW_FLOOR

    prices: list[tuple[float, float, Offer]] = []  # (price in USD, pctr, offer), in match order; 0: no bid
    short_of_budget = False  # a bid the remaining budget could not cover
    for offer in reach:
        spec = ref.specs[offer.row]
        features = candidate_features(
            model.spec,
            table,
            np.array([offer.row], dtype=np.int32),
            np.array([offer.score], dtype=np.float32),
            context,
            slot_token(*slot_size(imp)),
        )
        pctr = float(model.pctr(features)[0])
        bid = min(spec.base_bid * pctr / model.avg_ctr, spec.max_bid)
        if not (bid > 0 and bid >= offer.floor):
            bid = 0.0
        if bid > 0 and offer.deal is not None and offer.deal.at == FIXED_PRICE:
            bid = offer.floor
        rows = np.array([offer.row], dtype=np.int32)
        if bid > 0 and spend is not None and spend.budget_left(table, rows)[0] < round(bid * MICROS_PER_CPM):
            bid = 0.0  # no bid whose cost the remaining budget cannot cover
            short_of_budget = True
        prices.append((bid, pctr, offer))

    refused = False  # a reservation the store refused: the campaign's budget ran out meanwhile
    while True:
        best = -1  # the highest price, then the highest pCTR, then the first matched
        for i, (bid, pctr, _) in enumerate(prices):
            if bid > 0 and (best < 0 or (bid, pctr) > prices[best][:2]):
                best = i
        if best < 0:
            return NoBid.BUDGET_EXHAUSTED if refused or short_of_budget else NoBid.BELOW_FLOOR
        bid, pctr, offer = prices[best]
        key = f"{request.id}:{imp.id}"
        if spend is None or spend.reserve(table, offer.row, bid, key, bid_record(key)):
            break
        prices[best], refused = (0.0, pctr, offer), True

    deal_id = offer.deal.id if offer.deal is not None else ""
    spec = ref.specs[offer.row]
    return RefBid(imp.id, spec.id, offer.creative.id, bid / RATES[outcome.currency], deal_id)


# -- the comparison ----------------------------------------------------------------------------------------


T = TypeVar("T")


class Choices:
    """The choices that shape an auction, drawn by Hypothesis."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def pick(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def some(self, options: Sequence[T], most: int, least: int = 0) -> tuple[T, ...]:
        """Up to `most` (at least `least`) of the options, each at most once."""
        if not options:
            return ()
        chosen = self.draw(
            st.lists(st.integers(0, len(options) - 1), min_size=least, max_size=most, unique=True)
        )
        return tuple(options[i] for i in chosen)

    def chance(self, p: float) -> bool:
        """True with probability `p`, to the nearest 5 %."""
        return self.pick([True] * round(p * 20) + [False] * (20 - round(p * 20)))

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))


def player(c: Choices, mimes: list[str], fit: Creative | None) -> dict[str, Any]:
    """The fields of a video or audio slot: MIME types, durations (a range or a list), protocols; around
    those of `fit` when given, so that it plays, or only just does not."""
    if fit is not None:  # durations around its own: just in, just out
        d = fit.duration
        timing: dict[str, Any] = c.pick(
            [
                {"rqddurs": (d,)},
                {"minduration": d, "maxduration": d},
                {"minduration": d - 5, "maxduration": d - 1},
                {"minduration": d + 1},
            ],
        )
        mime = c.pick([fit.mime, fit.mime.upper()])  # MIME types are case-insensitive
        protocols = c.pick([(), (fit.protocol,), (2, fit.protocol), (2,), (2, 5)])  # its own, or others
        return {"mimes": (mime,), **timing, "protocols": protocols}
    timing = c.pick(
        [
            {"minduration": c.pick([0, 10, 15, 16, 20, 30])},
            {"minduration": c.pick([0, 15, 20]), "maxduration": c.pick([20, 29, 30, 60])},
            {"rqddurs": c.some([6, 15, 20, 30], 2, least=1)},
        ],
    )
    return {
        "mimes": c.some(mimes, 2, least=1),
        **timing,
        "protocols": c.some([2, 3, 5, 7, 8], 2),
        "battr": c.some(list(range(1, 9)), 1) if c.chance(0.5) else (),
    }


MEDIA = [{"banner"}] * 8 + [
    {"video"},
    {"video"},
    {"audio"},
    {"native"},
    {"banner", "video"},
    {"banner", "native"},
    {"video", "native"},
    {"video", "audio", "native"},
]


def impression(
    ref: RefWorld, c: Choices, index: int, floor: Callable[[], float], focus: CampaignSpec | None
) -> Imp:
    """A slot that offers some of banner (a size, any size, formats), video, audio and native, its floor
    in USD, EUR, JPY or XXX (which has no rate), and maybe deals: the catalog's (the `focus` campaign's
    most often) and one nobody buys, private or not, fixed-price or not, for some seats and advertisers."""
    table = ref.snapshot.bundle.campaigns
    media = c.pick(MEDIA)
    # Often the focus campaign's own creative fits the slot: one of its sizes, or its video's terms.
    fit = c.pick(focus.creatives) if focus is not None and c.chance(0.5) else None
    if fit is not None:
        media = {fit.type}
    fields: dict[str, Any] = {}
    if "banner" in media:
        w, h = c.pick([(fit.w, fit.h)] if fit is not None else [*SIZES, (0, 0), (1, 1)])
        formats = c.pick(
            [
                (),
                (),
                tuple(Format(w=fw, h=fh) for fw, fh in c.some(SIZES, 2, least=1)),
                (Format(wratio=16, hratio=9, wmin=300),),
            ],
        )
        battr = c.some(list(range(1, 9)), 2, least=1) if c.chance(0.4) else ()
        if fit is not None and fit.attr and c.chance(0.5):
            battr = (*battr, c.pick(fit.attr))  # the one creative that fits has an attribute it blocks
        fields["banner"] = Banner(w=w, h=h, format=formats, battr=battr)
    mimes = [str(m) for m in table.mimes[1:]]
    if "video" in media:
        video = player(c, [m for m in mimes if m.startswith("video/")] + ["video/webm", "VIDEO/MP4"], fit)
        w, h = c.pick([(0, 0), (640, 360)])
        fields["video"] = Video(**video, w=w, h=h)
    if "audio" in media:
        fields["audio"] = Audio(
            **player(c, [m for m in mimes if m.startswith("audio/")] + ["audio/mpeg"], fit)
        )
    if "native" in media:
        fields["native"] = Native(request=NATIVE_REQUEST)
    # Deals on one slot in three, and on every slot for a campaign that buys through some.
    if (focus is not None and focus.deals) or c.chance(1 / 3):
        ids = [str(d) for d in table.deals[1:]] + ["deal-nobody-buys"]
        offered = c.some(ids, 4) if focus is None or c.chance(0.3) else c.some(focus.deals, 2, least=1)
        domains = sorted({spec.adomain for spec in ref.specs if spec.deals})
        # Floors the focus campaign reaches, and only just, most often.
        reached = [0.1, 0.5, focus.max_bid / 2, focus.max_bid] if focus is not None else []
        deals = []
        for deal_id in offered:
            # Advertisers the deal is open to: the focus campaign's, or others.
            open_to = c.some(domains, 2, least=1)
            if focus is not None and c.chance(0.5):
                open_to = (focus.adomain, *open_to[1:])
            deals.append(
                Deal(
                    id=deal_id,
                    bidfloor=c.pick(reached) if reached and c.chance(0.6) else floor(),
                    bidfloorcur=c.pick(["USD", "USD", "EUR", "JPY", "XXX"]),
                    at=c.pick([None, 1, 2, FIXED_PRICE, FIXED_PRICE]),
                    wseat=c.pick([(), (), (), (SEAT,), ("other-seat",)]),
                    wadomain=c.pick([(), tuple(d.upper() if len(d) % 2 else d for d in open_to)]),
                )
            )
        fields["pmp"] = Pmp(private_auction=c.pick([0, 1]), deals=tuple(deals))
    return Imp(
        id=f"imp-{index}",
        bidfloor=floor(),
        bidfloorcur=c.pick(["USD"] * 7 + ["EUR", "JPY", "XXX"]),
        # Plain-http creatives are refused where https is asked for; the focus campaign's fitting one too.
        secure=1 if fit is not None and not fit.secure and c.chance(0.5) else c.pick([None, 0, 1]),
        **fields,
    )


@st.composite
def auctions(draw: st.DrawFn, ref: RefWorld) -> BidRequest:
    """A valid request without tmax: a user of the world (or a campaign's own persona, which matches it
    closely: often one that buys through deals or has a video creative), in a random context, on one to
    four slots whose floors range from 0 to above every max bid, under random seat, currency, app,
    language and test rules."""
    table = ref.snapshot.bundle.campaigns
    seed = draw(st.integers(0, 2**32 - 1))
    users = ref.world.users(1, np.random.default_rng(seed))
    c = Choices(draw)
    source = c.pick(["user", "user", "persona", "sparse", "deals", "deals", "deals", "video"])
    vector: np.ndarray | None = users.vectors[0]
    tags: tuple[Tag, ...] = ()
    focus = None
    if source in ("persona", "deals", "video"):
        pool = {
            "persona": ref.specs,
            "deals": [spec for spec in ref.specs if spec.deals],
            "video": [spec for spec in ref.specs if any(cr.type == "video" for cr in spec.creatives)],
        }[source]
        focus = c.pick(pool)
        vector = np.asarray(focus.personas[0], dtype=np.float32)
    elif source == "sparse":
        weights = users.vectors[0]
        vector = None
        tags = tuple(
            Tag(id=ref.world.vocab.tags[p], weight=float(weights[p])) for p in np.flatnonzero(weights)
        )
    max_bids = sorted(set(table.max_bid.tolist()))
    floors = st.one_of(
        st.sampled_from([0.0, 0.1, 1.0, 2.0]),
        st.sampled_from(max_bids),  # exactly a campaign's cap: reachable, and only just
        st.floats(0.0, max_bids[-1] * 1.2),
        st.just(max_bids[-1] * 2),
    )
    imps = tuple(impression(ref, c, i, lambda: draw(floors), focus) for i in range(c.integer(1, 4)))

    # Where the user is and on what device: the user's own, the focus campaign's targets, or any.
    aimed = focus or replace(ref.specs[0], device_types=(), os=(), countries=(), regions=())
    devicetype = c.pick([int(users.devicetype[0]), *aimed.device_types, c.integer(0, 8)])
    os = c.pick([str(users.os[0]), *aimed.os, c.pick([*OS_NAMES, "", "iOS", "linux"])])
    country = c.pick([str(users.country[0]), *aimed.countries, c.pick([*COUNTRIES, "", "usa", "ATA"])])
    region = c.pick(["", *(r.split("-", 1)[1] for r in aimed.regions), c.pick([*REGIONS, "ca", "ZZ"])])
    site = app = None
    channel = c.pick(["site", "site", "app", "none"])
    # Now and then the page is of a category the focus campaign blocks, said in one of the lists.
    blocked: dict[str, tuple[str, ...]] = {"sectioncat": (), "pagecat": (), "content": ()}
    if focus is not None and focus.blocked_categories and c.chance(0.5):
        blocked[c.pick(sorted(blocked))] = (c.pick(focus.blocked_categories),)
    if channel == "site":
        content = Content(cat=blocked["content"]) if blocked["content"] or c.chance(0.3) else None
        site = Site(
            cat=c.some(SITE_CATEGORIES, 2),
            sectioncat=blocked["sectioncat"] or c.some(SITE_CATEGORIES, 1),
            pagecat=blocked["pagecat"] or c.some(SITE_CATEGORIES, 1),
            content=content,
        )
    elif channel == "app":
        app = App(bundle="com.example.app", cat=c.some(SITE_CATEGORIES, 2), pagecat=blocked["pagecat"])
    # Blocked apps on a request in three: the catalog's, one nobody advertises, the focus campaign's.
    bapp = c.some([*sorted({str(b) for b in table.bundles[1:]}), "com.nobody.app"], 2)
    if focus is not None and focus.bundle and c.chance(0.5):
        bapp = (*bapp, focus.bundle)
    key = f"user-{c.integer(0, 3)}"  # whom frequency caps count, in one of the fields they read
    holder = c.pick(["id", "buyeruid", "ifa", "none"])
    narrowing = rules(c, [str(lang) for lang in table.languages[1:]] + ["ja", "EN"])
    user = User(
        id=key if holder == "id" else "",
        buyeruid=key if holder == "buyeruid" else "",
        tag_vector=vector,
        tags=tags,
        consent=narrowing.pop("consent", ""),
    )
    return BidRequest(
        id=f"auction-{seed}",
        imp=imps,
        site=site,
        app=app,
        user=user,
        device=Device(
            devicetype=devicetype,
            os=os,
            geo=Geo(country=country, region=region),
            ifa=key if holder == "ifa" else "",
        ),
        # Blocked categories and advertisers on a request in three.
        bcat=c.some(sorted(set(table.category.tolist()) | {"IAB1"}), 3) if c.chance(1 / 3) else (),
        badv=c.some(sorted(set(table.adomain.tolist())), 3) if c.chance(1 / 3) else (),
        bapp=bapp if c.chance(1 / 3) else (),
        test=c.pick([0, 0, 0, 1]),
        **narrowing,
    )


def rules(c: Choices, languages: list[str]) -> dict[str, Any]:
    """Most often none, else one of the request's rules that narrow who may bid, and in which currency:
    seats (wseat, bseat), currencies (cur), creative languages (wlang, wlangb), the taxonomy of bcat,
    COPPA, the GDPR (with or without consent). One at a time, so that few requests are declined whole."""
    kind = c.pick(["none"] * 8 + ["seat", "cur", "wlang", "cattax", "coppa", "gdpr"])
    if kind == "seat":
        return c.pick([{"wseat": (SEAT,)}, {"wseat": ("other-seat",)}, {"bseat": (SEAT,)}, {"bseat": ("x",)}])
    if kind == "cur":
        return {"cur": c.pick([("USD",), ("EUR",), ("JPY",), ("EUR", "USD"), ("XXX", "EUR"), ("XXX",)])}
    if kind == "wlang":
        return {"wlang": c.some(languages, 3), "wlangb": c.pick([(), ("en-US",)])}
    if kind == "cattax":
        return {"cattax": 2}
    if kind == "coppa":
        return {"regs": Regs(coppa=1)}
    if kind == "gdpr":
        consent = c.pick([tc_string({1, 3, 4}), tc_string({1, 3, 4}), "", tc_string({1, 2})])
        return {"regs": Regs(gdpr=1), "consent": consent}
    return {}


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


def pipeline_outcome(decision: Decision) -> RefOutcome:
    bids = [RefBid(b.imp_id, b.campaign_id, b.creative_id, b.price, b.deal_id) for b in decision.bids]
    return RefOutcome(bids, decision.nbr, decision.currency, Counter(decision.removed))


def assert_same(got: RefOutcome, expected: RefOutcome) -> None:
    assert got.nbr == expected.nbr, f"no-bid reason {got.nbr!r}, the reference's {expected.nbr!r}"
    assert [(b.imp_id, b.campaign_id, b.creative_id, b.deal_id) for b in got.bids] == [
        (b.imp_id, b.campaign_id, b.creative_id, b.deal_id) for b in expected.bids
    ]
    assert [b.price for b in got.bids] == pytest.approx([b.price for b in expected.bids], rel=1e-9)
    if got.bids:
        assert got.currency == expected.currency
    assert +got.removed == +expected.removed, "candidates removed by each filter"


def decider_for(ref: RefWorld, spend: SpendControl | None = None) -> Decider:
    return Decider(
        ref.snapshot, DecisionSettings(currencies=Currencies(RATES)), clock=lambda: NOW, spend=spend
    )


@REFERENCE
@given(data=st.data())
def test_pipeline_bids_as_the_reference_loop_without_spend_control(
    ref_world: RefWorld, data: st.DataObject
) -> None:
    request = data.draw(auctions(ref_world))
    decider = decider_for(ref_world)
    expected = reference_decide(ref_world, request, None, decider.settings.top_k)
    assert_same(pipeline_outcome(decider.decide(request)), expected)


@REFERENCE
@given(data=st.data())
def test_pipeline_bids_as_the_reference_loop_with_spend_control(
    ref_world: RefWorld, data: st.DataObject
) -> None:
    request = data.draw(auctions(ref_world))
    state = data.draw(spend_states)
    decider = decider_for(ref_world, state.control(ref_world))
    expected = reference_decide(ref_world, request, state.control(ref_world), decider.settings.top_k)
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
    requests = [msgspec.structs.replace(sample_auction(world, rng), tmax=None) for _ in range(20)]
    requests = [r for r in requests if unlimited.decide(r).bids]
    assert requests, "some sample requests must get a bid when budgets are not in the way"
    assert {short.decide(r).nbr for r in requests} == {NoBid.BUDGET_EXHAUSTED}
