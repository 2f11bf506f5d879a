"""The whole decision path without gRPC: what wins, and why there is no bid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from msgspec.structs import replace

from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.reasons import NoBid
from personabid.decision.snapshot import Snapshot
from personabid.errors import InvalidRequest
from personabid.openrtb.request import Banner, BidRequest, Geo, Regs, Tag, User
from personabid.reload import warm_up
from personabid.spend.control import SpendControl
from personabid.spend.store import MemoryStore, Settlement, utc_day
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


def test_coppa_request_gets_no_profile_based_bid(decider: Decider) -> None:
    assert decider.decide(persona_request(decider, 5, regs=Regs(coppa=1))).nbr == NoBid.COPPA_RESTRICTED


def with_consent(request: BidRequest, consent: str) -> BidRequest:
    return replace(request, regs=Regs(gdpr=1), user=replace(request.user, consent=consent))


def test_gdpr_request_without_consent_gets_no_profile_based_bid(decider: Decider) -> None:
    decision = decider.decide(persona_request(decider, 5, regs=Regs(gdpr=1)))
    assert decision.nbr == NoBid.NO_CONSENT and "user.consent is empty" in decision.detail


def test_gdpr_request_refusing_personalised_ads_gets_no_bid(decider: Decider) -> None:
    request = with_consent(persona_request(decider, 5), tc_string({1, 3}))
    assert decider.decide(request).nbr == NoBid.NO_CONSENT


def test_gdpr_request_consenting_to_personalised_ads_is_bid_on_as_without_gdpr(decider: Decider) -> None:
    consented = decider.decide(with_consent(persona_request(decider, 5), tc_string({1, 3, 4})))
    assert [(b.campaign_id, b.price) for b in consented.bids] == [
        (b.campaign_id, b.price) for b in decider.decide(persona_request(decider, 5)).bids
    ]
    assert consented.bids


def test_tmax_too_short_to_decide_is_insufficient_auction_time(decider: Decider) -> None:
    assert decider.decide(persona_request(decider, 5, tmax=1)).nbr == NoBid.INSUFFICIENT_AUCTION_TIME


def test_user_without_profile_is_unmatched(decider: Decider) -> None:
    request = persona_request(decider, 5, user=User(id="someone"))
    assert decider.decide(request).nbr == NoBid.UNMATCHED_USER


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


def test_a_test_auction_reserves_nothing(demo_dir: Path) -> None:
    snapshot = Snapshot.load(demo_dir / "index", demo_dir / "model")
    spend = SpendControl(MemoryStore(), clock=lambda: NOW)
    decider = Decider(snapshot, DecisionSettings(), clock=lambda: NOW, spend=spend)
    spend.refresh(snapshot.bundle.campaigns)
    remaining = spend.summary()["remaining"]
    decision = decider.decide(persona_request(decider, 5, test=1))
    assert decision.bids and spend.summary()["remaining"] == remaining


def test_a_floor_that_removes_some_candidates_leaves_the_creative_filter_aligned(decider: Decider) -> None:
    # The floor filter narrows the candidates after the creative filter chose each one's creative; the
    # creatives must be narrowed with the rows, or a bid would carry another campaign's creative.
    table = decider.snapshot.bundle.campaigns
    floor = float(table.max_bid[5]) * 0.999  # above many candidates' max bids, within campaign 5's
    request = with_imp(persona_request(decider, 5), bidfloor=floor)
    decision = decider.decide(request)
    assert decision.removed.get("floor", 0) > 0
    for bid in decision.bids:
        row = bid.campaign_row
        assert table.creative_offsets[row] <= bid.creative < table.creative_offsets[row + 1]
        assert bid.price >= floor
    assert decision.nbr == NoBid.BELOW_FLOOR or decision.bids


def test_a_weight_beyond_float32s_range_is_refused_naming_the_tag(decider: Decider) -> None:
    request = persona_request(decider, 5, user=User(tags=(Tag(id="interest:travel", weight=1e300),)))
    with pytest.raises(InvalidRequest) as refused:
        decider.decide(request)
    assert str(refused.value).startswith("user.tags[0].weight=1e+300: must lie within float32's range")
