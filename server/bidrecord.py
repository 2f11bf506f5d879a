"""The record of one bid that the event log keeps if the bid is shown: its fields, its schema version, and
its two JSON forms, a line of the event log and the spend store's copy while the bid is in flight.

The decision path builds it when it bids, the spend store keeps it until the win arrives, the event log
writes it, and training reads the log back (training/events.py documents the format, field by field).
One definition, so that what training reads is what serving wrote.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

VERSION = 1  # the event log's schema version: "v" in every record


@dataclass(frozen=True, kw_only=True, slots=True)
class BidRecord:
    """A bid as the event log records its impression; fields in the order the log writes them."""

    ts: float  # unix seconds of the decision: the hour features are those the bid was scored with
    request_id: str = ""
    imp_id: str = ""
    # The pseudonym of the user id, "" without one: the server's records carry it from the request on
    # (the raw id goes no further than the wire); EventWriter is given raw ids and writes their pseudonyms.
    user: str
    campaign: str
    advertiser: str
    category: str
    devicetype: int
    os: str
    country: str
    w: int
    h: int
    match: float  # a float32's value, which JSON carries exactly: training buckets it alike
    tags: tuple[str, ...] = ()  # the user's strongest tags, strongest first
    pctr: float | None = None  # None: not known, and not written
    price: float | None = None  # CPM
    model: str | None = None  # the model version that predicted `pctr`
    click: int = 0  # 1 if already known clicked when written; later clicks are records of their own
    # What the user vector was blended from ("profile", "segments", "context"), so that models and
    # reports can split by it; () when not known (records written before it was kept).
    sources: tuple[str, ...] = ()
    # The experiment arms the bid was decided in, "experiment:arm" each (server/experiments/); () when no
    # experiment is in force.
    arms: tuple[str, ...] = ()
    # Spend control's, never logged: a win counts a view against the frequency cap the bid was made under.
    freq_cap: int = 0
    freq_window: float = 0.0  # seconds

    def log_line(self) -> str:
        """The event log's line for this impression (without its newline)."""
        record: dict[str, Any] = {
            "v": VERSION,
            "ts": self.ts,
            "request_id": self.request_id,
            "imp_id": self.imp_id,
            "user": self.user,
            "campaign": self.campaign,
            "advertiser": self.advertiser,
            "category": self.category,
            "devicetype": int(self.devicetype),
            "os": self.os,
            "country": self.country,
            "w": int(self.w),
            "h": int(self.h),
            # float32 similarities survive the round trip through float64 text exactly.
            "match": float(self.match),
            "tags": list(self.tags),
        }
        if self.pctr is not None:
            record["pctr"] = float(self.pctr)
        if self.price is not None:
            record["price"] = float(self.price)
        if self.model is not None:
            record["model"] = self.model
        record["click"] = int(self.click)
        if self.sources:
            record["sources"] = list(self.sources)
        return json.dumps(record, separators=(",", ":"))

    def to_json(self) -> str:
        """Every field, for the spend store to hold while the bid is in flight."""
        return json.dumps({"v": VERSION, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> BidRecord:
        """The record `to_json` wrote."""
        data = json.loads(text)
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["tags"] = tuple(values.get("tags", ()))
        values["sources"] = tuple(values.get("sources", ()))
        values["arms"] = tuple(values.get("arms", ()))
        return cls(**values)


def event_line(event: str, ts: float, request_id: str, imp_id: str, campaign: str) -> str:
    """The event log's line for a click or a conversion, which the reader joins onto its impression by
    (request_id, imp_id, campaign)."""
    record = {
        "v": VERSION,
        "event": event,
        "ts": ts,
        "request_id": request_id,
        "imp_id": imp_id,
        "campaign": campaign,
    }
    return json.dumps(record, separators=(",", ":"))
