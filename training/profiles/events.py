"""Behaviour events: their format, the reader that turns them into observations for the profile build,
and writers for event files made outside a pipeline (the demo, tests).

An event is one thing a user did. JSON Lines, UTF-8, one event per line (gzip when the name ends in
.gz); or Parquet (.parquet, .pq) with the same fields as columns, lists as list columns. A file of
another name is read as JSON Lines; a directory stands for the event files in it (.jsonl, .ndjson,
.json, each possibly .gz, .parquet, .pq). Field order does not matter; fields of other types, and
fields this module does not know, are ignored.

    {"user": "u-1842", "ts": "2026-11-29T10:00:00Z", "type": "page_view",
     "url": "https://example.com/sports/soccer/results", "cat": ["IAB17-44"], "keywords": ["world cup"]}
    {"user": "u-1842", "ts": 1764410400, "type": "purchase", "category": "cameras", "amount": 349.0,
     "currency": "USD", "order_id": "A-1009"}

Every event has:

    user       str      the user's raw id, 1..256 characters. The reader replaces it with its keyed hash
                        (the server's pseudonym, personabid.privacy.Pseudonymizer) as it reads: raw ids
                        are never stored, logged or returned; only `user_key` of the pseudonym leaves it.
    ts         str|num  when it happened: ISO-8601 / RFC 3339 with a zone ("2026-11-29T10:00:00Z",
                        "2026-11-29T11:00:00+01:00"), or unix seconds. After 2000-01-01 and at most
                        FUTURE_SLACK_DAYS after the moment of reading. In Parquet a number column, a
                        timestamp column with a time zone, or a string column of ISO-8601 text.
    type       str      one of EVENT_TYPES, below

and, by type, these optional fields (absent or null: not known):

    page_view   url       str    the page; the words of its path are read as keywords
                cat       [str]  the page's IAB Content Taxonomy 1.0 categories ("IAB17", "IAB17-1")
                keywords  [str]  the page's keywords or phrases
    app_use     bundle    str    the app (not read into the profile)
                cat       [str]  the app's Content 1.0 categories
                app_category str the store's category of the app ("Social", "Health and Fitness")
                minutes   num    time spent, >= 0
    search      query     str    the search text
    purchase    category  int|str an IAB Audience Taxonomy 1.1 purchase-intent id (608 or "608"), or a
                                 product category name ("cameras")
                amount    num    >= 0, in `currency`;  currency: str;  order_id: str|int
    declared    age_band  str    "25-29", an age band of personabid.profiles.taxonomy
                yob       int    year of birth, 1900..2100 (when there is no age_band)
                gender    str    "female", "male", "F" or "M", in any case
                income    num    household income, USD a year, >= 0
    location    country   str    ISO-3166-1 alpha-3, upper case ("USA");  region: str (not read)
    device      os        str    "iOS", "Android", ...;  devicetype: int, OpenRTB device type 0..8
    click       campaign  str    the server's own: the campaign clicked or converted on
    conversion  cat       [str]  the ad's Content 1.0 categories
                value     num    (finite);  currency: str;  order_id: str|int

Strings hold at most 1024 characters, lists at most 64 entries. A row that breaks one of these rules (or
is not JSON, or not an object) is left out and counted with its line number (its 1-based row number in
Parquet) and a reason naming the field and its value (never the user id), as the training readers count
theirs (personabid.training.logs.BadRows); a file with more than `max_bad_fraction` of its rows bad, or
with no readable row, is refused with a LogError. A Parquet column of a type that cannot hold its field
refuses the file.

Observations. Each event becomes signal keys (personabid.profiles.taxonomy) with a weight, and each
(event, key) one row of an `OBSERVATION_SCHEMA` table:

    user    int64    personabid.profiles.artifact.user_key of the pseudonym
    day     int32    UTC day number, floor(ts / 86400)
    ts      float64  unix seconds
    kind    int16    index of the event's type in EVENT_TYPES
    key     string   the signal key
    weight  float32  the event's strength (WEIGHTS; app_use: min(minutes / 10, 3), or 1 without minutes)

    page_view    cat:<code> per category; kw: and product: keys of each keyword and of the url's path
    app_use      cat:<code> per category; appcat:<app_category, lower case>
    search       kw: and product: keys of the query (Taxonomy.text_keys)
    purchase     aud:<id> for an id; product:<name, lower case> for a product category the rules know;
                 otherwise the kw: and product: keys of the name
    declared     age:<band> (from age_band, or age_key of the age in the event's year from yob);
                 gender:female|male; income:<band> (income_key)
    location     country:<alpha-3>
    device       os:<os, lower case>; devicetype:<n>
    click, conversion  cat:<code> per category

A key no rule of the taxonomy knows says nothing about any tag: it is dropped and counted ("signals
with no tag"). An event that gives the same key twice (a keyword also in its url) gives it once, and an
observation of weight 0 (an app used for 0 minutes) is not kept.

Reading: `read_observations(paths, pseudonymize)` returns an iterator of observation tables (about
`chunk_rows` rows each; rows of one chunk of a file grouped by event, not in file order) and an
`EventReport` that fills in as the iterator is consumed (rows, events, observations, bad rows with the
first few reasons, signals with no tag, file by file). A file is read a chunk at a time: JSON Lines in
blocks decoded whole by msgspec (a block with a bad line again line by line, for its line numbers),
Parquet in record batches checked column by column. Each distinct raw id of a chunk is pseudonymised
once, and neither the id nor its pseudonym outlives the chunk. `write_events_jsonl` and
`write_events_parquet` write events given as dicts of the fields above.
"""

from __future__ import annotations

import gc
import gzip
import io
import math
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from personabid.profiles.artifact import EVENT_KINDS
from personabid.profiles.taxonomy import WORD, Taxonomy, age_key, income_key, standard
from personabid.training.logs import DEFAULT_MAX_BAD_FRACTION, BadRows, LogError

EVENT_TYPES = EVENT_KINDS
OBSERVATION_SCHEMA = pa.schema(
    [
        ("user", pa.int64()),
        ("day", pa.int32()),
        ("ts", pa.float64()),
        ("kind", pa.int16()),
        ("key", pa.string()),
        ("weight", pa.float32()),
    ]
)
# The weight of each type's observations; app_use's depends on its minutes (None here).
WEIGHTS: dict[str, float | None] = {
    "page_view": 1.0,
    "app_use": None,
    "search": 1.0,
    "purchase": 2.0,
    "declared": 1.0,
    "location": 1.0,
    "device": 1.0,
    "click": 2.0,
    "conversion": 3.0,
}
DEFAULT_CHUNK_ROWS = 1 << 20  # observations per table the reader yields
MAX_USER = 256
MAX_TEXT = 1024
MAX_ITEMS = 64
EARLIEST = 946_684_800.0  # 2000-01-01T00:00:00Z
# Not every clock that stamps events is right, and a day's files may be written ahead of their day;
# beyond a week, a time is a mistake (milliseconds read as seconds, a placeholder year).
FUTURE_SLACK_DAYS = 7
MINUTES_PER_WEIGHT = 10.0
MAX_APP_WEIGHT = 3.0
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Events mapped together: each distinct raw id of a chunk is pseudonymised once (the keyed hash is the
# dearest step per user), and the chunk's columns, raw ids among them, are dropped after it.
CHUNK_EVENTS = 1 << 19
# JSON decoded per call: big enough that the per-call costs vanish, small enough that a block holding a
# bad line is cheap to decode again line by line, and that its decoded objects (several times the size
# of the columns made of them) take little memory.
BLOCK_BYTES = 1 << 23
CACHE_LIMIT = 1 << 20  # distinct texts whose keys are remembered, across chunks

# Python's `$` also matches before a final newline, and `\d` any Unicode digit: hence \Z and [0-9] for
# msgspec (Python's re) and `$` for pyarrow (RE2), which mean the same.
CAT_PATTERN = r"^IAB[0-9]{1,2}(-[0-9]{1,3})?"
COUNTRY_PATTERN = r"^[A-Z]{3}"
_FINITE = 1.7976931348623157e308  # the largest float: as a bound, it keeps infinity out

_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
_Cats = Annotated[
    list[Annotated[str, msgspec.Meta(pattern=CAT_PATTERN + r"\Z")]], msgspec.Meta(max_length=MAX_ITEMS)
]
_Words = Annotated[list[_Text], msgspec.Meta(max_length=MAX_ITEMS)]
_Positive = Annotated[float, msgspec.Meta(ge=0.0, le=_FINITE)]
_Finite = Annotated[float, msgspec.Meta(ge=-_FINITE, le=_FINITE)]
_When = Annotated[datetime, msgspec.Meta(tz=True)]


class _Event(msgspec.Struct, tag_field="type", gc=False):
    user: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_USER)]
    ts: _When | float


class _PageView(_Event, tag="page_view", gc=False):
    url: _Text | None = None
    cat: _Cats | None = None
    keywords: _Words | None = None


class _AppUse(_Event, tag="app_use", gc=False):
    bundle: _Text | None = None
    cat: _Cats | None = None
    app_category: _Text | None = None
    minutes: _Positive | None = None


class _Search(_Event, tag="search", gc=False):
    query: _Text | None = None


class _Purchase(_Event, tag="purchase", gc=False):
    category: int | _Text | None = None
    amount: _Positive | None = None
    currency: _Text | None = None
    order_id: int | _Text | None = None


class _Declared(_Event, tag="declared", gc=False):
    age_band: _Text | None = None
    yob: Annotated[int, msgspec.Meta(ge=1900, le=2100)] | None = None
    gender: _Text | None = None
    income: _Positive | None = None


class _Location(_Event, tag="location", gc=False):
    country: Annotated[str, msgspec.Meta(pattern=COUNTRY_PATTERN + r"\Z")] | None = None
    region: _Text | None = None


class _Device(_Event, tag="device", gc=False):
    os: _Text | None = None
    devicetype: Annotated[int, msgspec.Meta(ge=0, le=8)] | None = None


class _Click(_Event, tag="click", gc=False):
    campaign: _Text | None = None
    cat: _Cats | None = None
    value: _Finite | None = None
    currency: _Text | None = None
    order_id: int | _Text | None = None


class _Conversion(_Click, tag="conversion", gc=False):
    pass


_STRUCTS: tuple[type[_Event], ...] = (
    _PageView,
    _AppUse,
    _Search,
    _Purchase,
    _Declared,
    _Location,
    _Device,
    _Click,
    _Conversion,
)
assert tuple(s.__struct_config__.tag for s in _STRUCTS) == EVENT_TYPES
_KIND_OF = {s: k for k, s in enumerate(_STRUCTS)}
# The fields of each type, after the user and ts every type has.
FIELDS: dict[str, tuple[str, ...]] = {
    name: s.__struct_fields__[2:] for name, s in zip(EVENT_TYPES, _STRUCTS, strict=True)
}
_STRING_FIELDS = frozenset(
    {"url", "bundle", "app_category", "query", "category", "currency", "order_id", "age_band", "gender"}
    | {"country", "region", "os", "campaign"}
)
_LIST_FIELDS = frozenset({"cat", "keywords"})
_FLOAT_FIELDS = frozenset({"minutes", "amount", "income", "value"})
_INT_FIELDS = frozenset({"devicetype", "yob"})
_INT_OR_STRING = frozenset({"category", "order_id"})  # ints are read as their decimal text
_POSITIVE = frozenset({"minutes", "amount", "income"})
_RANGES = {"devicetype": (0, 8), "yob": (1900, 2100)}
_ARROW_TYPES: dict[str, pa.DataType] = {
    **dict.fromkeys(_STRING_FIELDS, pa.string()),
    **dict.fromkeys(_LIST_FIELDS, pa.list_(pa.string())),
    **dict.fromkeys(_FLOAT_FIELDS, pa.float64()),
    **dict.fromkeys(_INT_FIELDS, pa.int64()),
}
# name -> bool (types + 1,): whether an event of kind k (index k; -1, an unknown type: the last) has it
_HAS_FIELD = {
    name: np.array([name in FIELDS[t] for t in EVENT_TYPES] + [False])
    for name in {f for fs in FIELDS.values() for f in fs}
}
EVENT_COLUMNS = ("user", "ts", "type", *sorted({f for fs in FIELDS.values() for f in fs}))


@dataclass
class FileReport:
    """What the reader made of one file. Complete once the observations' iterator has passed the file."""

    path: Path
    format: str  # "jsonl" or "parquet"
    rows: int = 0  # rows read: non-blank lines, or Parquet rows
    events: int = 0  # readable rows
    observations: int = 0
    untagged: int = 0  # signal keys no taxonomy rule knows (dropped)
    bad: BadRows = field(default_factory=BadRows)

    def summary(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "format": self.format,
            "rows": self.rows,
            "events": self.events,
            "observations": self.observations,
            "signals_with_no_tag": self.untagged,
            **self.bad.summary(self.events),
        }


@dataclass
class EventReport:
    """What the reader made of all its files, file by file."""

    files: list[FileReport]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def events(self) -> int:
        return sum(f.events for f in self.files)

    @property
    def observations(self) -> int:
        return sum(f.observations for f in self.files)

    @property
    def untagged(self) -> int:
        return sum(f.untagged for f in self.files)

    @property
    def bad_rows(self) -> int:
        return sum(f.bad.count for f in self.files)

    def summary(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "events": self.events,
            "observations": self.observations,
            "bad_rows": self.bad_rows,
            "signals_with_no_tag": self.untagged,
            "files": [f.summary() for f in self.files],
        }


def event_files(paths: Sequence[Path]) -> list[Path]:
    """The event files `paths` name: files as given, directories as the event files in them, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and _format(p) is not None)
        elif path.is_file():
            files.append(path)
        else:
            raise LogError(f"{path}: no such file")
    return files


def read_observations(
    paths: Sequence[Path],
    pseudonymize: Callable[[str], str],
    *,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    max_bad_rows: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    taxonomy: Taxonomy | None = None,
) -> tuple[Iterator[pa.Table], EventReport]:
    """The observations of the events in `paths` (files or directories), as OBSERVATION_SCHEMA tables
    of about `chunk_rows` rows, and the report that fills in as they are read.

    `pseudonymize` turns a raw user id into its pseudonym (personabid.privacy.Pseudonymizer). The
    iterator raises LogError when it reaches a file with too many bad rows (more than `max_bad_fraction`
    of its rows, or more than `max_bad_rows` when given) or none readable, having yielded the
    observations of the rows before; missing files are refused at once."""
    files = event_files(paths)
    report = EventReport([FileReport(p, _format(p) or "jsonl") for p in files])
    mapper = _Mapper(taxonomy or standard(), pseudonymize, time.time() + FUTURE_SLACK_DAYS * 86400.0)
    limits = (max_bad_fraction, max_bad_rows)
    return _chunked(_observations(report, mapper, limits), chunk_rows), report


def write_events_jsonl(path: Path, events: Iterable[Mapping[str, Any]]) -> int:
    """Write `events` (dicts of the fields above, raw user ids) as JSON Lines; returns how many."""
    encoder = msgspec.json.Encoder(enc_hook=_plain)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("wb") as handle:
        for event in events:
            handle.write(encoder.encode(event) + b"\n")
            count += 1
    return count


def write_events_parquet(path: Path, events: Iterable[Mapping[str, Any]]) -> int:
    """Write `events` as Parquet, one column per field any of them has (EVENT_COLUMNS order); `ts` is
    written as unix seconds, `category` and `order_id` as text. Returns how many."""
    rows = list(events)
    present = {name for event in rows for name in event}
    columns: dict[str, pa.Array] = {}
    for name in EVENT_COLUMNS:
        if name not in present:
            continue
        values = [event.get(name) for event in rows]
        if name == "ts":
            columns[name] = pa.array([_seconds(v) for v in values], pa.float64())
        elif name in ("user", "type"):
            columns[name] = pa.array(values, pa.string())
        elif name in _INT_OR_STRING:
            columns[name] = pa.array([_text(v) for v in values], pa.string())
        else:
            columns[name] = pa.array(values, _ARROW_TYPES[name])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return len(rows)


def _plain(value: Any) -> Any:
    """NumPy's scalars as Python's, which JSON can hold (events made with a numpy generator)."""
    if isinstance(value, np.generic):
        return value.item()
    raise NotImplementedError(f"{type(value).__name__} cannot be written as JSON")


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    when = value if isinstance(value, datetime) else msgspec.convert(value, _When)
    return when.timestamp()


def _text(value: Any) -> str | None:
    return str(value) if type(value) is int else value


def _format(path: Path) -> str | None:
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else path.suffixes[-1:]
    if suffixes and suffixes[0] in PARQUET_SUFFIXES and path.suffix != ".gz":
        return "parquet"
    if suffixes and suffixes[0] in JSON_SUFFIXES:
        return "jsonl"
    return None


# -- reading ------------------------------------------------------------------------------------------


@dataclass
class _Group:
    """Readable events of one type from one chunk of a file, as columns (raw user ids)."""

    kind: int
    lines: np.ndarray  # int64, 1-based line or row numbers
    users: pa.Array  # string
    ts: np.ndarray  # float64 unix seconds
    fields: dict[str, pa.Array]


def _observations(
    report: EventReport, mapper: _Mapper, limits: tuple[float, int | None]
) -> Iterator[pa.Table]:
    for file in report.files:
        chunks = _parquet_groups(file) if file.format == "parquet" else _jsonl_groups(file)
        for groups in chunks:
            table = mapper.observations(groups, file)
            _check_early(file, limits[1])
            if table.num_rows:
                yield table
        _check(file, *limits)


def _check_early(file: FileReport, max_rows: int | None) -> None:
    if max_rows is not None and file.bad.count > max_rows:
        raise LogError(f"{file.path}: more than {max_rows} unreadable rows; first: {_examples(file.bad)}")


def _check(file: FileReport, max_fraction: float, max_rows: int | None) -> None:
    _check_early(file, max_rows)
    if file.rows:  # an empty file is no error: there was nothing to read
        file.bad.check(file.path, file.events, max_fraction)


def _examples(bad: BadRows) -> str:
    return "; ".join(f"line {line}: {reason}" for line, reason in sorted(bad.examples)[:5])


def _chunked(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    pending: list[pa.Table] = []
    size = 0
    for table in tables:
        pending.append(table)
        size += table.num_rows
        if size >= rows:
            yield pa.concat_tables(pending)
            pending, size = [], 0
    if pending:
        yield pa.concat_tables(pending)


# -- JSON Lines -----------------------------------------------------------------------------------------

_DECODER = msgspec.json.Decoder(
    _PageView | _AppUse | _Search | _Purchase | _Declared | _Location | _Device | _Click | _Conversion
)


def _open_binary(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _jsonl_groups(file: FileReport) -> Iterator[list[_Group]]:
    pending: list[_Group] = []
    for groups in _jsonl_blocks(file):
        pending += groups
        if sum(len(g.lines) for g in pending) >= CHUNK_EVENTS:
            yield _merge(pending)
            pending = []
    if pending:
        yield _merge(pending)


def _merge(groups: list[_Group]) -> list[_Group]:
    """One group per type of the events of `groups`."""
    merged = []
    for kind in range(len(EVENT_TYPES)):
        same = [g for g in groups if g.kind == kind]
        if len(same) == 1:
            merged.append(same[0])
        elif same:
            fields = {
                name: pa.concat_arrays([g.fields[name] for g in same]) for name in FIELDS[EVENT_TYPES[kind]]
            }
            lines = np.concatenate([g.lines for g in same])
            users = pa.concat_arrays([g.users for g in same])
            merged.append(_Group(kind, lines, users, np.concatenate([g.ts for g in same]), fields))
    return merged


def _jsonl_blocks(file: FileReport) -> Iterator[list[_Group]]:
    first = 1
    with _open_binary(file.path) as handle:
        while block := _read_block(handle, file.path):
            lines = block.count(b"\n") + (not block.endswith(b"\n"))
            # A block decodes into a great many small lists and structs, none of which can be part of a
            # cycle: without the pause the collector would scan them over and over (twice the time).
            collecting = gc.isenabled()
            gc.disable()
            try:
                groups = _decode_block(block, first, lines, file)
            finally:
                if collecting:
                    gc.enable()
            yield groups
            first += lines


def _read_block(handle: io.BufferedIOBase, path: Path) -> bytes:
    """The next BLOCK_BYTES or so of the file, to the end of a line."""
    try:
        block = handle.read(BLOCK_BYTES)
        if block and not block.endswith(b"\n"):
            block += handle.readline()
    except (OSError, EOFError) as exc:  # a damaged gzip stream
        raise LogError(f"{path}: unreadable ({exc})") from exc
    return block


def _decode_block(block: bytes, first: int, lines: int, file: FileReport) -> list[_Group]:
    try:
        events = _DECODER.decode_lines(block)
    except msgspec.DecodeError:
        events = None
    if events is not None and len(events) == lines:
        numbers = np.arange(first, first + lines, dtype=np.int64)
        file.rows += lines
    else:  # a bad or blank line: go line by line, for the line numbers
        events, kept = [], []
        for offset, line in enumerate(block.split(b"\n")):
            if not line.strip():
                continue
            file.rows += 1
            try:
                events.append(_DECODER.decode(line))
                kept.append(first + offset)
            except msgspec.DecodeError as exc:
                file.bad.add(first + offset, _json_reason(line, exc))
        numbers = np.array(kept, dtype=np.int64)
    if not events:
        return []
    kinds = np.fromiter(map(_KIND_OF.__getitem__, map(type, events)), dtype=np.int8, count=len(events))
    order = np.argsort(kinds, kind="stable")
    bounds = np.searchsorted(kinds[order], np.arange(len(EVENT_TYPES) + 1))
    groups = []
    for kind in range(len(EVENT_TYPES)):
        rows = order[bounds[kind] : bounds[kind + 1]]
        if len(rows):
            picked = operator.itemgetter(*rows)(events) if len(rows) > 1 else (events[rows[0]],)
            groups.append(_struct_group(kind, picked, numbers[rows]))
    return groups


def _struct_group(kind: int, events: Sequence[_Event], lines: np.ndarray) -> _Group:
    def column(name: str) -> list[Any]:
        return list(map(operator.attrgetter(name), events))

    fields = {}
    for name in FIELDS[EVENT_TYPES[kind]]:
        values = column(name)
        if name in _INT_OR_STRING:
            values = list(map(_text, values))
        fields[name] = pa.array(values, _ARROW_TYPES[name])
    times = column("ts")
    try:
        ts = np.array(times, dtype=np.float64)
    except TypeError:  # some are datetimes
        ts = np.array([v if type(v) is float else v.timestamp() for v in times], dtype=np.float64)
    return _Group(kind, lines, pa.array(column("user"), pa.string()), ts, fields)


_PATTERNS = {
    "cat": "a Content 1.0 code (IAB17, IAB17-1) expected",
    "country": "ISO-3166-1 alpha-3 in upper case expected",
}
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _json_reason(line: bytes, exc: msgspec.DecodeError) -> str:
    """Why a line is bad, naming the field and its value (never a user id)."""
    message = str(exc)
    try:
        value: Any = msgspec.json.decode(line)
    except msgspec.DecodeError as malformed:  # malformed after the field the typed decoder refused
        return f"not JSON ({malformed})"
    missing = re.fullmatch(r"Object missing required field `(\w+)`", message)
    if missing:
        return f"{missing[1]}: missing"
    at = _AT.search(message)
    if not at:
        return "not a JSON object" if message.startswith("Expected `object`") else message
    path = at["path"].lstrip(".")
    message = message[: at.start()]
    if path == "user" or path.startswith("user"):
        return f"user: {message}"
    try:
        for name, index in _STEP.findall(at["path"]):
            value = value[name] if name else value[int(index)]
    except (KeyError, IndexError, TypeError):  # a path msgspec spells in a way not foreseen here
        return f"{path}: {message}"
    if path == "type":
        return f"type={_show(value)}: one of {', '.join(EVENT_TYPES)} expected"
    if "matching regex" in message:
        message = _PATTERNS[path.partition("[")[0]]
    return f"{path}={_show(value)}: {message}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- Parquet ----------------------------------------------------------------------------------------


def _parquet_groups(file: FileReport) -> Iterator[list[_Group]]:
    try:
        parquet = pq.ParquetFile(file.path)
    except (pa.ArrowException, OSError) as exc:
        raise LogError(f"{file.path}: not a Parquet file ({exc})") from exc
    names = set(parquet.schema_arrow.names)
    for required in ("user", "ts", "type"):
        if required not in names:
            raise LogError(f"{file.path}: no `{required}` column")
    columns = [c for c in EVENT_COLUMNS if c in names]
    first = 1
    try:
        batches = parquet.iter_batches(batch_size=CHUNK_EVENTS, columns=columns)
        for batch in batches:
            yield _batch_groups(batch, first, file)
            first += batch.num_rows
    except pa.ArrowException as exc:
        raise LogError(f"{file.path}: unreadable Parquet ({exc})") from exc


class _Checks:
    """Vectorised row checks of one batch: which rows fail, and why (for the first few)."""

    def __init__(self, rows: int) -> None:
        self.bad = np.zeros(rows, dtype=bool)
        self.failed: list[tuple[np.ndarray, str, pa.Array | None, str]] = []

    def add(self, fails: np.ndarray, name: str, column: pa.Array | None, expected: str) -> None:
        if fails.any():
            self.bad |= fails
            self.failed.append((fails, name, column, expected))

    def reason(self, row: int) -> str:
        for fails, name, column, expected in self.failed:
            if fails[row]:
                if column is None:  # the user id, which is never shown
                    return f"{name}: {expected}"
                return f"{name}={_show(column[row].as_py())}: {expected}"
        return "unreadable"


def _np(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False))


def _column(batch: pa.RecordBatch, name: str, file: FileReport) -> pa.Array | None:
    """The batch's column `name` in the type the reader works on, or None when the file has none."""
    index = batch.schema.get_field_index(name)
    if index < 0:
        return None
    column = batch.column(index)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    kind = column.type
    if name == "ts":
        wanted: pa.DataType = pa.float64()
        fits = _is_number(kind) or pa.types.is_timestamp(kind) or _is_text(kind)
    else:
        wanted = _ARROW_TYPES.get(name, pa.string())
        if pa.types.is_string(wanted):
            fits = _is_text(kind) or (name in _INT_OR_STRING and pa.types.is_integer(kind))
        elif pa.types.is_list(wanted):
            fits = (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and _is_text(kind.value_type)
        elif pa.types.is_integer(wanted):
            fits = pa.types.is_integer(kind)
        else:
            fits = _is_number(kind)
    if not fits or (pa.types.is_timestamp(kind) and kind.tz is None):
        raise LogError(f"{file.path}: column `{name}` is {kind}, which cannot hold its values")
    if name == "ts" and pa.types.is_timestamp(kind):
        per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[kind.unit]
        return pc.divide(column.cast(pa.int64()).cast(pa.float64()), float(per_second))
    if name == "ts" and _is_text(kind):
        return column.cast(pa.string())
    return column.cast(wanted)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _batch_groups(batch: pa.RecordBatch, first: int, file: FileReport) -> list[_Group]:
    n = batch.num_rows
    file.rows += n
    checks = _Checks(n)
    users = _column(batch, "user", file)
    types = _column(batch, "type", file)
    raw_ts = _column(batch, "ts", file)
    assert users is not None and types is not None and raw_ts is not None
    lengths = pc.utf8_length(users)
    checks.add(
        _np(pc.fill_null(pc.or_(pc.less(lengths, 1), pc.greater(lengths, MAX_USER)), True)),
        "user",
        None,
        f"a string of 1..{MAX_USER} characters expected",
    )
    kind_array = pc.index_in(types, value_set=pa.array(EVENT_TYPES))
    checks.add(_np(kind_array.is_null()), "type", types, f"one of {', '.join(EVENT_TYPES)} expected")
    kinds = _np(pc.fill_null(kind_array, -1)).astype(np.int8)
    ts = _iso_seconds(raw_ts) if pa.types.is_string(raw_ts.type) else raw_ts
    checks.add(_np(ts.is_null()) & ~_np(raw_ts.is_null()), "ts", raw_ts, "ISO-8601 with a zone expected")
    checks.add(_np(raw_ts.is_null()), "ts", raw_ts, "missing")
    columns = {}
    for name in EVENT_COLUMNS[3:]:
        column = _column(batch, name, file)
        if column is None:
            continue
        columns[name] = column
        relevant = _HAS_FIELD[name][kinds]
        for fails, expected in _field_checks(name, column):
            checks.add(fails & relevant, name, column, expected)
    bad_rows = np.flatnonzero(checks.bad)
    room = max(0, file.bad.keep - len(file.bad.examples))
    for row in bad_rows[:room]:  # a reason only for the rows the report shows
        file.bad.add(first + int(row), checks.reason(int(row)))
    file.bad.count += max(0, len(bad_rows) - room)
    good = ~checks.bad
    seconds = _np(pc.fill_null(ts, math.nan))
    lines = np.arange(first, first + n, dtype=np.int64)
    groups = []
    for kind, name in enumerate(EVENT_TYPES):
        rows = np.flatnonzero(good & (kinds == kind))
        if not len(rows):
            continue
        take = pa.array(rows)
        fields = {f: columns[f].take(take) for f in FIELDS[name] if f in columns}
        for f in FIELDS[name]:
            if f not in fields:
                fields[f] = pa.nulls(len(rows), _ARROW_TYPES[f])
        groups.append(_Group(kind, lines[rows], users.take(take), seconds[rows], fields))
    return groups


def _iso_seconds(text: pa.Array) -> pa.Array:
    """Unix seconds of ISO-8601 text, null where it is not ISO-8601 with a zone (as msgspec reads JSON)."""
    encoded = text.dictionary_encode()
    seconds: list[float | None] = []
    for value in encoded.dictionary.to_pylist():
        try:
            seconds.append(msgspec.convert(value, _When).timestamp())
        except msgspec.ValidationError:
            seconds.append(None)
    return pa.array(seconds, pa.float64()).take(encoded.indices)


def _field_checks(name: str, column: pa.Array) -> list[tuple[np.ndarray, str]]:
    """(rows that fail, what is expected) of each rule of field `name`; null is never a failure."""

    def fails(condition: pa.Array) -> np.ndarray:
        return _np(pc.fill_null(condition, False))

    if name in _LIST_FIELDS:
        sizes = pc.list_value_length(column)
        out = [(fails(pc.greater(sizes, MAX_ITEMS)), f"at most {MAX_ITEMS} entries expected")]
        items = pc.list_flatten(column)
        parents = _np(pc.list_parent_indices(column))
        if name == "cat":
            codes = items.dictionary_encode()  # a few hundred codes: match each once
            ok = pc.match_substring_regex(codes.dictionary, CAT_PATTERN + "$").take(codes.indices)
            expected = "Content 1.0 codes (IAB17, IAB17-1) expected"
        else:
            ok = pc.less_equal(pc.utf8_length(items), MAX_TEXT)
            expected = f"strings of at most {MAX_TEXT} characters expected"
        wrong = np.zeros(len(column), dtype=bool)
        wrong[parents[~_np(pc.fill_null(ok, False))]] = True
        return [*out, (wrong, expected)]
    if name in _STRING_FIELDS:
        out = [(fails(pc.greater(pc.utf8_length(column), MAX_TEXT)), f"at most {MAX_TEXT} characters")]
        if name == "country":
            matches = pc.match_substring_regex(column, COUNTRY_PATTERN + "$")
            out.append((fails(pc.invert(matches)), _PATTERNS["country"]))
        return out
    if name in _INT_FIELDS:
        low, high = _RANGES[name]
        outside = pc.or_(pc.less(column, low), pc.greater(column, high))
        return [(fails(outside), f"an integer {low}..{high} expected")]
    values = _np(pc.fill_null(column, 0.0))
    with np.errstate(invalid="ignore"):
        if name in _POSITIVE:
            return [(~(np.isfinite(values) & (values >= 0)), "a finite number >= 0 expected")]
        return [(~np.isfinite(values), "a finite number expected")]


# -- mapping --------------------------------------------------------------------------------------------


_SCHEME = r"^[A-Za-z][A-Za-z0-9+.\-]*:$"
_GENDERS = {"f": "gender:female", "female": "gender:female", "m": "gender:male", "male": "gender:male"}


def _gender(text: str) -> tuple[str, ...]:
    said = text.strip().lower()
    return (_GENDERS.get(said, f"gender:{said}"),)


def _some(key: str | None) -> tuple[str, ...]:
    return (key,) if key else ()


class _Mapper:
    """Events to observations: signal keys, weights, user keys."""

    def __init__(self, taxonomy: Taxonomy, pseudonymize: Callable[[str], str], latest: float) -> None:
        self.taxonomy = taxonomy
        self.pseudonymize = pseudonymize
        self.latest = latest
        self.known = pa.array(sorted({key for key, _, _ in taxonomy.rule_rows()}), pa.string())
        self.phrase_words = pa.array(sorted(taxonomy.phrase_words()), pa.string())
        self.known_set = frozenset(self.known.to_pylist())
        self.cache: dict[tuple[str, Any], tuple[str, ...]] = {}

    # Keys of one value of a field; each runs once per distinct value (cached across chunks).
    def _text(self, text: str) -> tuple[str, ...]:
        return tuple(self.taxonomy.text_keys(text))

    def _texts(self, pieces: pa.Array, text: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """(text, key) pairs of the kw: and product: keys of texts made of `pieces` (`text` of each, in
        order), as Taxonomy.text_keys finds them in each text.

        Pieces (whole texts, or a url's segments) repeat where texts rarely do, so each distinct piece
        is split into words once. A phrase holds only words of the rules' phrases: a text's keys are
        those of its runs of such words, in order, and runs are what is looked up (and cached)."""
        encoded = pieces.dictionary_encode()
        words_of = self._words(encoded.dictionary).take(encoded.indices)
        words = pc.list_flatten(words_of)
        owner = text[_np(pc.list_parent_indices(words_of))]
        # The regex split leaves "" where a piece starts or ends with a separator, or is empty: not a
        # word, and no break between the words around it (WORD.findall finds none there either).
        nonempty = _np(pc.greater(pc.utf8_length(words), 0))
        words, owner = words.filter(pa.array(nonempty)), owner[nonempty]
        known = _np(pc.is_in(words, value_set=self.phrase_words))
        begins = known.copy()
        begins[1:] &= ~known[:-1] | (owner[1:] != owner[:-1])
        run = np.cumsum(begins)[known] - 1
        runs = pa.ListArray.from_arrays(
            pa.array(np.searchsorted(run, np.arange(int(begins.sum()) + 1)).astype(np.int32)),
            words.filter(pa.array(known)),
        )
        of_run, keys = self._values(pc.binary_join(runs, " "), "kw", self._text)
        return owner[begins][of_run], keys

    def _words(self, texts: pa.Array) -> pa.Array:
        """Each text's words as WORD.findall(text.lower()) finds them. Python's lower() turns a few
        non-ASCII letters into ASCII ones, which RE2's lower does not quite alike: texts with any
        non-ASCII character are split in Python."""
        words = pc.split_pattern_regex(pc.ascii_lower(texts), "[^a-z0-9]+")
        other = np.flatnonzero(~_np(pc.fill_null(pc.string_is_ascii(texts), True)))
        if not len(other):
            return words
        split = [WORD.findall(t.lower()) for t in texts.take(pa.array(other)).to_pylist()]
        where = np.arange(len(texts))
        where[other] = len(texts) + np.arange(len(other))
        return pa.concat_arrays([words, pa.array(split, words.type)]).take(pa.array(where))

    def _url_words(self, urls: pa.Array) -> tuple[np.ndarray, pa.Array]:
        """(url, key) pairs of the keys of the urls' paths: what is between the host and `?` or `#`."""
        encoded = urls.dictionary_encode()  # popular pages: each is split once
        owner, keys = self._distinct_url_words(encoded.dictionary)
        return _expand(encoded.indices, len(encoded.dictionary), owner, keys)

    def _distinct_url_words(self, urls: pa.Array) -> tuple[np.ndarray, pa.Array]:
        for mark in ("#", "?"):
            urls = pc.list_element(pc.split_pattern(urls, mark, max_splits=1), 0)
        segments = pc.split_pattern(urls, "/")
        pieces = pc.list_flatten(segments)
        url = _np(pc.list_parent_indices(segments))
        offsets = _np(segments.offsets)
        place = np.arange(len(pieces)) - offsets[url]
        # scheme://host/...: the first three pieces are the scheme, "" and the host
        first = offsets[:-1]
        long_enough = np.flatnonzero(offsets[1:] - first >= 2)
        heads = pieces.take(pa.array(first[long_enough]))
        seconds = pieces.take(pa.array(first[long_enough] + 1))
        scheme = pc.and_(pc.match_substring_regex(heads, _SCHEME), pc.equal(pc.utf8_length(seconds), 0))
        absolute = np.zeros(len(urls), dtype=bool)
        absolute[long_enough] = _np(scheme)
        keep = place >= np.where(absolute, 3, 0)[url]
        return self._texts(pieces.filter(pa.array(keep)), url[keep])

    def _product(self, category: str) -> tuple[str, ...]:
        name = category.strip()
        if name.isascii() and name.isdigit():
            return (f"aud:{int(name)}",)
        product = f"product:{' '.join(name.lower().split())}"
        return (product,) if product in self.known_set else tuple(self.taxonomy.text_keys(name))

    def observations(self, groups: list[_Group], file: FileReport) -> pa.Table:
        groups = [g for g in (self._in_time(g, file) for g in groups) if len(g.lines)]
        if not groups:
            return OBSERVATION_SCHEMA.empty_table()
        file.events += sum(len(g.lines) for g in groups)
        users = self._user_keys(pa.concat_arrays([g.users for g in groups]))
        ts = np.concatenate([g.ts for g in groups])
        kinds = np.concatenate([np.full(len(g.lines), g.kind, dtype=np.int16) for g in groups])
        weights = np.concatenate([self._weights(g) for g in groups])
        parents: list[np.ndarray] = []
        keys: list[pa.Array] = []
        offset = 0
        for group in groups:
            for p, k in self._keys(group):
                parents.append(p + offset)
                keys.append(k)
            offset += len(group.lines)
        if not parents:
            return OBSERVATION_SCHEMA.empty_table()
        parent = np.concatenate(parents)
        key = pa.concat_arrays(keys)
        code = pc.index_in(key, value_set=self.known)
        file.untagged += code.null_count - key.null_count
        codes = _np(pc.fill_null(code, -1)).astype(np.int64)
        keep = (codes >= 0) & (weights[parent] > 0)
        # Each (event, key) once; sorted, so a chunk's observations come event by event.
        pair = np.sort(parent[keep] * len(self.known) + codes[keep])
        first = np.ones(len(pair), dtype=bool)
        first[1:] = pair[1:] != pair[:-1]
        pair = pair[first]
        event, codes = np.divmod(pair, len(self.known))
        seconds = ts[event]
        table = pa.Table.from_arrays(
            [
                pa.array(users[event]),
                pa.array(np.floor(seconds / 86400.0).astype(np.int32)),
                pa.array(seconds),
                pa.array(kinds[event]),
                self.known.take(pa.array(codes)),
                pa.array(weights[event]),
            ],
            schema=OBSERVATION_SCHEMA,
        )
        file.observations += table.num_rows
        return table

    def _in_time(self, group: _Group, file: FileReport) -> _Group:
        """The group without its events dated before 2000 or after `latest` (counted as bad rows)."""
        ts = group.ts
        with np.errstate(invalid="ignore"):
            outside = ~((ts >= EARLIEST) & (ts <= self.latest))
        if not outside.any():
            return group
        latest = datetime.fromtimestamp(self.latest, UTC).date().isoformat()
        wrong = np.flatnonzero(outside)
        room = max(0, file.bad.keep - len(file.bad.examples))
        for row in wrong[:room]:  # a reason only for the rows the report shows
            reason = f"ts={float(ts[row])!r}: a time after 2000-01-01 and before {latest} expected"
            file.bad.add(int(group.lines[row]), reason)
        file.bad.count += max(0, len(wrong) - room)
        keep = pa.array(np.flatnonzero(~outside))
        return _Group(
            group.kind,
            group.lines[~outside],
            group.users.take(keep),
            ts[~outside],
            {name: column.take(keep) for name, column in group.fields.items()},
        )

    def _user_keys(self, users: pa.Array) -> np.ndarray:
        # Each distinct id once; neither the ids nor their pseudonyms outlive this call.
        # The keys are artifact.user_key's (the first 64 bits, big-endian, signed), in one conversion.
        encoded = users.dictionary_encode()
        pseudonyms = map(self.pseudonymize, encoded.dictionary.to_pylist())
        heads = bytes.fromhex("".join([p[:16] for p in pseudonyms]))
        keys = np.frombuffer(heads, dtype=">i8").astype(np.int64)
        return keys[_np(encoded.indices)]

    def _weights(self, group: _Group) -> np.ndarray:
        weight = WEIGHTS[EVENT_TYPES[group.kind]]
        if weight is not None:
            return np.full(len(group.lines), weight, dtype=np.float32)
        minutes = _np(pc.fill_null(group.fields["minutes"], math.nan))
        with np.errstate(invalid="ignore"):
            scaled = np.minimum(minutes / MINUTES_PER_WEIGHT, MAX_APP_WEIGHT)
        return np.where(np.isnan(minutes), 1.0, scaled).astype(np.float32)

    def _keys(self, group: _Group) -> Iterator[tuple[np.ndarray, pa.Array]]:
        """(event row in the group, signal key) pairs of a group's events."""
        fields = group.fields
        name = EVENT_TYPES[group.kind]
        if "cat" in fields:
            yield self._listed(fields["cat"], "cat", lambda code: (f"cat:{code}",))
        if name == "page_view":
            keywords = fields["keywords"]
            pieces = pc.list_flatten(keywords)
            keyword, keys = self._texts(pieces, np.arange(len(pieces)))
            yield _np(pc.list_parent_indices(keywords))[keyword], keys
            yield self._url_words(fields["url"])
        elif name == "app_use":
            yield self._values(fields["app_category"], "appcat", lambda c: (f"appcat:{c.lower()}",))
        elif name == "search":
            yield self._texts(fields["query"], np.arange(len(fields["query"])))
        elif name == "purchase":
            yield self._values(fields["category"], "purchase", self._product)
        elif name == "declared":
            bands = pc.binary_join_element_wise("age:", fields["age_band"], "")
            years = group.ts.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970
            ages = pc.subtract(pa.array(years), fields["yob"])
            ages = pc.if_else(bands.is_valid(), pa.scalar(None, pa.int64()), ages)  # the band comes first
            yield self._values(bands, "band", lambda key: (key,))
            yield self._values(ages, "age", lambda age: _some(age_key(age)))
            yield self._values(fields["gender"], "gender", _gender)
            yield self._values(fields["income"], "income", lambda usd: _some(income_key(usd)))
        elif name == "location":
            yield self._values(fields["country"], "country", lambda c: (f"country:{c}",))
        elif name == "device":
            yield self._values(fields["os"], "os", lambda os: (f"os:{os.strip().lower()}",))
            yield self._values(fields["devicetype"], "devicetype", lambda n: (f"devicetype:{n}",))

    def _listed(
        self, lists: pa.Array, space: str, keys_of: Callable[[Any], tuple[str, ...]]
    ) -> tuple[np.ndarray, pa.Array]:
        parents = _np(pc.list_parent_indices(lists))
        items, keys = self._values(pc.list_flatten(lists), space, keys_of)
        return parents[items], keys

    def _values(
        self, values: pa.Array, space: str, keys_of: Callable[[Any], tuple[str, ...]]
    ) -> tuple[np.ndarray, pa.Array]:
        """(position in `values`, key) of every key of every value; nulls have none."""
        encoded = values.dictionary_encode()
        cache = self.cache
        if len(cache) > CACHE_LIMIT:
            cache.clear()
        per_value = []
        for value in encoded.dictionary.to_pylist():
            found = cache.get((space, value))
            if found is None:
                found = cache[(space, value)] = keys_of(value)
            per_value.append(found)
        counts = np.array([len(k) for k in per_value], dtype=np.int64)
        owner = np.repeat(np.arange(len(per_value), dtype=np.int64), counts)
        keys = pa.array([k for found in per_value for k in found], pa.string())
        return _expand(encoded.indices, len(per_value), owner, keys)


def _expand(
    indices: pa.Array, distinct: int, owner: np.ndarray, keys: pa.Array
) -> tuple[np.ndarray, pa.Array]:
    """(position, key) pairs of dictionary-encoded values (`indices` into `distinct` values), from
    those of the distinct values (`owner` the distinct value of each of `keys`); null has none."""
    if distinct == 0 or not len(keys):
        return np.zeros(0, dtype=np.int64), pa.array([], pa.string())
    order = np.argsort(owner, kind="stable")
    counts = np.bincount(owner, minlength=distinct)
    starts = np.cumsum(counts) - counts
    index = _np(pc.fill_null(indices, 0)).astype(np.int64)
    lengths = np.where(_np(indices.is_valid()), counts[index], 0)
    total = int(lengths.sum())
    position = np.repeat(starts[index], lengths)
    position += np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(np.arange(len(indices), dtype=np.int64), lengths), keys.take(pa.array(order[position]))
