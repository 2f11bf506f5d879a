"""Lookalike personas: centroids of a seed audience recover the segments planted in it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from personabid.index.lookalike import centroid_count, lookalike_personas, read_seed_audience
from personabid.index.vocab import Vocabulary

DIMS = 64


def planted(rng: np.random.Generator, segments: int, per_segment: int) -> tuple[np.ndarray, np.ndarray]:
    """Seed users drawn around `segments` sparse centres: (users, unit centres)."""
    centres = np.zeros((segments, DIMS), dtype=np.float32)
    for s in range(segments):
        centres[s, rng.choice(DIMS, size=8, replace=False)] = rng.uniform(0.5, 1.0, size=8)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    members = np.repeat(np.arange(segments), per_segment)
    shape = (len(members), DIMS)
    users = centres[members] * (rng.random(shape) > 0.15) * rng.uniform(0.7, 1.3, shape)
    users = np.maximum(users + rng.normal(0, 0.03, users.shape), 0).astype(np.float32)
    return users, centres


def test_centroids_recover_the_planted_segments() -> None:
    rng = np.random.default_rng(0)
    users, centres = planted(rng, segments=4, per_segment=250)
    centroids = lookalike_personas(users)
    similarity = centres @ centroids.T
    assert similarity.max(axis=1).min() > 0.95, "every planted segment has a centroid on it"
    assert similarity.max(axis=0).min() > 0.9, "every centroid sits on a planted segment"


def test_centroids_are_unit_vectors() -> None:
    users, _ = planted(np.random.default_rng(1), segments=2, per_segment=200)
    np.testing.assert_allclose(np.linalg.norm(lookalike_personas(users), axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(("seeds", "k"), [(10, 1), (199, 1), (250, 2), (800, 8), (100_000, 8)])
def test_centroid_count_grows_with_the_seed(seeds: int, k: int) -> None:
    assert centroid_count(seeds) == k


def test_small_seed_gives_one_persona_at_its_mean() -> None:
    users, centres = planted(np.random.default_rng(2), segments=1, per_segment=50)
    personas = lookalike_personas(users)
    assert personas.shape == (1, DIMS)
    assert float(personas[0] @ centres[0]) > 0.98


def test_seed_audience_reads_tag_objects_and_dense_lists(tmp_path: Path) -> None:
    vocab = Vocabulary(tuple(f"interest:t{i}" for i in range(4)))
    lines = [json.dumps({"interest:t1": 1.0})] * 6 + [json.dumps([0, 0, 1, 0])] * 6
    (tmp_path / "seed.jsonl").write_text("\n".join(lines) + "\n")
    users = read_seed_audience(tmp_path / "seed.jsonl", vocab)
    assert users.shape == (12, 4) and users[0, 1] == 1.0 and users[-1, 2] == 1.0


def test_seed_audience_with_a_bad_line_names_it(tmp_path: Path) -> None:
    vocab = Vocabulary(("interest:a", "interest:b"))
    (tmp_path / "seed.jsonl").write_text('{"interest:a": 1}\n[1, 2, 3]\n')
    with pytest.raises(ValueError, match="line 2"):
        read_seed_audience(tmp_path / "seed.jsonl", vocab)


def test_too_small_seed_audience_is_refused(tmp_path: Path) -> None:
    vocab = Vocabulary(("interest:a", "interest:b"))
    (tmp_path / "seed.jsonl").write_text('{"interest:a": 1}\n' * 3)
    with pytest.raises(ValueError, match="at least"):
        read_seed_audience(tmp_path / "seed.jsonl", vocab)
