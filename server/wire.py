"""Conversion between the protobuf messages and the core's plain objects. Copies, never judges:
validation is the core's (decision/request.py, spend/control.py's validate_notification)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from personabid.decision.pipeline import Decision
from personabid.decision.request import DEFAULT_CURRENCY, AuctionRequest, Impression
from personabid.notifications import Tally
from personabid.spend.control import Notification
from personabid.v1 import bidder_pb2 as pb

# The core's names of the notice types; a type outside them reaches the core as its enum name or number.
EVENT_TYPES = {
    pb.Event.WIN: "win",
    pb.Event.LOSS: "loss",
    pb.Event.IMPRESSION: "impression",
    pb.Event.CLICK: "click",
    pb.Event.CONVERSION: "conversion",
}


def to_auction(message: pb.BidRequest, pseudonym: Callable[[str], str] = lambda user: user) -> AuctionRequest:
    """The core's request; the user id in it is already `pseudonym(user.id)`: the raw id goes no further."""
    device, geo, user = message.device, message.device.geo, message.user
    if message.HasField("site"):
        site_id, domain, categories = message.site.id, message.site.domain, tuple(message.site.cat)
    elif message.HasField("app"):
        site_id, domain, categories = message.app.id, message.app.bundle, tuple(message.app.cat)
    else:
        site_id, domain, categories = "", "", ()
    return AuctionRequest(
        id=message.id,
        impressions=tuple(
            Impression(
                id=imp.id,
                w=imp.banner.w,
                h=imp.banner.h,
                bidfloor=imp.bidfloor,
                bidfloorcur=imp.bidfloorcur,
                tagid=imp.tagid,
            )
            for imp in message.imp
        ),
        tag_vector=np.array(user.tag_vector, dtype=np.float32) if len(user.tag_vector) else None,
        tags=tuple((tag.id, tag.weight) for tag in user.tags),
        user_id=pseudonym(user.id),
        devicetype=device.devicetype,
        os=device.os,
        country=geo.country,
        region=geo.region,
        city=geo.city,
        site_id=site_id,
        domain=domain,
        categories=categories,
        at=message.at if message.HasField("at") else 2,
        tmax_ms=message.tmax if message.HasField("tmax") else None,
        cur=tuple(message.cur),
        bcat=tuple(message.bcat),
        badv=tuple(message.badv),
        coppa=message.regs.coppa,
        gdpr=message.regs.gdpr,
        consent=user.consent,
    )


def to_response(decision: Decision, seat: str) -> pb.BidResponse:
    response = pb.BidResponse(id=decision.request_id, cur=DEFAULT_CURRENCY)
    if decision.bids:
        seatbid = response.seatbid.add(seat=seat)
        for bid in decision.bids:
            seatbid.bid.add(
                id=bid.id,
                impid=bid.imp_id,
                price=bid.price,
                campaign_id=bid.campaign_id,
                creative_id=bid.creative_id,
                adomain=[bid.adomain],
                pctr=bid.pctr,
                match_score=bid.match_score,
            )
    else:
        response.nbr = int(decision.nbr or 0)
        response.nbr_detail = decision.detail
    return response


def no_bid(request_id: str, reason: int, detail: str) -> pb.BidResponse:
    return pb.BidResponse(id=request_id, cur=DEFAULT_CURRENCY, nbr=reason, nbr_detail=detail)


def to_notification(event: pb.Event) -> Notification:
    """The core's Notification, stamped with the time it arrived; validate_notification judges it."""
    if event.type in EVENT_TYPES:
        kind = EVENT_TYPES[event.type]
    elif event.type in pb.Event.Type.values():
        kind = pb.Event.Type.Name(event.type)
    else:
        kind = str(event.type)
    return Notification(
        type=kind,
        auction_id=event.auction_id,
        imp_id=event.imp_id,
        bid_id=event.bid_id,
        campaign_id=event.campaign_id,
        price=event.price,
        loss_reason=event.loss_reason,
        cur=event.cur,
        timestamp_ms=event.timestamp_ms,
        arrived=time.time(),
    )


def to_ack(tally: Tally) -> pb.NotifyAck:
    return pb.NotifyAck(
        accepted=tally.accepted,
        duplicates=tally.duplicates,
        rejected=tally.rejected,
        errors=tally.errors[:100],
    )
