"""One-query FAISS search (k = 100, one thread, as the server runs it) per index type and catalog size.

The personas are those of the demo world at each size (10k here; 100k and 1M are `slow`, cached under
benchmarks/results/worlds/). The world's own index is its auto type (flat up to 10,000 vectors, above
that the candidate measured cheapest at the recall target); the other types are built from the same
vectors and tuned as `personabid index build` tunes them (the cheapest efSearch or nprobe reaching
recall@100 of 0.95, or the best tried), and cached beside the world. Each benchmark first checks the
search's recall against exact search on held-out queries.

Run: make bench (all sizes) or make bench-decision (10k).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.catalogs import large_world
from personabid.index.build import (
    build,
    choose,
    exact_neighbours,
    query_sets,
    tune,
    user_queries,
)
from personabid.index.bundle import apply_search_params, load_index
from personabid.index.sparse import Searcher, searcher_for

TOP_K = 100
TYPES = ("flat", "hnsw", "ivfflat", "ivfpq")
QUERY_SEED = 5  # neither the tuning's queries (seeds 0 and 1) nor the index benchmark's
MIN_RECALL = 0.85  # a sanity floor for "the search answers the question", not the build's target


def _index(world: Path, index_type: str) -> tuple[faiss.Index, dict[str, Any]]:
    """The world's own index if it is of `index_type`, else one built from its personas (cached); and its
    search parameters."""
    bundle = load_index(world / "index")
    if bundle.manifest.index_type == index_type:
        return bundle.index, bundle.manifest.index_params
    personas = bundle.index.reconstruct_n(0, bundle.index.ntotal)
    choice = choose(len(personas), personas.shape[1], index_type)
    # Keyed by the build's parameters: a cached index of an older build is not reused.
    digest = hashlib.sha256(json.dumps(choice.params, sort_keys=True).encode()).hexdigest()[:12]
    path = world / "bench-indexes" / f"{index_type}-{digest}.faiss"
    params_path = path.with_suffix(".json")
    if path.is_file() and params_path.is_file():
        index, params = faiss.read_index(str(path)), json.loads(params_path.read_text())
        apply_search_params(index, params)
        return index, params
    index = build(personas, choice, seed=0)
    tuning, held_out = query_sets(personas, min(1000, len(personas)), TOP_K, seed=0)
    params, *_ = tune(index, choice, tuning, held_out, 0.95)
    path.parent.mkdir(exist_ok=True)
    faiss.write_index(index, str(path))
    params_path.write_text(json.dumps(params))
    return index, params


@functools.cache
def _held_out(world: Path) -> tuple[np.ndarray, np.ndarray]:
    """Realistic queries the tuning never saw, and their exact top-k."""
    personas = load_index(world / "index").index
    vectors = personas.reconstruct_n(0, personas.ntotal)
    queries = user_queries(vectors, 50, seed=QUERY_SEED)
    return queries, exact_neighbours(vectors, queries, TOP_K)


def _search_benchmark(benchmark: BenchmarkFixture, world: Path, index_type: str, held: str = "faiss") -> None:
    """`held` "sparse": the index's vectors held sparse and scanned by the kernel, as the server searches
    a flat or IVF-Flat index of sparse vectors (personabid.index.sparse)."""
    faiss_index, params = _index(world, index_type)
    index: Searcher = faiss_index
    if held == "sparse":
        index = searcher_for(faiss_index)
        if index is faiss_index:
            pytest.skip(f"{index_type}: not held sparse (not flat or IVF-Flat, or too dense)")
    queries, truth = _held_out(world)
    _, found = index.search(queries, TOP_K)
    recall = np.mean([len(set(t) & set(f)) / TOP_K for t, f in zip(truth, found, strict=True)])
    assert recall >= MIN_RECALL, f"{index_type} recall@{TOP_K} {recall:.3f}"
    benchmark.extra_info.update(
        {
            "index_type": index_type,
            "held": held,
            "vectors": int(faiss_index.ntotal),
            **{k: v for k, v in params.items() if k in ("efSearch", "nprobe", "nlist")},
            "recall_at_100": round(float(recall), 4),
        }
    )
    cycle = itertools.cycle([q.reshape(1, -1) for q in queries])
    benchmark(lambda: index.search(next(cycle), TOP_K))


# Each type as FAISS searches it, and the two that can be held sparse as the server then searches them.
SEARCHES = [(t, "faiss") for t in TYPES] + [("flat", "sparse"), ("ivfflat", "sparse")]


@pytest.mark.parametrize(
    # IVF-PQ trains its quantizers for a minute or two even at 10k: slow, like the large catalogs.
    ("index_type", "held"),
    [(t, h) if t != "ivfpq" else pytest.param(t, h, marks=pytest.mark.slow) for t, h in SEARCHES],
)
def test_search_10k(benchmark: BenchmarkFixture, bench_dir: Path, index_type: str, held: str) -> None:
    _search_benchmark(benchmark, bench_dir, index_type, held)


@pytest.mark.slow
@pytest.mark.parametrize(("index_type", "held"), SEARCHES)
def test_search_100k(benchmark: BenchmarkFixture, index_type: str, held: str) -> None:
    _search_benchmark(benchmark, large_world(100_000), index_type, held)


@pytest.mark.slow
@pytest.mark.parametrize(("index_type", "held"), SEARCHES)
def test_search_1m(benchmark: BenchmarkFixture, index_type: str, held: str) -> None:
    _search_benchmark(benchmark, large_world(1_000_000), index_type, held)
