"""Impression logs as chunks of columns, and the accounting of rows that cannot be read.

Every reader yields `Chunk`s of at most `chunk_rows` rows, so that a log larger than memory can be read
(and trained on) a piece at a time. A row that cannot be read (wrong number of columns, a label that is
not 0 or 1, a value that does not parse) is left out of its chunk and counted in `BadRows` with its line
number; `BadRows.check` then fails the whole log when their share passes a limit, because a file that is
mostly unreadable is the wrong file, or the wrong format, more often than it is a noisy log.
"""

from __future__ import annotations

import gzip
import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from personabid.ctr.features import FeatureSpec, match_tokens, token
from personabid.errors import PersonabidError

DEFAULT_CHUNK_ROWS = 100_000
DEFAULT_MAX_BAD_FRACTION = 0.01
# A column with more distinct values than this (user ids, IPs) would grow its cache without bound.
CACHE_LIMIT = 1 << 20


class LogError(PersonabidError):
    """A log that cannot be used: missing, in another format, or with too many unreadable rows."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive readable rows of a log, as columns.

    tokens: field name -> uint64 (n,) stable tokens of the raw values (features.token)
    labels: float64 (n,) clicks, 0.0 or 1.0
    lines: int64 (n,) 1-based line numbers in the file
    time: int64 (n,) a key that orders rows in time (seconds, or hours), or None when the log has none
    match: float32 (n,) persona similarity, for the serving schema's `match` field, else None
    """

    tokens: dict[str, np.ndarray]
    labels: np.ndarray
    lines: np.ndarray
    time: np.ndarray | None = None
    match: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


class BadRows:
    """Counts unreadable rows of one pass over a log, keeping the first `keep` with their reason."""

    def __init__(self, keep: int = 20) -> None:
        self.keep = keep
        self.count = 0
        self.examples: list[tuple[int, str]] = []

    def add(self, line: int, reason: str) -> None:
        self.count += 1
        if len(self.examples) < self.keep:
            self.examples.append((line, reason))

    def summary(self, rows: int) -> dict[str, object]:
        """What the report says about them; `rows` counts the readable ones."""
        total = rows + self.count
        return {
            "bad_rows": self.count,
            "bad_fraction": self.count / total if total else 0.0,
            "first_bad_rows": [{"line": line, "reason": reason} for line, reason in sorted(self.examples)],
        }

    def check(self, path: Path, rows: int, max_fraction: float) -> None:
        """Raise LogError when the share of bad rows passes `max_fraction`, or no row was readable."""
        total = rows + self.count
        examples = "; ".join(f"line {line}: {reason}" for line, reason in sorted(self.examples)[:5])
        if rows == 0:
            detail = f"; {examples}" if examples else ""
            raise LogError(f"{path}: no readable rows ({self.count} bad){detail}")
        share = self.count / total
        if share > max_fraction:
            raise LogError(
                f"{path}: {self.count} of {total} rows are unreadable ({share:.2%}, more than the limit of "
                f"{max_fraction:.2%}); first: {examples}"
            )


def open_text(path: Path) -> IO[str]:
    """The log as text; gzip files (.gz) are decompressed as they are read."""
    if not path.is_file():
        raise LogError(f"{path}: no such file")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return path.open(encoding="utf-8", errors="replace", newline="")


def line_batches(lines: Iterable[str], size: int, first_line: int = 1) -> Iterator[tuple[int, list[str]]]:
    """(line number of the first line, up to `size` lines without their line ends), to the end."""
    number = first_line
    lines = iter(lines)
    while batch := [line.rstrip("\r\n") for line in itertools.islice(lines, size)]:
        yield number, batch
        number += len(batch)


class Tokenizer:
    """Tokens of one column's raw values; `convert` (raw -> canonical text, ValueError when it cannot)
    runs once per distinct value."""

    def __init__(self, field: str, convert: Callable[[str], str] | None = None) -> None:
        self.field = field
        self.convert = convert
        self.cache: dict[str, int] = {}
        self.invalid: dict[str, str] = {}

    def tokens(self, values: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """uint64 (len(values),) tokens, and the positions of values that do not parse (token 0)."""
        cache = self.cache
        if len(cache) > CACHE_LIMIT:
            cache.clear()
        missing = set(values).difference(cache)
        for value in missing:
            try:
                cache[value] = token(self.convert(value) if self.convert else value)
            except ValueError as exc:
                if len(self.invalid) < CACHE_LIMIT:
                    self.invalid[value] = f"{self.field}={value!r}: {exc}"
        unreadable = missing.difference(cache)
        if not unreadable:
            return np.fromiter(map(cache.__getitem__, values), dtype=np.uint64, count=len(values)), []
        tokens = np.fromiter((cache.get(v, 0) for v in values), dtype=np.uint64, count=len(values))
        return tokens, [i for i, v in enumerate(values) if v in unreadable]

    def reason(self, value: str) -> str:
        return self.invalid.get(value, f"{self.field}={value!r}: unreadable")


def keep_rows(chunk: Chunk, keep: np.ndarray) -> Chunk:
    """The chunk restricted to rows where bool (n,) `keep` is set."""
    return Chunk(
        tokens={name: column[keep] for name, column in chunk.tokens.items()},
        labels=chunk.labels[keep],
        lines=chunk.lines[keep],
        time=None if chunk.time is None else chunk.time[keep],
        match=None if chunk.match is None else chunk.match[keep],
    )


def featurize(spec: FeatureSpec, chunk: Chunk) -> np.ndarray:
    """int64 (len(chunk), spec.width) feature indices of a chunk's rows, as the server computes them."""
    sources: dict[str, np.ndarray] = dict(chunk.tokens)
    if "match" in spec.fields:
        if chunk.match is None:
            raise LogError("the feature spec uses `match`, which this log does not record")
        sources["match"] = match_tokens(chunk.match, spec.match_buckets)
    try:
        return spec.indices(spec.token_matrix(sources, len(chunk)))
    except ValueError as exc:
        raise LogError(str(exc)) from exc
