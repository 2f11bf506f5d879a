"""Criteo display-advertising logs.

Two layouts of the same 40 columns, told apart by their first line:
- the original files: tab-separated, no header: label, I1..I13 (integer counts), C1..C26 (hashed
  categories, 8 hex digits); an empty value is missing;
- CSV with a header naming label, I1..I13, C1..C26 (columns found by name), as in ctr-samples.

An integer count becomes a category by the usual logarithmic bucketing (floor(ln(v)^2) above 2, the value
itself below), so one weight covers a range of counts. The log has no time column; the original files
are in time order, so the held-out split takes the last rows of the file.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

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

FIELDS = SCHEMAS["criteo"]
INTEGER_FIELDS = tuple(f for f in FIELDS if f.startswith("I"))
COLUMNS = ("label", *FIELDS)


def count_bucket(value: str) -> str:
    """The bucket of an integer count given as text ("" for missing); ValueError if it is no number."""
    if value == "":
        return ""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    if number > 2:
        return str(math.floor(math.log(number) ** 2))
    return str(math.floor(number))


def read_criteo(path: Path, bad: BadRows, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
    """Chunks of a Criteo log (TSV without header, or CSV with one); unreadable rows go to `bad`."""
    tokenizers = {f: Tokenizer(f, count_bucket if f in INTEGER_FIELDS else None) for f in FIELDS}
    with open_text(path) as handle:
        first = handle.readline().rstrip("\r\n")
        delimiter = "\t" if "\t" in first else ","
        cells = first.split(delimiter)
        lines: Iterable[str]
        if cells[0].strip().lower() == "label":
            try:
                position = header_positions(cells, COLUMNS, "criteo")
            except ValueError as exc:
                raise LogError(f"{path}: {exc}") from exc
            layout = _layout(delimiter, len(cells), position)
            lines, start = handle, 2
        else:
            layout = _layout(delimiter, len(COLUMNS), {name: i for i, name in enumerate(COLUMNS)})
            lines, start = itertools.chain([first], handle), 1
        for number, batch in line_batches(lines, chunk_rows, start):
            yield table_chunk(number, batch, layout, tokenizers, bad)


def _layout(delimiter: str, columns: int, position: dict[str, int]) -> Layout:
    return Layout(
        delimiter=delimiter,
        columns=columns,
        label=position["label"],
        fields=tuple((f, position[f]) for f in FIELDS),
    )
