"""One probe's results: a table for the report, the same values as data, and what it found."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ProbeResult:
    """One probe's report: rows for the table, the same values as data, and what it found.

    A defect breaks a promise of the API or of the server's documentation; a finding is behaviour a
    client would not expect that may still be by design.
    """

    name: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    defects: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def put(self, label: str, value: Any) -> None:
        self.rows.append((label, _show(value)))
        self.data[label] = plain(value)


def plain(value: Any) -> Any:
    """`value` as JSON data: counters and tuples become dicts and lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _show(value: Any) -> str:
    if isinstance(value, dict):
        if not value:
            return "-"
        items = sorted(value.items(), key=lambda kv: -_size(kv[1]))
        if any(isinstance(v, list | dict) for _, v in items):
            return "\n".join(f"{k}: {_show(v)}" for k, v in items)
        return ", ".join(f"{k}: {_show(v)}" for k, v in items)
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | tuple):
        if not value:
            return "-"
        # Log lines and messages one to a line; numbers side by side.
        return ("\n" if any(isinstance(v, str) for v in value) else " / ").join(_show(v) for v in value)
    return str(value)


def _size(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class CallTally:
    """Status codes of a set of calls, with a few status messages of each code."""

    codes: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, code: str, detail: str, keep: int = 3) -> None:
        self.codes[code] += 1
        if not detail:
            return
        kept = self.samples.setdefault(code, [])
        if len(kept) < keep and detail not in kept:
            kept.append(detail[:200])
