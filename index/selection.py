"""The index type of an `auto` build, chosen by measured search cost at the recall target.

A size threshold chose badly: on the demo world at 115k vectors (one thread, real user vectors, k = 100)
HNSW needs efSearch 128 for its target and answers in 236 us, while IVF-Flat with 1,024 lists meets it at
nprobe 8 in 97 us. Which type is cheapest depends on the catalog, its dimensions and the machine, so the
build measures it:

- up to FLAT_MAX vectors, exact search: a scan of 10k vectors costs about as much as one graph search
  and is exact, so it is not measured against the others;
- above, each candidate whose memory estimate fits the budget (IVF-Flat and HNSW; IVF-PQ only when
  neither fits) is built, tuned to the target on the tuning queries, checked on the held-out ones and
  on the persona-noise floor (personabid.index.tuning: real users' vectors where the caller has them), and
  timed at its tuned parameter on the held-out queries, one query at a time on one FAISS thread, as the
  server searches (the median of several passes; an IVF-Flat index of sparse vectors with its lists
  held sparse, personabid.index.sparse). The cheapest that meets the target is kept.

IVF-Flat is built first: it trains and fills in seconds where HNSW takes minutes at 1M vectors. HNSW is
then built only if it can win: a graph over a sample of HNSW_FLOOR_SAMPLE vectors, searched at efSearch
= k (the least HNSW can return k results with), costs less than HNSW does over the whole catalog, where
it needs that beam or a wider one and a larger graph. When IVF-Flat at its tuned nprobe is already at or
below that floor, HNSW is skipped and the manifest says so.

Every candidate's figures go into the manifest (`selection`), so that an operator sees why a type won.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from personabid.index.build import (
    FLAT_MAX,
    IndexChoice,
    build,
    choose,
    memory_estimate,
    recall_at_k,
    tune,
)
from personabid.index.bundle import apply_search_params
from personabid.index.sparse import Searcher, searcher_for
from personabid.index.tuning import RecallQueries
from personabid.progress import Progress

log = logging.getLogger(__name__)

HNSW_FLOOR_SAMPLE = 20_000
TIMING_PASSES = 5
TIMING_QUERIES = 200  # per pass: enough for a stable median, few enough for a large flat candidate
WARMUP_QUERIES = 20

# Median microseconds of one-query searches of (index, queries (m, dims), k): injectable for tests.
SearchTimer = Callable[[Searcher, np.ndarray, int], float]


@dataclass(frozen=True)
class Candidate:
    """One measured candidate of an auto build."""

    index_type: str
    params: dict[str, Any]  # as tuned: the search parameters the server would use
    recall: float  # on the tuning queries
    held_out: float
    floor: float  # on the persona-noise queries (personabid.index.tuning)
    search_us: float | None  # median one-query search at `params`; None when it missed the target
    build_seconds: float
    memory_estimate_bytes: int
    skipped: str = ""  # why it was not built, if it was not

    def meets(self, target: float) -> bool:
        return not self.skipped and min(self.recall, self.held_out, self.floor) >= target

    def record(self) -> dict[str, Any]:
        """The candidate as the manifest records it."""
        return {
            "index_type": self.index_type,
            "params": self.params,
            "recall": round(self.recall, 5),
            "held_out": round(self.held_out, 5),
            "persona_noise": round(self.floor, 5),
            "search_us": None if self.search_us is None else round(self.search_us, 1),
            "build_seconds": round(self.build_seconds, 2),
            "memory_estimate_bytes": self.memory_estimate_bytes,
            **({"skipped": self.skipped} if self.skipped else {}),
        }


@dataclass(frozen=True)
class Selection:
    choice: IndexChoice
    index: faiss.Index
    params: dict[str, Any]
    recall: float
    held_out: float
    floor: float
    candidates: tuple[Candidate, ...]


def candidate_types(n_vectors: int, dims: int, memory_budget: int, nonzero: int | None = None) -> list[str]:
    """The types an auto build measures, in the order it builds them (the cheapest to build first), among
    those whose memory (with the vectors' `nonzero` weights: their sparse copy too) fits `memory_budget`."""
    if n_vectors <= FLAT_MAX:
        return ["flat"]
    fitting = [
        t for t in ("ivfflat", "hnsw") if memory_estimate(t, n_vectors, dims, nonzero) <= memory_budget
    ]
    return fitting or ["ivfpq"]


def median_search_us(index: Searcher, queries: np.ndarray, k: int) -> float:
    """Median microseconds of a one-query search of `index`, as the server runs it: one query at a time,
    one FAISS thread. The median of TIMING_PASSES passes' medians, so that a burst of other work on a
    shared machine moves it little."""
    singles = [queries[i : i + 1] for i in range(min(len(queries), TIMING_QUERIES))]
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for query in singles[:WARMUP_QUERIES]:
            index.search(query, k)
        passes = []
        for _ in range(TIMING_PASSES):
            times = np.empty(len(singles))
            for i, query in enumerate(singles):
                began = time.perf_counter_ns()
                index.search(query, k)
                times[i] = time.perf_counter_ns() - began
            passes.append(float(np.median(times)))
    finally:
        faiss.omp_set_num_threads(threads)
    return float(np.median(passes)) / 1000.0


def hnsw_floor_us(
    vectors: np.ndarray, queries: np.ndarray, k: int, timer: SearchTimer, seed: int = 0
) -> float:
    """What HNSW costs at least over `vectors`: a graph over HNSW_FLOOR_SAMPLE of them, at efSearch = k."""
    sample = vectors
    if len(vectors) > HNSW_FLOOR_SAMPLE:
        sample = vectors[np.sort(np.random.default_rng(seed).choice(len(vectors), HNSW_FLOOR_SAMPLE, False))]
    choice = choose(len(sample), vectors.shape[1], "hnsw")
    graph = build(sample, IndexChoice("hnsw", {**choice.params, "efSearch": k}), seed=seed)
    return timer(graph, queries, k)


def select(
    vectors: np.ndarray,
    types: list[str],
    queries: RecallQueries,
    target: float,
    timer: SearchTimer = median_search_us,
    adding: Callable[[str], AbstractContextManager[Progress]] | None = None,
    seed: int = 0,
) -> Selection:
    """Build, tune and time each of `types` over float32 (n, dims) `vectors`; the cheapest that meets
    `target` on every query set, or else the one of best recall (which the caller reports as too low).
    `adding` opens a progress bar for adding a candidate's vectors."""
    held_out = queries.held_out
    k = held_out[1].shape[1]
    measured: list[Candidate] = []
    best: tuple[Candidate, faiss.Index] | None = None
    nonzero = int(np.count_nonzero(vectors))
    for index_type in types:
        choice = choose(len(vectors), vectors.shape[1], index_type)
        estimate = memory_estimate(index_type, len(vectors), vectors.shape[1], nonzero)
        if index_type == "hnsw" and best is not None and best[0].search_us is not None:
            floor = hnsw_floor_us(vectors, held_out[0], k, timer, seed)
            if best[0].search_us <= floor:
                reason = (
                    f"{best[0].index_type} at {best[0].search_us:.0f} us is at or below HNSW's floor, "
                    f"{floor:.0f} us at efSearch={k} over {min(len(vectors), HNSW_FLOOR_SAMPLE)} vectors"
                )
                log.info("auto: skipping hnsw: %s", reason)
                skipped = Candidate(index_type, choice.params, 0.0, 0.0, 0.0, None, 0.0, estimate, reason)
                measured.append(skipped)
                continue
        began = time.perf_counter()
        log.info("auto: building a %s candidate", index_type)
        with adding(index_type) if adding is not None else nullcontext(None) as bar:
            index = build(vectors, choice, None if bar is None else bar.update, seed=seed)
        params, recall, held = tune(index, choice, queries.tuning, held_out, target, queries.floor)
        apply_search_params(index, params)
        floor = recall_at_k(index, queries.floor[1], queries.floor[0])
        build_seconds = time.perf_counter() - began
        candidate = Candidate(index_type, params, recall, held, floor, None, build_seconds, estimate)
        if candidate.meets(target) and len(types) > 1:
            # Timed as the server will search it: an IVF-Flat index over sparse vectors, its lists
            # held sparse (personabid.index.sparse).
            search_us = timer(searcher_for(index), held_out[0], k)
            candidate = Candidate(index_type, params, recall, held, floor, search_us, build_seconds, estimate)
        log.info("auto: %s", candidate.record())
        measured.append(candidate)
        if best is None or _better(candidate, best[0], target):
            best = (candidate, index)
        del index
        gc.collect()  # a losing candidate's memory goes back before the next one is built
    assert best is not None, "no candidate type"
    winner, index = best
    apply_search_params(index, winner.params)
    return Selection(
        IndexChoice(winner.index_type, winner.params),
        index,
        winner.params,
        winner.recall,
        winner.held_out,
        winner.floor,
        tuple(measured),
    )


def _better(candidate: Candidate, best: Candidate, target: float) -> bool:
    if candidate.meets(target) != best.meets(target):
        return candidate.meets(target)
    if candidate.meets(target):
        assert candidate.search_us is not None and best.search_us is not None
        return candidate.search_us < best.search_us
    return min(candidate.recall, candidate.held_out, candidate.floor) > min(
        best.recall, best.held_out, best.floor
    )
