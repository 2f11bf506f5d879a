"""Persona matching against a brute-force reference."""

from __future__ import annotations

import faiss
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.decision.match import best_per_campaign, match


def reference_match(
    personas: np.ndarray, persona_rows: np.ndarray, user: np.ndarray, k: int
) -> dict[int, float]:
    """Best similarity per campaign among the k nearest personas, by brute force."""
    sims = personas @ user[0]
    nearest = np.argsort(-sims, kind="stable")[:k]
    best: dict[int, float] = {}
    for p in nearest:
        row = int(persona_rows[p])
        best[row] = max(best.get(row, -np.inf), float(sims[p]))
    return best


def unit(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.random(shape, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def flat(personas: np.ndarray) -> faiss.Index:
    index = faiss.IndexFlatIP(personas.shape[1])
    index.add(personas)
    return index


def test_match_equals_brute_force_top_k() -> None:
    rng = np.random.default_rng(3)
    personas = unit(rng, (500, 32))
    rows = np.arange(500, dtype=np.int32)
    user = unit(rng, (1, 32))
    found_rows, found_sims = match(flat(personas), rows, user, 20)
    expected = reference_match(personas, rows, user, 20)
    assert set(found_rows.tolist()) == set(expected)
    for row, sim in zip(found_rows.tolist(), found_sims.tolist(), strict=True):
        assert abs(sim - expected[row]) < 1e-5


def test_campaign_with_several_personas_appears_once_with_its_best_similarity() -> None:
    rng = np.random.default_rng(4)
    personas = unit(rng, (300, 16))
    rows = (np.arange(300) // 3).astype(np.int32)  # three personas per campaign
    user = unit(rng, (1, 16))
    found_rows, found_sims = match(flat(personas), rows, user, 30)
    expected = reference_match(personas, rows, user, 30)
    assert len(found_rows) == len(set(found_rows.tolist()))
    assert set(found_rows.tolist()) == set(expected)
    for row, sim in zip(found_rows.tolist(), found_sims.tolist(), strict=True):
        assert abs(sim - expected[row]) < 1e-5


def test_results_are_best_first() -> None:
    rng = np.random.default_rng(5)
    personas = unit(rng, (200, 8))
    _, sims = match(flat(personas), np.arange(200, dtype=np.int32), unit(rng, (1, 8)), 50)
    assert np.all(np.diff(sims) <= 1e-7)


def test_k_larger_than_the_catalog_returns_every_campaign() -> None:
    rng = np.random.default_rng(6)
    personas = unit(rng, (7, 8))
    found_rows, _ = match(flat(personas), np.arange(7, dtype=np.int32), unit(rng, (1, 8)), 100)
    assert sorted(found_rows.tolist()) == list(range(7))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-1, 40), max_size=120),
    st.integers(1, 15),
)
def test_each_campaign_is_kept_once_at_its_first_place(labels: list[int], campaigns: int) -> None:
    persona_rows = (np.arange(41) % campaigns).astype(np.int32)
    scores = np.sort(np.random.default_rng(len(labels)).random(len(labels)).astype(np.float32))[::-1]
    expected_rows: list[int] = []
    expected_scores: list[float] = []
    for label, score in zip(labels, scores.tolist(), strict=True):
        if label >= 0 and int(persona_rows[label]) not in expected_rows:
            expected_rows.append(int(persona_rows[label]))
            expected_scores.append(score)
    rows, sims = best_per_campaign(persona_rows, np.array(labels, dtype=np.int64), scores.copy())
    assert (rows.tolist(), sims.tolist()) == (expected_rows, expected_scores)
