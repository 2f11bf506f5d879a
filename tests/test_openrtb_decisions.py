"""What OpenRTB 2.6's objects make the decision do: deals, currencies, seats, blocked apps, languages,
taxonomies, and creatives that fit video, native, banner formats, blocked attributes and https."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from msgspec.structs import replace

from personabid.decision.currency import Currencies
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.reasons import NoBid
from personabid.decision.snapshot import Snapshot
from personabid.errors import InvalidRequest
from personabid.index.campaigns import CampaignTable
from personabid.openrtb.request import Banner, BidRequest, Deal, Format, Imp, Native, Pmp, Video
from personabid.reload import warm_up
from tests.auctions import MTYPES, campaign_with, media_of, nearest_campaign, persona_auction

NOW = 1_800_000_000
EUR = 2.0  # USD per euro in these tests' table, far from any real rate so that a missed conversion shows


@pytest.fixture(scope="module")
def decider(demo_dir: Path) -> Decider:
    settings = DecisionSettings(currencies=Currencies({"USD": 1.0, "EUR": EUR}), seat="personabid")
    decider = Decider(Snapshot.load(demo_dir / "index", demo_dir / "model"), settings, clock=lambda: NOW)
    warm_up(decider)
    return decider


@pytest.fixture(scope="module")
def alone(decider: Decider) -> Decider:
    """Matches only the nearest persona: a persona's own campaign is then alone in the auction."""
    return Decider(decider.snapshot, dataclasses.replace(decider.settings, top_k=1), clock=lambda: NOW)


def table_of(decider: Decider) -> CampaignTable:
    return decider.snapshot.bundle.campaigns


def dealt(decider: Decider, deal_only: bool) -> tuple[int, str]:
    """A campaign row that buys through a deal (deal-bound or not), and that deal's id; one whose persona
    auction matches its own persona first, so that it is alone in the auctions of `alone`."""
    table = table_of(decider)
    for row in range(len(table)):
        if bool(table.deal_only[row]) != deal_only:
            continue
        if nearest_campaign(decider, persona_auction(decider.snapshot, row)) != row:
            continue
        for code in range(1, len(table.deals)):
            if table.deal_bits[row, code >> 6] >> np.uint64(code & 63) & np.uint64(1):
                return row, str(table.deals[code])
    raise LookupError("no campaign of the world buys through a deal")


def with_imp(request: BidRequest, **fields: object) -> BidRequest:
    return replace(request, imp=(replace(request.imp[0], **fields),))


def private(deal: Deal) -> Pmp:
    return Pmp(private_auction=1, deals=(deal,))


# --- deals ---


def test_a_private_auction_admits_only_bids_through_its_deal(decider: Decider) -> None:
    row, deal = dealt(decider, deal_only=False)
    decision = decider.decide(with_imp(persona_auction(decider.snapshot, row), pmp=private(Deal(id=deal))))
    assert decision.bids and all(b.deal_id == deal for b in decision.bids)


def test_a_private_auction_whose_deal_no_campaign_buys_gets_no_bid(decider: Decider) -> None:
    row, _ = dealt(decider, deal_only=False)
    request = with_imp(persona_auction(decider.snapshot, row), pmp=private(Deal(id="nobody-buys-this")))
    assert decider.decide(request).nbr == NoBid.NO_ELIGIBLE_CAMPAIGN


def test_a_deal_bound_campaign_does_not_bid_in_the_open_auction(alone: Decider) -> None:
    row, _ = dealt(alone, deal_only=True)
    assert alone.decide(persona_auction(alone.snapshot, row)).nbr == NoBid.NO_ELIGIBLE_CAMPAIGN


def test_a_deal_bound_campaign_bids_through_its_deal(alone: Decider) -> None:
    row, deal = dealt(alone, deal_only=True)
    request = with_imp(persona_auction(alone.snapshot, row), pmp=Pmp(deals=(Deal(id=deal),)))
    assert [b.deal_id for b in alone.decide(request).bids] == [deal]


def test_a_bid_through_a_deal_clears_the_deals_floor(alone: Decider) -> None:
    table = table_of(alone)
    row, deal = dealt(alone, deal_only=False)
    floor = float(table.max_bid[row]) * 0.9
    request = with_imp(persona_auction(alone.snapshot, row), pmp=Pmp(deals=(Deal(id=deal, bidfloor=floor),)))
    bids = alone.decide(request).bids
    assert all(b.price >= floor for b in bids) and all(b.deal_id == deal for b in bids)


def test_a_deal_open_to_other_seats_only_is_not_bid_through(alone: Decider) -> None:
    row, deal = dealt(alone, deal_only=True)
    offered = Pmp(deals=(Deal(id=deal, wseat=("another-seat",)),))
    assert not alone.decide(with_imp(persona_auction(alone.snapshot, row), pmp=offered)).bids


def test_a_fixed_price_deal_is_bid_at_its_floor(alone: Decider) -> None:
    table = table_of(alone)
    row, deal = dealt(alone, deal_only=False)
    floor = round(float(table.base_bid[row]) * 0.01, 4)
    offered = Pmp(deals=(Deal(id=deal, bidfloor=floor, at=3),))
    bids = alone.decide(with_imp(persona_auction(alone.snapshot, row), pmp=offered)).bids
    assert [b.price for b in bids] == [pytest.approx(floor)]


# --- currencies and seats ---


def test_a_floor_in_another_currency_is_converted_to_usd(alone: Decider) -> None:
    table = table_of(alone)
    row = 9
    cap = float(table.max_bid[row])
    # Half the cap in euros is the whole cap in dollars at 2 USD per euro: only a bid at the cap clears it.
    request = with_imp(persona_auction(alone.snapshot, row), bidfloor=cap / EUR * 1.01, bidfloorcur="EUR")
    assert alone.decide(request).nbr == NoBid.BELOW_FLOOR


def test_a_floor_currency_without_a_rate_is_a_no_bid_saying_so(decider: Decider) -> None:
    request = with_imp(persona_auction(decider.snapshot, 9), bidfloorcur="XXX")
    assert decider.decide(request).nbr == NoBid.UNSUPPORTED_CURRENCY


def test_bids_are_priced_in_the_currency_the_exchange_asks_for(decider: Decider) -> None:
    request = persona_auction(decider.snapshot, 9)
    in_usd = decider.decide(request)
    in_eur = decider.decide(replace(request, cur=("EUR",)))
    assert in_eur.currency == "EUR"
    assert [b.price for b in in_eur.bids] == [pytest.approx(b.price / EUR) for b in in_usd.bids]


def test_accepted_currencies_without_a_rate_are_a_no_bid_saying_so(decider: Decider) -> None:
    request = replace(persona_auction(decider.snapshot, 9), cur=("XXX",))
    assert decider.decide(request).nbr == NoBid.UNSUPPORTED_CURRENCY


def test_a_request_whose_wseat_leaves_personabid_out_is_seat_blocked(decider: Decider) -> None:
    request = replace(persona_auction(decider.snapshot, 9), wseat=("someone-else",))
    assert decider.decide(request).nbr == NoBid.SEAT_BLOCKED


def test_a_request_whose_bseat_names_personabid_is_seat_blocked(decider: Decider) -> None:
    request = replace(persona_auction(decider.snapshot, 9), bseat=("personabid",))
    assert decider.decide(request).nbr == NoBid.SEAT_BLOCKED


# --- blocked apps, languages, taxonomies ---


def test_a_blocked_app_is_never_advertised(decider: Decider) -> None:
    table = table_of(decider)
    row = int(np.flatnonzero(table.bundle_code > 0)[0])
    bundle = str(table.bundle[row])
    bids = decider.decide(replace(persona_auction(decider.snapshot, row), bapp=(bundle,))).bids
    assert bids and all(str(table.bundle[b.campaign_row]) != bundle for b in bids)


def test_only_campaigns_in_an_allowed_language_bid(decider: Decider) -> None:
    table = table_of(decider)
    row = int(np.flatnonzero(table.languages[table.language_code] == "de")[0])
    bids = decider.decide(replace(persona_auction(decider.snapshot, row), wlang=("de",))).bids
    assert bids and all(table.languages[table.language_code[b.campaign_row]] == "de" for b in bids)


def test_blocked_categories_in_a_taxonomy_the_catalog_does_not_use_get_no_bid(decider: Decider) -> None:
    request = replace(persona_auction(decider.snapshot, 9), bcat=("1",), cattax=2)
    assert decider.decide(request).nbr == NoBid.NO_ELIGIBLE_CAMPAIGN


# --- creatives that fit ---


def test_a_video_impression_gets_a_video_creative_that_plays_there(decider: Decider) -> None:
    table = table_of(decider)
    row, creative = campaign_with(table, "video")
    seconds = int(table.creative_duration[creative])
    video = Video(mimes=("video/mp4",), minduration=1, maxduration=seconds, protocols=(2, 3, 5, 6, 7, 8))
    bids = decider.decide(with_imp(persona_auction(decider.snapshot, row), banner=None, video=video)).bids
    assert bids
    for bid in bids:
        assert int(table.creative_mtype[bid.creative]) == MTYPES["video"]
        assert 1 <= int(table.creative_duration[bid.creative]) <= seconds


def test_a_video_impression_no_creative_plays_in_is_no_fitting_creative(decider: Decider) -> None:
    row, _ = campaign_with(table_of(decider), "video")
    video = Video(mimes=("video/x-flv",))
    request = with_imp(persona_auction(decider.snapshot, row), banner=None, video=video)
    assert decider.decide(request).nbr == NoBid.NO_FITTING_CREATIVE


def test_a_native_impression_gets_a_native_creative(decider: Decider) -> None:
    table = table_of(decider)
    row, _ = campaign_with(table, "native")
    native = Native(request='{"ver":"1.2","assets":[]}', ver="1.2")
    bids = decider.decide(with_imp(persona_auction(decider.snapshot, row), banner=None, native=native)).bids
    assert bids and all(int(table.creative_mtype[b.creative]) == MTYPES["native"] for b in bids)


def test_a_banner_given_as_formats_gets_a_creative_of_one_of_them(decider: Decider) -> None:
    table = table_of(decider)
    request = persona_auction(decider.snapshot, 13)
    banner = request.imp[0].banner
    assert banner is not None
    formats = (Format(w=banner.w, h=banner.h), Format(w=728, h=90))
    bids = decider.decide(with_imp(request, banner=Banner(format=formats))).bids
    sizes = {(f.w, f.h) for f in formats}
    assert bids and all(
        (int(table.creative_w[b.creative]), int(table.creative_h[b.creative])) in sizes for b in bids
    )


def test_a_blocked_creative_attribute_is_never_served(decider: Decider) -> None:
    table = table_of(decider)
    creative = int(np.flatnonzero(table.creative_attr_bits)[0])
    attribute = int(
        np.flatnonzero([(int(table.creative_attr_bits[creative]) >> a) & 1 for a in range(32)])[0]
    )
    row = int(np.searchsorted(table.creative_offsets, creative, side="right") - 1)
    request = persona_auction(decider.snapshot, row)
    banner = request.imp[0].banner
    assert banner is not None
    blocked = with_imp(request, banner=replace(banner, battr=(attribute,)))
    for bid in decider.decide(blocked).bids:
        assert not int(table.creative_attr_bits[bid.creative]) >> attribute & 1


def test_a_secure_impression_gets_a_secure_creative(decider: Decider) -> None:
    table = table_of(decider)
    bids = decider.decide(with_imp(persona_auction(decider.snapshot, 13), secure=1)).bids
    assert all(bool(table.creative_secure[b.creative]) for b in bids)


def test_a_video_impression_for_a_campaign_of_banners_only_is_no_fitting_creative(alone: Decider) -> None:
    table = table_of(alone)
    row = next(r for r in range(len(table)) if media_of(table, r) == {MTYPES["banner"]})
    video = Video(mimes=("video/mp4",))
    request = with_imp(persona_auction(alone.snapshot, row), banner=None, video=video)
    assert alone.decide(request).nbr == NoBid.NO_FITTING_CREATIVE


def test_imp_without_any_medium_is_refused(decider: Decider) -> None:
    request = replace(persona_auction(decider.snapshot, 9), imp=(Imp(id="1"),))
    with pytest.raises(InvalidRequest, match=r"^imp\[0\]="):
        decider.decide(request)
