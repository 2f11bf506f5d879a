"""Large benchmark catalogs: demo worlds of 100,000 and 1,000,000 campaigns, built once and cached
under benchmarks/results/worlds/ (shared with `personabid bench`)."""

from __future__ import annotations

from pathlib import Path

from personabid.bench.worlds import ensure_world

WORLDS = Path(__file__).resolve().parent / "results" / "worlds"


def large_world(campaigns: int) -> Path:
    return ensure_world(WORLDS, campaigns)
