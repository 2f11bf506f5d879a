"""The record of one bid and the event log's lines: every line the server writes is made here.

The decision path builds a BidRecord when it bids, the spend store keeps it until the win arrives, the
event log (personabid.eventlog) writes the lines, and training and the reports read them back
(training/events.py documents the impression's fields, training/reports the rest). One definition, so
that what the readers read is what serving wrote.

Schema 2 (VERSION): every line is {"v": 2, "event": E, "ts": unix seconds on the server's clock, ...} with
E one of EVENTS: "bid" (each bid sent, sampled per auction), "win" (a won bid, at its first win or billing
notice: the record again with the clearing price), "billing", "loss", "click" and "conversion". Schema 1
(LEGACY_VERSION) is the impression line without "event" (`BidRecord.log_line`), which logs made outside
the server (training/events.EventWriter) still use and every reader still reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

import msgspec

VERSION = 2  # the event log's schema version: "v" in every line the server writes
LEGACY_VERSION = 1  # the impression line without "event" (log_line)
EVENTS = ("bid", "win", "billing", "loss", "click", "conversion")


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
        """The schema 1 line of this impression (without its newline), as logs made outside the server
        keep them."""
        return json.dumps({"v": LEGACY_VERSION, "ts": self.ts, **self.logged()}, separators=(",", ":"))

    def bid_line(self, sample: float) -> str:
        """The "bid" line of this bid, kept at the sampling rate `sample` (reports weight it 1/sample)."""
        record = {"v": VERSION, "event": "bid", "ts": self.ts, **self.logged(), **self._lists()}
        record["sample"] = float(sample)
        return _dumps(record)

    def win_line(self, bid_id: str, price: float, notice_ts: float) -> str:
        """The "win" line of this bid: its record with `price` the clearing price in USD CPM (the bid when
        the notice gave none, and never above it: what spend control charges) and `bid_price` the bid.
        `ts` stays the decision's moment, whose hour features the bid was scored with; `notice_ts` is when
        the notice arrived."""
        record: dict[str, Any] = {"v": VERSION, "event": "win", "ts": self.ts, "bid_id": bid_id}
        record.update(self.logged(), **self._lists())
        bid = float(record.pop("price", 0.0))
        record["price"] = min(float(price), bid) if price > 0 and bid > 0 else (float(price) or bid)
        record["bid_price"] = bid
        record["notice_ts"] = notice_ts
        return _dumps(record)

    def _lists(self) -> dict[str, list[str]]:
        # Schema 2 writes them always, empty or not: readers of columns want every column on every line.
        return {"sources": list(self.sources), "arms": list(self.arms)}

    def logged(self) -> dict[str, Any]:
        """The fields every line of this record carries, in the order they are written."""
        record: dict[str, Any] = {
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
        if self.arms:
            record["arms"] = list(self.arms)
        return record

    def to_json(self) -> str:
        """Every field, for the spend store to hold while the bid is in flight."""
        # A shallow dict (every field is a plain value or a tuple of strings): asdict's deep copy was half
        # of what writing a bid to the shared store costs.
        return _dumps({"v": VERSION, **{name: getattr(self, name) for name in _FIELD_NAMES}})

    @classmethod
    def from_json(cls, text: str | bytes) -> BidRecord:
        """The record `to_json` wrote."""
        data = json.loads(text)
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["tags"] = tuple(values.get("tags", ()))
        values["sources"] = tuple(values.get("sources", ()))
        values["arms"] = tuple(values.get("arms", ()))
        return cls(**values)


def unknown_win_line(
    ts: float, request_id: str, imp_id: str, bid_id: str, campaign: str, price: float
) -> str:
    """The "win" line of a bid the server no longer knows (its record expired or another server made it):
    its identity, campaign and clearing price; the record's other fields empty or 0, and no "match", so
    that training, which needs the features, leaves it out."""
    return _dumps(
        {
            "v": VERSION,
            "event": "win",
            "ts": ts,
            "bid_id": bid_id,
            "request_id": request_id,
            "imp_id": imp_id,
            "user": "",
            "campaign": campaign,
            "advertiser": "",
            "category": "",
            "devicetype": 0,
            "os": "",
            "country": "",
            "w": 0,
            "h": 0,
            "tags": [],
            "price": float(price),
            "bid_price": 0.0,
            "click": 0,
            "notice_ts": ts,
        }
    )


def billing_line(ts: float, request_id: str, imp_id: str, bid_id: str, campaign: str, price: float) -> str:
    """A billing notice (burl, or gRPC IMPRESSION) that was accepted; `price` USD CPM, 0: as bid."""
    return _dumps(
        {
            "v": VERSION,
            "event": "billing",
            "ts": ts,
            "request_id": request_id,
            "imp_id": imp_id,
            "bid_id": bid_id,
            "campaign": campaign,
            "price": float(price),
        }
    )


def loss_line(
    ts: float,
    request_id: str,
    imp_id: str,
    bid_id: str,
    campaign: str,
    loss_reason: int,
    min_to_win: float,
    record: BidRecord | None,
) -> str:
    """A loss notice; the dimensions reports split losses by come from the bid's `record` when known."""
    return _dumps(
        {
            "v": VERSION,
            "event": "loss",
            "ts": ts,
            "request_id": request_id,
            "imp_id": imp_id,
            "bid_id": bid_id,
            "campaign": campaign,
            "loss_reason": int(loss_reason),
            "min_to_win": float(min_to_win),
            "user": record.user if record else "",
            "advertiser": record.advertiser if record else "",
            "country": record.country if record else "",
            "devicetype": int(record.devicetype) if record else 0,
            "os": record.os if record else "",
            "sources": list(record.sources) if record else [],
            "arms": list(record.arms) if record else [],
        }
    )


def click_line(ts: float, request_id: str, imp_id: str, bid_id: str, campaign: str) -> str:
    """A click, which readers join onto its win line by (request_id, imp_id, campaign)."""
    return _dumps(
        {
            "v": VERSION,
            "event": "click",
            "ts": ts,
            "request_id": request_id,
            "imp_id": imp_id,
            "bid_id": bid_id,
            "campaign": campaign,
        }
    )


def conversion_line(
    ts: float,
    *,
    advertiser: str,
    user: str,
    order_id: str,
    value: float,
    currency: str,
    value_usd: float,
    arms: tuple[str, ...],
    request_id: str = "",
    imp_id: str = "",
    campaign: str = "",
) -> str:
    """A conversion (an order on the advertiser's site): `user` the pseudonym ("" when not given), `arms`
    the user's experiment arms; request_id, imp_id and campaign name its bid when the conversion did."""
    return _dumps(
        {
            "v": VERSION,
            "event": "conversion",
            "ts": ts,
            "advertiser": advertiser,
            "user": user,
            "order_id": order_id,
            "value": float(value),
            "currency": currency,
            "value_usd": float(value_usd),
            "arms": list(arms),
            "request_id": request_id,
            "imp_id": imp_id,
            "campaign": campaign,
        }
    )


_FIELD_NAMES = tuple(f.name for f in fields(BidRecord))


def _dumps(record: dict[str, Any]) -> str:
    # msgspec: a tenth of json.dumps's time, and a bid line is written on the decision path. A lone
    # surrogate (text no request can carry, but a caller might pass) is escaped by json instead.
    try:
        return msgspec.json.encode(record).decode()
    except UnicodeEncodeError:
        return json.dumps(record, separators=(",", ":"))
