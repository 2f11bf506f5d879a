"""The service's own event log as training reads it: impressions and their clicks, the reader, and a
writer for impression logs made outside the server (the demo, tests).

Every impression record is a `personabid.bidrecord.BidRecord`, the one definition of the format. The
server (personabid.eventlog) writes schema 2: one line per event, {"v": 2, "event": E, ...}; training reads
its "win" lines as impressions (the bid's record, written at its first win or billing notice) and its
"click" lines as clicks, and passes over the other events ("bid", "billing", "loss", "conversion"), and
over the win lines of bids the server no longer knew (they carry no "match": their features were not
kept). EventWriter here writes schema 1, `BidRecord.log_line`: the impression line without "event", which
the reader reads as well. JSON Lines, UTF-8, appended in time order. A schema 1 impression record:

    {"v": 1, "ts": 1763913600.25, "request_id": "08259a83", "imp_id": "1",
     "user": "3f1c0e...", "campaign": "cmp-003717", "advertiser": "advertiser-00858",
     "category": "IAB3-1", "devicetype": 4, "os": "ios", "country": "USA", "w": 320, "h": 50,
     "match": 0.9012, "tags": ["interest:travel", "age:25-34"], "pctr": 0.031, "price": 3.41,
     "model": "20261123T160622Z-1a2b3c", "click": 0}

    v            int    schema version: 1 (personabid.bidrecord.LEGACY_VERSION), or 2 in a "win" line
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
    arms         [str]  the experiment arms the bid was decided in, "experiment:arm"; not a feature

A schema 2 "win" line has the same fields with "event": "win", and besides them "bid_id", "bid_price" (the
bid; "price" is then the clearing price) and "notice_ts" (when the notice arrived; `ts` stays the moment
of the decision, whose hour the bid was scored with). A click that comes after its impression was written
is a record of its own, joined onto the impression by (request_id, imp_id, campaign)
(`personabid.bidrecord.click_line`; schema 1 click records, without "bid_id", are read alike):

    {"v": 2, "event": "click", "ts": 1763913641.0, "request_id": "08259a83", "imp_id": "1",
     "bid_id": "1-cmp-003717", "campaign": "cmp-003717"}

An impression is clicked if its own `click` is 1 or a click record names it; a click whose impression is
not in the log is ignored. Click records are few, so the reader collects them in a quick first look at
the file (lines naming an "event") and needs no impression to stay in memory.

The server writes one file per UTC day (events-YYYY-MM-DD.jsonl). The reader takes those files as one
log (`day_files`: a directory or a glob, through training.reports.logfiles.event_files), in time order,
with the clicks of every file joined onto the impressions of any (a click after midnight lands in the next
day's file).

The features are exactly those the decision path computes (`personabid.decision.candidates`): the same
tokens of the same raw values, through the model's own feature specification. The hour and weekday
features come from `ts`, which the server sets to the moment it decided the bid; the multi-valued
`tags` field from `tags`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from personabid.bidrecord import EVENTS as V2_EVENTS
from personabid.bidrecord import LEGACY_VERSION, VERSION, BidRecord
from personabid.ctr.features import (
    LOGGED_TAGS,
    SERVING,
    request_tokens,
    slot_token,
    tag_token_rows,
    time_token_arrays,
    token,
)
from personabid.privacy import Pseudonymizer
from personabid.training.logs import DEFAULT_CHUNK_ROWS, BadRows, Chunk, LogError, line_batches, open_text

TEXT_FIELDS = ("campaign", "advertiser", "category", "os", "country")
EVENTS = ("click", "conversion")  # schema 1 records that follow an impression
# What a line is to training: an impression, a click, or an event it passes over.
IMPRESSION, CLICK, OTHER = "impression", "click", "other"
_CLICK_EVENT = re.compile(r'"event"\s*:\s*"click"')  # the first look at a line: only clicks are parsed


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


def read_events(
    path: Path | Sequence[Path], bad: BadRows, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[Chunk]:
    """Chunks of an event log (one file, or several read in the order given as one log), with the
    serving schema's fields and the clicks of every file joined onto their impressions; unreadable
    records go to `bad` (with the file's name when there are several: line numbers are each file's)."""
    paths = [path] if isinstance(path, Path) else list(path)
    clicked: set[tuple[Any, Any, Any]] = set()
    for each in paths:
        clicked |= _clicked(each)
    cache: dict[str, int] = {}
    for each in paths:
        faults: BadRows | _InFile = bad if len(paths) == 1 else _InFile(bad, each.name)
        with open_text(each) as handle:
            for first, lines in line_batches(handle, chunk_rows):
                records = []
                numbers = []
                for offset, line in enumerate(lines):
                    if not line.strip():
                        continue
                    record, reason, kind = _parse(line)
                    if reason:
                        faults.add(first + offset, reason)
                    elif kind == IMPRESSION:
                        if record["click"] == 0 and _key(record) in clicked:
                            record["click"] = 1
                        records.append(record)
                        numbers.append(first + offset)
                if len(cache) > 1 << 20:
                    cache.clear()
                yield _chunk(records, numbers, cache)


class _InFile:
    """`bad` for one of several files: its rows' reasons name the file."""

    def __init__(self, bad: BadRows, name: str) -> None:
        self._bad = bad
        self._name = name

    def add(self, line: int, reason: str) -> None:
        self._bad.add(line, f"{self._name}: {reason}")


def day_files(path: Path | str) -> list[Path]:
    """The JSON Lines event files PATH names (a file, a directory of the server's day files, or a glob;
    training.reports.logfiles.event_files), in time order: by the time of each file's first event (the
    server appends a day's file in time order), then by name. LogError when there is none."""
    from personabid.training.reports.logfiles import EventLogError, event_files

    try:
        found = [p for p in event_files(path) if p.suffix != ".parquet"]
    except EventLogError as exc:
        raise LogError(str(exc).replace("--events", "--data", 1)) from None
    if not found:
        raise LogError(f"--data {path}: no JSON Lines event files (training does not read Parquet)")
    return sorted(found, key=lambda p: (_first_time(p), str(p)))


def _first_time(path: Path, lines: int = 100) -> float:
    """The `ts` of the first of the file's first `lines` lines that has one; +inf when none does."""
    with open_text(path) as handle:
        for _, line in zip(range(lines), handle, strict=False):
            try:
                ts = json.loads(line).get("ts")
            except (ValueError, AttributeError):
                continue
            if _is_number(ts):
                return float(ts)
    return math.inf


@dataclass(frozen=True)
class EventFiles:
    """Training's rows from several event files (the server's day files), read in order as one log."""

    paths: tuple[Path, ...]
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    named: str = ""  # what the user gave: the directory or the glob

    @classmethod
    def of(cls, path: Path | str, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> EventFiles:
        if chunk_rows < 1:
            raise LogError(f"chunk_rows={chunk_rows}: must be at least 1")
        return cls(tuple(day_files(path)), chunk_rows, str(path))

    @property
    def schema(self) -> str:
        return SERVING

    def chunks(self, bad: BadRows) -> Iterator[Chunk]:
        return read_events(self.paths, bad, self.chunk_rows)

    def describe(self) -> dict[str, Any]:
        return {"path": self.named, "format": "events", "files": [str(p) for p in self.paths]}


def _key(record: dict[str, Any]) -> tuple[Any, Any, Any]:
    return record.get("request_id"), record.get("imp_id"), record.get("campaign")


def _clicked(path: Path) -> set[tuple[Any, Any, Any]]:
    """The (request_id, imp_id, campaign) of every well-formed click record."""
    clicked = set()
    with open_text(path) as handle:
        for line in handle:
            if _CLICK_EVENT.search(line):
                record, reason, kind = _parse(line)
                if not reason and kind == CLICK:
                    clicked.add(_key(record))
    return clicked


def _parse(line: str) -> tuple[dict[str, Any], str, str]:
    """The record of a line, checked, with what it is to training (IMPRESSION, CLICK, OTHER), or why it
    is unreadable."""
    try:
        record = json.loads(line)
    except ValueError:
        return {}, "not JSON", OTHER
    if not isinstance(record, dict):
        return {}, "not a JSON object", OTHER
    version = record.get("v")
    if version == VERSION and type(version) is int:
        event = record.get("event")
        if event not in V2_EVENTS:
            return {}, f"event={event!r}: one of {V2_EVENTS} expected", OTHER
        if event == "click":
            return _parse_event(record)
        if event != "win" or "match" not in record:
            return record, "", OTHER
        record.setdefault("click", 0)
        return _parse_impression(record)
    if version != LEGACY_VERSION or type(version) is not int:
        return {}, f"v={version!r}: schema version {LEGACY_VERSION} or {VERSION} expected", OTHER
    if "event" in record:
        return _parse_event(record)
    return _parse_impression(record)


def _parse_impression(record: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    reason = _impression_fault(record)
    return (record, "", IMPRESSION) if not reason else ({}, reason, OTHER)


def _impression_fault(record: dict[str, Any]) -> str:
    """Why an impression record cannot be trained on, "" when it can."""
    for name in TEXT_FIELDS:
        if not isinstance(record.get(name), str):
            return f"{name}={record.get(name)!r}: a string expected"
    devicetype = record.get("devicetype")
    if type(devicetype) is not int or not 0 <= devicetype <= 8:
        return f"devicetype={devicetype!r}: an integer 0..8 expected"
    for name in ("w", "h"):
        if type(record.get(name)) is not int or record[name] < 0:
            return f"{name}={record.get(name)!r}: a non-negative integer expected"
    match = record.get("match")
    if not _is_number(match) or not -1.0 <= match <= 1.0:
        return f"match={match!r}: a number in [-1, 1] expected"
    tags = record.setdefault("tags", [])
    if not isinstance(tags, list) or len(tags) > LOGGED_TAGS or not all(isinstance(t, str) for t in tags):
        return f"tags={tags!r}: a list of at most {LOGGED_TAGS} strings expected"
    ts = record.get("ts")
    if not _is_number(ts) or ts < 0:
        return f"ts={ts!r}: unix seconds expected"
    if record.get("click") not in (0, 1) or type(record.get("click")) is not int:
        return f"click={record.get('click')!r}: 0 or 1 expected"
    return ""


def _parse_event(record: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """A schema 1 click or conversion record, or a schema 2 click line."""
    if record["event"] not in EVENTS:
        return {}, f"event={record['event']!r}: one of {EVENTS} expected", OTHER
    for name in ("request_id", "imp_id", "campaign"):
        if not isinstance(record.get(name), str) or not record[name]:
            return {}, f"{name}={record.get(name)!r}: the {record['event']}'s impression is not named", OTHER
    return record, "", CLICK if record["event"] == "click" else OTHER


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
