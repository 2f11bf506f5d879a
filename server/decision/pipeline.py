"""One auction, stage by stage: validate, user vector, match, filter, score, price, select.

Every stage works on arrays of candidate campaign rows. The Decision carries the stage timings and what
each filter removed, so that the serving layer can export them without the core knowing about metrics.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from personabid.bidrecord import BidRecord
from personabid.ctr.features import (
    LOGGED_TAGS,
    MULTI_VALUED,
    NO_TAG,
    request_tokens,
    slot_name,
    slot_token,
    tag_token,
    time_tokens,
)
from personabid.decision import filters
from personabid.decision.candidates import candidate_features
from personabid.decision.consent import consent_refusal
from personabid.decision.match import match
from personabid.decision.pricing import best, price
from personabid.decision.reasons import PROGRESS, NoBid
from personabid.decision.request import DEFAULT_CURRENCY, AuctionRequest, Impression, validate
from personabid.decision.snapshot import Snapshot
from personabid.decision.uservec import strongest_tags, user_vector
from personabid.spend.control import SpendControl
from personabid.spend.store import MICROS_PER_CPM, StateUnavailable, StoreFull

STAGES = ("validate", "user_vector", "match", "filter", "score", "price")
REQUEST_FILTERS = ("similarity", "schedule", "bcat", "badv", "geo", "site_category", "device")
IMPRESSION_FILTERS = ("floor", "size")


@dataclass(frozen=True)
class DecisionSettings:
    top_k: int = 100
    min_tmax_ms: int = 5  # below this no decision can be made and delivered in time
    currencies: frozenset[str] = frozenset({DEFAULT_CURRENCY})


@dataclass(frozen=True)
class Bid:
    id: str
    imp_id: str
    campaign_row: int
    campaign_id: str
    creative_id: str
    adomain: str
    price: float  # CPM
    pctr: float
    match_score: float


@dataclass
class Decision:
    request_id: str
    bids: list[Bid] = field(default_factory=list)
    nbr: NoBid | None = None
    detail: str = ""
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage
    removed: dict[str, int] = field(default_factory=dict)  # candidates removed per filter
    candidates: int = 0  # campaigns matched before filtering


class Decider:
    """Decides auctions against one Snapshot; cheap to build, so a reload makes a new one."""

    def __init__(
        self,
        snapshot: Snapshot,
        settings: DecisionSettings,
        clock: Callable[[], float] = time.time,
        spend: SpendControl | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.settings = settings
        self.clock = clock
        # Without spend control (tests of matching and pricing alone), budgets and caps are not enforced.
        self.spend = spend
        self._table = snapshot.bundle.campaigns
        self._spec = snapshot.model.spec
        # Tokens of the vocabulary's tags, NO_TAG last so that position -1 (no tag) finds it.
        vocab = snapshot.bundle.vocab.tags
        self._tag_tokens = np.array([*(tag_token(t) for t in vocab), NO_TAG], dtype=np.uint64)
        self._scores_tags = MULTI_VALUED in self._spec.fields

    def decide(self, request: AuctionRequest) -> Decision:
        started = time.perf_counter()
        decision = Decision(request_id=request.id)
        stages = decision.stages
        tick = started

        def lap(stage: str) -> None:
            nonlocal tick
            now = time.perf_counter()
            stages[stage] = stages.get(stage, 0.0) + now - tick
            tick = now

        validate(request, self.snapshot.dims, self.settings.currencies)
        lap("validate")
        if request.tmax_ms is not None and request.tmax_ms < self.settings.min_tmax_ms:
            return _no_bid(
                decision, NoBid.INSUFFICIENT_AUCTION_TIME, f"tmax={request.tmax_ms}ms is too short"
            )
        if request.coppa == 1:
            return _no_bid(decision, NoBid.COPPA_RESTRICTED, "regs.coppa=1: no profile-based bidding")
        if request.gdpr == 1 and (why := consent_refusal(request.consent)) is not None:
            return _no_bid(decision, NoBid.NO_CONSENT, f"regs.gdpr=1 and user.consent {why}")

        user = user_vector(request.tag_vector, request.tags, self.snapshot.bundle.vocab)
        lap("user_vector")
        if user is None:
            return _no_bid(decision, NoBid.UNMATCHED_USER, "the user has no weight on any known tag")

        bundle = self.snapshot.bundle
        rows, scores = match(bundle.index, bundle.persona_rows, user, self.settings.top_k)
        decision.candidates = len(rows)
        lap("match")

        table = self._table
        # One clock reading per auction: the schedule filter, the hour features and the event log's
        # record of a win all see the same moment.
        now = self.clock()
        context = filters.context_for(
            table,
            int(now),
            request.devicetype,
            request.country,
            request.os,
            request.bcat,
            request.badv,
            region=request.region,
            site_categories=request.categories,
        )
        keep = filters.similarity_floor(table, rows, scores)
        rows, scores = _narrow(decision, "similarity", keep, rows, scores)
        if len(rows) == 0:
            lap("filter")
            return _no_bid(decision, NoBid.UNMATCHED_USER, "no persona is similar enough to the user")
        for name, mask in (
            ("schedule", lambda r: filters.schedule(table, r, context.now)),
            ("bcat", lambda r: filters.blocked_category(table, r, context.blocked_categories)),
            ("badv", lambda r: filters.blocked_advertiser(table, r, context.blocked_domains)),
            ("geo", lambda r: filters.geo(table, r, context.country_code, context.region_code)),
            ("site_category", lambda r: filters.site_category(table, r, context.site_categories)),
            ("device", lambda r: filters.device(table, r, context.devicetype, context.os_code)),
        ):
            rows, scores = _narrow(decision, name, mask(rows), rows, scores)
            if len(rows) == 0:
                lap("filter")
                return _no_bid(decision, NoBid.NO_ELIGIBLE_CAMPAIGN, f"every matched campaign failed {name}")
        if self.spend is not None:
            spend = self.spend
            try:
                for name, mask, reason in (
                    ("budget", lambda r: spend.budget_left(table, r) > 0, NoBid.BUDGET_EXHAUSTED),
                    (
                        "frequency",
                        lambda r: spend.under_cap(table, r, request.user_id),
                        NoBid.FREQUENCY_CAPPED,
                    ),
                    ("pacing", lambda r: spend.paced_in(table, r), NoBid.PACED),
                ):
                    rows, scores = _narrow(decision, name, mask(rows), rows, scores)
                    if len(rows) == 0:
                        lap("filter")
                        return _no_bid(decision, reason, f"every eligible campaign failed {name}")
            except StateUnavailable as exc:
                lap("filter")
                return _no_bid(decision, NoBid.STATE_UNAVAILABLE, str(exc))
        lap("filter")

        context_tokens: dict[str, int | np.ndarray] = {
            **request_tokens(request.devicetype, request.os, request.country),
            **time_tokens(now),
        }
        # Looked up at most once an auction, and only if the model or a bid's event record needs them.
        user_tags = functools.cache(lambda: strongest_tags(user, LOGGED_TAGS))
        if self._scores_tags:
            context_tokens[MULTI_VALUED] = self._tag_tokens[user_tags()]
        furthest = NoBid.NO_ELIGIBLE_CAMPAIGN
        for imp in request.impressions:
            try:
                outcome = self._decide_impression(
                    decision, request, imp, rows, scores, context_tokens, (now, user_tags), lap
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
        if request.tmax_ms is not None and elapsed_ms > request.tmax_ms:
            decision.bids.clear()
            return _no_bid(decision, NoBid.INSUFFICIENT_AUCTION_TIME, f"decided in {elapsed_ms:.1f}ms > tmax")
        if not decision.bids:
            detail = {
                NoBid.NO_ELIGIBLE_CAMPAIGN: "no matched campaign fits the impressions' size or floor",
                NoBid.BELOW_FLOOR: "no bid reaches the impressions' floor",
                NoBid.BUDGET_EXHAUSTED: "no campaign has the budget left for its bid",
            }[furthest]
            return _no_bid(decision, furthest, detail)
        return decision

    def _decide_impression(
        self,
        decision: Decision,
        request: AuctionRequest,
        imp: Impression,
        rows: np.ndarray,
        scores: np.ndarray,
        context_tokens: dict[str, int | np.ndarray],
        user_context: tuple[float, Callable[[], np.ndarray]],
        lap: Callable[[str], None],
    ) -> Bid | NoBid:
        table = self._table
        size_code = None if imp.w == 0 or imp.h == 0 else table.code_of("sizes", slot_name(imp.w, imp.h))
        # Each mask is computed on the rows its predecessor kept: a mask built before a narrowing would
        # no longer line up with the rows it is applied to.
        for name, mask in (
            ("floor", lambda r: filters.floor_reachable(table, r, imp.bidfloor)),
            ("size", lambda r: filters.creative_size(table, r, size_code)),
        ):
            rows, scores = _narrow(decision, name, mask(rows), rows, scores)
            if len(rows) == 0:
                lap("filter")
                return NoBid.BELOW_FLOOR if name == "floor" else NoBid.NO_ELIGIBLE_CAMPAIGN
        lap("filter")

        indices = candidate_features(
            self._spec, table, rows, scores, context_tokens, slot_token(imp.w, imp.h)
        )
        pctr = self.snapshot.model.pctr(indices)
        lap("score")

        prices = price(
            table.base_bid[rows], table.max_bid[rows], pctr, self.snapshot.model.avg_ctr, imp.bidfloor
        )
        short_of_budget = False
        if self.spend is not None:
            # A bid whose cost the campaign's remaining budget cannot cover is not made; when that leaves
            # no bid at all, the reason is the budget, not the floor.
            short = self.spend.budget_left(table, rows) < np.round(prices * MICROS_PER_CPM)
            short_of_budget = bool(np.any(short & (prices > 0)))
            prices[short] = 0.0
        winner = best(prices, pctr)
        while winner >= 0 and self.spend is not None:
            row = int(rows[winner])
            record = self._record(
                request,
                imp,
                row,
                float(prices[winner]),
                float(pctr[winner]),
                float(scores[winner]),
                *user_context,
            )
            if self.spend.reserve(table, row, float(prices[winner]), f"{request.id}:{imp.id}", record):
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
        creative = table.creative_for(row, size_code or 0)
        campaign_id = str(table.campaign_id[row])
        return Bid(
            id=f"{imp.id}-{campaign_id}",
            imp_id=imp.id,
            campaign_row=row,
            campaign_id=campaign_id,
            creative_id=str(table.creative_id[creative]),
            adomain=str(table.adomain[row]),
            price=float(prices[winner]),
            pctr=float(pctr[winner]),
            match_score=float(scores[winner]),
        )

    def _record(
        self,
        request: AuctionRequest,
        imp: Impression,
        row: int,
        bid: float,
        pctr: float,
        match_score: float,
        now: float,
        user_tags: Callable[[], np.ndarray],
    ) -> BidRecord:
        """What the event log needs of this bid when its win arrives."""
        table = self._table
        return BidRecord(
            ts=now,
            request_id=request.id,
            imp_id=imp.id,
            user=request.user_id,
            campaign=str(table.campaign_id[row]),
            advertiser=str(table.advertiser[row]),
            category=str(table.category[row]),
            devicetype=request.devicetype,
            os=request.os,
            country=request.country,
            w=imp.w,
            h=imp.h,
            match=match_score,
            tags=tuple(self.snapshot.bundle.vocab.tags[p] for p in user_tags().tolist() if p >= 0),
            pctr=pctr,
            price=bid,
            model=self.snapshot.model.version,
        )


def _narrow(
    decision: Decision, name: str, keep: np.ndarray, rows: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    removed = len(rows) - int(np.count_nonzero(keep))
    if removed:
        decision.removed[name] = decision.removed.get(name, 0) + removed
        return rows[keep], scores[keep]
    return rows, scores


def _no_bid(decision: Decision, reason: NoBid, detail: str) -> Decision:
    decision.nbr = reason
    decision.detail = detail
    return decision
