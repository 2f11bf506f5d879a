"""The whole decision path without gRPC: what wins, and why there is no bid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from msgspec.structs import replace

from personabid.bidrecord import BidRecord
from personabid.decision.pipeline import Decider, Decision, DecisionSettings
from personabid.decision.reasons import NoBid
from personabid.decision.snapshot import Snapshot
from personabid.errors import InvalidRequest
from personabid.openrtb.request import Banner, BidRequest, Device, Geo, Regs, Site, Tag, User
from personabid.profiles.store import Profile, ProfileUnavailable
from personabid.reload import warm_up
from personabid.spend.control import SpendControl, SpendSettings
from personabid.spend.pacing import PacingParams
from personabid.spend.store import MemoryStore, Reservation, Settlement, cost_micros, utc_day
from tests.auctions import persona_auction
from tests.tcf import tc_string

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def decider(demo_dir: Path) -> Decider:
    decider = Decider(
        Snapshot.load(demo_dir / "index", demo_dir / "model"), DecisionSettings(), clock=lambda: NOW
    )
    # As the server does before serving: the first decision would otherwise include compiling the kernels.
    warm_up(decider)
    return decider


def persona_request(decider: Decider, row: int, **fields: Any) -> BidRequest:
    """A request whose user is campaign `row`'s own persona, on a slot and device it accepts."""
    return persona_auction(decider.snapshot, row, **fields)


def test_user_on_a_campaigns_persona_gets_that_campaigns_bid_above_its_floor(decider: Decider) -> None:
    # Among all campaigns, the best price wins, which need not be the persona's own campaign: matching
    # only the nearest persona leaves that campaign alone in the auction, so it must be the one to win.
    nearest = Decider(decider.snapshot, DecisionSettings(top_k=1), clock=lambda: NOW)
    table = decider.snapshot.bundle.campaigns
    bids = nearest.decide(persona_request(decider, 5)).bids
    assert [b.campaign_row for b in bids] == [5]
    assert bids[0].match_score >= table.min_match[5]


def test_same_request_same_decision(decider: Decider) -> None:
    first = decider.decide(persona_request(decider, 7))
    second = decider.decide(persona_request(decider, 7))
    assert len(first.bids) == 1
    assert first.bids == second.bids


def with_imp(request: BidRequest, **fields: object) -> BidRequest:
    """`request` with its first impression's `fields` replaced."""
    return replace(request, imp=(replace(request.imp[0], **fields),))


def test_floor_above_every_cap_is_below_floor(decider: Decider) -> None:
    request = with_imp(persona_request(decider, 5), bidfloor=10_000.0)
    assert decider.decide(request).nbr == NoBid.BELOW_FLOOR


def test_winner_clears_the_floor(decider: Decider) -> None:
    request = with_imp(persona_request(decider, 9), bidfloor=1.0)
    bids = decider.decide(request).bids
    assert len(bids) == 1 and bids[0].price >= 1.0


def test_blocked_category_never_wins(decider: Decider) -> None:
    table = decider.snapshot.bundle.campaigns
    request = persona_request(decider, 11)
    winner = decider.decide(request).bids[0]
    category = str(table.category[winner.campaign_row])
    # Another campaign, of another category, bids instead: with no bid at all the test would prove nothing.
    blocked = decider.decide(replace(request, bcat=(category,))).bids
    assert len(blocked) == 1 and str(table.category[blocked[0].campaign_row]) != category


def test_blocked_advertiser_never_wins(decider: Decider) -> None:
    request = persona_request(decider, 11)
    winner = decider.decide(request).bids[0]
    blocked = decider.decide(replace(request, badv=(winner.adomain,))).bids
    assert len(blocked) == 1 and blocked[0].adomain != winner.adomain


def test_slot_size_no_campaign_has_is_no_fitting_creative(decider: Decider) -> None:
    request = with_imp(persona_request(decider, 5), banner=Banner(w=1, h=1))
    assert decider.decide(request).nbr == NoBid.NO_FITTING_CREATIVE


def test_winning_creative_fits_the_slot(decider: Decider) -> None:
    table = decider.snapshot.bundle.campaigns
    request = persona_request(decider, 13)
    decision = decider.decide(request)
    assert len(decision.bids) == 1
    creative = decision.bids[0].creative
    banner = request.imp[0].banner
    assert banner is not None
    assert (int(table.creative_w[creative]), int(table.creative_h[creative])) == (banner.w, banner.h)


def test_unknown_country_only_reaches_campaigns_that_target_everywhere(decider: Decider) -> None:
    table = decider.snapshot.bundle.campaigns
    request = persona_request(decider, 5)
    request = replace(request, device=replace(request.device, geo=Geo(country="ATA")))
    bids = decider.decide(request).bids
    assert len(bids) == 1
    assert table.country_bits[bids[0].campaign_row, 0] & np.uint64(1)


def on_sports_page(request: BidRequest) -> BidRequest:
    """`request` on a sports page, so that its context alone has something to match."""
    return replace(request, site=Site(id="s", cat=("IAB17",)))


def decided_on_context_alone(decider: Decider, request: BidRequest) -> Decision:
    """The decision of `request`, checked to be the one its context alone gets: the same request
    without its user and without the rule that restricts it."""
    decision = decider.decide(request)
    anonymous = decider.decide(
        replace(request, user=User(), regs=Regs(), device=replace(request.device, dnt=None, lmt=None))
    )
    assert decision.sources == anonymous.sources == ("context",)
    assert [(b.campaign_id, b.price) for b in decision.bids] == [
        (b.campaign_id, b.price) for b in anonymous.bids
    ]
    assert decision.nbr == anonymous.nbr
    return decision


def test_coppa_request_is_decided_on_its_context_alone(decider: Decider) -> None:
    request = on_sports_page(persona_request(decider, 5, regs=Regs(coppa=1)))
    assert decided_on_context_alone(decider, request).restriction == "coppa"


def with_consent(request: BidRequest, consent: str) -> BidRequest:
    return replace(request, regs=Regs(gdpr=1), user=replace(request.user, consent=consent))


def test_gdpr_request_without_consent_is_decided_on_its_context_alone(decider: Decider) -> None:
    request = on_sports_page(persona_request(decider, 5, regs=Regs(gdpr=1)))
    assert decided_on_context_alone(decider, request).restriction == "gdpr"


def test_gdpr_request_refusing_personalised_ads_is_decided_on_its_context_alone(decider: Decider) -> None:
    request = on_sports_page(with_consent(persona_request(decider, 5), tc_string({1, 3})))
    assert decided_on_context_alone(decider, request).restriction == "gdpr"


@pytest.mark.parametrize("flag", ["dnt", "lmt"])
def test_do_not_track_and_limit_ad_tracking_are_decided_on_context_alone(decider: Decider, flag: str) -> None:
    request = on_sports_page(persona_request(decider, 5))
    request = replace(request, device=replace(request.device, **{flag: 1}))
    assert decided_on_context_alone(decider, request).restriction == flag


def test_a_restricted_request_gets_bids_on_a_sports_page(decider: Decider) -> None:
    decision = decider.decide(on_sports_page(persona_request(decider, 5, regs=Regs(coppa=1))))
    assert decision.bids and decision.nbr is None


def test_gdpr_request_consenting_to_personalised_ads_is_bid_on_as_without_gdpr(decider: Decider) -> None:
    consented = decider.decide(with_consent(persona_request(decider, 5), tc_string({1, 3, 4})))
    assert [(b.campaign_id, b.price) for b in consented.bids] == [
        (b.campaign_id, b.price) for b in decider.decide(persona_request(decider, 5)).bids
    ]
    assert consented.bids


def test_tmax_too_short_to_decide_is_insufficient_auction_time(decider: Decider) -> None:
    assert decider.decide(persona_request(decider, 5, tmax=1)).nbr == NoBid.INSUFFICIENT_AUCTION_TIME


def test_request_carrying_nothing_usable_is_unmatched(decider: Decider) -> None:
    request = persona_request(decider, 5, user=User(id="someone"), device=Device())
    decision = decider.decide(request)
    assert decision.nbr == NoBid.UNMATCHED_USER and decision.sources == ()


def test_unknown_user_is_matched_on_the_context(decider: Decider) -> None:
    decision = decider.decide(on_sports_page(persona_request(decider, 5, user=User(id="someone"))))
    assert decision.sources == ("context",) and decision.candidates > 0


def test_a_restricted_users_bid_records_no_user(demo_dir: Path) -> None:
    snapshot = Snapshot.load(demo_dir / "index", demo_dir / "model")
    store = RecordingStore()
    spend = SpendControl(store, clock=lambda: NOW)
    decider = Decider(snapshot, DecisionSettings(), clock=lambda: NOW, spend=spend)
    spend.refresh(snapshot.bundle.campaigns)
    request = on_sports_page(persona_request(decider, 5, regs=Regs(coppa=1)))
    assert decider.decide(request).bids
    assert store.records and all(record.user == "" for record in store.records)
    assert store.viewers == []  # no frequency cap was read for anyone


class RecordingStore(MemoryStore):
    """A spend store that keeps the records of the bids reserved and whose views were read."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[BidRecord] = []
        self.viewers: list[str] = []

    def reserve(self, reservation: Reservation) -> bool:
        self.records.append(reservation.record)
        return super().reserve(reservation)

    def may_have_views(self, user: str) -> bool:
        self.viewers.append(user)
        return super().may_have_views(user)

    def views(self, user: str, campaigns: list[str], windows: list[float], now: float) -> list[int]:
        self.viewers.append(user)
        return super().views(user, campaigns, windows, now)


def test_each_impression_gets_its_own_bid(decider: Decider) -> None:
    request = persona_request(decider, 5)
    second = replace(request.imp[0], id="2")
    decision = decider.decide(replace(request, imp=(request.imp[0], second)))
    assert sorted(b.imp_id for b in decision.bids) == ["1", "2"]


def test_decision_times_every_stage_it_ran(decider: Decider) -> None:
    decision = decider.decide(persona_request(decider, 5))
    assert set(decision.stages) == {"validate", "user_vector", "match", "filter", "score", "price"}
    assert all(seconds >= 0 for seconds in decision.stages.values())


def test_campaigns_without_budget_left_do_not_bid(demo_dir: Path) -> None:
    snapshot = Snapshot.load(demo_dir / "index", demo_dir / "model")
    table = snapshot.bundle.campaigns
    spend = SpendControl(MemoryStore(), clock=lambda: NOW)
    day = utc_day(NOW)
    for row, campaign in enumerate(table.campaign_id):
        budget = round(float(table.daily_budget[row]) * 1_000_000)
        spend.store.apply(
            Settlement("bill", f"win:x{row}", 3600, day, str(campaign), f"x{row}:1", budget, NOW)
        )
    decider = Decider(snapshot, DecisionSettings(), clock=lambda: NOW, spend=spend)
    spend.refresh(table)
    assert decider.decide(persona_request(decider, 5)).nbr == NoBid.BUDGET_EXHAUSTED


def test_a_budget_for_one_bid_buys_one_of_the_requests_impressions(demo_dir: Path) -> None:
    snapshot = Snapshot.load(demo_dir / "index", demo_dir / "model")
    table = snapshot.bundle.campaigns
    # Pacing that never throttles (its first step would, the budget being nearly spent): the budget decides.
    spend = SpendControl(MemoryStore(), SpendSettings(pacing=PacingParams(step=0.0)), clock=lambda: NOW)
    # The persona's own campaign alone, so that no other campaign takes the impression it cannot buy.
    decider = Decider(snapshot, DecisionSettings(top_k=1), clock=lambda: NOW, spend=spend)
    request = persona_request(decider, 5)
    price = decider.decide(replace(request, test=1)).bids[0].price
    budget = round(float(table.daily_budget[5]) * 1_000_000)
    left = cost_micros(price) * 3 // 2  # one bid's cost and a half
    spend.store.apply(
        Settlement("bill", "win:x", 3600, utc_day(NOW), str(table.campaign_id[5]), "x:1", budget - left, NOW)
    )
    spend.refresh(table)
    decision = decider.decide(replace(request, imp=(request.imp[0], replace(request.imp[0], id="2"))))
    assert [b.imp_id for b in decision.bids] == ["1"]


def test_a_test_auction_reserves_nothing(demo_dir: Path) -> None:
    snapshot = Snapshot.load(demo_dir / "index", demo_dir / "model")
    spend = SpendControl(MemoryStore(), clock=lambda: NOW)
    decider = Decider(snapshot, DecisionSettings(), clock=lambda: NOW, spend=spend)
    spend.refresh(snapshot.bundle.campaigns)
    remaining = spend.summary()["remaining"]
    decision = decider.decide(persona_request(decider, 5, test=1))
    assert decision.bids and spend.summary()["remaining"] == remaining


def floored_request(decider: Decider) -> tuple[BidRequest, float]:
    """The first campaign's persona request whose floor, just under the campaign's max bid, is above some
    candidates' max bids and still leaves a bid, and that floor."""
    table = decider.snapshot.bundle.campaigns
    for row in range(len(table)):
        floor = float(table.max_bid[row]) * 0.999
        request = with_imp(persona_request(decider, row), bidfloor=floor)
        decision = decider.decide(request)
        if decision.removed.get("floor", 0) > 0 and decision.bids:
            return request, floor
    raise LookupError("no persona request's floor removes some candidates and leaves a bid")


def test_a_floor_that_removes_some_candidates_leaves_the_creative_filter_aligned(decider: Decider) -> None:
    # The floor filter narrows the candidates after the creative filter chose each one's creative; the
    # creatives must be narrowed with the rows, or a bid would carry another campaign's creative.
    table = decider.snapshot.bundle.campaigns
    request, floor = floored_request(decider)
    decision = decider.decide(request)
    assert decision.removed.get("floor", 0) > 0 and decision.bids
    for bid in decision.bids:
        row = bid.campaign_row
        assert table.creative_offsets[row] <= bid.creative < table.creative_offsets[row + 1]
        assert bid.price >= floor


def test_a_weight_beyond_float32s_range_is_refused_naming_the_tag(decider: Decider) -> None:
    request = persona_request(decider, 5, user=User(tags=(Tag(id="interest:travel", weight=1e300),)))
    with pytest.raises(InvalidRequest) as refused:
        decider.decide(request)
    assert str(refused.value).startswith("user.tags[0].weight=1e+300: must lie within float32's range")


class ProfilesFor:
    """A profile store that knows the given pseudonyms and records every lookup."""

    version = "test"

    def __init__(self, known: dict[str, Profile], down: bool = False) -> None:
        self.known = known
        self.down = down
        self.lookups: list[str] = []

    def lookup(self, pseudonym: str) -> Profile | None:
        self.lookups.append(pseudonym)
        if self.down:
            raise ProfileUnavailable("the profile store does not answer")
        return self.known.get(pseudonym)


def persona_profile(decider: Decider, row: int) -> Profile:
    """Campaign `row`'s persona as a stored profile."""
    vector = np.asarray(persona_request(decider, row).user.tag_vector)
    positions = np.flatnonzero(vector > 0).astype(np.int32)
    return Profile(positions, vector[positions].astype(np.float32), np.ones(len(positions), np.uint16))


def with_profiles(decider: Decider, store: ProfilesFor, **settings: Any) -> Decider:
    return Decider(decider.snapshot, DecisionSettings(**settings), clock=lambda: NOW, profiles=store)


def known_user(decider: Decider, **fields: Any) -> BidRequest:
    """A request with no profile of its own from a user the store knows as "p-buyer"."""
    return persona_request(decider, 5, user=User(buyeruid="p-buyer", id="p-id"), **fields)


def test_a_stored_profile_is_blended_and_matched(decider: Decider) -> None:
    store = ProfilesFor({"p-buyer": persona_profile(decider, 5)})
    decision = with_profiles(decider, store, top_k=1).decide(known_user(decider))
    assert decision.profile_outcome == "found" and decision.sources == ("profile", "context")
    assert [b.campaign_row for b in decision.bids] == [5]


def test_the_profile_is_looked_up_by_the_first_id_the_request_has(decider: Decider) -> None:
    store = ProfilesFor({})
    with_profiles(decider, store).decide(known_user(decider))
    with_profiles(decider, store, profile_ids=("ifa", "id")).decide(known_user(decider))
    assert store.lookups == ["p-buyer", "p-id"]


def test_an_unknown_user_is_bid_on_what_the_request_carries(decider: Decider) -> None:
    decision = with_profiles(decider, ProfilesFor({})).decide(on_sports_page(known_user(decider)))
    assert decision.profile_outcome == "unknown" and decision.sources == ("context",)
    assert decision.candidates > 0


def test_a_profile_store_outage_is_bid_on_what_the_request_carries(decider: Decider) -> None:
    store = ProfilesFor({"p-buyer": persona_profile(decider, 5)}, down=True)
    decision = with_profiles(decider, store).decide(on_sports_page(known_user(decider)))
    assert decision.profile_outcome == "unavailable" and decision.sources == ("context",)
    assert decision.candidates > 0


def test_a_request_without_an_id_is_not_looked_up(decider: Decider) -> None:
    store = ProfilesFor({})
    decision = with_profiles(decider, store).decide(persona_request(decider, 5, user=User()))
    assert decision.profile_outcome == "no_id" and store.lookups == []


def test_a_restricted_request_reads_no_profile(decider: Decider) -> None:
    store = ProfilesFor({"p-buyer": persona_profile(decider, 5)})
    decision = with_profiles(decider, store).decide(known_user(decider, regs=Regs(coppa=1)))
    assert decision.profile_outcome == "restricted" and store.lookups == []
    assert "profile" not in decision.sources


def test_without_a_store_the_outcome_is_none(decider: Decider) -> None:
    assert decider.decide(known_user(decider)).profile_outcome == "none"


@pytest.mark.parametrize(
    "settings",
    [
        {"profile_weight": -1.0},
        {"context_weight": float("nan")},
        {"profile_ids": ("email",)},
        {"context_match_scale": 0.0},
    ],
)
def test_settings_a_decision_cannot_use_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DecisionSettings(**settings)
