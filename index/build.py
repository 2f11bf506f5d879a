"""FAISS indexes over persona vectors: which type, built how, searched with which parameters.

Personas are unit vectors and matching is by inner product (cosine similarity). An operator names a type
or lets `auto` measure (personabid.index.selection: flat up to FLAT_MAX vectors, above that the candidate
that searches fastest at the recall target). Figures in benchmarks/RESULTS.md, "Index builds":

- flat (exact): 10k vectors answer in about 0.15 ms; past that flat grows linearly;
- HNSW: graph search; large graphs are built with a wider beam (efConstruction), without which
  recall@100 stalls near 0.95 at 1M;
- IVF-Flat: about 4 sqrt(n) k-means lists, nprobe of them scanned exactly; at 115k vectors it met the
  target at about half HNSW's cost (97 against 236 us on an idle machine; 243 against 479 us loaded),
  and trains and fills in seconds. From QUANTIZER_HNSW_FROM lists a graph finds the lists to scan
  (at 2,048 lists: 206 us against 329 us for a scan of the centroids);
- IVF-PQ where nothing else fits the memory budget: product codes of 4 dimensions per byte find
  candidates, and an 8-bit scalar copy of the vectors re-ranks four times k of them, since PQ codes
  alone stall near recall 0.87-0.93: about 290 bytes per vector against about 1,160 for HNSW.

The build then measures recall@K against exact search on queries shaped like the server's user vectors
(user_queries), tunes efSearch or nprobe to the cheapest value that meets the recall target, and confirms
it on a second, held-out set of queries, so that the target is not met only on the queries the tuning
saw.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from personabid.index.bundle import apply_search_params
from personabid.index.sparse import copy_bytes
from personabid.index.vocab import Vocabulary

log = logging.getLogger(__name__)

INDEX_TYPES = ("flat", "hnsw", "ivfflat", "ivfpq")
FLAT_MAX = 10_000
MEMORY_BUDGET_BYTES = 2 << 30
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_LARGE = 300_000  # from here on, a wider construction beam
HNSW_EF_CONSTRUCTION_LARGE = 200
REFINE_FACTOR = 4
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
PQ_TRAIN_MAX = 100_000
TRAIN_PER_LIST = 40  # k-means wants about 40 points per list; FAISS warns below 39
# Lists from which a graph finds the nearest centroids faster than a scan: at 1,355 lists of 402
# dimensions the scan took 81 us a query and the graph 41 (benchmarks/RESULTS.md, "Coarse quantizer"); the
# scan also reads every centroid each query, which evicts the core's caches under the rest of the path.
QUANTIZER_HNSW_FROM = 1024
# The graph's beam while nprobe is tuned; then narrowed to the least that keeps the recall (tune).
QUANTIZER_EF_SEARCH = 128
CONTEXT_FAMILIES = ("interest", "device", "region")  # page category, device os, country
OWN_CONTEXT = 0.85  # share of context tags that are the profile's own strongest of the family
SECOND_PERSONA = 0.15  # share of queries whose profile also leans to a second persona
QUERY_NOISE = 0.6  # norm of the noise added to a persona to make a query: cosine about 0.86
# Each tag family's part of a query's profile is scaled by its norm to this power: 1 weighs every family
# alike, as the demo people's profiles built from behaviour do (a real user's interests hold about a
# quarter of its weight, a persona's half); a little past 1 so that the queries are at least as hard as
# real users for IVF-Flat too (benchmarks/RESULTS.md, "Auto by measured cost").
FAMILY_BALANCE = 1.25


# (float32 (q, dims) queries, int64 (q, k) their exact neighbours)
Queries = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class IndexChoice:
    index_type: str  # one of INDEX_TYPES
    params: dict[str, Any] = field(default_factory=dict)


def memory_estimate(index_type: str, n: int, dims: int, nonzero: int | None = None) -> int:
    """Bytes an index of `n` vectors takes in memory, near enough to choose a type by; with the vectors'
    count of `nonzero` weights, a flat or IVF-Flat index's sparse copy (index/sparse.py) too."""
    if index_type == "flat":
        return n * dims * 4 + (copy_bytes(n, 1, dims, nonzero) if nonzero is not None else 0)
    if index_type == "hnsw":
        return n * (dims * 4 + HNSW_M * 2 * 4 + 16)
    nlist = _nlist(n)
    if index_type == "ivfflat":
        # Vectors and ids in the inverted lists, the centroids, and their graph when it has one.
        links = nlist * (HNSW_M * 2 * 4 + 16) if nlist >= QUANTIZER_HNSW_FROM else 0
        copy = copy_bytes(n, nlist, dims, nonzero) if nonzero is not None else 0
        return n * (dims * 4 + 16) + nlist * dims * 4 + links + copy  # ids and the direct map: 8 bytes each
    return n * (math.ceil(dims / 4) + dims + 8) + nlist * dims * 4


def choose(n_vectors: int, dims: int, index_type: str) -> IndexChoice:
    """The build parameters of `index_type` for `n_vectors` vectors (personabid.index.selection picks the
    type of an "auto" build, by measuring the candidates)."""
    if index_type == "flat":
        return IndexChoice("flat")
    if index_type == "hnsw":
        construction = HNSW_EF_CONSTRUCTION if n_vectors < HNSW_LARGE else HNSW_EF_CONSTRUCTION_LARGE
        return IndexChoice("hnsw", {"M": HNSW_M, "efConstruction": construction, "efSearch": 64})
    if index_type == "ivfflat":
        nlist = _nlist(n_vectors)
        quantizer = "hnsw" if nlist >= QUANTIZER_HNSW_FROM else "flat"
        return IndexChoice("ivfflat", {"nlist": nlist, "quantizer": quantizer, "nprobe": 8})
    if index_type == "ivfpq":
        params = {"nlist": _nlist(n_vectors), "pq_m": math.ceil(dims / 4), "pq_bits": 8, "nprobe": 8}
        return IndexChoice("ivfpq", {**params, "refine": "SQ8", "k_factor": REFINE_FACTOR})
    raise ValueError(f"index_type={index_type!r}: expected one of {', '.join(INDEX_TYPES)}")


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
        index = (
            _ivfflat(dims, choice.params) if choice.index_type == "ivfflat" else _ivfpq(dims, choice.params)
        )
        sample = vectors
        # The coarse quantizer wants about 40 points per list; the PQ, far fewer than that.
        wanted = TRAIN_PER_LIST * choice.params["nlist"]
        if choice.index_type == "ivfpq":
            wanted = max(PQ_TRAIN_MAX, wanted)
        if n > wanted:
            sample = vectors[np.random.default_rng(seed).choice(n, wanted, replace=False)]
        log.info(
            "training %s (nlist %d) on %d vectors", choice.index_type, choice.params["nlist"], len(sample)
        )
        index.train(sample)
    # Added in chunks so that a long build can show its progress.
    chunk = 20_000
    for start in range(0, n, chunk):
        index.add(vectors[start : start + chunk])
        if progress is not None:
            progress(min(chunk, n - start))
    if choice.index_type == "ivfflat":
        # Label -> vector lookups (the server's warm-up reconstructs a persona; the bench reads the
        # vectors back) need the map from labels to list positions: 8 bytes a vector.
        faiss.extract_index_ivf(index).make_direct_map()
    apply_search_params(index, choice.params)
    return index


def _ivfflat(dims: int, params: dict[str, Any]) -> faiss.Index:
    quantizer: faiss.Index
    if params["quantizer"] == "hnsw":
        # Inner product over unit centroids ranks them as L2 does; the graph searches either.
        quantizer = faiss.IndexHNSWFlat(dims, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efSearch = QUANTIZER_EF_SEARCH
    else:
        quantizer = faiss.IndexFlatIP(dims)
    return faiss.IndexIVFFlat(quantizer, dims, params["nlist"], faiss.METRIC_INNER_PRODUCT)


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
    tuning: Queries,
    held_out: Queries,
    target: float,
    floor: Queries | None = None,
) -> tuple[dict[str, Any], float, float]:
    """The cheapest search parameter whose recall meets `target` on the tuning queries, on held-out ones
    and on the `floor` queries if given (or the last one tried), with the first two recalls (the
    caller measures the floor's at the parameters returned)."""
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
        if params.get("quantizer") == "hnsw":
            # The graph over the centroids must return nprobe of them, best first: its beam is at least that.
            params["quantizer_efSearch"] = max(QUANTIZER_EF_SEARCH, value)
        apply_search_params(index, params)
        recall = recall_at_k(index, tuning[1], tuning[0])
        log.info("tuning: %s=%d gives recall %.4f", name, value, recall)
        if recall >= target:
            held = recall_at_k(index, held_out[1], held_out[0])
            log.info("tuning: %s=%d gives recall %.4f on held-out queries", name, value, held)
            if held >= target and (floor is None or recall_at_k(index, floor[1], floor[0]) >= target):
                break
    if "quantizer_efSearch" in params and recall >= target and held >= target:
        params, recall, held = _narrow_quantizer_beam(
            index, params, (recall, held), tuning, held_out, target, floor
        )
    return params, recall, held


def _narrow_quantizer_beam(
    index: faiss.Index,
    params: dict[str, Any],
    recalls: tuple[float, float],
    tuning: Queries,
    held_out: Queries,
    target: float,
    floor: Queries | None,
) -> tuple[dict[str, Any], float, float]:
    """`params` (whose recalls on the tuning and held-out queries are `recalls`) with the graph
    quantizer's beam (efSearch) as narrow as keeps the recall at `target` on every query set, with the two
    recalls there: a beam of 128 costs a third of a search at 1,355 lists, while the nprobe nearest
    centroids are mostly found with far less."""
    best = dict(params)
    narrower = [ef for ef in EF_SEARCH_STEPS if params["nprobe"] <= ef < params["quantizer_efSearch"]]
    for beam in sorted(narrower, reverse=True):
        trial = {**best, "quantizer_efSearch": beam}
        apply_search_params(index, trial)
        found = recall_at_k(index, tuning[1], tuning[0]), recall_at_k(index, held_out[1], held_out[0])
        log.info("tuning: quantizer efSearch=%d gives recall %.4f (held-out %.4f)", beam, *found)
        if min(found) < target or (floor is not None and recall_at_k(index, floor[1], floor[0]) < target):
            break
        best, recalls = trial, found
    apply_search_params(index, best)
    return best, *recalls


def _nprobe_steps(nlist: int) -> list[int]:
    # Steps about a quarter apart: each nprobe costs its lists' scan, so doubling would overshoot the
    # cheapest value that meets the target by up to half of it (4 gives 0.93, 8 gives 0.99 at 115k).
    steps = [1]
    while steps[-1] < nlist:
        steps.append(min(max(steps[-1] + 1, round(steps[-1] * 1.25)), nlist))
    return steps


def context_axes(vocab: Vocabulary) -> tuple[np.ndarray, ...]:
    """The positions of the tag families a request's context maps onto (page category, device, country),
    one int64 array per family the vocabulary has: what user_queries adds as context."""
    families = vocab.families()
    return tuple(np.asarray(families[f], dtype=np.int64) for f in CONTEXT_FAMILIES if f in families)


def family_axes(vocab: Vocabulary) -> tuple[np.ndarray, ...]:
    """The positions of each tag family of the vocabulary (int64 arrays): what user_queries balances."""
    return tuple(np.asarray(positions, dtype=np.int64) for positions in vocab.families().values())


def query_sets(
    vectors: np.ndarray,
    count: int,
    k: int,
    seed: int,
    context: Sequence[np.ndarray] = (),
    families: Sequence[np.ndarray] = (),
) -> tuple[Queries, Queries]:
    """The (queries, exact top-k) pairs that `tune` takes: user-shaped tuning queries of `seed`, held-out
    ones of seed + 1, `count` of each."""
    tuning = user_queries(vectors, count, seed, context, families)
    held_out = user_queries(vectors, count, seed + 1, context, families)
    return (tuning, exact_neighbours(vectors, tuning, k)), (held_out, exact_neighbours(vectors, held_out, k))


def user_queries(
    vectors: np.ndarray,
    count: int,
    seed: int,
    context: Sequence[np.ndarray] = (),
    families: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """float32 (count, dims) unit queries shaped like the server's user vectors (decision/blend.py): a
    profile, sometimes the exchange's segments, and the context, each a unit vector, blended 1.0 / 0.6 /
    0.4 and normalised.

    The profile is a persona thinned as profiles are (a sixth of its tags missing, the rest reweighted by
    up to 30 %, four stray tags), in some queries with a second persona at a lower weight
    (people between two audiences), with the weight of each of `families` (position arrays, from
    family_axes) scaled towards the others' (FAMILY_BALANCE): profiles built from behaviour weigh a
    user's age, country or device about as much as all their interests, which pulls the query towards
    every audience of that age or country and away from its own persona; the segments, in a third of
    them, are a few of the profile's tags;
    the context is one tag from each of `context` (position arrays: category, device, country families,
    from context_axes) or, without them, three tags anywhere; mostly the profile's own strongest tag of
    the family (a page of one of the user's interests, their device, their country), which pulls the
    query towards every audience of that country or device and spreads its neighbours over more IVF
    lists than a random context tag does. Persona plus dense noise (persona_noise_
    queries) sits closer to the personas than these do and flatters an approximate index: on the demo
    world's real user vectors the nearest persona's similarity is about 0.80, not 0.92 (here about 0.71:
    harder than real users, on purpose).
    """
    rng = np.random.default_rng(seed)
    n, dims = vectors.shape
    profile = vectors[rng.integers(0, n, size=count)].astype(np.float64)
    second = rng.random(count) < SECOND_PERSONA
    profile[second] += (
        rng.uniform(0.2, 0.5, (int(second.sum()), 1)) * vectors[rng.integers(0, n, size=int(second.sum()))]
    )
    profile *= (rng.random(profile.shape) > 1 / 6) * rng.uniform(0.7, 1.3, profile.shape)
    stray = rng.integers(0, dims, size=(count, 4))
    np.put_along_axis(
        profile,
        stray,
        np.maximum(np.take_along_axis(profile, stray, 1), rng.uniform(0.05, 0.4, (count, 4))),
        1,
    )
    for positions in families:
        norms = np.linalg.norm(profile[:, positions], axis=1, keepdims=True)
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0) ** FAMILY_BALANCE
        profile[:, positions] *= scale
    blended = _units(profile)
    segments = np.zeros_like(profile)
    for i in np.flatnonzero(rng.random(count) < 1 / 3):
        held = np.flatnonzero(profile[i])
        if len(held):
            picks = rng.choice(held, size=min(len(held), int(rng.integers(2, 5))), replace=False)
            segments[i, picks] = profile[i, picks]
    blended += 0.6 * _units(segments)
    places = list(context) or [np.arange(dims)] * 3
    context_vectors = np.zeros_like(profile)
    rows = np.arange(count)
    for positions in places:
        # Mostly the user's own: the page is of an interest of theirs, the device and country theirs.
        own = positions[np.argmax(profile[:, positions], axis=1)]
        has_own = profile[rows, own] > 0
        chosen = np.where(
            has_own & (rng.random(count) < OWN_CONTEXT),
            own,
            positions[rng.integers(0, len(positions), size=count)],
        )
        context_vectors[rows, chosen] = 1.0
    blended += 0.4 * _units(context_vectors)
    queries = blended.astype(np.float32)
    faiss.normalize_L2(queries)
    return queries


def _units(rows: np.ndarray) -> np.ndarray:
    """`rows` (float64 (m, dims)) each scaled to unit length; rows of zeros stay zero."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


def persona_noise_queries(vectors: np.ndarray, count: int, seed: int) -> np.ndarray:
    """float32 (count, dims) unit queries near the personas: a persona plus noise of norm QUERY_NOISE,
    with no negative weights, as user profiles have none. The build's queries before user_queries; kept
    to compare recall on both."""
    rng = np.random.default_rng(seed)
    picks = vectors[rng.integers(0, len(vectors), size=count)]
    noise = rng.normal(0.0, QUERY_NOISE / math.sqrt(vectors.shape[1]), size=picks.shape)
    queries = np.maximum(picks + noise, 0.0).astype(np.float32)
    faiss.normalize_L2(queries)
    return queries
