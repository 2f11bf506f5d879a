"""What every answer to a bid request must be: a well-formed bid, a no-bid with a documented reason, or a
refusal that names the field. Shared by the property tests and the fuzz harness, so that they hold the
core's Decisions and the server's responses to the same rules.

A bid must be one the auction allows: one per impression, for a campaign the request does not block
(bcat, badv, bapp, wlang), with the first of the campaign's creatives that the impression takes, through a
deal the impression offers and the campaign buys or in an open auction the campaign may enter, at a price
between that floor (in USD, through the currency table) and the campaign's max bid; a fixed-price deal at
its floor exactly.
"""

from __future__ import annotations

import math
import re

import numpy as np

from personabid import wire
from personabid.decision.currency import Currencies
from personabid.decision.pipeline import Decider, Decision, DecisionSettings
from personabid.decision.reasons import NoBid
from personabid.decision.restrictions import restriction
from personabid.index.campaigns import AUDIO, BANNER, NATIVE, VIDEO, CampaignTable
from personabid.openrtb.request import BidRequest, Deal, Imp
from personabid.v1 import bidder_pb2 as pb

# "imp[3].bidfloor=-1.0: ...", "user.tags[0].weight=nan: ...", "device.ipv6='1.2.3.4': ..."
FIELD_PATH = re.compile(r"([a-z_][a-z0-9_]*(?:\[\d+\])?(?:\.[a-z_][a-z0-9_]*(?:\[\d+\])?)*)=")
# The reasons a decided request may carry. 0 and 1 are failures, 2 is a refusal (a stream's INVALID_ARGUMENT)
# and 505 a server without artifacts: none of them is a decision.
DECIDED = frozenset(NoBid) - {
    NoBid.UNKNOWN_ERROR,
    NoBid.TECHNICAL_ERROR,
    NoBid.INVALID_REQUEST,
    NoBid.NOT_READY,
}
SEAT = "personabid"  # the seat of DecisionSettings and of the test servers
FIXED_PRICE = 3  # deal.at: the deal's floor is its price
# The response rounds prices to 6 decimals (respond.py), which can put a bid up to this much under its
# floor, or off a fixed price; the core's prices are exact.
RESPONSE_ROUNDING = 5e-7


def named_field(message: str) -> str | None:
    """The field path an InvalidRequest message (or INVALID_ARGUMENT details) starts with, if any."""
    found = FIELD_PATH.match(message)
    return found.group(1) if found else None


def check_refusal(message: str, invalid: frozenset[str] | None = None) -> None:
    """A refusal names a field, and one of the rules the request breaks when those are known."""
    field = named_field(message)
    assert field is not None, f"the refusal does not start with a field path: {message!r}"
    if invalid is not None:
        assert field in invalid, f"refused on {field!r}, but the request breaks only {sorted(invalid)}"


# -- what an impression takes ------------------------------------------------------------------------------


def takes(
    imp: Imp,
    mtype: int,
    w: int,
    h: int,
    mime: str,
    duration: int,
    protocol: int,
    secure: bool,
    attrs: set[int],
) -> bool:
    """Whether the impression takes a creative of media type `mtype` (1 banner, 2 video, 3 audio, 4 native)
    with these properties, as OpenRTB states it: a banner of a size the slot lists (its w x h or one of its
    formats; any size when it lists none or a flexible format), a video or audio the player plays (mime,
    duration, protocol), native when native is offered; none of the blocked attributes of any medium, and
    https when the impression asks for it."""
    media = (imp.banner, imp.video, imp.audio, imp.native)
    blocked = {a for m in media if m is not None for a in m.battr}
    if attrs & blocked or (imp.secure == 1 and not secure):
        return False
    if mtype == BANNER:
        if imp.banner is None:
            return False
        if any(f.wratio for f in imp.banner.format):
            return True
        sizes = {(imp.banner.w, imp.banner.h), *((f.w, f.h) for f in imp.banner.format)}
        sizes = {(sw, sh) for sw, sh in sizes if sw > 0 and sh > 0}
        return not sizes or (w, h) in sizes
    if mtype in (VIDEO, AUDIO):
        player = imp.video if mtype == VIDEO else imp.audio
        if player is None:
            return False
        if player.mimes and mime not in {m.strip().lower() for m in player.mimes}:
            return False
        if player.rqddurs:
            if duration not in player.rqddurs:
                return False
        elif duration < player.minduration or (player.maxduration and duration > player.maxduration):
            return False
        return not player.protocols or protocol in player.protocols
    return mtype == NATIVE and imp.native is not None


def creative_takes(table: CampaignTable, creative: int, imp: Imp) -> bool:
    """`takes` for the creative at index `creative` of the table's creative columns."""
    bits = int(table.creative_attr_bits[creative])
    return takes(
        imp,
        int(table.creative_mtype[creative]),
        int(table.creative_w[creative]),
        int(table.creative_h[creative]),
        str(table.mimes[table.creative_mime[creative]]),
        int(table.creative_duration[creative]),
        int(table.creative_protocol[creative]),
        bool(table.creative_secure[creative]),
        {a for a in range(32) if bits >> a & 1},
    )


def deal_open_to(deal: Deal, table: CampaignTable, row: int, seat: str = SEAT) -> bool:
    """Whether campaign `row` may buy through the deal: the campaign lists it, the deal admits the seat
    and the campaign's advertiser."""
    code = table.code_of("deals", deal.id)
    if code == 0 or not (int(table.deal_bits[row, code >> 6]) >> (code & 63)) & 1:
        return False
    if deal.wseat and seat not in deal.wseat:
        return False
    return not deal.wadomain or str(table.adomain[row]) in {d.lower() for d in deal.wadomain}


# -- decisions and responses -------------------------------------------------------------------------------


def check_bid(
    table: CampaignTable,
    request: BidRequest,
    bid: tuple[str, int, int, float, str],
    currency: str,
    currencies: Currencies,
    slack: float = 0.0,
) -> None:
    """One bid (imp id, campaign row, creative index, price in `currency`, deal id) that the auction
    allows; `slack` is how far a price may be off by rounding."""
    imp_id, row, creative, price, deal_id = bid
    imp = next((i for i in request.imp if i.id == imp_id), None)
    assert imp is not None, f"a bid on impression {imp_id!r}, which the request does not have"
    assert math.isfinite(price) and price > 0, bid
    price_usd = currencies.to_usd(price, currency)
    assert price_usd is not None, f"{bid} in {currency}, which has no rate"
    max_bid = float(table.max_bid[row])
    assert price_usd <= max_bid * (1 + 1e-12) + slack, f"{bid} over the campaign's max bid {max_bid}"

    first, stop = int(table.creative_offsets[row]), int(table.creative_offsets[row + 1])
    assert first <= creative < stop, f"{bid}: not one of the campaign's creatives {first}..{stop - 1}"
    assert creative_takes(table, creative, imp), f"{bid}: a creative {imp} does not take"
    earlier = [c for c in range(first, creative) if creative_takes(table, c, imp)]
    assert not earlier, f"{bid}: the campaign's creative {earlier[0]} fits before it"

    category = str(table.category[row])
    assert category not in request.bcat and category.split("-")[0] not in request.bcat, bid
    assert str(table.adomain[row]) not in request.badv, bid
    assert not str(table.bundle[row]) or str(table.bundle[row]) not in request.bapp, bid
    languages = {w.lower() for w in request.wlang} | {w.split("-")[0].lower() for w in request.wlangb}
    if languages:
        assert str(table.languages[table.language_code[row]]) in languages, f"{bid}: not in wlang"

    if deal_id:
        deals = imp.pmp.deals if imp.pmp is not None else ()
        deal = next((d for d in deals if d.id == deal_id), None)
        assert deal is not None, f"{bid} through a deal the impression does not offer"
        assert deal_open_to(deal, table, row), f"{bid} through a deal not open to the campaign"
        floor = currencies.to_usd(deal.bidfloor, deal.bidfloorcur)
        assert floor is not None, f"{bid} through a deal whose floor currency has no rate"
        if deal.at == FIXED_PRICE:
            assert abs(price_usd - floor) <= floor * 1e-12 + slack, f"{bid}: not the fixed price {floor}"
    else:
        assert imp.pmp is None or imp.pmp.private_auction != 1, f"{bid} in a private auction"
        assert not table.deal_only[row], f"{bid} in the open auction by a deal-only campaign"
        floor = currencies.to_usd(imp.bidfloor, imp.bidfloorcur)
        assert floor is not None, f"{bid} on a floor whose currency has no rate"
    assert price_usd >= floor * (1 - 1e-12) - slack, f"{bid} under the floor {floor} USD"


def check_no_bid_reason(request: BidRequest, nbr: NoBid | int | None, currencies: Currencies) -> None:
    """The reasons that answer a property of the request hold of it."""
    seat_blocked = (request.wseat and SEAT not in request.wseat) or SEAT in request.bseat
    if nbr == NoBid.SEAT_BLOCKED:
        assert seat_blocked, "SEAT_BLOCKED, but wseat and bseat admit the seat"
    # Privacy limits what the user vector may use, never whether to bid.
    assert nbr not in (NoBid.COPPA_RESTRICTED, NoBid.NO_CONSENT), f"answered {nbr!r}"
    if nbr == NoBid.UNSUPPORTED_CURRENCY:
        named = set(request.cur) | {i.bidfloorcur for i in request.imp}
        named |= {d.bidfloorcur for i in request.imp if i.pmp is not None for d in i.pmp.deals}
        assert any(currencies.to_usd(1.0, c) is None for c in named), (
            "UNSUPPORTED_CURRENCY, but every currency of the request has a rate"
        )
    if nbr is None:
        assert not seat_blocked, "bids on a request that excludes them"


def check_decision(
    table: CampaignTable,
    request: BidRequest,
    decision: Decision,
    currencies: Currencies | None = None,
) -> None:
    """Bids that the auction allows, or a no-bid with a documented reason and its explanation."""
    currencies = currencies or Currencies()
    assert decision.request_id == request.id
    check_no_bid_reason(request, decision.nbr, currencies)
    if not decision.bids:
        assert decision.nbr in DECIDED, f"no bid with reason {decision.nbr!r}"
        assert decision.detail, f"no-bid {decision.nbr!r} without an explanation"
        return
    assert decision.nbr is None, f"bids and a no-bid reason {decision.nbr!r} at once"
    assert currencies.to_usd(1.0, decision.currency) is not None, decision.currency
    assert not request.cur or decision.currency in request.cur, f"bids in {decision.currency}"
    imp_ids = [bid.imp_id for bid in decision.bids]
    assert len(set(imp_ids)) == len(imp_ids), f"more than one bid on an impression: {imp_ids}"
    for bid in decision.bids:
        row = bid.campaign_row
        assert bid.campaign_id == str(table.campaign_id[row])
        assert bid.creative_id == str(table.creative_id[bid.creative])
        assert 0.0 < bid.pctr <= 1.0, bid
        # A context-only match (sparser than a profile, so lower in cosine) clears a scaled floor.
        scale = DecisionSettings().context_match_scale if decision.sources == ("context",) else 1.0
        assert bid.match_score >= table.min_match[row] * np.float32(scale), bid
        check_bid(
            table,
            request,
            (bid.imp_id, row, bid.creative, bid.price, bid.deal_id),
            decision.currency,
            currencies,
        )


def check_response(
    table: CampaignTable,
    request: pb.BidRequest,
    response: pb.BidResponse,
    currencies: Currencies | None = None,
) -> None:
    """The server's answer to a request it decided: the same rules, on the wire."""
    currencies = currencies or Currencies()
    auction = wire.to_auction(request)
    assert response.id == request.id
    bids = [bid for seat in response.seatbid for bid in seat.bid]
    if not bids:
        assert not response.seatbid, "a seat without bids"
        assert response.nbr in DECIDED, f"no bid with reason {response.nbr} ({response.nbr_detail!r})"
        assert response.nbr_detail, f"no-bid {response.nbr} without an explanation"
        check_no_bid_reason(auction, response.nbr, currencies)
        return
    assert response.nbr == 0, f"bids and a no-bid reason {response.nbr} at once"
    check_no_bid_reason(auction, None, currencies)
    rows = {str(c): row for row, c in enumerate(table.campaign_id)}
    imp_ids = [bid.impid for bid in bids]
    assert len(set(imp_ids)) == len(imp_ids), f"more than one bid on an impression: {imp_ids}"
    for bid in bids:
        assert bid.campaign_id in rows, f"a bid for an unknown campaign {bid.campaign_id!r}"
        row = rows[bid.campaign_id]
        first, stop = int(table.creative_offsets[row]), int(table.creative_offsets[row + 1])
        ids = [str(c) for c in table.creative_id[first:stop]]
        assert bid.crid in ids, f"{bid.crid!r} is not one of the campaign's creatives {ids}"
        creative = first + ids.index(bid.crid)
        assert bid.mtype == int(table.creative_mtype[creative]), bid
        facts = (bid.impid, row, creative, bid.price, bid.dealid)
        check_bid(table, auction, facts, response.cur, currencies, slack=RESPONSE_ROUNDING)


# -- matching ----------------------------------------------------------------------------------------------


def has_known_weight(request: BidRequest, decider: Decider) -> bool:
    """Whether the request's profile puts a non-zero weight on a tag of the serving vocabulary."""
    user = request.user
    if user.tag_vector is not None and len(user.tag_vector) > 0:
        return bool(np.any(user.tag_vector != 0))
    vocab = decider.snapshot.bundle.vocab
    return any(tag.weight != 0 and vocab.position(tag.id) >= 0 for tag in user.tags)


def check_matched(decider: Decider, request: BidRequest, decision: Decision) -> None:
    """A profile with weight on a known tag is matched (whatever its scale, up to float32's limits),
    unless the request is declined before matching (a tmax too short to decide, a seat or currency it
    excludes) or may not use the profile (COPPA, no consent, do-not-track, limit-ad-tracking)."""
    settings = decider.settings
    declined = (
        (request.tmax is not None and request.tmax < settings.min_tmax_ms)
        or (request.wseat and settings.seat not in request.wseat)
        or settings.seat in request.bseat
        or settings.currencies.for_bids(request.cur) is None
        or restriction(request) is not None
    )
    if has_known_weight(request, decider) and not declined:
        assert decision.candidates > 0, (
            f"a profile with weight on known tags was not matched: {decision.detail}"
        )
