"""The embedded profile store and the suppression list: every stored user is found with its tags, weights
and event kinds, in the index's vocabulary by tag name; unknown and suppressed users are not; an artifact
built with another pseudonymisation key is refused."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personabid.errors import ArtifactError
from personabid.index.vocab import Vocabulary
from personabid.privacy import Pseudonymizer
from personabid.profiles.artifact import (
    EVENT_KINDS,
    ProfileArrays,
    key_check,
    load_profiles,
    user_key,
    write_profiles,
)
from personabid.profiles.store import EmbeddedProfiles, Profile, open_embedded, parse_key
from personabid.profiles.suppression import Suppression, append

KEY = Pseudonymizer(b"profile-store-test-key-0123456789")
OTHER_KEY = Pseudonymizer(b"another-key-entirely-9876543210")
TAGS = (*tuple(f"interest:topic-{i}" for i in range(40)), "age:25-29", "gender:female", "region:USA")
VOCAB = Vocabulary(TAGS)


@dataclass(frozen=True)
class Stored:
    """What a test wrote: per raw id, its profile as {tag name: (weight, kinds)}."""

    root: Path
    users: dict[str, dict[str, tuple[float, int]]]

    def pseudonym(self, raw: str) -> str:
        return KEY(raw)


def profile_arrays(
    users: dict[str, dict[str, tuple[float, int]]], vocab: Vocabulary, pseudonymize: Pseudonymizer = KEY
) -> ProfileArrays:
    """The artifact's arrays of `users` (raw id -> {tag: (weight, kinds)}), in key order."""
    rows = sorted((user_key(pseudonymize(raw)), profile) for raw, profile in users.items())
    offsets, tags, weights, kinds = [0], [], [], []
    for _, profile in rows:
        for tag, (weight, mask) in profile.items():
            tags.append(vocab.position(tag))
            weights.append(weight)
            kinds.append(mask)
        offsets.append(len(tags))
    return ProfileArrays(
        keys=np.array([k for k, _ in rows], dtype=np.int64),
        offsets=np.array(offsets, dtype=np.int64),
        tags=np.array(tags, dtype=np.uint16),
        weights=np.array(weights, dtype=np.float32),
        kinds=np.array(kinds, dtype=np.uint16),
    )


def write_users(
    root: Path,
    users: dict[str, dict[str, tuple[float, int]]],
    vocab: Vocabulary = VOCAB,
    pseudonymize: Pseudonymizer = KEY,
) -> Path:
    fields = {
        "half_life_days": 30.0,
        "as_of": 1_800_000_000.0,
        "retention_days": 365,
        "max_tags": 64,
        "key_check": key_check(pseudonymize),
        "engine": "test",
        "report": {},
    }
    return write_profiles(root, profile_arrays(users, vocab, pseudonymize), vocab, fields)


def random_users(rng: np.random.Generator, count: int, vocab: Vocabulary = VOCAB) -> dict[str, dict]:
    users = {}
    for i in range(count):
        chosen = rng.choice(vocab.dims, size=int(rng.integers(1, 8)), replace=False)
        users[f"user-{i}"] = {
            vocab.tags[t]: (
                float(np.float32(rng.uniform(0.01, 1.0))),
                int(rng.integers(1, 1 << len(EVENT_KINDS))),
            )
            for t in chosen
        }
    return users


def as_dict(profile: Profile, vocab: Vocabulary) -> dict[str, tuple[float, int]]:
    assert profile.positions.dtype == np.int32
    assert profile.weights.dtype == np.float32 and profile.kinds.dtype == np.uint16
    return {
        vocab.tags[p]: (float(w), int(k))
        for p, w, k in zip(
            profile.positions.tolist(), profile.weights.tolist(), profile.kinds.tolist(), strict=True
        )
    }


def store_of(
    root: Path, vocab: Vocabulary = VOCAB, suppression: Suppression | None = None
) -> EmbeddedProfiles:
    return open_embedded(root, vocab, KEY, suppression or Suppression(None))


# -- lookups ---------------------------------------------------------------------------------------------

profiles_strategy = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.dictionaries(
        st.sampled_from(TAGS),
        st.tuples(
            st.floats(0.0009765625, 1.0, width=32),
            st.integers(1, (1 << len(EVENT_KINDS)) - 1),
        ),
        min_size=0,
        max_size=10,
    ),
    max_size=30,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(users=profiles_strategy)
def test_every_stored_user_is_found_with_its_tags_weights_and_kinds(users: dict) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = store_of(write_users(Path(directory), users))
        assert store.users == len(users)
        for raw, profile in users.items():
            found = store.lookup(KEY(raw))
            assert found is not None
            assert as_dict(found, VOCAB) == profile
        assert store.lookup(KEY("somebody never profiled")) is None


def test_unknown_and_malformed_pseudonyms_find_nobody(tmp_path: Path, rng: np.random.Generator) -> None:
    users = random_users(rng, 50)
    store = store_of(write_users(tmp_path, users))
    assert store.lookup(KEY("nobody")) is None
    assert store.lookup("") is None  # a request without any id
    assert store.lookup("not hex at all, not a pseudonym") is None
    assert store.lookup("0123") is None  # shorter than a key
    assert parse_key("") is None
    # A key smaller or larger than every stored one.
    assert store.lookup("8000000000000000" + "0" * 16) is None
    assert store.lookup("7fffffffffffffff" + "f" * 16) is None


def test_the_arrays_come_from_the_memory_map_and_are_read_only(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    users = random_users(rng, 20)
    store = store_of(write_users(tmp_path, users))
    found = store.lookup(KEY("user-3"))
    assert found is not None
    assert not found.weights.flags.writeable and not found.kinds.flags.writeable
    assert store.version == load_profiles(tmp_path).version


def test_an_empty_profile_is_found_empty(tmp_path: Path) -> None:
    store = store_of(write_users(tmp_path, {"quiet": {}, "loud": {"age:25-29": (1.0, 1)}}))
    quiet = store.lookup(KEY("quiet"))
    assert quiet is not None and len(quiet) == 0


# -- the vocabulary remap --------------------------------------------------------------------------------


def test_tags_are_remapped_to_the_index_vocabulary_by_name(tmp_path: Path, rng: np.random.Generator) -> None:
    users = random_users(rng, 200)
    write_users(tmp_path, users)
    # The index knows the tags in another order, lacks some, and has some the profiles never use.
    order = list(rng.permutation(TAGS))
    missing = set(order[:5])
    index_vocab = Vocabulary((*tuple(t for t in order if t not in missing), "interest:new-one", "device:ios"))
    store = store_of(tmp_path, index_vocab)
    assert set(store.dropped_tags) == missing
    for raw, profile in users.items():
        found = store.lookup(KEY(raw))
        assert found is not None
        assert as_dict(found, index_vocab) == {t: v for t, v in profile.items() if t not in missing}


def test_a_user_whose_every_tag_is_unknown_to_the_index_has_an_empty_profile(tmp_path: Path) -> None:
    write_users(tmp_path, {"a": {"region:USA": (0.5, 32)}, "b": {"age:25-29": (0.4, 16)}})
    store = store_of(tmp_path, Vocabulary(("age:25-29",)))
    a, b = store.lookup(KEY("a")), store.lookup(KEY("b"))
    assert a is not None and len(a) == 0
    assert b is not None and b.positions.tolist() == [0] and b.kinds.tolist() == [16]


# -- the key check ---------------------------------------------------------------------------------------


def test_an_artifact_built_with_another_key_is_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    write_users(tmp_path, random_users(rng, 10), pseudonymize=OTHER_KEY)
    with pytest.raises(ArtifactError, match="key_check") as raised:
        store_of(tmp_path)
    assert str(tmp_path) in str(raised.value)


def test_an_artifact_without_a_key_check_is_refused(tmp_path: Path) -> None:
    arrays = profile_arrays({"a": {"age:25-29": (1.0, 1)}}, VOCAB)
    write_profiles(tmp_path, arrays, VOCAB, {"report": {}})
    with pytest.raises(ArtifactError, match="key_check"):
        store_of(tmp_path)


# -- suppression -----------------------------------------------------------------------------------------


def test_suppressed_users_are_never_returned_also_after_the_list_changes(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    users = random_users(rng, 100)
    listed = tmp_path / "profiles.suppressed"
    listed.write_text(f"# erasures\n{KEY('user-1')}\n\n{KEY('user-2')}  # by mail, 2026-11-02\n")
    suppression = Suppression(listed)
    store = store_of(write_users(tmp_path / "profiles", users), suppression=suppression)
    assert store.lookup(KEY("user-1")) is None and store.lookup(KEY("user-2")) is None
    assert store.lookup(KEY("user-3")) is not None
    assert not suppression.refresh()  # unchanged: nothing re-read

    append(listed, KEY("user-3"))
    assert store.lookup(KEY("user-3")) is not None  # until the server's watch loop refreshes
    assert suppression.refresh()
    assert store.lookup(KEY("user-3")) is None

    listed.write_text(f"{KEY('user-2')}\n")  # rewritten by hand: user-1 and user-3 are back
    assert suppression.refresh()
    assert store.lookup(KEY("user-1")) is not None and store.lookup(KEY("user-3")) is not None
    assert store.lookup(KEY("user-2")) is None
    assert suppression.keys().tolist() == [user_key(KEY("user-2"))]


def test_the_list_may_appear_and_disappear(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    listed = tmp_path / "missing" / "profiles.suppressed"
    suppression = Suppression(listed)
    assert len(suppression) == 0 and suppression.keys().dtype == np.int64
    append(listed, KEY("a"))  # creates the directory and the file
    assert suppression.refresh() and KEY("a") in suppression
    os.unlink(listed)
    with caplog.at_level(logging.WARNING, logger="personabid.profiles.suppression"):
        assert suppression.refresh()
    assert KEY("a") not in suppression
    assert any("disappeared" in r.getMessage() for r in caplog.records)


def test_lines_that_are_not_pseudonyms_are_counted_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    listed = tmp_path / "profiles.suppressed"
    listed.write_text(f"alice@example.com\n{KEY('b')}\nxyz\n")
    with caplog.at_level(logging.WARNING, logger="personabid.profiles.suppression"):
        suppression = Suppression(listed)
    assert KEY("b") in suppression and len(suppression) == 1
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "2 lines" in messages and "alice" not in messages


def test_a_last_line_being_written_is_read_once_whole(tmp_path: Path) -> None:
    listed = tmp_path / "profiles.suppressed"
    whole = KEY("c")
    listed.write_text(f"{KEY('b')}\n{whole[:10]}")  # an append caught half-way
    suppression = Suppression(listed)
    assert len(suppression) == 1
    listed.write_text(f"{KEY('b')}\n{whole}\n")
    assert suppression.refresh() and whole in suppression


def test_append_after_a_last_line_without_newline_keeps_both(tmp_path: Path) -> None:
    listed = tmp_path / "profiles.suppressed"
    listed.write_text(KEY("a"))
    append(listed, KEY("b"))
    assert listed.read_text().splitlines() == [KEY("a"), KEY("b")]
    with pytest.raises(ValueError):
        append(listed, "a raw id")


@settings(max_examples=50, deadline=None)
@given(ids=st.lists(st.text(min_size=1, max_size=20), max_size=20), comments=st.booleans())
def test_suppression_holds_exactly_the_listed_pseudonyms(ids: list[str], comments: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        listed = Path(directory) / "s"
        for raw in ids:
            append(listed, KEY(raw))
        if comments:
            with listed.open("a") as handle:
                handle.write("# a comment\n\n")
        suppression = Suppression(listed)
        assert set(suppression.keys().tolist()) == {user_key(KEY(r)) for r in ids}
        keys = suppression.keys()
        assert bool(np.all(keys[1:] > keys[:-1]))
        assert all(KEY(r) in suppression for r in ids)
        assert KEY("never listed " + "x" * 21) not in suppression
