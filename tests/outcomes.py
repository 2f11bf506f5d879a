"""What every answer to a bid request must be: a well-formed bid, a no-bid with a documented reason, or a
refusal that names the field. Shared by the property tests and the fuzz harness, so that they hold the
core's Decisions and the server's responses to the same rules."""

from __future__ import annotations

import math
import re

import numpy as np

from personabid.decision.consent import consent_refusal
from personabid.decision.pipeline import Decider, Decision
from personabid.decision.reasons import NoBid
from personabid.decision.request import AuctionRequest
from personabid.index.campaigns import CampaignTable
from personabid.v1 import bidder_pb2 as pb

# "imp[3].bidfloor=-1.0: ...", "user.tags[0].weight=nan: ...", "device.devicetype=42: ..."
FIELD_PATH = re.compile(r"([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*)=")
# The reasons a decided request may carry. 0 and 1 are failures, 2 is a refusal (a stream's INVALID_ARGUMENT)
# and 505 a server without artifacts: none of them is a decision.
DECIDED = frozenset(NoBid) - {
    NoBid.UNKNOWN_ERROR,
    NoBid.TECHNICAL_ERROR,
    NoBid.INVALID_REQUEST,
    NoBid.NOT_READY,
}


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


def check_decision(table: CampaignTable, request: AuctionRequest, decision: Decision) -> None:
    """Bids that the auction allows (one per impression, within floor and max bid, a creative that fits),
    or a no-bid with a documented reason and its explanation."""
    assert decision.request_id == request.id
    if not decision.bids:
        assert decision.nbr in DECIDED, f"no bid with reason {decision.nbr!r}"
        assert decision.detail, f"no-bid {decision.nbr!r} without an explanation"
        return
    assert decision.nbr is None, f"bids and a no-bid reason {decision.nbr!r} at once"
    imps = {imp.id: imp for imp in request.impressions}
    imp_ids = [bid.imp_id for bid in decision.bids]
    assert len(set(imp_ids)) == len(imp_ids), f"more than one bid on an impression: {imp_ids}"
    for bid in decision.bids:
        imp = imps.get(bid.imp_id)
        assert imp is not None, f"a bid on impression {bid.imp_id!r}, which the request does not have"
        row = bid.campaign_row
        assert bid.campaign_id == str(table.campaign_id[row])
        assert math.isfinite(bid.price) and bid.price > 0, bid
        assert bid.price >= imp.bidfloor, f"{bid} under the floor {imp.bidfloor}"
        assert bid.price <= table.max_bid[row], f"{bid} over the campaign's max bid {table.max_bid[row]}"
        assert 0.0 < bid.pctr <= 1.0, bid
        assert bid.match_score >= table.min_match[row], bid
        first, stop = int(table.creative_offsets[row]), int(table.creative_offsets[row + 1])
        creatives = [str(c) for c in table.creative_id[first:stop]]
        assert bid.creative_id in creatives, f"{bid}: not one of the campaign's creatives {creatives}"
        if imp.w and imp.h:
            size = table.sizes[table.creative_size[first + creatives.index(bid.creative_id)]]
            assert size == f"{imp.w}x{imp.h}", f"{bid}: a {size} creative in a {imp.w}x{imp.h} slot"


def check_response(table: CampaignTable, request: pb.BidRequest, response: pb.BidResponse) -> None:
    """The server's answer to a request it decided: the same rules, on the wire."""
    assert response.id == request.id
    bids = [bid for seat in response.seatbid for bid in seat.bid]
    if not bids:
        assert not response.seatbid, "a seat without bids"
        assert response.nbr in DECIDED, f"no bid with reason {response.nbr} ({response.nbr_detail!r})"
        assert response.nbr_detail, f"no-bid {response.nbr} without an explanation"
        return
    assert response.nbr == 0, f"bids and a no-bid reason {response.nbr} at once"
    floors = {imp.id: imp.bidfloor for imp in request.imp}
    rows = {str(c): row for row, c in enumerate(table.campaign_id)}
    imp_ids = [bid.impid for bid in bids]
    assert len(set(imp_ids)) == len(imp_ids), f"more than one bid on an impression: {imp_ids}"
    for bid in bids:
        assert bid.impid in floors, f"a bid on impression {bid.impid!r}, which the request does not have"
        assert bid.campaign_id in rows, f"a bid for an unknown campaign {bid.campaign_id!r}"
        assert math.isfinite(bid.price) and bid.price > 0, bid
        assert bid.price >= floors[bid.impid], f"{bid} under the floor {floors[bid.impid]}"
        assert bid.price <= table.max_bid[rows[bid.campaign_id]], f"{bid} over the campaign's max bid"


def has_known_weight(request: AuctionRequest, decider: Decider) -> bool:
    """Whether the request's profile puts a non-zero weight on a tag of the serving vocabulary."""
    if request.tag_vector is not None and len(request.tag_vector) > 0:
        return bool(np.any(request.tag_vector != 0))
    vocab = decider.snapshot.bundle.vocab
    return any(weight != 0 and vocab.position(tag) >= 0 for tag, weight in request.tags)


def check_matched(decider: Decider, request: AuctionRequest, decision: Decision) -> None:
    """A profile with weight on a known tag is matched (whatever its scale, up to float32's limits),
    unless the request is declined before matching (COPPA, no consent, a tmax too short to decide)."""
    declined = (
        request.coppa == 1
        or (request.gdpr == 1 and consent_refusal(request.consent) is not None)
        or (request.tmax_ms is not None and request.tmax_ms < decider.settings.min_tmax_ms)
    )
    if has_known_weight(request, decider) and not declined:
        assert decision.candidates > 0, (
            f"a profile with weight on known tags was not matched: {decision.detail}"
        )
