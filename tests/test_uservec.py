"""User vector stage against an obviously correct reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.decision.uservec import strongest_tags, user_vector
from personabid.index.vocab import Vocabulary
from personabid.openrtb.request import Tag

VOCAB = Vocabulary(("age:18-24", "interest:travel", "interest:golf", "intent:auto"))


def test_dense_vector_is_l2_normalised() -> None:
    given = np.array([3.0, 0.0, 4.0, 0.0], dtype=np.float32)
    vector = user_vector(given, (), VOCAB)
    assert vector is not None
    np.testing.assert_allclose(vector, [[0.6, 0.0, 0.8, 0.0]], rtol=1e-6)


def test_sparse_tags_land_on_their_vocabulary_positions() -> None:
    vector = user_vector(None, (Tag(id="intent:auto", weight=2.0), Tag(id="age:18-24", weight=2.0)), VOCAB)
    assert vector is not None
    reference = np.array([[2.0, 0.0, 0.0, 2.0]]) / np.sqrt(8.0)
    np.testing.assert_allclose(vector, reference, rtol=1e-6)


def test_sparse_tags_unknown_to_the_vocabulary_are_ignored() -> None:
    vector = user_vector(
        None, (Tag(id="interest:golf", weight=1.0), Tag(id="interest:chess", weight=5.0)), VOCAB
    )
    assert vector is not None
    np.testing.assert_allclose(vector, [[0.0, 0.0, 1.0, 0.0]])


def test_profile_without_weight_has_no_vector() -> None:
    assert user_vector(np.zeros(4, dtype=np.float32), (), VOCAB) is None
    assert user_vector(None, (Tag(id="interest:chess", weight=1.0),), VOCAB) is None


def test_strongest_tags_are_the_heaviest_first_ties_by_position() -> None:
    user = np.array([0.2, 0.5, 0.2, 0.0, 0.7, 0.5], dtype=np.float32)
    assert strongest_tags(user, 4).tolist() == [4, 1, 5, 0]


def test_strongest_tags_leave_out_non_positive_weights_and_pad_with_minus_one() -> None:
    user = np.array([[0.0, -0.5, 0.3, 0.0]], dtype=np.float32)
    assert strongest_tags(user, 3).tolist() == [2, -1, -1]


# Weights from a few values, so that ties are common; NaN, infinities and subnormals too.
WEIGHTS = st.lists(
    st.sampled_from([0.0, -0.0, 0.5, 0.5, 1.0, -1.0, 1e-45, 3.4e38, float("inf"), float("nan")])
    | st.floats(width=32),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(weights=WEIGHTS, count=st.integers(0, 90))
def test_strongest_tags_equal_a_sorted_reference(weights: list[float], count: int) -> None:
    user = np.array(weights, dtype=np.float32)
    positive = [i for i in range(len(user)) if user[i] > 0]  # NaN is not
    reference = sorted(positive, key=lambda i: (-float(user[i]), i))[:count]
    assert strongest_tags(user, count).tolist() == reference + [-1] * (count - len(reference))


def test_strongest_tags_refuse_a_negative_count() -> None:
    with pytest.raises(ValueError, match="count=-1"):
        strongest_tags(np.ones(3, dtype=np.float32), -1)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def test_a_weight_at_float32s_limit_is_still_a_direction() -> None:
    vector = user_vector(
        None, (Tag(id="interest:golf", weight=3.4e38), Tag(id="intent:auto", weight=3.4e38)), VOCAB
    )
    assert vector is not None
    np.testing.assert_allclose(vector, [[0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)]], rtol=1e-6)


def test_a_dense_vector_of_huge_weights_is_normalised_without_overflow() -> None:
    vector = user_vector(np.full(4, 1e20, dtype=np.float32), (), VOCAB)
    assert vector is not None
    np.testing.assert_allclose(vector, np.full((1, 4), 0.5), rtol=1e-6)


def test_weights_spanning_float32s_range_keep_their_proportions() -> None:
    given = np.array([FLOAT32_MAX, -FLOAT32_MAX, 1e-45, 0.0], dtype=np.float32)
    vector = user_vector(given, (), VOCAB)
    assert vector is not None
    np.testing.assert_allclose(vector, [[np.sqrt(0.5), -np.sqrt(0.5), 0.0, 0.0]], atol=1e-7)


def test_tiny_weights_alone_are_a_profile_not_an_underflow() -> None:
    vector = user_vector(np.array([1e-30, 0.0, 1e-30, 0.0], dtype=np.float32), (), VOCAB)
    assert vector is not None
    np.testing.assert_allclose(vector, [[np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0]], rtol=1e-6)
