"""FAISS indexes over persona vectors: which type, built how, searched with which parameters.

Personas are unit vectors and matching is by inner product (cosine similarity). The type follows the
catalog's size unless the operator names one (thresholds measured by benchmarks/index_build.py, figures
in benchmarks/RESULTS.md):

- flat (exact) up to FLAT_MAX vectors: a one-query search over 50k personas of 226 dims takes about
  0.8 ms on one core, past which a graph is cheaper at the same recall;
- HNSW above that, while its memory estimate (vectors plus graph links) fits the memory budget;
- IVF-PQ where it does not: 2 dimensions per sub-quantizer byte keeps recall@100 near 0.97 on realistic
  queries at about an eighth of the memory of the raw vectors.

The build then measures recall@K against exact search on queries near the personas (how real users look:
a persona plus noise, not uniform noise) and tunes efSearch or nprobe to the cheapest value that meets
the recall target.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)

FLAT_MAX = 50_000
MEMORY_BUDGET_BYTES = 2 << 30
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
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
    return n * (math.ceil(dims / 2) + 8) + _nlist(n) * dims * 4


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
        return IndexChoice("hnsw", {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": 64})
    if index_type == "ivfpq":
        pq_m = math.ceil(dims / 2)
        return IndexChoice("ivfpq", {"nlist": _nlist(n_vectors), "pq_m": pq_m, "pq_bits": 8, "nprobe": 8})
    raise ValueError(f"index_type={index_type!r}: expected auto, flat, hnsw or ivfpq")


def _nlist(n: int) -> int:
    return int(np.clip(4 * math.sqrt(n), 16, 16384))


def build(
    vectors: np.ndarray, choice: IndexChoice, progress: Callable[[int], None] | None = None, seed: int = 0
) -> faiss.Index:
    """A FAISS inner-product index over float32 (n, dims) unit vectors; label i is row i."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dims = vectors.shape
    if choice.index_type == "flat":
        index = faiss.IndexFlatIP(dims)
    elif choice.index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dims, choice.params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = choice.params["efConstruction"]
    else:
        index = _ivfpq(dims, choice.params)
        sample = vectors
        if n > PQ_TRAIN_MAX:
            sample = vectors[np.random.default_rng(seed).choice(n, PQ_TRAIN_MAX, replace=False)]
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
    padded = params["pq_m"] * 2
    quantizer = faiss.IndexFlatIP(padded)
    ivf = faiss.IndexIVFPQ(
        quantizer, padded, params["nlist"], params["pq_m"], params["pq_bits"], faiss.METRIC_INNER_PRODUCT
    )
    if padded == dims:
        return ivf
    # Padding with zeros keeps every inner product and lets an odd dimension split into 2-d sub-vectors.
    return faiss.IndexPreTransform(faiss.RemapDimensionsTransform(dims, padded, False), ivf)


def apply_search_params(index: faiss.Index, params: dict[str, Any]) -> None:
    if "efSearch" in params:
        faiss.downcast_index(index).hnsw.efSearch = int(params["efSearch"])
    if "nprobe" in params:
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """int64 (q, k) labels of the exact top-k by inner product."""
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, labels = exact.search(queries, min(k, vectors.shape[0]))
    return labels


def recall_at_k(index: faiss.Index, truth: np.ndarray, queries: np.ndarray) -> float:
    """Share of the exact neighbours `truth` (int64 (q, k)) that `index` returns for `queries`."""
    _, found = index.search(queries, truth.shape[1])
    hits = sum(len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist(), strict=True))
    return hits / truth.size


def tune(
    index: faiss.Index, choice: IndexChoice, truth: np.ndarray, queries: np.ndarray, target: float
) -> tuple[dict[str, Any], float]:
    """The cheapest search parameter that meets `target` recall (or the best one tried) and its recall."""
    if choice.index_type == "flat":
        return {}, recall_at_k(index, truth, queries)
    name, steps = (
        ("efSearch", EF_SEARCH_STEPS)
        if choice.index_type == "hnsw"
        else ("nprobe", _nprobe_steps(choice.params["nlist"]))
    )
    params = dict(choice.params)
    recall = 0.0
    for value in steps:
        if name == "efSearch" and value < truth.shape[1]:
            continue  # HNSW returns at most efSearch results
        params[name] = value
        apply_search_params(index, params)
        recall = recall_at_k(index, truth, queries)
        log.info("tuning: %s=%d gives recall %.4f", name, value, recall)
        if recall >= target:
            break
    return params, recall


def _nprobe_steps(nlist: int) -> list[int]:
    steps = [1]
    while steps[-1] < nlist:
        steps.append(min(steps[-1] * 2, nlist))
    return steps


def realistic_queries(vectors: np.ndarray, count: int, seed: int) -> np.ndarray:
    """float32 (count, dims) unit queries near the personas: a persona plus noise of norm QUERY_NOISE,
    with no negative weights, as user profiles have none."""
    rng = np.random.default_rng(seed)
    picks = vectors[rng.integers(0, len(vectors), size=count)]
    noise = rng.normal(0.0, QUERY_NOISE / math.sqrt(vectors.shape[1]), size=picks.shape)
    queries = np.maximum(picks + noise, 0.0).astype(np.float32)
    faiss.normalize_L2(queries)
    return queries
