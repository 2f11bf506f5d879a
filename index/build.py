"""FAISS indexes over persona vectors: which type, built how, searched with which parameters.

Personas are unit vectors and matching is by inner product (cosine similarity). The type follows the
catalog's size unless the operator names one (thresholds from benchmarks/index_build.py; figures in
benchmarks/RESULTS.md, one query, k=100, 226 dims, one core):

- flat (exact) up to FLAT_MAX vectors: 10k vectors answer in about 0.15 ms; past that flat grows
  linearly (25k: 0.6 ms, 50k: 1.4 ms) while HNSW stays near 0.15 ms at recall 0.99+;
- HNSW above that, while its memory estimate (vectors plus graph links) fits the memory budget; large
  graphs are built with a wider beam (efConstruction), without which recall@100 stalls near 0.95 at 1M;
- IVF-PQ where it does not: product codes of 4 dimensions per byte find candidates, and an 8-bit scalar
  copy of the vectors re-ranks four times k of them, since PQ codes alone stall near recall 0.87-0.93:
  about 290 bytes per vector against about 1,160 for HNSW.

The build then measures recall@K against exact search on queries near the personas (how real users look:
a persona plus noise, not uniform noise), tunes efSearch or nprobe to the cheapest value that meets the
recall target, and confirms it on a second, held-out set of queries, so that the target is not met only
on the queries the tuning saw.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from personabid.index.bundle import apply_search_params

log = logging.getLogger(__name__)

FLAT_MAX = 10_000
MEMORY_BUDGET_BYTES = 2 << 30
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_LARGE = 300_000  # from here on, a wider construction beam
HNSW_EF_CONSTRUCTION_LARGE = 200
REFINE_FACTOR = 4
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
PQ_TRAIN_MAX = 100_000
QUERY_NOISE = 0.6  # norm of the noise added to a persona to make a query: cosine about 0.86


@dataclass(frozen=True)
class IndexChoice:
    index_type: str  # "flat", "hnsw" or "ivfpq"
    params: dict[str, Any] = field(default_factory=dict)


def memory_estimate(index_type: str, n: int, dims: int) -> int:
    """Bytes an index of `n` vectors takes in memory, near enough to choose a type by."""
    if index_type == "flat":
        return n * dims * 4
    if index_type == "hnsw":
        return n * (dims * 4 + HNSW_M * 2 * 4 + 16)
    return n * (math.ceil(dims / 4) + dims + 8) + _nlist(n) * dims * 4


def choose(
    n_vectors: int, dims: int, index_type: str = "auto", memory_budget: int = MEMORY_BUDGET_BYTES
) -> IndexChoice:
    if index_type == "auto":
        if n_vectors <= FLAT_MAX:
            index_type = "flat"
        elif memory_estimate("hnsw", n_vectors, dims) <= memory_budget:
            index_type = "hnsw"
        else:
            index_type = "ivfpq"
    if index_type == "flat":
        return IndexChoice("flat")
    if index_type == "hnsw":
        construction = HNSW_EF_CONSTRUCTION if n_vectors < HNSW_LARGE else HNSW_EF_CONSTRUCTION_LARGE
        return IndexChoice("hnsw", {"M": HNSW_M, "efConstruction": construction, "efSearch": 64})
    if index_type == "ivfpq":
        params = {"nlist": _nlist(n_vectors), "pq_m": math.ceil(dims / 4), "pq_bits": 8, "nprobe": 8}
        return IndexChoice("ivfpq", {**params, "refine": "SQ8", "k_factor": REFINE_FACTOR})
    raise ValueError(f"index_type={index_type!r}: expected auto, flat, hnsw or ivfpq")


def _nlist(n: int) -> int:
    return int(np.clip(4 * math.sqrt(n), 16, 16384))


def build(
    vectors: np.ndarray, choice: IndexChoice, progress: Callable[[int], object] | None = None, seed: int = 0
) -> faiss.Index:
    """A FAISS inner-product index over float32 (n, dims) unit vectors; label i is row i."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dims = vectors.shape
    index: faiss.Index
    if choice.index_type == "flat":
        index = faiss.IndexFlatIP(dims)
    elif choice.index_type == "hnsw":
        graph = faiss.IndexHNSWFlat(dims, choice.params["M"], faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = choice.params["efConstruction"]
        index = graph
    else:
        index = _ivfpq(dims, choice.params)
        sample = vectors
        # The coarse quantizer wants about 40 points per list; the PQ, far fewer than that.
        wanted = max(PQ_TRAIN_MAX, 40 * choice.params["nlist"])
        if n > wanted:
            sample = vectors[np.random.default_rng(seed).choice(n, wanted, replace=False)]
        log.info(
            "training IVF-PQ (nlist %d, %d sub-quantizers) on %d vectors",
            choice.params["nlist"],
            choice.params["pq_m"],
            len(sample),
        )
        index.train(sample)
    # Added in chunks so that a long build can show its progress.
    chunk = 20_000
    for start in range(0, n, chunk):
        index.add(vectors[start : start + chunk])
        if progress is not None:
            progress(min(chunk, n - start))
    apply_search_params(index, choice.params)
    return index


def _ivfpq(dims: int, params: dict[str, Any]) -> faiss.Index:
    padded = params["pq_m"] * 4
    quantizer = faiss.IndexFlatIP(padded)
    ivf = faiss.IndexIVFPQ(
        quantizer, padded, params["nlist"], params["pq_m"], params["pq_bits"], faiss.METRIC_INNER_PRODUCT
    )
    # Padding with zeros keeps every inner product and lets any dimension split into 4-d sub-vectors.
    coarse: faiss.Index = ivf
    if padded != dims:
        # The (d_in, d_out, uniform) constructor, uniform=False: faiss' stubs list only (d_in, d_out, map).
        remap = faiss.RemapDimensionsTransform(dims, padded, False)  # type: ignore[arg-type]
        coarse = faiss.IndexPreTransform(remap, ivf)
    refine = faiss.IndexScalarQuantizer(dims, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index = faiss.IndexRefine(coarse, refine)
    index.k_factor = params["k_factor"]
    return index


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """int64 (q, k) labels of the exact top-k by inner product."""
    # faiss.knn scans the matrix in place: no second copy of a large catalog's vectors.
    _, labels = faiss.knn(
        queries,
        np.ascontiguousarray(vectors, dtype=np.float32),
        min(k, vectors.shape[0]),
        metric=faiss.METRIC_INNER_PRODUCT,
    )
    return labels


def recall_at_k(index: faiss.Index, truth: np.ndarray, queries: np.ndarray) -> float:
    """Share of the exact neighbours `truth` (int64 (q, k)) that `index` returns for `queries`."""
    _, found = index.search(queries, truth.shape[1])
    hits = sum(len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist(), strict=True))
    return hits / truth.size


def tune(
    index: faiss.Index,
    choice: IndexChoice,
    tuning: tuple[np.ndarray, np.ndarray],
    held_out: tuple[np.ndarray, np.ndarray],
    target: float,
) -> tuple[dict[str, Any], float, float]:
    """The cheapest search parameter whose recall meets `target` on the tuning queries and on held-out
    ones (or the last one tried), with both recalls. `tuning` and `held_out` are (queries, exact top-k)."""
    params = dict(choice.params)
    if choice.index_type == "flat":
        return params, recall_at_k(index, tuning[1], tuning[0]), recall_at_k(index, held_out[1], held_out[0])
    name, steps = (
        ("efSearch", EF_SEARCH_STEPS)
        if choice.index_type == "hnsw"
        else ("nprobe", _nprobe_steps(choice.params["nlist"]))
    )
    recall = held = 0.0
    for value in steps:
        if name == "efSearch" and value < tuning[1].shape[1]:
            continue  # HNSW returns at most efSearch results
        params[name] = value
        apply_search_params(index, params)
        recall = recall_at_k(index, tuning[1], tuning[0])
        log.info("tuning: %s=%d gives recall %.4f", name, value, recall)
        if recall >= target:
            held = recall_at_k(index, held_out[1], held_out[0])
            log.info("tuning: %s=%d gives recall %.4f on held-out queries", name, value, held)
            if held >= target:
                break
    return params, recall, held


def _nprobe_steps(nlist: int) -> list[int]:
    steps = [1]
    while steps[-1] < nlist:
        steps.append(min(steps[-1] * 2, nlist))
    return steps


def query_sets(
    vectors: np.ndarray, count: int, k: int, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The (queries, exact top-k) pairs that `tune` takes: tuning queries of `seed`, held-out ones of
    seed + 1, `count` of each."""
    tuning = realistic_queries(vectors, count, seed)
    held_out = realistic_queries(vectors, count, seed + 1)
    return (tuning, exact_neighbours(vectors, tuning, k)), (held_out, exact_neighbours(vectors, held_out, k))


def realistic_queries(vectors: np.ndarray, count: int, seed: int) -> np.ndarray:
    """float32 (count, dims) unit queries near the personas: a persona plus noise of norm QUERY_NOISE,
    with no negative weights, as user profiles have none."""
    rng = np.random.default_rng(seed)
    picks = vectors[rng.integers(0, len(vectors), size=count)]
    noise = rng.normal(0.0, QUERY_NOISE / math.sqrt(vectors.shape[1]), size=picks.shape)
    queries = np.maximum(picks + noise, 0.0).astype(np.float32)
    faiss.normalize_L2(queries)
    return queries
