"""Avazu mobile-ad logs: CSV with a header (id, click, hour, C1, banner_pos, site_*, app_*, device_*,
C14..C21), columns found by name.

`hour` is YYMMDDHH in UTC: it gives the row's time (for the time-ordered split) and two features, the
hour of the day and the day of the week. `id` identifies the impression, not a user; it is not a feature.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from personabid.ctr.features import SCHEMAS
from personabid.training.delimited import Layout, header_positions, table_chunk
from personabid.training.logs import (
    DEFAULT_CHUNK_ROWS,
    BadRows,
    Chunk,
    LogError,
    Tokenizer,
    line_batches,
    open_text,
)

FIELDS = SCHEMAS["avazu"]
DERIVED = ("hour", "weekday")  # fields made from the `hour` column
RAW_FIELDS = tuple(f for f in FIELDS if f not in DERIVED)


def parse_hour(value: str) -> dt.datetime:
    """The UTC hour that YYMMDDHH text names; ValueError otherwise."""
    if len(value) != 8 or not value.isdigit():
        raise ValueError("not YYMMDDHH")
    year, month, day, hour = (int(value[i : i + 2]) for i in range(0, 8, 2))
    return dt.datetime(2000 + year, month, day, hour, tzinfo=dt.UTC)


class HourTimes:
    """Unix seconds of `hour` values, each distinct value parsed once."""

    def __init__(self) -> None:
        self.cache: dict[str, int] = {}

    def __call__(self, values: Sequence[str]) -> tuple[np.ndarray, dict[int, str]]:
        reasons = {}
        for value in set(values).difference(self.cache):
            try:
                self.cache[value] = int(parse_hour(value).timestamp())
            except ValueError as exc:
                reasons[value] = f"hour={value!r}: {exc}"
        times = np.fromiter((self.cache.get(v, -1) for v in values), dtype=np.int64, count=len(values))
        unreadable = {i: reasons[v] for i, v in enumerate(values) if v in reasons} if reasons else {}
        return times, unreadable


def read_avazu(path: Path, bad: BadRows, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
    """Chunks of an Avazu CSV log; unreadable rows go to `bad`."""
    tokenizers = {f: Tokenizer(f) for f in RAW_FIELDS}
    tokenizers["hour"] = Tokenizer("hour", lambda v: f"{parse_hour(v).hour:02d}")
    tokenizers["weekday"] = Tokenizer("hour", lambda v: str(parse_hour(v).weekday()))
    with open_text(path) as handle:
        header = handle.readline().rstrip("\r\n").split(",")
        try:
            position = header_positions(header, ("click", "hour", *RAW_FIELDS), "avazu")
        except ValueError as exc:
            raise LogError(f"{path}: {exc} (a test file without clicks cannot be trained on)") from exc
        layout = Layout(
            delimiter=",",
            columns=len(header),
            label=position["click"],
            fields=(
                ("hour", position["hour"]),
                ("weekday", position["hour"]),
                *((f, position[f]) for f in RAW_FIELDS),
            ),
            time=position["hour"],
        )
        times = HourTimes()
        for number, batch in line_batches(handle, chunk_rows, 2):
            yield table_chunk(number, batch, layout, tokenizers, bad, times)
