"""Where training reads rows from: a log file in one of the supported formats, or chunks in memory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from personabid.ctr.features import SERVING
from personabid.training.avazu import read_avazu
from personabid.training.criteo import read_criteo
from personabid.training.events import read_events
from personabid.training.ipinyou import FeatIndex, find_featindex, read_ipinyou
from personabid.training.logs import DEFAULT_CHUNK_ROWS, BadRows, Chunk, LogError

# Log format -> the schema of the fields it supplies.
FORMATS = {"events": SERVING, "ipinyou": "ipinyou", "criteo": "criteo", "avazu": "avazu"}


class RowSource(Protocol):
    """Rows that can be read more than once (one pass per epoch)."""

    # Read only: a log file derives its schema from its format.
    @property
    def schema(self) -> str: ...

    def chunks(self, bad: BadRows) -> Iterator[Chunk]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LogFile:
    """A log file; `featindex` is iPinYou's index file (default: the one beside the data, if any)."""

    path: Path
    format: str
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    featindex: Path | None = None
    numbering: FeatIndex | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise LogError(f"format {self.format!r} is not one of {sorted(FORMATS)}")
        if not self.path.is_file():
            raise LogError(f"{self.path}: no such file")
        if self.chunk_rows < 1:
            raise LogError(f"chunk_rows={self.chunk_rows}: must be at least 1")
        if self.format == "ipinyou" and self.featindex is None:
            object.__setattr__(self, "featindex", find_featindex(self.path))
        elif self.format != "ipinyou" and self.featindex is not None:
            raise LogError("a featindex belongs to iPinYou logs only")
        if self.featindex is not None:
            object.__setattr__(self, "numbering", FeatIndex.load(self.featindex))

    @property
    def schema(self) -> str:
        return FORMATS[self.format]

    def chunks(self, bad: BadRows) -> Iterator[Chunk]:
        if self.format == "ipinyou":
            return read_ipinyou(self.path, bad, self.chunk_rows, self.numbering)
        reader = {"events": read_events, "criteo": read_criteo, "avazu": read_avazu}[self.format]
        return reader(self.path, bad, self.chunk_rows)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": str(self.path), "format": self.format}
        if self.numbering is not None:
            out["featindex"] = {"path": str(self.featindex), "sha256": self.numbering.sha256}
        return out


@dataclass(frozen=True)
class MemoryRows:
    """Chunks already in memory (a simulation, a test)."""

    parts: Sequence[Chunk]
    schema: str = SERVING
    description: dict[str, Any] = field(default_factory=dict)

    def chunks(self, bad: BadRows) -> Iterator[Chunk]:
        del bad  # rows in memory were checked when they were made
        return iter(self.parts)

    def describe(self) -> dict[str, Any]:
        return dict(self.description)
