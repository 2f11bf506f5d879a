"""An IVF-Flat index's inverted lists (or a flat index's vectors) held sparse, and scanned by a kernel.

Persona and user vectors are tag weights over the vocabulary, and a persona weighs a few dozen tags of
hundreds (18 of 402 on average in the bench worlds): FAISS's IVF-Flat reads every vector of the probed
lists in full, 1.6 kB each, and a search at the recall target is bound by those reads (benchmarks/
RESULTS.md, "Match"). Held as their non-zero weights the same lists take a fifteenth of the bytes, and
the inner products come out the same (a zero adds nothing): the same nearest personas, at the recall the
build measured on the FAISS index, for a fraction of the search.

The coarse step goes the same way: a user weighs a few dozen tags too, so its inner products with every
centroid are a sum over its non-zero positions of rows of the centroids held transposed (a few kB each),
exact where FAISS's own quantizer scans every centroid in full or walks a graph that may miss one. The
whole search is one kernel call. The index stays what the build wrote, tuned and measured: `SparseLists`
is built from it when it is loaded, and answers `search` as the index does (scores best first, label -1
and score -FLT_MAX past the found), with the same lists probed, or, where the index's quantizer is a
graph, lists at least as near. It reads the index's nprobe at each search, so a change of the search
parameters applies to both.
"""

from __future__ import annotations

from typing import Protocol

import faiss
import numba as nb
import numpy as np

# Above this share of non-zero weights a dense scan (FAISS's, with SIMD over whole vectors) costs less
# than following the non-zeros' positions one by one.
SPARSE_MAX_DENSITY = 0.125
# What FAISS answers for a rank no vector filled (inner product: the lowest float32).
NOT_FOUND_SCORE = np.float32(-np.finfo(np.float32).max)


class Searcher(Protocol):
    """What the match needs of an index: FAISS's search contract."""

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class SparseLists:
    """The inverted lists of an IVF-Flat index with inner product (a flat index: one list), as compressed
    sparse rows: vector v (in list order) has the weights values[vec_start[v]:vec_start[v + 1]] at those
    positions of dims; list l holds vectors list_start[l] to list_start[l + 1]; labels are the index's
    ids."""

    def __init__(self, index: faiss.Index) -> None:
        self._ivf, centroids, lists = _lists(index)
        # (d, nlist): position p's weight in every centroid, contiguous.
        self.centroids_t = np.ascontiguousarray(np.asarray(centroids, dtype=np.float32).T)
        sizes = np.array([len(ids) for _, ids in lists], dtype=np.int64)
        self.list_start = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.list_start[1:])
        n = int(self.list_start[-1])
        self.labels = np.empty(n, dtype=np.int64)
        nonzero = np.zeros(n, dtype=np.int64)
        dims_parts: list[np.ndarray] = [np.zeros(0, dtype=np.int32)]
        values_parts: list[np.ndarray] = [np.zeros(0, dtype=np.float32)]
        for (codes, ids), at in zip(lists, self.list_start[:-1].tolist(), strict=True):
            self.labels[at : at + len(ids)] = ids
            rows, cols = np.nonzero(codes)
            nonzero[at : at + len(ids)] = np.bincount(rows, minlength=len(ids))
            dims_parts.append(cols.astype(np.int32))
            values_parts.append(codes[rows, cols])
        self.vec_start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(nonzero, out=self.vec_start[1:])
        self.dims = np.concatenate(dims_parts)
        self.values = np.concatenate(values_parts)

    @property
    def nbytes(self) -> int:
        """Bytes of the copy's arrays."""
        arrays = (self.centroids_t, self.list_start, self.labels, self.vec_start, self.dims, self.values)
        return sum(a.nbytes for a in arrays)

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """float32 (nq, k) inner products, best first, and int64 (nq, k) labels of the top-k vectors in
        the nprobe lists nearest each of the float32 (nq, d) queries, as the index's search answers."""
        queries = np.ascontiguousarray(x, dtype=np.float32)
        probes = int(self._ivf.nprobe) if self._ivf is not None else 1
        nprobe = min(probes, self.centroids_t.shape[1])
        return scan(
            queries,
            self.centroids_t,
            nprobe,
            self.list_start,
            self.vec_start,
            self.dims,
            self.values,
            self.labels,
            k,
        )


def copy_bytes(n: int, lists: int, dims: int, nonzero: int) -> int:
    """Bytes of the SparseLists of an index of `n` vectors of `dims` weights, `nonzero` of them non-zero,
    in `lists` inverted lists (1 for a flat index): 0 when they are too dense to be copied. The server
    holds the copy beside the index, so an index's memory estimate counts it."""
    if n == 0 or nonzero > SPARSE_MAX_DENSITY * n * dims:
        return 0
    # labels and vec_start, the non-zeros' positions and weights, the centroids transposed, list_start
    return 8 * n + 8 * (n + 1) + 8 * nonzero + 4 * dims * lists + 8 * (lists + 1)


def searcher_for(index: faiss.Index) -> Searcher:
    """The cheaper way to search `index`: its vectors held sparse when it is a flat or IVF-Flat index over
    inner product whose vectors are sparse enough (SPARSE_MAX_DENSITY), else the index itself."""
    if index.ntotal == 0 or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        return index
    kind = faiss.downcast_index(index)
    if isinstance(kind, faiss.IndexIVFFlat):
        if faiss.extract_index_ivf(index).quantizer.metric_type != faiss.METRIC_INNER_PRODUCT:
            return index  # lists assigned by L2: the sparse coarse step would probe others
    elif type(kind) is not faiss.IndexFlatIP:
        return index
    # Counted in FAISS's memory first: a dense index is never copied.
    nonzero = sum(np.count_nonzero(vectors) for vectors, _ in _lists(index)[2])
    if nonzero > SPARSE_MAX_DENSITY * index.ntotal * index.d:
        return index
    return SparseLists(index)


def _lists(
    index: faiss.Index,
) -> tuple[faiss.IndexIVF | None, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """A flat or IVF-Flat index's IVF part (None for a flat index), its (nlist, d) centroids, and each
    list's float32 (size, d) vectors and int64 ids: views of FAISS's own memory, no copy."""
    d = index.d
    flat = faiss.downcast_index(index)
    if isinstance(flat, faiss.IndexFlat):
        vectors = faiss.rev_swig_ptr(flat.get_xb(), index.ntotal * d).reshape(index.ntotal, d)
        # One list, always probed.
        return None, np.zeros((1, d), dtype=np.float32), [(vectors, np.arange(index.ntotal, dtype=np.int64))]
    ivf = faiss.extract_index_ivf(index)
    inverted = ivf.invlists
    assert inverted is not None, "an IVF index has its inverted lists"
    lists = []
    for i in range(ivf.nlist):
        size = inverted.list_size(i)
        codes = faiss.rev_swig_ptr(inverted.get_codes(i), size * d * 4) if size else np.zeros(0)
        ids = faiss.rev_swig_ptr(inverted.get_ids(i), size) if size else np.zeros(0)
        lists.append((codes.view(np.float32).reshape(size, d), ids.view(np.int64)))
    return ivf, ivf.quantizer.reconstruct_n(0, ivf.nlist), lists


@nb.njit(cache=True)
def scan(
    queries: np.ndarray,
    centroids_t: np.ndarray,
    nprobe: int,
    list_start: np.ndarray,
    vec_start: np.ndarray,
    dims: np.ndarray,
    values: np.ndarray,
    labels: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The top-k inner products of each float32 (nq, d) query over the vectors of its nprobe nearest
    lists (by inner product with the (d, nlist) centroids), as SparseLists.search returns them."""
    nq = queries.shape[0]
    nlist = centroids_t.shape[1]
    out_scores = np.empty((nq, k), dtype=np.float32)
    out_labels = np.empty((nq, k), dtype=np.int64)
    coarse = np.empty(nlist, dtype=np.float32)
    near_scores = np.empty(nprobe, dtype=np.float32)
    near_lists = np.empty(nprobe, dtype=np.int64)
    for q in range(nq):
        query = queries[q]
        coarse[:] = 0.0
        for p in range(query.shape[0]):
            weight = query[p]
            if weight != 0.0:
                row = centroids_t[p]
                for c in range(nlist):
                    coarse[c] += weight * row[c]
        # The nprobe nearest lists: a min-heap whose root is the score to beat (nprobe is a few dozen).
        near_scores[:] = NOT_FOUND_SCORE
        near_lists[:] = -1
        for c in range(nlist):
            if nprobe > 0 and coarse[c] > near_scores[0]:
                _replace_root(near_scores, near_lists, coarse[c], c)
        # Every probed vector's score, then the k best of them by selection: a min-heap of k = 100 costs
        # more than the scan itself at a thousand or so vectors, as a near list's scores come in no order.
        probed = 0
        for list_no in near_lists:
            if list_no >= 0:
                probed += list_start[list_no + 1] - list_start[list_no]
        scores = np.empty(probed, dtype=np.float32)
        found = np.empty(probed, dtype=np.int64)
        n = 0
        for list_no in near_lists:
            if list_no < 0:
                continue
            for v in range(list_start[list_no], list_start[list_no + 1]):
                score = np.float32(0.0)
                for p in range(vec_start[v], vec_start[v + 1]):
                    score += values[p] * query[dims[p]]
                scores[n] = score
                found[n] = labels[v]
                n += 1
        _best_k(scores, found, out_scores[q], out_labels[q])
    return out_scores, out_labels


@nb.njit(cache=True)
def _best_k(scores: np.ndarray, labels: np.ndarray, out_scores: np.ndarray, out_labels: np.ndarray) -> None:
    """The len(out_scores) best of (scores, labels), best first, into the outputs; padded with
    NOT_FOUND_SCORE and -1 past len(scores)."""
    k, n = out_scores.shape[0], scores.shape[0]
    if n > k > 0:
        # The k-th best score; those above it, then as many at it as there is room for (ties at the
        # k-th score are equals, as in FAISS's own heap).
        kth = np.partition(scores, n - k)[n - k]
        taken = 0
        for i in range(n):
            if scores[i] > kth:
                out_scores[taken] = scores[i]
                out_labels[taken] = labels[i]
                taken += 1
        for i in range(n):
            if taken == k:
                break
            if scores[i] == kth:
                out_scores[taken] = kth
                out_labels[taken] = labels[i]
                taken += 1
    else:
        taken = min(n, k)
        out_scores[:taken] = scores[:taken]
        out_labels[:taken] = labels[:taken]
    order = np.argsort(-out_scores[:taken], kind="mergesort")
    best_scores = out_scores[:taken][order]
    best_labels = out_labels[:taken][order]
    out_scores[:taken] = best_scores
    out_labels[:taken] = best_labels
    out_scores[taken:] = NOT_FOUND_SCORE
    out_labels[taken:] = -1


@nb.njit(cache=True, inline="always")
def _replace_root(scores: np.ndarray, labels: np.ndarray, score: np.float32, label: int) -> None:
    """Put (score, label) in place of the root of the min-heap (scores, labels) and sift it down."""
    k = scores.shape[0]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        if child + 1 < k and scores[child + 1] < scores[child]:
            child += 1
        if scores[child] >= score:
            break
        scores[pos] = scores[child]
        labels[pos] = labels[child]
        pos = child
    scores[pos] = score
    labels[pos] = label
