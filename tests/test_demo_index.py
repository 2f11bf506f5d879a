"""The demo world's index is tuned on its people's user vectors, which it builds its profiles for first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from personabid.demo import TUNING_ORIGIN, people_user_vectors, read_people, read_world
from personabid.index.bundle import load_index


def test_demo_index_records_that_it_was_tuned_on_its_people(demo_dir: Path) -> None:
    recall = load_index(demo_dir / "index").manifest.recall
    assert (recall.source, recall.origin) == ("supplied", TUNING_ORIGIN)
    assert min(recall.value, recall.held_out) >= recall.target


def test_people_user_vectors_are_unit_vectors_that_use_the_profiles(demo_dir: Path) -> None:
    world = read_world(demo_dir)
    vocab = load_index(demo_dir / "index").vocab
    users = people_user_vectors(
        demo_dir, world, read_people(demo_dir, world), vocab, 50, np.random.default_rng(0)
    )
    assert users.shape == (50, vocab.dims)
    np.testing.assert_allclose(np.linalg.norm(users, axis=1), 1.0, rtol=1e-5)
    # A profile adds tags of families a request's context has none of (age, gender, income).
    demographic = [vocab.position(tag) for tag in vocab.tags if tag.split(":", 1)[0] in ("age", "gender")]
    assert (users[:, demographic] > 0).any(axis=1).mean() > 0.5
