"""The sparse scan of an IVF-Flat index's lists (personabid.index.sparse) against FAISS's own search of
the same index: the same scores, the same vectors above the k-th score, the same padding."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from personabid.index.build import build, choose, memory_estimate
from personabid.index.bundle import apply_search_params, load_index
from personabid.index.sparse import NOT_FOUND_SCORE, SparseLists, searcher_for


def sparse_vectors(rng: np.random.Generator, n: int, dims: int, per_vector: int) -> np.ndarray:
    """float32 (n, dims) unit vectors with `per_vector` positive weights each, at random positions."""
    vectors = np.zeros((n, dims), dtype=np.float32)
    for row in vectors:
        row[rng.choice(dims, size=min(per_vector, dims), replace=False)] = rng.random(min(per_vector, dims))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def ivf_flat(
    vectors: np.ndarray, nlist: int, nprobe: int, quantizer: faiss.Index | None = None
) -> faiss.Index:
    dims = vectors.shape[1]
    index = faiss.IndexIVFFlat(quantizer or faiss.IndexFlatIP(dims), dims, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.min_points_per_centroid = 1  # small test sets: no warning about too few points per list
    index.train(vectors)
    index.add(vectors)
    index.nprobe = nprobe
    return index


def assert_same_answer(
    expected: tuple[np.ndarray, np.ndarray], found: tuple[np.ndarray, np.ndarray], vectors: np.ndarray,
    queries: np.ndarray,
) -> None:  # fmt: skip
    """Scores alike rank by rank; every label found scores what it is said to; and the vectors above the
    k-th score (where ties at that score cannot reorder them) are the same ones."""
    (want_scores, want_labels), (got_scores, got_labels) = expected, found
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-6)
    for q in range(len(queries)):
        present = got_labels[q] >= 0
        np.testing.assert_array_equal(present, want_labels[q] >= 0)
        exact = vectors[got_labels[q][present]] @ queries[q]
        np.testing.assert_allclose(got_scores[q][present], exact, rtol=1e-5, atol=1e-6)
        if present.any():
            kth = got_scores[q][present][-1]
            above = got_scores[q] > kth + 1e-5
            assert set(got_labels[q][above].tolist()) == set(
                want_labels[q][want_scores[q] > kth + 1e-5].tolist()
            )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(20, 300),
    dims=st.integers(4, 48),
    per_vector=st.integers(1, 6),
    nlist=st.integers(1, 12),
    nprobe=st.integers(1, 14),
    k=st.integers(1, 320),
    nq=st.integers(1, 4),
)
def test_the_sparse_scan_answers_as_faiss_searches_the_same_lists(
    seed: int, n: int, dims: int, per_vector: int, nlist: int, nprobe: int, k: int, nq: int
) -> None:
    rng = np.random.default_rng(seed)
    vectors = sparse_vectors(rng, n, dims, per_vector)
    index = ivf_flat(vectors, min(nlist, n), nprobe)
    queries = sparse_vectors(rng, nq, dims, per_vector + 1)
    # Centroids that tie for the last list probed may be taken either way (duplicate vectors make them).
    assume(not ties_at_the_last_probe(index, queries))
    assert_same_answer(index.search(queries, k), SparseLists(index).search(queries, k), vectors, queries)


def ties_at_the_last_probe(index: faiss.Index, queries: np.ndarray) -> bool:
    index = faiss.extract_index_ivf(index)
    centroids = index.quantizer.reconstruct_n(0, index.nlist)
    for coarse in queries @ centroids.T:
        ranked = np.sort(coarse)[::-1]
        if index.nprobe < len(ranked) and ranked[index.nprobe - 1] - ranked[index.nprobe] < 1e-5:
            return True
    return False


def test_ranks_past_the_vectors_probed_are_padded_as_faiss_pads_them() -> None:
    rng = np.random.default_rng(1)
    vectors = sparse_vectors(rng, 30, 16, 3)
    index = ivf_flat(vectors, 4, 4)
    scores, labels = SparseLists(index).search(vectors[:1], 40)
    assert (labels[0, 30:] == -1).all() and (scores[0, 30:] == NOT_FOUND_SCORE).all()


def test_a_new_nprobe_applies_to_the_sparse_scan_too() -> None:
    rng = np.random.default_rng(2)
    vectors = sparse_vectors(rng, 400, 32, 4)
    queries = sparse_vectors(rng, 20, 32, 5)
    index = ivf_flat(vectors, 16, 1)
    sparse = SparseLists(index)
    apply_search_params(index, {"nprobe": 7})
    assert_same_answer(index.search(queries, 50), sparse.search(queries, 50), vectors, queries)


def test_a_graph_quantizer_searched_with_a_full_beam_probes_the_same_lists() -> None:
    rng = np.random.default_rng(3)
    vectors = sparse_vectors(rng, 600, 32, 4)
    queries = sparse_vectors(rng, 20, 32, 5)
    graph = faiss.IndexHNSWFlat(32, 8, faiss.METRIC_INNER_PRODUCT)
    index = ivf_flat(vectors, 24, 5, graph)
    apply_search_params(index, {"nprobe": 5, "quantizer_efSearch": 24})  # every centroid: exact
    assert_same_answer(index.search(queries, 30), SparseLists(index).search(queries, 30), vectors, queries)


def test_an_index_of_sparse_vectors_is_searched_sparse() -> None:
    vectors = sparse_vectors(np.random.default_rng(4), 200, 64, 4)
    assert isinstance(searcher_for(ivf_flat(vectors, 8, 2)), SparseLists)


def test_an_index_of_dense_vectors_is_searched_by_faiss() -> None:
    vectors = sparse_vectors(np.random.default_rng(5), 200, 16, 16)
    index = ivf_flat(vectors, 8, 2)
    assert searcher_for(index) is index


@pytest.mark.parametrize(
    "make", [lambda d: faiss.IndexHNSWFlat(d, 8, faiss.METRIC_INNER_PRODUCT), faiss.IndexFlatL2]
)
def test_a_graph_or_an_index_by_distance_is_searched_by_faiss(make: type) -> None:
    index = make(16)
    index.add(sparse_vectors(np.random.default_rng(6), 50, 16, 2))
    assert searcher_for(index) is index


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 200), k=st.integers(1, 220))
def test_a_flat_index_is_scanned_sparse_as_faiss_scans_it(seed: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = sparse_vectors(rng, n, 40, 3)
    index = faiss.IndexFlatIP(40)
    index.add(vectors)
    queries = sparse_vectors(rng, 3, 40, 6)
    searcher = searcher_for(index)
    assert isinstance(searcher, SparseLists)
    assert_same_answer(index.search(queries, k), searcher.search(queries, k), vectors, queries)


def test_lists_assigned_by_distance_are_searched_by_faiss() -> None:
    vectors = sparse_vectors(np.random.default_rng(9), 200, 64, 4)
    index = ivf_flat(vectors, 8, 2, faiss.IndexFlatL2(64))
    assert searcher_for(index) is index


def test_an_empty_index_is_searched_by_faiss() -> None:
    quantizer = faiss.IndexFlatIP(8)
    index = faiss.IndexIVFFlat(quantizer, 8, 2, faiss.METRIC_INNER_PRODUCT)
    index.train(sparse_vectors(np.random.default_rng(7), 20, 8, 2))
    assert searcher_for(index) is index


def test_the_demo_index_is_served_sparse_with_faiss_answers(demo_dir: Path) -> None:
    bundle = load_index(demo_dir / "index")
    if bundle.manifest.index_type not in ("flat", "ivfflat"):
        pytest.skip(f"the demo index is {bundle.manifest.index_type}: no vectors to hold sparse")
    assert isinstance(bundle.searcher, SparseLists)
    vectors = bundle.index.reconstruct_n(0, bundle.index.ntotal)
    rng = np.random.default_rng(8)
    queries = vectors[rng.choice(len(vectors), 20, replace=False)]
    queries = queries + sparse_vectors(rng, 20, queries.shape[1], 8)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    assert_same_answer(
        bundle.index.search(queries, 100), bundle.searcher.search(queries, 100), vectors, queries
    )


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(16, 600), per_vector=st.integers(1, 8))
def test_an_ivf_flat_index_estimate_counts_the_sparse_copy_to_the_byte(
    seed: int, n: int, per_vector: int
) -> None:
    vectors = sparse_vectors(np.random.default_rng(seed), n, 64, per_vector)
    index = build(vectors, choose(n, 64, "ivfflat"), seed=seed)
    copy = searcher_for(index)
    assert isinstance(copy, SparseLists)
    nonzero = int(np.count_nonzero(vectors))
    assert memory_estimate("ivfflat", n, 64, nonzero) - memory_estimate("ivfflat", n, 64) == copy.nbytes


def test_a_flat_index_estimate_counts_the_sparse_copy_to_the_byte() -> None:
    vectors = sparse_vectors(np.random.default_rng(6), 300, 64, 5)
    index = faiss.IndexFlatIP(64)
    index.add(vectors)
    copy = searcher_for(index)
    assert isinstance(copy, SparseLists)
    nonzero = int(np.count_nonzero(vectors))
    assert memory_estimate("flat", 300, 64, nonzero) - memory_estimate("flat", 300, 64) == copy.nbytes


def test_the_estimate_of_vectors_too_dense_to_copy_counts_no_copy() -> None:
    vectors = sparse_vectors(np.random.default_rng(7), 300, 16, 16)
    nonzero = int(np.count_nonzero(vectors))
    assert memory_estimate("ivfflat", 300, 16, nonzero) == memory_estimate("ivfflat", 300, 16)
