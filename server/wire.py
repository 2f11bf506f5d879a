"""Conversion between the protobuf messages and the core's objects. Copies, never judges: validation is
the core's (openrtb/validation.py, spend/control.py's validate_notification).

The API's messages carry OpenRTB's objects under OpenRTB's names, as the core's objects do, so a request
is copied by name, field by field, for whatever the message sets (`ListFields`): one rule for every
object, no per-field code to keep in step with the proto. The few fields the API carries besides
OpenRTB's are mapped by hand below.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import msgspec
import numpy as np
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from personabid.conversions import ConversionNotice
from personabid.errors import InvalidRequest
from personabid.notifications import Tally
from personabid.openrtb import request as core
from personabid.openrtb.response import BidResponse
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
_OBJECTS: dict[str, type[msgspec.Struct]] = {
    name: kind
    for name, kind in vars(core).items()
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct) and not name.startswith("_")
}
# (field, value) -> the core's value, for fields that are not a plain copy
_SPECIAL: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("User", "tag_vector"): lambda values: np.asarray(values, dtype=np.float32),
    # A profile has tens of tags: built directly, without the per-message walk (5x faster).
    ("User", "tags"): lambda tags: tuple([core.Tag(id=t.id, weight=t.weight) for t in tags]),
}


def to_auction(message: pb.BidRequest) -> core.BidRequest:
    """The core's request: every field the message sets, under the same name."""
    return _copy(message, core.BidRequest)  # type: ignore[return-value]


def _copy(message: Message, kind: type[msgspec.Struct]) -> msgspec.Struct:
    values: dict[str, Any] = {}
    for descriptor, value in message.ListFields():
        plan = _plan(kind, descriptor)
        if plan is not None:
            name, convert = plan
            values[name] = convert(value)
    if kind is core.Site and "publisher" not in values and values.get("publisher_id"):
        values["publisher"] = core.Publisher(id=values["publisher_id"])  # the API's field before 2.6's
    values.pop("publisher_id", None)
    return kind(**values)


@cache
def _plan(kind: type[msgspec.Struct], descriptor: FieldDescriptor) -> tuple[str, Callable[[Any], Any]] | None:
    """How a field of the message becomes the core's: its name and a conversion; None to leave it out."""
    name = descriptor.name
    special = _SPECIAL.get((kind.__name__, name))
    if special is not None:
        return name, special
    if kind is core.Site and name == "publisher_id":
        return name, str
    if name not in kind.__struct_fields__:
        return None
    if descriptor.message_type is not None:
        sub = _OBJECTS[descriptor.message_type.name]
        if descriptor.is_repeated:
            return name, lambda items: tuple(_copy(item, sub) for item in items)
        return name, lambda item: _copy(item, sub)
    if descriptor.is_repeated:
        return name, tuple
    return name, _same


def _same(value: Any) -> Any:
    return value


def to_message(request: core.BidRequest) -> pb.BidRequest:
    """The API's message for a core request (what `personabid call` sends over gRPC): the inverse of
    to_auction, through the objects' builtin form, whose names the message shares."""
    data = _flags_as_ints(msgspec.to_builtins(request, enc_hook=_builtin))
    try:
        return json_format.ParseDict(data, pb.BidRequest(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:  # what JSON can say and the message cannot: site and app both
        raise InvalidRequest("(request)", "its JSON", f"has no protobuf form: {exc}") from None


def _builtin(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise NotImplementedError(type(value))


def _flags_as_ints(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict):
        return {k: _flags_as_ints(v) for k, v in value.items() if k != "ext"}
    if isinstance(value, list):
        return [_flags_as_ints(v) for v in value]
    return value


_BID_FIELDS = tuple(name for name in pb.Bid.DESCRIPTOR.fields_by_name if name != "ext")


def to_response(response: BidResponse) -> pb.BidResponse:
    """The API's message for the core's response: OpenRTB's fields by name, personabid's from ext."""
    message = pb.BidResponse(id=response.id, cur=response.cur, bidid=response.bidid)
    for seatbid in response.seatbid:
        seat = message.seatbid.add(seat=seatbid.seat)
        for bid in seatbid.bid:
            out = seat.bid.add(
                id=bid.id,
                impid=bid.impid,
                price=bid.price,
                campaign_id=bid.cid,
                creative_id=bid.crid,
                adomain=bid.adomain,
                adid=bid.adid,
                nurl=bid.nurl,
                burl=bid.burl,
                lurl=bid.lurl,
                adm=bid.adm,
                bundle=bid.bundle,
                iurl=bid.iurl,
                cid=bid.cid,
                crid=bid.crid,
                cat=bid.cat,
                attr=bid.attr,
                w=bid.w,
                h=bid.h,
                dealid=bid.dealid,
                mtype=bid.mtype,
                exp=bid.exp,
                language=bid.language,
                cattax=bid.cattax,
            )
            if bid.ext is not None:
                out.pctr = bid.ext.pctr
                out.match_score = bid.ext.match_score
                out.click_url = bid.ext.clickurl
    if response.nbr is not None:
        message.nbr = response.nbr
        message.nbr_detail = response.ext.detail if response.ext is not None else ""
    if response.ext is not None:
        message.sources.extend(response.ext.sources)
        message.restriction = response.ext.restriction
    return message


def no_bid(request_id: str, reason: int, detail: str) -> pb.BidResponse:
    return pb.BidResponse(id=request_id, cur="USD", nbr=reason, nbr_detail=detail)


def to_notification(event: pb.Event) -> Notification | ConversionNotice:
    """The core's Notification (a ConversionNotice for a CONVERSION), unstamped: the Notifier stamps its
    arrival on the server's clock; validate_notification (check_conversion) judges it."""
    if event.type == pb.Event.CONVERSION:
        return ConversionNotice(
            advertiser=event.advertiser,
            order_id=event.order_id,
            value=event.value,
            currency=event.cur,
            user=event.user_id,
            request_id=event.auction_id,
            imp_id=event.imp_id,
            bid_id=event.bid_id,
            campaign=event.campaign_id,
            timestamp_ms=event.timestamp_ms,
        )
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
    )


def to_ack(tally: Tally) -> pb.NotifyAck:
    return pb.NotifyAck(
        accepted=tally.accepted,
        duplicates=tally.duplicates,
        rejected=tally.rejected,
        errors=tally.errors[:100],
    )
