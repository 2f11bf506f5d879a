"""Where the event log's lines are, and the report window's bounds.

The server writes one file per UTC day of its clock (`events-2026-11-30.jsonl` beside the `event_log`
setting's name), so a report reads a set of files: PATH is one file, a directory (every `events*.jsonl` in
it, and every `*.parquet`), or a glob. `event_files` turns PATH into that list, sorted so that two runs read
the same files in the same order.
"""

from __future__ import annotations

import datetime as dt
import glob
import math
from pathlib import Path

from personabid.errors import PersonabidError

JSON_PATTERN = "events*.jsonl"
PARQUET_PATTERN = "*.parquet"
GLOB_CHARACTERS = frozenset("*?[")


class EventLogError(PersonabidError):
    """An event log that cannot be read as asked: no such file, no event files, a bad time bound."""


def event_files(path: Path | str) -> list[Path]:
    """The event files PATH names: itself (a file), those of a directory, or a glob's matches; sorted.

    EventLogError when PATH names nothing, or a directory or glob without event files."""
    text = str(path)
    if GLOB_CHARACTERS & set(text) and not Path(text).exists():
        found = sorted(Path(name) for name in glob.glob(text) if Path(name).is_file())
        if not found:
            raise EventLogError(f"--events {text}: the pattern matches no file")
        return found
    target = Path(text)
    if target.is_file():
        return [target]
    if target.is_dir():
        found = sorted(p for p in target.glob(JSON_PATTERN) if p.is_file())
        found += sorted(p for p in target.glob(PARQUET_PATTERN) if p.is_file())
        if not found:
            raise EventLogError(
                f"--events {text}: the directory holds no event files ({JSON_PATTERN} or {PARQUET_PATTERN})"
            )
        return found
    raise EventLogError(f"--events {text}: no such file or directory")


def parse_time(text: str, field: str = "time") -> float:
    """Unix seconds from ISO-8601 (a time without a zone is UTC; "Z" is accepted) or from unix seconds.

    EventLogError naming `field` and the text when it is neither."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            raise EventLogError(f"{field}={text!r}: neither ISO-8601 nor unix seconds") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.timestamp()
    if not math.isfinite(seconds):
        raise EventLogError(f"{field}={text!r}: not a finite number of seconds")
    return seconds


def check_window(since: float | None, until: float | None) -> None:
    """EventLogError when the window [since, until) is empty."""
    if since is not None and until is not None and until <= since:
        raise EventLogError(f"--until={until} is not after --since={since}: the window is empty")


# The v2 log's fields a report reads, with their types. Naming them makes a missing key NULL, a value of
# the wrong type NULL, and an unreadable line a row of NULLs (counted as bad), instead of failing the file
# or letting DuckDB guess a type from the first lines.
COLUMNS: dict[str, str] = {
    "v": "INTEGER",
    "event": "VARCHAR",
    "ts": "DOUBLE",
    "notice_ts": "DOUBLE",
    "request_id": "VARCHAR",
    "imp_id": "VARCHAR",
    "bid_id": "VARCHAR",
    "user": "VARCHAR",
    "campaign": "VARCHAR",
    "advertiser": "VARCHAR",
    "devicetype": "INTEGER",
    "country": "VARCHAR",
    "price": "DOUBLE",
    "bid_price": "DOUBLE",
    "sources": "VARCHAR[]",
    "arms": "VARCHAR[]",
    "sample": "DOUBLE",
    "order_id": "VARCHAR",
    "value_usd": "DOUBLE",
}


def sources(files: list[Path]) -> list[str]:
    """SQL table expressions (DuckDB) that read `files` with COLUMNS as their columns: one over every
    JSON Lines file (in the given order) and one per Parquet file, to be read in this order.

    In JSON, a missing key or a value of another type is NULL, and a line that is not JSON is a row of NULLs
    (count those as bad); a Parquet file written before a field existed reads NULL for it."""
    found = []
    json_files = [str(p) for p in files if p.suffix != ".parquet"]
    if json_files:
        spec = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in COLUMNS.items()) + "}"
        listed = "[" + ", ".join(_quote(name) for name in json_files) + "]"
        found.append(
            f"(SELECT * FROM read_json({listed}, format = 'newline_delimited', columns = {spec}, "
            "ignore_errors = true))"
        )
    for path in (p for p in files if p.suffix == ".parquet"):
        import pyarrow.parquet as pq

        present = set(pq.read_schema(path).names)
        select = ", ".join(
            f'TRY_CAST("{name}" AS {kind}) AS "{name}"'
            if name in present
            else f'CAST(NULL AS {kind}) AS "{name}"'
            for name, kind in COLUMNS.items()
        )
        found.append(f"(SELECT {select} FROM read_parquet({_quote(str(path))}))")
    return found


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
