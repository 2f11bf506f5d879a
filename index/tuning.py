"""The queries an index build tunes its search on and checks its recall with.

Recall depends on where the queries fall: an approximate index is tuned for the queries it will be
asked, and a target met on queries of another shape may be missed on real traffic (at 115k vectors,
IVF-Flat tuned on synthetic user-shaped queries reached 0.958 on them and 0.917 on the demo people's
real user vectors). So a caller who knows its users gives their vectors (`personabid index build
--tuning-queries`, the demo and bench worlds their people's): the target must then hold on a half of
them that the tuning sees and on the other half, which it never sees. Without them the build draws
synthetic user-shaped queries (build.user_queries), made at least as hard as real users.

Either way the target must also hold on persona-noise queries (build.persona_noise_queries), one near
each of a random sample of the personas. Real users come from one population and may leave whole
audiences of the catalog unvisited: a tuning that met the target on them alone could leave those
audiences' lists or graph regions unsearched for the first user who resembles them. The floor is
cheap: those queries are the easiest of the three (recall 0.99 where real users reach 0.92), so it
binds only when the supplied queries cover the catalog badly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from personabid.index.build import Queries, exact_neighbours, persona_noise_queries, user_queries

MIN_SUPPLIED = 20  # at least 10 to tune on and 10 held out
FLOOR_SEED_OFFSET = 2  # the tuning queries use seed and seed + 1
Source = Literal["user-shaped", "supplied"]


class TuningQueryError(ValueError):
    """Supplied tuning queries that cannot be used; the message names the problem."""


@dataclass(frozen=True)
class RecallQueries:
    """What an index is tuned on and checked against, each as (float32 (q, dims) queries, int64 (q, k)
    exact neighbours)."""

    tuning: Queries
    held_out: Queries
    floor: Queries  # persona-noise queries: the target must hold on them too
    source: Source


def checked_queries(array: np.ndarray, dims: int) -> np.ndarray:
    """float32 (n, dims) rows of `array` scaled to unit length; TuningQueryError unless `array` is a
    2-D numeric array of at least MIN_SUPPLIED rows of `dims` finite, non-negative weights, none all
    zero (a user vector blends non-negative tag weights, and a zero one matches nothing)."""
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TuningQueryError(f"expected a numeric array, not one of dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] != dims:
        raise TuningQueryError(f"expected shape (n, {dims}) (the vocabulary's dims), not {array.shape}")
    if len(array) < MIN_SUPPLIED:
        raise TuningQueryError(f"{len(array)} queries: at least {MIN_SUPPLIED} are needed")
    queries = array.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(queries).all(axis=1))
    if len(bad):
        raise TuningQueryError(f"{len(bad)} rows have a weight that is not finite (the first: row {bad[0]})")
    bad = np.flatnonzero((queries < 0).any(axis=1))
    if len(bad):
        raise TuningQueryError(f"{len(bad)} rows have a negative weight (the first: row {bad[0]})")
    norms = np.linalg.norm(queries, axis=1, keepdims=True)
    bad = np.flatnonzero(norms[:, 0] == 0.0)
    if len(bad):
        raise TuningQueryError(f"{len(bad)} rows are all zero (the first: row {bad[0]})")
    return np.ascontiguousarray(queries / norms, dtype=np.float32)


def load_queries(path: Path, dims: int) -> np.ndarray:
    """checked_queries of the .npy file at `path` (no pickles)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TuningQueryError(f"{path}: not a readable .npy array ({exc})") from exc
    if not isinstance(array, np.ndarray):
        raise TuningQueryError(f"{path}: an .npz archive, not one .npy array")
    return checked_queries(array, dims)


def recall_queries(
    personas: np.ndarray,
    k: int,
    count: int,
    seed: int,
    context: tuple[np.ndarray, ...],
    families: tuple[np.ndarray, ...] = (),
    supplied: np.ndarray | None = None,
) -> RecallQueries:
    """The query sets of a build over float32 (n, dims) `personas`, `count` queries each: halves of
    `supplied` (checked unit vectors, shuffled with `seed`) when given, else user-shaped queries of seed
    and seed + 1 (with the vocabulary's `context` and `families` axes); the persona-noise floor in both
    cases."""
    if supplied is not None:
        order = np.random.default_rng(seed).permutation(len(supplied))
        half = len(supplied) // 2
        tuning = supplied[order[: min(half, count)]]
        held_out = supplied[order[half : half + min(half, count)]]
        source: Source = "supplied"
    else:
        tuning = user_queries(personas, count, seed, context, families)
        held_out = user_queries(personas, count, seed + 1, context, families)
        source = "user-shaped"
    floor = persona_noise_queries(personas, count, seed + FLOOR_SEED_OFFSET)

    def with_truth(queries: np.ndarray) -> Queries:
        return queries, exact_neighbours(personas, queries, k)

    return RecallQueries(with_truth(tuning), with_truth(held_out), with_truth(floor), source)
