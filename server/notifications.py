"""Win, loss, impression, click and conversion notices: checked at the edge, applied to the spend state,
and appended to the event log that training reads."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from personabid.errors import InvalidRequest
from personabid.spend.control import Notification, SpendControl
from personabid.v1 import bidder_pb2 as pb

log = logging.getLogger(__name__)
TYPES = {
    pb.Event.WIN: "win",
    pb.Event.LOSS: "loss",
    pb.Event.IMPRESSION: "impression",
    pb.Event.CLICK: "click",
    pb.Event.CONVERSION: "conversion",
}

# Called with each applied notification and, when the bid was known, its pending record.
EventSink = Callable[[Notification, dict[str, Any] | None], None]


def to_notification(event: pb.Event, where: str = "event") -> Notification:
    """A checked Notification, or InvalidRequest naming the field and the value."""
    if event.type not in TYPES:
        raise InvalidRequest(
            f"{where}.type",
            pb.Event.Type.Name(event.type) if event.type in pb.Event.Type.values() else event.type,
            "must be WIN, LOSS, IMPRESSION, CLICK or CONVERSION",
        )
    for name in ("auction_id", "imp_id", "campaign_id"):
        if not getattr(event, name):
            raise InvalidRequest(f"{where}.{name}", "", "must not be empty")
    if not math.isfinite(event.price) or event.price < 0:
        raise InvalidRequest(f"{where}.price", event.price, "must be a finite, non-negative CPM")
    if event.type == pb.Event.WIN and event.price == 0:
        raise InvalidRequest(f"{where}.price", event.price, "a win carries its clearing price")
    if event.cur not in ("", "USD"):
        raise InvalidRequest(f"{where}.cur", event.cur, "unsupported currency; supported: ['USD']")
    if event.timestamp_ms < 0:
        raise InvalidRequest(f"{where}.timestamp_ms", event.timestamp_ms, "must not be negative")
    return Notification(
        type=TYPES[event.type],
        auction_id=event.auction_id,
        imp_id=event.imp_id,
        bid_id=event.bid_id,
        campaign_id=event.campaign_id,
        price=event.price,
        loss_reason=event.loss_reason,
        ts=event.timestamp_ms / 1000.0 if event.timestamp_ms else time.time(),
    )


@dataclass
class Tally:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def ack(self) -> pb.NotifyAck:
        return pb.NotifyAck(
            accepted=self.accepted,
            duplicates=self.duplicates,
            rejected=self.rejected,
            errors=self.errors[:100],
        )


class Notifier:
    """Applies notices in order. StateUnavailable propagates: the caller answers UNAVAILABLE, and what was
    applied before it stays applied (a resend is deduplicated)."""

    def __init__(self, spend: SpendControl, sink: EventSink, observe: Callable[[str, str], None]) -> None:
        self._spend = spend
        self._sink = sink
        self._observe = observe  # (type, outcome) for metrics

    def handle(self, event: pb.Event, tally: Tally, where: str) -> None:
        try:
            note = to_notification(event, where)
        except InvalidRequest as exc:
            tally.rejected += 1
            tally.errors.append(str(exc))
            self._observe(TYPES.get(event.type, "unknown"), "rejected")
            return
        status, pending = self._spend.apply(note)
        if status == "duplicate":
            tally.duplicates += 1
            self._observe(note.type, "duplicate")
            return
        tally.accepted += 1
        self._observe(
            note.type,
            "accepted" if pending is not None or note.type in ("click", "conversion") else "unknown_bid",
        )
        if status == "applied":
            self._sink(note, pending)
