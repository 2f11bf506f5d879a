"""The blended user vector against the formula it implements, on a small taxonomy of its own."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from personabid.decision.blend import Blender, key_table
from personabid.index.vocab import Vocabulary
from personabid.openrtb.request import Tag
from personabid.profiles.store import Profile
from personabid.profiles.taxonomy import Taxonomy

TAGS = (
    "interest:sports",
    "interest:sports/soccer",
    "interest:travel",
    "device:ios",
    "region:USA",
    "age:25-29",
)
TAXONOMY = Taxonomy(
    (*TAGS, "interest:chess"),
    (
        ("cat:IAB17", "interest:sports", 1.0),
        ("kw:soccer", "interest:sports", 0.5),
        ("kw:soccer", "interest:sports/soccer", 1.0),
        ("cat:IAB20", "interest:travel", 1.0),
        ("os:ios", "device:ios", 1.0),
        ("country:USA", "region:USA", 1.0),
        ("age:25-29", "age:25-29", 1.0),
        ("kw:chess", "interest:chess", 1.0),  # a tag the serving vocabulary does not have
    ),
)
VOCAB = Vocabulary(TAGS)
WEIGHTS = (1.0, 0.6, 0.4)


def blender(weights: tuple[float, float, float] = WEIGHTS) -> Blender:
    return Blender(VOCAB, TAXONOMY, weights)


def dense(weights: dict[str, float]) -> np.ndarray:
    return VOCAB.dense(weights).astype(np.float64)


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def profile(weights: dict[str, float]) -> Profile:
    positions = np.array([VOCAB.position(t) for t in weights], dtype=np.int32)
    return Profile(
        positions, np.array(list(weights.values()), dtype=np.float32), np.ones(len(weights), np.uint16)
    )


def test_a_key_lands_on_its_rules_tags_with_their_weights() -> None:
    vector, sources = blender().blend(context_keys=["kw:soccer"])
    assert vector is not None and sources == ("context",)
    np.testing.assert_allclose(
        vector[0], unit(dense({"interest:sports": 0.5, "interest:sports/soccer": 1.0})), rtol=1e-6
    )


def test_rules_onto_tags_the_vocabulary_lacks_are_left_out() -> None:
    assert "kw:chess" not in key_table(VOCAB, TAXONOMY)
    assert blender().blend(context_keys=["kw:chess", "cat:unknown"]) == (None, ())


def test_blend_is_the_weighted_sum_of_unit_sources_normalised() -> None:
    vector, sources = blender().blend(
        profile({"interest:travel": 0.8, "age:25-29": 0.3}),
        segment_keys=["kw:soccer"],
        context_keys=["cat:IAB17", "os:ios", "country:USA"],
    )
    expected = unit(
        1.0 * unit(dense({"interest:travel": 0.8, "age:25-29": 0.3}))
        + 0.6 * unit(dense({"interest:sports": 0.5, "interest:sports/soccer": 1.0}))
        + 0.4 * unit(dense({"interest:sports": 1.0, "device:ios": 1.0, "region:USA": 1.0}))
    )
    assert vector is not None and sources == ("profile", "segments", "context")
    np.testing.assert_allclose(vector[0], expected, rtol=1e-6, atol=1e-7)


def test_the_callers_tags_stand_for_the_profile_when_none_is_stored() -> None:
    vector, sources = blender().blend(
        segment_keys=["age:25-29"], tags=(Tag(id="interest:travel", weight=3.0), Tag(id="x:y", weight=9.0))
    )
    assert vector is not None and sources == ("profile", "segments")
    expected = unit(dense({"interest:travel": 1.0})) + 0.6 * unit(dense({"age:25-29": 1.0}))
    np.testing.assert_allclose(vector[0], unit(expected.reshape(1, -1))[0], rtol=1e-6)


def test_with_a_stored_profile_the_callers_tags_add_to_the_segments() -> None:
    stored = Profile(
        positions=np.array([3], dtype=np.int32),
        weights=np.array([1.0], dtype=np.float32),
        kinds=np.array([1], dtype=np.uint16),
    )
    vector, sources = blender().blend(
        profile=stored, segment_keys=["age:25-29"], tags=(Tag(id="interest:travel", weight=3.0),)
    )
    assert vector is not None and sources == ("profile", "segments")
    expected = unit(dense({VOCAB.tags[3]: 1.0})) + 0.6 * unit(
        dense({"interest:travel": 3.0, "age:25-29": 1.0})
    )
    np.testing.assert_allclose(vector[0], unit(expected.reshape(1, -1))[0], rtol=1e-6)


def test_a_dense_tag_vector_stands_for_the_profile() -> None:
    sent = np.array([0, 0, 2.0, 0, 0, 0], dtype=np.float32)
    vector, sources = blender().blend(segment_keys=["age:25-29"], tag_vector=sent)
    assert vector is not None and sources == ("profile", "segments")
    expected = unit(dense({"interest:travel": 1.0})) + 0.6 * unit(dense({"age:25-29": 1.0}))
    np.testing.assert_allclose(vector[0], unit(expected.reshape(1, -1))[0], rtol=1e-6)


def test_a_source_alone_is_its_own_unit_vector_whatever_its_weight() -> None:
    vector, sources = blender((1.0, 0.6, 1e-9)).blend(context_keys=["cat:IAB20"])
    assert vector is not None and sources == ("context",)
    np.testing.assert_allclose(vector[0], dense({"interest:travel": 1.0}))


def test_a_source_weighted_zero_is_not_used() -> None:
    vector, sources = blender((1.0, 0.0, 0.4)).blend(
        profile({"interest:travel": 1.0}), segment_keys=["kw:soccer"], context_keys=["os:ios"]
    )
    assert sources == ("profile", "context")
    assert vector is not None and vector[0, VOCAB.position("interest:sports")] == 0


def test_an_empty_profile_is_not_a_source() -> None:
    empty = Profile(np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.uint16))
    assert blender().blend(empty, context_keys=["os:ios"])[1] == ("context",)


def test_opposite_weights_that_cancel_leave_nothing_usable() -> None:
    vector, sources = blender((1.0, 1.0, 1.0)).blend(
        context_keys=["cat:IAB20"], tags=(Tag(id="interest:travel", weight=-1.0),)
    )
    assert vector is None and sources == ()


def test_nothing_at_all_is_none() -> None:
    assert blender().blend() == (None, ())


@pytest.mark.parametrize("weights", [(-1.0, 0.6, 0.4), (1.0, float("nan"), 0.4), (1.0, 0.6, float("inf"))])
def test_weights_that_are_negative_or_not_finite_are_refused(weights: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="blend weight"):
        blender(weights)


BLEND_WEIGHTS = st.floats(min_value=0.0, max_value=1.7e308, allow_nan=False, allow_infinity=False)
TAG_WEIGHTS = st.floats(allow_nan=False, allow_infinity=False, width=32)  # any finite float32


@given(
    st.tuples(BLEND_WEIGHTS, BLEND_WEIGHTS, BLEND_WEIGHTS),
    st.lists(st.floats(min_value=0.0, max_value=1.0, width=32, exclude_min=True), max_size=len(TAGS)),
    st.lists(st.sampled_from(["cat:IAB17", "kw:soccer", "os:ios", "age:25-29", "kw:chess"]), max_size=4),
    st.lists(st.sampled_from(["cat:IAB20", "country:USA", "os:ios"]), max_size=4),
    st.lists(TAG_WEIGHTS, max_size=3),
)
def test_any_weights_give_a_unit_vector_or_none(
    weights: tuple[float, float, float],
    stored: list[float],
    segment_keys: list[str],
    context_keys: list[str],
    sent: list[float],
) -> None:
    tags = tuple(Tag(id=TAGS[i], weight=w) for i, w in enumerate(sent))
    vector, sources = blender(weights).blend(
        profile(dict(zip(TAGS, stored, strict=False))), segment_keys, context_keys, tags
    )
    if vector is None:
        assert sources == ()
        return
    assert vector.shape == (1, VOCAB.dims) and vector.dtype == np.float32
    assert np.all(np.isfinite(vector))
    assert abs(float(np.linalg.norm(vector.astype(np.float64))) - 1.0) < 1e-5
    assert sources and set(sources) <= {"profile", "segments", "context"}


@given(st.tuples(BLEND_WEIGHTS, BLEND_WEIGHTS, BLEND_WEIGHTS).filter(lambda w: w[2] > 0))
def test_a_source_with_weight_always_gives_a_vector(weights: tuple[float, float, float]) -> None:
    vector, sources = blender(weights).blend(
        profile({"interest:travel": 1.0}), ["kw:soccer"], ["os:ios", "country:USA"]
    )
    assert vector is not None
    # The most heavily weighted source is always among those used.
    assert ("profile", "segments", "context")[int(np.argmax(weights))] in sources
