"""Delimited text logs (CSV, TSV): lines to checked columns of tokens, shared by the Criteo and Avazu
readers.

A row is kept when it has the expected number of columns, its label is 0 or 1 and every value parses;
otherwise it is counted in BadRows with its line number and the first reason found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from personabid.training.logs import BadRows, Chunk, Tokenizer, keep_rows

# Row times from a column of raw values: int64 (n,) and the positions that do not parse, with reasons.
TimeParser = Callable[[Sequence[str]], tuple[np.ndarray, dict[int, str]]]


@dataclass(frozen=True)
class Layout:
    """Where a table's values are: column positions of the label and of each field's raw value."""

    delimiter: str
    columns: int
    label: int
    fields: tuple[tuple[str, int], ...]  # (field, column position)
    time: int = -1  # column position of the time value; -1 when the log has none


def table_chunk(
    first_line: int,
    lines: Sequence[str],
    layout: Layout,
    tokenizers: dict[str, Tokenizer],
    bad: BadRows,
    parse_time: TimeParser | None = None,
) -> Chunk:
    """The readable rows of `lines` (line numbers from `first_line`) as a Chunk; the others go to `bad`."""
    rows: list[list[str]] = []
    numbers: list[int] = []
    for offset, line in enumerate(lines):
        if not line.strip():
            continue  # a blank line is no row (files often end with one)
        values = line.split(layout.delimiter)
        number = first_line + offset
        if len(values) != layout.columns:
            bad.add(number, f"{len(values)} columns, expected {layout.columns}")
        elif values[layout.label] not in ("0", "1"):
            bad.add(number, f"label {values[layout.label]!r} is not 0 or 1")
        else:
            rows.append(values)
            numbers.append(number)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(layout.columns)]
    reasons: dict[int, str] = {}
    tokens = {}
    for field, position in layout.fields:
        tokenizer = tokenizers[field]
        tokens[field], unreadable = tokenizer.tokens(columns[position])
        for i in unreadable:
            reasons.setdefault(i, tokenizer.reason(columns[position][i]))
    time = None
    if parse_time is not None:
        time, unreadable_time = parse_time(columns[layout.time])
        for i, reason in unreadable_time.items():
            reasons.setdefault(i, reason)
    labels = np.array([row[layout.label] == "1" for row in rows], dtype=np.float64)
    chunk = Chunk(tokens=tokens, labels=labels, lines=np.array(numbers, dtype=np.int64), time=time)
    if not reasons:
        return chunk
    keep = np.ones(len(rows), dtype=bool)
    for i in sorted(reasons):
        keep[i] = False
        bad.add(numbers[i], reasons[i])
    return keep_rows(chunk, keep)


def header_positions(header: Sequence[str], wanted: Sequence[str], what: str) -> dict[str, int]:
    """Column position of every name in `wanted`; ValueError naming the missing ones."""
    position = {name.strip(): i for i, name in enumerate(header)}
    missing = [name for name in wanted if name not in position]
    if missing:
        raise ValueError(f"{what} header lacks columns {missing}")
    return {name: position[name] for name in wanted}
