"""One auction, stage by stage: validate, user vector, match, filter, score, price, select.

The user vector blends what is known of the user (decision/blend.py): the stored profile, looked up by
the request's first id among DecisionSettings.profile_ids; what the exchange says of the user (segments,
keywords, age, gender, and a profile the caller sent); and the context (the page or app, the device, the
country). What the request allows decides which of them may be used (decision/restrictions.py): a
restricted request is bid on its context alone, with no profile read and nothing counted by user.

Request-level filters narrow the matched campaigns once; then each impression narrows them further: a
creative that fits it, the deals it offers, its floor (in USD, through the currency table).

Every stage works on arrays of candidate campaign rows. The Decision carries the stage timings and what
each filter removed, so that the serving layer can export them without the core knowing about metrics.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from personabid.bidrecord import BidRecord
from personabid.ctr.features import (
    LOGGED_TAGS,
    MULTI_VALUED,
    NO_TAG,
    request_tokens,
    slot_token,
    tag_token,
    time_tokens,
)
from personabid.decision import filters
from personabid.decision.blend import Blender, check_weights
from personabid.decision.candidates import candidate_features
from personabid.decision.creatives import fit
from personabid.decision.currency import USD, Currencies
from personabid.decision.deals import DealTerms, deal_terms
from personabid.decision.eligibility import CHAIN, KERNEL_STEPS, eligible
from personabid.decision.match import match
from personabid.decision.pricing import BidStrategy, best, check_strategy
from personabid.decision.reasons import PROGRESS, NoBid
from personabid.decision.restrictions import restriction
from personabid.decision.signals import context_keys, segment_keys, text_keys_of
from personabid.decision.slots import needs_of, slot_size
from personabid.decision.snapshot import Snapshot
from personabid.decision.uservec import strongest_tags
from personabid.index.campaigns import CampaignTable
from personabid.openrtb.request import BidRequest, Imp
from personabid.openrtb.validation import validate
from personabid.profiles.store import Profile, ProfileStore, ProfileUnavailable
from personabid.profiles.taxonomy import standard
from personabid.spend.control import SpendControl
from personabid.spend.store import StateUnavailable, StoreFull

STAGES = ("validate", "user_vector", "match", "filter", "score", "price")
# The request's filter chain (decision/eligibility.py), then each impression's.
REQUEST_FILTERS = tuple(step.name for step in CHAIN)
IMPRESSION_FILTERS = ("creative", "deal", "floor")
# Where the profile store's key comes from: the request's ids, all pseudonyms by the time they get here.
PROFILE_IDS = {
    "buyeruid": lambda r: r.user.buyeruid,
    "id": lambda r: r.user.id,
    "ifa": lambda r: r.device.ifa,
}
# What became of the profile lookup, for the serving layer to count.
PROFILE_OUTCOMES = ("found", "unknown", "unavailable", "restricted", "no_id", "none")


@dataclass(frozen=True)
class DecisionSettings:
    top_k: int = 100
    min_tmax_ms: int = 5  # below this no decision can be made and delivered in time
    currencies: Currencies = field(default_factory=Currencies)
    seat: str = "personabid"
    # The blend of the user vector (decision/blend.py). The bidder's own profile, built from what the
    # user did, is the most specific and the most recent evidence; the exchange's segments are a third
    # party's coarser and staler guess; the context says where the ad shows more than who sees it. Each
    # counts only when the request has it: context alone is matched at full strength.
    profile_weight: float = 1.0
    segments_weight: float = 0.6
    context_weight: float = 0.4
    # A vector of context alone has a few tags (a category, the device, the country) where a persona has
    # a dozen or more, so its cosine with even a well-matched persona is lower: at most about
    # sqrt(3/15) = 0.45 against a persona of 15 equal tags. On the demo world the best campaign's score
    # is 0.40 at the median for context alone against 0.82 with a profile, and 6.7 % of requests found no
    # campaign over its min_match (0.25 to 0.4), 0.2 % with this scale. Campaigns' similarity floors are
    # scaled by it for vectors of context alone; 1.0 leaves them as the catalog states them.
    context_match_scale: float = 0.75
    # The request's ids the profile store is looked up by, first non-empty first.
    profile_ids: tuple[str, ...] = ("buyeruid", "id", "ifa")
    # How a bid is priced (decision/pricing.py): the strategy, its parameters as sorted (name, value)
    # pairs, and a multiplier on its bid. An experiment's arm changes them in a variant of its own.
    strategy: str = "linear"
    strategy_params: tuple[tuple[str, float], ...] = ()
    bid_multiplier: float = 1.0

    def __post_init__(self) -> None:
        check_weights((self.profile_weight, self.segments_weight, self.context_weight))
        if not 0.0 < self.context_match_scale <= 1.0:
            raise ValueError(f"context_match_scale={self.context_match_scale} must be in (0, 1]")
        unknown = [name for name in self.profile_ids if name not in PROFILE_IDS]
        if unknown:
            raise ValueError(f"profile_ids {unknown}: each must be one of {sorted(PROFILE_IDS)}")
        check_strategy(self.strategy, dict(self.strategy_params), self.bid_multiplier)

    @property
    def bid_strategy(self) -> BidStrategy:
        return BidStrategy(self.strategy, self.strategy_params, self.bid_multiplier)


@dataclass(frozen=True)
class Bid:
    id: str
    imp_id: str
    campaign_row: int
    campaign_id: str
    creative: int  # index into the table's creative columns
    creative_id: str
    adomain: str
    price: float  # CPM in the decision's currency
    pctr: float
    match_score: float
    deal_id: str = ""
    exp: int = 0  # seconds the bid stands, the impression's exp; 0: not said
    # What the event log records of the bid ("bid" line) and, once won, of its impression; None when no
    # spend control judged it (test auctions, tests of matching alone).
    record: BidRecord | None = None


@dataclass
class Decision:
    request_id: str
    bids: list[Bid] = field(default_factory=list)
    nbr: NoBid | None = None
    detail: str = ""
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage
    removed: dict[str, int] = field(default_factory=dict)  # candidates removed per filter
    candidates: int = 0  # campaigns matched before filtering
    currency: str = USD  # of the bids' prices
    table: CampaignTable | None = None  # the campaigns the bids' rows and creatives index
    sources: tuple[str, ...] = ()  # what the user vector blended: "profile", "segments", "context"
    restriction: str = ""  # why the user could not be profiled (restrictions.RESTRICTIONS), "" if not
    profile_outcome: str = "none"  # what the profile lookup found (PROFILE_OUTCOMES)
    arms: tuple[str, ...] = ()  # the experiment arms it was decided in, "experiment:arm" each


class Decides(Protocol):
    """What answers an auction: a Decider, or the routing of experiments over Deciders."""

    def decide(self, request: BidRequest) -> Decision: ...


class Decider:
    """Decides auctions against one Snapshot; cheap to build, so a reload makes a new one."""

    def __init__(
        self,
        snapshot: Snapshot,
        settings: DecisionSettings,
        clock: Callable[[], float] = time.time,
        spend: SpendControl | None = None,
        profiles: ProfileStore | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.settings = settings
        self.clock = clock
        # Without spend control (tests of matching and pricing alone), budgets and caps are not enforced.
        self.spend = spend
        # Without a profile store, users are known by what the request says of them.
        self.profiles = profiles
        taxonomy = standard()
        self._blender = Blender(
            snapshot.bundle.vocab,
            taxonomy,
            (settings.profile_weight, settings.segments_weight, settings.context_weight),
        )
        self._text_keys = text_keys_of(taxonomy)
        self._profile_ids = tuple(PROFILE_IDS[name] for name in settings.profile_ids)
        self._table = snapshot.bundle.campaigns
        self._spec = snapshot.model.spec
        # Tokens of the vocabulary's tags, NO_TAG last so that position -1 (no tag) finds it.
        vocab = snapshot.bundle.vocab.tags
        self._tag_tokens = np.array([*(tag_token(t) for t in vocab), NO_TAG], dtype=np.uint64)
        self._scores_tags = MULTI_VALUED in self._spec.fields
        self._strategy = settings.bid_strategy

    def decide(self, request: BidRequest) -> Decision:
        """The auction's decision, in no experiment."""
        return self.decide_in(request, ())

    def decide_in(self, request: BidRequest, arms: tuple[str, ...]) -> Decision:
        """The auction's decision in the experiment arms `request` was assigned to ("experiment:arm",
        sorted by experiment), which the Decision and its bids' records carry."""
        started = time.perf_counter()
        decision = Decision(request_id=request.id, table=self._table, arms=arms)
        stages = decision.stages
        tick = started

        def lap(stage: str) -> None:
            nonlocal tick
            now = time.perf_counter()
            stages[stage] = stages.get(stage, 0.0) + now - tick
            tick = now

        validate(request, self.snapshot.dims)
        lap("validate")
        if request.tmax is not None and request.tmax < self.settings.min_tmax_ms:
            return _no_bid(decision, NoBid.INSUFFICIENT_AUCTION_TIME, f"tmax={request.tmax}ms is too short")
        seat = self.settings.seat
        if (request.wseat and seat not in request.wseat) or seat in request.bseat:
            return _no_bid(decision, NoBid.SEAT_BLOCKED, f"seat {seat!r} is not allowed by wseat/bseat")
        currency = self.settings.currencies.for_bids(request.cur)
        if currency is None:
            return _no_bid(
                decision, NoBid.UNSUPPORTED_CURRENCY, f"cur={list(request.cur)}: no exchange rate configured"
            )
        decision.currency = currency
        # One clock reading per auction: the age of a year of birth, the schedule filter, the hour
        # features and the event log's record of a win all see the same moment.
        now = self.clock()
        restricted = restriction(request)
        user = self._user_vector(decision, request, restricted, now)
        lap("user_vector")
        if user is None:
            return _no_bid(
                decision,
                NoBid.UNMATCHED_USER,
                "nothing usable: no profile, segment or context with weight on a known tag",
            )

        bundle = self.snapshot.bundle
        rows, scores = match(bundle.searcher, bundle.persona_rows, user, self.settings.top_k)
        decision.candidates = len(rows)
        lap("match")

        table = self._table
        device = request.device
        context = filters.context_for(
            table,
            int(now),
            device.devicetype,
            device.geo.country,
            device.os,
            request.bcat,
            request.badv,
            region=device.geo.region,
            site_categories=request.page_categories(),
            bapp=request.bapp,
            wlang=request.wlang + tuple(tag.split("-", 1)[0] for tag in request.wlangb),
        )
        if request.bcat and request.cattax != 1:
            # Blocked categories in a taxonomy the catalog's categories are not coded in cannot be
            # honoured: no bid rather than an ad the exchange blocks.
            return _no_bid(
                decision,
                NoBid.NO_ELIGIBLE_CAMPAIGN,
                f"cattax={request.cattax}: bcat is not in IAB Content 1.0",
            )
        # A test auction is not billed: no budget, cap or pacing applies, and nothing is reserved.
        spend_control = self.spend if request.test != 1 else None
        # A restricted user is not counted: no frequency cap reads or records their views.
        user_key = user_key_of(request) if restricted is None else ""
        scale = self.settings.context_match_scale if decision.sources == ("context",) else 1.0
        try:
            budget_left = spend_control.budget_left(table, rows) if spend_control is not None else None
            passed = eligible(table, rows, scores, context, scale, budget_left)
            rows, scores, budget_left = passed.rows, passed.scores, passed.budget_left
            for step, count in zip(CHAIN[:KERNEL_STEPS], passed.removed, strict=True):
                if count:
                    decision.removed[step.name] = decision.removed.get(step.name, 0) + count
            if len(rows) and spend_control is not None and budget_left is not None:
                spend = spend_control
                for step, mask in (
                    (CHAIN[KERNEL_STEPS], lambda r: spend.under_cap(table, r, user_key)),
                    (CHAIN[KERNEL_STEPS + 1], lambda r: spend.paced_in(table, r)),
                ):
                    rows, scores, (budget_left,) = _narrow_with(
                        decision, step.name, mask(rows), rows, scores, budget_left
                    )
                    if len(rows) == 0:
                        lap("filter")
                        return _no_bid(decision, step.reason, step.detail)
        except StateUnavailable as exc:
            lap("filter")
            return _no_bid(decision, NoBid.STATE_UNAVAILABLE, str(exc))
        if passed.emptied is not None:
            lap("filter")
            return _no_bid(decision, passed.emptied.reason, passed.emptied.detail)
        lap("filter")

        context_tokens: dict[str, int | np.ndarray] = {
            **request_tokens(device.devicetype, device.os, device.geo.country),
            **time_tokens(now),
        }
        # Looked up at most once an auction, and only if the model or a bid's event record needs them.
        user_tags = functools.cache(lambda: strongest_tags(user, LOGGED_TAGS))
        if self._scores_tags:
            context_tokens[MULTI_VALUED] = self._tag_tokens[user_tags()]
        furthest = NoBid.NO_ELIGIBLE_CAMPAIGN
        for position, imp in enumerate(request.imp):
            try:
                outcome = self._decide_impression(
                    decision,
                    request,
                    imp,
                    rows,
                    scores,
                    context_tokens,
                    (now, user_key, user_tags),
                    lap,
                    spend_control,
                    # The budgets read for the filters hold until a reservation: the first impression's.
                    budget_left if position == 0 else None,
                )
            except StateUnavailable as exc:
                decision.bids.clear()  # reservations already made expire on their own
                return _no_bid(decision, NoBid.STATE_UNAVAILABLE, str(exc))
            except StoreFull as exc:
                decision.bids.clear()
                return _no_bid(decision, NoBid.CAPACITY_REACHED, str(exc))
            if isinstance(outcome, Bid):
                decision.bids.append(outcome)
            elif PROGRESS[outcome] > PROGRESS[furthest]:
                furthest = outcome

        elapsed_ms = (time.perf_counter() - started) * 1000.0
        if request.tmax is not None and elapsed_ms > request.tmax:
            decision.bids.clear()
            return _no_bid(decision, NoBid.INSUFFICIENT_AUCTION_TIME, f"decided in {elapsed_ms:.1f}ms > tmax")
        if not decision.bids:
            detail = {
                NoBid.NO_ELIGIBLE_CAMPAIGN: "no matched campaign may bid through the impressions' deals",
                NoBid.UNSUPPORTED_CURRENCY: "the impressions' floor currency has no exchange rate configured",
                NoBid.NO_FITTING_CREATIVE: "no matched campaign has a creative the impressions take",
                NoBid.BELOW_FLOOR: "no bid reaches the impressions' floor",
                NoBid.BUDGET_EXHAUSTED: "no campaign has the budget left for its bid",
            }[furthest]
            return _no_bid(decision, furthest, detail)
        return decision

    def _user_vector(
        self, decision: Decision, request: BidRequest, restricted: str | None, now: float
    ) -> np.ndarray | None:
        """The blended user vector (None: nothing usable), recording on `decision` its sources, the
        restriction and what the profile lookup found."""
        context = context_keys(request, self._text_keys)
        if restricted is not None:
            decision.restriction = restricted
            decision.profile_outcome = "restricted" if self.profiles is not None else "none"
            user, decision.sources = self._blender.blend(context_keys=context)
            return user
        profile = self._profile(decision, request)
        person = request.user
        user, decision.sources = self._blender.blend(
            profile,
            segment_keys(person, time.gmtime(now).tm_year, self._text_keys),
            context,
            person.tags,
            person.tag_vector,
        )
        return user

    def _profile(self, decision: Decision, request: BidRequest) -> Profile | None:
        """The stored profile of the request's user, or None; records the outcome on `decision`."""
        store = self.profiles
        if store is None:
            decision.profile_outcome = "none"
            return None
        pseudonym = next((found for id_of in self._profile_ids if (found := id_of(request))), "")
        if not pseudonym:
            decision.profile_outcome = "no_id"
            return None
        try:
            profile = store.lookup(pseudonym)
        except ProfileUnavailable:
            # A store outage costs the profile, never the auction: bid on what the request carries.
            decision.profile_outcome = "unavailable"
            return None
        decision.profile_outcome = "unknown" if profile is None else "found"
        return profile

    def _decide_impression(
        self,
        decision: Decision,
        request: BidRequest,
        imp: Imp,
        rows: np.ndarray,
        scores: np.ndarray,
        context_tokens: dict[str, int | np.ndarray],
        user_context: tuple[float, str, Callable[[], np.ndarray]],
        lap: Callable[[str], None],
        spend: SpendControl | None,
        budget_left: np.ndarray | None,
    ) -> Bid | NoBid:
        """`budget_left` is the spend control's budgets of `rows` if still current, None to read them."""
        table = self._table
        currencies = self.settings.currencies
        if spend is not None and budget_left is None:
            budget_left = spend.budget_left(table, rows)
        # Narrowed with the rows; a test auction (no spend control) has no budget, and its zeros are unread.
        left = budget_left if budget_left is not None else np.zeros(len(rows), dtype=np.int64)
        # Each step narrows the rows (and its own per-row arrays) its predecessor kept: an array built
        # before a narrowing would no longer line up with the rows it is applied to.
        creatives = fit(table, rows, needs_of(table, imp))
        rows, scores, (creatives, left) = _narrow_with(
            decision, "creative", creatives >= 0, rows, scores, creatives, left
        )
        if len(rows) == 0:
            lap("filter")
            return NoBid.NO_FITTING_CREATIVE
        terms: DealTerms = deal_terms(table, rows, imp, self.settings.seat, currencies)
        rows, scores, (creatives, floors, deals, left) = _narrow_with(
            decision, "deal", terms.eligible, rows, scores, creatives, terms.floors, terms.deals, left
        )
        if len(rows) == 0:
            lap("filter")
            return NoBid.UNSUPPORTED_CURRENCY if terms.unpriced else NoBid.NO_ELIGIBLE_CAMPAIGN
        rows, scores, (creatives, floors, deals, left) = _narrow_with(
            decision, "floor", table.max_bid[rows] >= floors, rows, scores, creatives, floors, deals, left
        )
        if len(rows) == 0:
            lap("filter")
            return NoBid.BELOW_FLOOR
        lap("filter")

        indices = candidate_features(
            self._spec, table, rows, scores, context_tokens, slot_token(*slot_size(imp))
        )
        pctr = self.snapshot.model.pctr(indices)
        lap("score")

        prices, winner, short_of_budget = self._strategy.priced_pick(
            table.base_bid,
            table.max_bid,
            rows,
            pctr,
            self.snapshot.model.avg_ctr,
            floors,
            terms.fixed(deals),
            left if spend is not None else None,
        )
        now, user_key, user_tags = user_context
        record: BidRecord | None = None
        while winner >= 0 and spend is not None:
            row = int(rows[winner])
            record = self._record(
                request,
                imp,
                row,
                int(creatives[winner]),
                float(prices[winner]),
                float(pctr[winner]),
                float(scores[winner]),
                now,
                user_key,
                user_tags,
                decision.sources,
                decision.arms,
            )
            if spend.reserve(table, row, float(prices[winner]), f"{request.id}:{imp.id}", record):
                break
            prices[winner] = 0.0  # out of budget after all: the next best bid may still fit
            winner = best(prices, pctr)
            if winner < 0:
                lap("price")
                return NoBid.BUDGET_EXHAUSTED
        lap("price")
        if winner < 0:
            return NoBid.BUDGET_EXHAUSTED if short_of_budget else NoBid.BELOW_FLOOR
        row = int(rows[winner])
        creative = int(creatives[winner])
        campaign_id = str(table.campaign_id[row])
        deal = int(deals[winner])
        return Bid(
            id=f"{imp.id}-{campaign_id}",
            imp_id=imp.id,
            campaign_row=row,
            campaign_id=campaign_id,
            creative=creative,
            creative_id=str(table.creative_id[creative]),
            adomain=str(table.adomain[row]),
            price=currencies.from_usd(float(prices[winner]), decision.currency),
            pctr=float(pctr[winner]),
            match_score=float(scores[winner]),
            deal_id=terms.ids[deal] if deal >= 0 else "",
            exp=imp.exp or 0,
            record=record,
        )

    def _record(
        self,
        request: BidRequest,
        imp: Imp,
        row: int,
        creative: int,
        bid: float,
        pctr: float,
        match_score: float,
        now: float,
        user_key: str,
        user_tags: Callable[[], np.ndarray],
        sources: tuple[str, ...],
        arms: tuple[str, ...],
    ) -> BidRecord:
        """What the event log needs of this bid when its win arrives (the price in USD)."""
        table = self._table
        device = request.device
        return BidRecord(
            ts=now,
            request_id=request.id,
            imp_id=imp.id,
            user=user_key,
            campaign=str(table.campaign_id[row]),
            advertiser=str(table.advertiser[row]),
            category=str(table.category[row]),
            devicetype=device.devicetype,
            os=device.os,
            country=device.geo.country,
            w=int(table.creative_w[creative]),
            h=int(table.creative_h[creative]),
            match=match_score,
            tags=tuple(self.snapshot.bundle.vocab.tags[p] for p in user_tags().tolist() if p >= 0),
            pctr=pctr,
            price=bid,
            model=self.snapshot.model.version,
            sources=sources,
            arms=arms,
            # The cap in force when the bid is made, which its win counts a view against.
            freq_cap=int(table.freq_cap[row]),
            freq_window=float(table.freq_window[row]),
        )


def user_key_of(request: BidRequest) -> str:
    """Whom frequency caps count: the exchange's id for the user, the buyer's, or the device's
    advertising id (all pseudonyms by now); "" for an unknown user."""
    user = request.user
    return user.buyeruid or user.id or request.device.ifa


def _narrow_with(
    decision: Decision,
    name: str,
    keep: np.ndarray,
    rows: np.ndarray,
    scores: np.ndarray,
    *aligned: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Keep the candidates `keep` says of `rows`, their `scores` and the per-row arrays that line up with
    them, counting under `name` the candidates removed."""
    removed = len(rows) - int(np.count_nonzero(keep))
    if not removed:
        return rows, scores, aligned
    decision.removed[name] = decision.removed.get(name, 0) + removed
    return rows[keep], scores[keep], tuple(a[keep] for a in aligned)


def _no_bid(decision: Decision, reason: NoBid, detail: str) -> Decision:
    decision.nbr = reason
    decision.detail = detail
    return decision
