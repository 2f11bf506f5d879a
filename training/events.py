"""The service's own impression log: its format, the reader training uses, and a writer for logs made
outside the server (the demo, tests).

Every impression record is a `personabid.bidrecord.BidRecord`, the one definition of the format: the
server writes those its decision path made (personabid.eventlog), EventWriter here those it is given, both
through `BidRecord.log_line`. JSON Lines, UTF-8, appended in time order. An impression record, one per
shown impression:

    {"v": 1, "ts": 1763913600.25, "request_id": "08259a83", "imp_id": "1",
     "user": "3f1c0e...", "campaign": "cmp-003717", "advertiser": "advertiser-00858",
     "category": "IAB3-1", "devicetype": 4, "os": "ios", "country": "USA", "w": 320, "h": 50,
     "match": 0.9012, "tags": ["interest:travel", "age:25-34"], "pctr": 0.031, "price": 3.41,
     "model": "20261123T160622Z-1a2b3c", "click": 0}

    v            int    schema version, 1 (personabid.bidrecord.VERSION)
    ts           number unix seconds (UTC) of the impression; orders the log for the held-out split
    request_id   str    the auction's id; imp_id: the impression's id within it
    user         str    pseudonym of the user id (HMAC-SHA256, privacy.Pseudonymizer); "" without one.
                        The raw id is never written: the server pseudonymises it as a request
                        arrives, EventWriter as it writes.
    campaign, advertiser, category
                 str    the campaign that was shown, as the index's campaign table names them
    devicetype   int    OpenRTB device type, 0..8;  os: str;  country: str, ISO-3166 alpha-3 or ""
    w, h         int    slot size in pixels, 0 when any size was allowed
    match        number persona similarity of user and campaign, in [-1, 1]
    tags         [str]  the user's strongest profile tags, strongest first, at most 16 (features.
                        LOGGED_TAGS); optional, [] when absent. Interests, never the user's id.
    pctr, price  number the prediction and the CPM bid that won, when known (not features)
    model        str    the model version that predicted it, when known
    click        int    1 if the impression was clicked (when known as it is written), else 0
    sources      [str]  what the user vector was blended from: "profile", "segments", "context";
                        optional (absent in records written before it was kept); not a feature

A click that comes after its impression was written is a record of its own, joined onto the impression
by (request_id, imp_id, campaign); conversions are recorded the same way and not read here
(`personabid.bidrecord.event_line` writes both):

    {"v": 1, "event": "click", "ts": 1763913641.0, "request_id": "08259a83", "imp_id": "1",
     "campaign": "cmp-003717"}

An impression is clicked if its own `click` is 1 or a click record names it; a click whose impression is
not in the log is ignored. Click records are few, so the reader collects them in a quick first look at
the file (lines naming an "event") and needs no impression to stay in memory.

The features are exactly those the decision path computes (`personabid.decision.candidates`): the same
tokens of the same raw values, through the model's own feature specification. The hour and weekday
features come from `ts`, which the server sets to the moment it decided the bid; the multi-valued
`tags` field from `tags`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from personabid.bidrecord import VERSION, BidRecord
from personabid.ctr.features import (
    LOGGED_TAGS,
    request_tokens,
    slot_token,
    tag_token_rows,
    time_token_arrays,
    token,
)
from personabid.privacy import Pseudonymizer
from personabid.training.logs import DEFAULT_CHUNK_ROWS, BadRows, Chunk, line_batches, open_text

TEXT_FIELDS = ("campaign", "advertiser", "category", "os", "country")
EVENTS = ("click", "conversion")  # records that follow an impression


class EventWriter:
    """Appends impressions to a JSON Lines event log. Use one writer per file.

    The `user` of the records it is given is a raw id: the writer writes its pseudonym instead."""

    def __init__(self, path: Path, pseudonymize: Pseudonymizer) -> None:
        self.path = path
        self._pseudonymize = pseudonymize
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("a", encoding="utf-8")

    def write(self, impressions: Iterable[BidRecord]) -> int:
        """Append `impressions` (flushed before returning); returns how many were written."""
        lines = [self.line(i) for i in impressions]
        if lines:
            self._handle.write("\n".join(lines) + "\n")
            self._handle.flush()
        return len(lines)

    def line(self, impression: BidRecord) -> str:
        """The log line of one impression, with the user id replaced by its pseudonym and at most
        LOGGED_TAGS tags."""
        logged = replace(
            impression, user=self._pseudonymize(impression.user), tags=impression.tags[:LOGGED_TAGS]
        )
        return logged.log_line()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: Path, bad: BadRows, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
    """Chunks of an event log, with the serving schema's fields and the clicks joined onto their
    impressions; unreadable records go to `bad`."""
    clicked = _clicked(path)
    cache: dict[str, int] = {}
    with open_text(path) as handle:
        for first, lines in line_batches(handle, chunk_rows):
            records = []
            numbers = []
            for offset, line in enumerate(lines):
                if not line.strip():
                    continue
                record, reason = _parse(line)
                if reason:
                    bad.add(first + offset, reason)
                elif "event" not in record:
                    if record["click"] == 0 and _key(record) in clicked:
                        record["click"] = 1
                    records.append(record)
                    numbers.append(first + offset)
            if len(cache) > 1 << 20:
                cache.clear()
            yield _chunk(records, numbers, cache)


def _key(record: dict[str, Any]) -> tuple[Any, Any, Any]:
    return record.get("request_id"), record.get("imp_id"), record.get("campaign")


def _clicked(path: Path) -> set[tuple[Any, Any, Any]]:
    """The (request_id, imp_id, campaign) of every well-formed click record."""
    clicked = set()
    with open_text(path) as handle:
        for line in handle:
            if '"event"' in line:
                record, reason = _parse(line)
                if not reason and record.get("event") == "click":
                    clicked.add(_key(record))
    return clicked


def _parse(line: str) -> tuple[dict[str, Any], str]:
    """The record of a line, checked, or why it is unreadable."""
    try:
        record = json.loads(line)
    except ValueError:
        return {}, "not JSON"
    if not isinstance(record, dict):
        return {}, "not a JSON object"
    if record.get("v") != VERSION:
        return {}, f"v={record.get('v')!r}: schema version {VERSION} expected"
    if "event" in record:
        return _parse_event(record)
    for name in TEXT_FIELDS:
        if not isinstance(record.get(name), str):
            return {}, f"{name}={record.get(name)!r}: a string expected"
    devicetype = record.get("devicetype")
    if type(devicetype) is not int or not 0 <= devicetype <= 8:
        return {}, f"devicetype={devicetype!r}: an integer 0..8 expected"
    for name in ("w", "h"):
        if type(record.get(name)) is not int or record[name] < 0:
            return {}, f"{name}={record.get(name)!r}: a non-negative integer expected"
    match = record.get("match")
    if not _is_number(match) or not -1.0 <= match <= 1.0:
        return {}, f"match={match!r}: a number in [-1, 1] expected"
    tags = record.setdefault("tags", [])
    if not isinstance(tags, list) or len(tags) > LOGGED_TAGS or not all(isinstance(t, str) for t in tags):
        return {}, f"tags={tags!r}: a list of at most {LOGGED_TAGS} strings expected"
    ts = record.get("ts")
    if not _is_number(ts) or ts < 0:
        return {}, f"ts={ts!r}: unix seconds expected"
    if record.get("click") not in (0, 1) or type(record.get("click")) is not int:
        return {}, f"click={record.get('click')!r}: 0 or 1 expected"
    return record, ""


def _parse_event(record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if record["event"] not in EVENTS:
        return {}, f"event={record['event']!r}: one of {EVENTS} expected"
    for name in ("request_id", "imp_id", "campaign"):
        if not isinstance(record.get(name), str) or not record[name]:
            return {}, f"{name}={record.get(name)!r}: the {record['event']}'s impression is not named"
    return record, ""


def _is_number(value: object) -> TypeGuard[float]:
    # Exactly int or float: JSON's true and false are not numbers here.
    return (type(value) is int or type(value) is float) and math.isfinite(value)


def _chunk(records: list[dict[str, Any]], numbers: list[int], cache: dict[str, int]) -> Chunk:
    def tokens_of(name: str) -> np.ndarray:
        values = [r[name] for r in records]
        for value in set(values).difference(cache):
            cache[value] = token(value)
        return np.fromiter(map(cache.__getitem__, values), dtype=np.uint64, count=len(values))

    n = len(records)
    times = np.fromiter((r["ts"] for r in records), dtype=np.float64, count=n)
    context = {name: np.empty(n, dtype=np.uint64) for name in ("devicetype", "os", "country")}
    for i, r in enumerate(records):
        for name, value in request_tokens(r["devicetype"], r["os"], r["country"]).items():
            context[name][i] = value
    return Chunk(
        tokens={
            "campaign": tokens_of("campaign"),
            "advertiser": tokens_of("advertiser"),
            "category": tokens_of("category"),
            **context,
            **time_token_arrays(times),
            "tags": tag_token_rows([r["tags"] for r in records]),
            "slot": np.fromiter((slot_token(r["w"], r["h"]) for r in records), dtype=np.uint64, count=n),
        },
        labels=np.fromiter((r["click"] for r in records), dtype=np.float64, count=n),
        lines=np.array(numbers, dtype=np.int64),
        time=np.round(times * 1000).astype(np.int64),
        match=np.fromiter((r["match"] for r in records), dtype=np.float32, count=n),
    )
