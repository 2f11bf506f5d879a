"""iPinYou RTB logs in the FM format of Zhang, Du and Wang's preprocessing (deep-ctr).

    train.fm.txt      one impression a line: "<click 0|1> <index>:1 <index>:1 ..." with one one-hot index
                      per field, the 16 fields of SCHEMAS["ipinyou"] in that order
    featindex.fm.txt  "<field>:<value>\\t<index>" for every index

A feature's value is its one-hot index, so a model trained with one featindex scores any file numbered by
the same featindex (the preprocessing's train and test files share one), with or without the featindex at
hand. With it, each index is checked against its field, and the rows get a time key from their weekday and
hour (weekday * 24 + hour: the split orders by it, which is time order for a log shorter than a week;
"other" counts as 0). Without it, the field is the index's position in the line and the log has no time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from personabid.ctr.features import SCHEMAS, token
from personabid.training.logs import (
    CACHE_LIMIT,
    DEFAULT_CHUNK_ROWS,
    BadRows,
    Chunk,
    LogError,
    line_batches,
    open_text,
)

FIELDS = SCHEMAS["ipinyou"]
FEATINDEX_NAMES = ("featindex.fm.txt", "featindex.txt")


@dataclass(frozen=True)
class FeatIndex:
    """The one-hot numbering of a preprocessed iPinYou log."""

    field: np.ndarray  # int16 (indices,): position in FIELDS of each index's field
    time: np.ndarray  # int64 (indices,): the index's part of the time key (weekday * 24, or hour)
    has_time: bool
    sha256: str

    @classmethod
    def load(cls, path: Path) -> FeatIndex:
        position = {name: i for i, name in enumerate(FIELDS)}
        entries: dict[int, tuple[int, int]] = {}
        seen = set()
        with open_text(path) as handle:
            text = handle.read()
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                name, index = line.rsplit("\t", 1)
                field, value = name.split(":", 1)
                entries[int(index)] = (position[field], _time_part(field, value))
                seen.add(field)
            except (ValueError, KeyError) as exc:
                raise LogError(
                    f"{path} line {number}: {line!r} is not '<field>:<value>\\t<index>' with a field of "
                    f"{FIELDS} ({exc})"
                ) from exc
        if not entries:
            raise LogError(f"{path}: empty featindex")
        size = max(entries) + 1
        field_of = np.full(size, -1, dtype=np.int16)
        time_of = np.zeros(size, dtype=np.int64)
        for slot, (f, t) in entries.items():
            field_of[slot], time_of[slot] = f, t
        return cls(
            field=field_of,
            time=time_of,
            has_time={"weekday", "hour"} <= seen,
            sha256=hashlib.sha256(text.encode()).hexdigest(),
        )


def _time_part(field: str, value: str) -> int:
    if field == "weekday":
        return 24 * int(value) if value.isdigit() else 0
    if field == "hour":
        return int(value) if value.isdigit() else 0
    return 0


def find_featindex(data: Path) -> Path | None:
    """The featindex beside a data file, if there is one."""
    for name in FEATINDEX_NAMES:
        candidate = data.parent / name
        if candidate.is_file():
            return candidate
    return None


def read_ipinyou(
    path: Path, bad: BadRows, chunk_rows: int = DEFAULT_CHUNK_ROWS, featindex: FeatIndex | None = None
) -> Iterator[Chunk]:
    """Chunks of an iPinYou FM log; unreadable rows go to `bad`."""
    items = _Items(featindex)
    with open_text(path) as handle:
        for first, lines in line_batches(handle, chunk_rows):
            yield _chunk(first, lines, items, featindex is not None and featindex.has_time, bad)


class _Items:
    """What an "<index>:1" item means: (field position, token, time part), or why it is unreadable.
    Each distinct item is worked out once."""

    def __init__(self, featindex: FeatIndex | None) -> None:
        self.field = featindex.field.tolist() if featindex is not None else None
        self.time = featindex.time.tolist() if featindex is not None else None
        self.known: dict[str, tuple[int, int, int] | str] = {}

    def __call__(self, item: str, position: int) -> tuple[int, int, int] | str:
        found = self.known.get(item)
        if found is None:
            if len(self.known) > CACHE_LIMIT:
                self.known.clear()
            found = self.known[item] = self._parse(item)
        if self.field is None and isinstance(found, tuple):
            return position, found[1], 0  # without a featindex the field is the position
        return found

    def _parse(self, item: str) -> tuple[int, int, int] | str:
        index, _, value = item.partition(":")
        if not index.isdigit() or value != "1":
            return f"{item!r} is not '<index>:1'"
        number = int(index)
        if self.field is None or self.time is None:
            return -1, token(index), 0
        if number >= len(self.field) or self.field[number] < 0:
            return f"{item!r}: index not in the featindex"
        return self.field[number], token(index), self.time[number]


def _chunk(first: int, lines: list[str], items: _Items, has_time: bool, bad: BadRows) -> Chunk:
    width = len(FIELDS)
    rows: list[list[int]] = []
    times: list[int] = []
    labels: list[float] = []
    numbers: list[int] = []
    for offset, line in enumerate(lines):
        parts = line.split()
        if not parts:
            continue
        number = first + offset
        if len(parts) != width + 1:
            bad.add(number, f"{len(parts) - 1} features, expected {width}")
            continue
        if parts[0] not in ("0", "1"):
            bad.add(number, f"label {parts[0]!r} is not 0 or 1")
            continue
        entries = [items(item, j) for j, item in enumerate(parts[1:])]
        reason = next((f"feature {j + 1}: {e}" for j, e in enumerate(entries) if isinstance(e, str)), "")
        # Read only when no entry was a reason (a str): every one is then a (field, token, time) tuple.
        parsed = cast(list[tuple[int, int, int]], entries)
        if not reason and len({e[0] for e in parsed}) != width:
            reason = "a field appears twice and another not at all"
        if reason:
            bad.add(number, reason)
            continue
        parsed.sort()  # by field position: the featindex decides which column a value belongs to
        rows.append([e[1] for e in parsed])
        times.append(sum(e[2] for e in parsed))
        labels.append(1.0 if parts[0] == "1" else 0.0)
        numbers.append(number)
    tokens = np.array(rows, dtype=np.uint64).reshape(len(rows), width)
    return Chunk(
        tokens={field: tokens[:, j].copy() for j, field in enumerate(FIELDS)},
        labels=np.array(labels, dtype=np.float64),
        lines=np.array(numbers, dtype=np.int64),
        time=np.array(times, dtype=np.int64) if has_time else None,
    )
