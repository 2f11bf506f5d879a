"""Profiles in a real Redis: what `push` writes, a lookup reads back exactly as the embedded store does, in
the index's vocabulary by name; a stopped or hung Redis makes lookups raise ProfileUnavailable (never
another error), and the outage is logged once when it starts and once when it ends."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.index.vocab import Vocabulary
from personabid.profiles.artifact import load_profiles, user_key
from personabid.profiles.redis_store import (
    HEADER,
    VOCAB_PREFIX,
    RedisProfiles,
    pack,
    profile_key,
    safe_url,
    unpack,
    vocabulary_id,
)
from personabid.profiles.store import ProfileUnavailable, open_embedded
from personabid.profiles.suppression import Suppression, append
from tests.conftest import RedisServer
from tests.test_profile_store import KEY, TAGS, VOCAB, as_dict, random_users, write_users

LOGGER = "personabid.profiles.redis_store"
TIMEOUT = 0.5  # generous: a loaded test machine must not turn a healthy Redis into an outage


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


@settings(max_examples=100, deadline=None)
@given(
    entries=st.lists(
        st.tuples(st.integers(0, 65535), st.floats(0, 1, width=32), st.integers(0, 65535)), max_size=64
    ),
    vocab_id=st.binary(min_size=8, max_size=8),
)
def test_a_packed_value_unpacks_to_what_was_packed(entries: list, vocab_id: bytes) -> None:
    tags = np.array([e[0] for e in entries], dtype=np.uint16)
    weights = np.array([e[1] for e in entries], dtype=np.float32)
    kinds = np.array([e[2] for e in entries], dtype=np.uint16)
    value = pack(vocab_id, tags, weights, kinds)
    assert len(value) == HEADER.size + 8 * len(entries)
    got_id, got_tags, got_weights, got_kinds = unpack(value)
    assert got_id == vocab_id
    assert got_tags.tolist() == tags.tolist() and got_kinds.tolist() == kinds.tolist()
    assert got_weights.tobytes() == weights.tobytes()


@pytest.mark.parametrize("value", [b"", b"\x02\x00" + bytes(14), pack(b"12345678", *[np.zeros(2)] * 3)[:-1]])
def test_a_value_that_is_not_a_packed_profile_is_refused(value: bytes) -> None:
    with pytest.raises(ValueError):
        unpack(value)


def test_the_redis_round_trip_equals_the_embedded_store(
    tmp_path: Path, redis_server: RedisServer, rng: np.random.Generator
) -> None:
    users = random_users(rng, 300)
    root = write_users(tmp_path / "profiles", users)
    # The index's vocabulary differs from the profiles' (order, a missing tag): both stores map by name.
    index_vocab = Vocabulary(tuple(reversed(TAGS[1:])))
    embedded = open_embedded(root, index_vocab, KEY, Suppression(None))
    store = RedisProfiles(redis_server.url, index_vocab, timeout_seconds=TIMEOUT)
    assert store.push(load_profiles(root), batch=64) == len(users)
    for raw in users:
        from_redis, from_artifact = store.lookup(KEY(raw)), embedded.lookup(KEY(raw))
        assert from_redis is not None and from_artifact is not None
        assert as_dict(from_redis, index_vocab) == as_dict(from_artifact, index_vocab)
        assert TAGS[0] not in as_dict(from_redis, index_vocab)
    assert store.lookup(KEY("nobody")) is None
    assert store.lookup("") is None


def test_a_lookup_is_one_get_by_the_users_key(tmp_path: Path, redis_server: RedisServer) -> None:
    root = write_users(tmp_path, {"ann": {"age:25-29": (0.5, 1 << 4)}})
    RedisProfiles(redis_server.url, VOCAB, timeout_seconds=TIMEOUT).push(load_profiles(root))
    client = redis.Redis.from_url(redis_server.url)
    key = profile_key(user_key(KEY("ann")))
    assert key == "personabid:profile:" + KEY("ann")[:16]
    value = client.get(key)
    assert isinstance(value, bytes)
    vocab_id, tags, weights, kinds = unpack(value)
    assert vocab_id == vocabulary_id(VOCAB)
    assert (
        [VOCAB.tags[t] for t in tags] == ["age:25-29"]
        and weights.tolist() == [0.5]
        and kinds.tolist() == [16]
    )
    stored = client.hgetall(VOCAB_PREFIX + vocab_id.hex())
    names = {text(p): text(n) for p, n in stored.items()}
    assert [names[str(i)] for i in range(len(names))] == list(TAGS)


def test_suppressed_users_are_neither_pushed_nor_returned(
    tmp_path: Path, redis_server: RedisServer, rng: np.random.Generator
) -> None:
    users = random_users(rng, 20)
    root = write_users(tmp_path / "profiles", users)
    listed = tmp_path / "profiles.suppressed"
    append(listed, KEY("user-1"))
    suppression = Suppression(listed)
    store = RedisProfiles(redis_server.url, VOCAB, timeout_seconds=TIMEOUT, suppressed=suppression)
    assert store.push(load_profiles(root)) == len(users) - 1
    assert store.held(KEY("user-1")) is None
    assert store.lookup(KEY("user-2")) is not None
    append(listed, KEY("user-2"))  # pushed, then suppressed: refused at lookup
    suppression.refresh()
    assert store.lookup(KEY("user-2")) is None
    assert store.held(KEY("user-2")) is not None  # still held, until forgotten


def test_forget_deletes_at_once(tmp_path: Path, redis_server: RedisServer, rng: np.random.Generator) -> None:
    users = random_users(rng, 5)
    store = RedisProfiles(redis_server.url, VOCAB, timeout_seconds=TIMEOUT)
    store.push(load_profiles(write_users(tmp_path, users)))
    assert store.lookup(KEY("user-0")) is not None
    assert store.forget(KEY("user-0"))
    assert store.lookup(KEY("user-0")) is None
    assert not store.forget(KEY("user-0"))


def test_a_profile_under_an_unknown_vocabulary_is_not_used(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    value = pack(b"\x00" * 8, np.array([1], np.uint16), np.array([1.0], np.float32), np.array([1], np.uint16))
    client.set(profile_key(user_key(KEY("x"))), value)
    client.set(profile_key(user_key(KEY("y"))), b"garbage")
    store = RedisProfiles(redis_server.url, VOCAB, timeout_seconds=TIMEOUT)
    assert store.lookup(KEY("x")) is None
    assert store.lookup(KEY("y")) is None


def test_a_stopped_redis_raises_profile_unavailable_and_the_outage_is_logged_once_each_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, rng: np.random.Generator
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = RedisServer(tmp_path).start()
    clock = Clock(1000.0)
    store = RedisProfiles(server.url, VOCAB, timeout_seconds=TIMEOUT, retry_seconds=1.0, clock=clock)
    try:
        profiles = load_profiles(write_users(tmp_path / "profiles", random_users(rng, 5)))
        store.push(profiles)
        assert store.lookup(KEY("user-0")) is not None
        server.stop()
        for _ in range(20):  # twenty requests meet the outage, some inside the retry delay
            clock.now += 0.6
            with pytest.raises(ProfileUnavailable):
                store.lookup(KEY("user-0"))
        during = outage_lines(caplog)
        assert store.outage_started == 1000.6
        server.start()
        clock.now += 2.0
        assert store.lookup(KEY("user-0")) is None  # answered: the restarted Redis holds nothing yet
        store.push(profiles)
        assert store.lookup(KEY("user-0")) is not None
    finally:
        server.stop()
    assert len(during) == 1 and "unreachable" in during[0]
    after = outage_lines(caplog)
    assert len(after) == 2 and "reachable again after 13.4 s" in after[1]
    assert store.outage_started is None


def test_a_hung_redis_costs_one_timeout_then_fails_fast(tmp_path: Path, rng: np.random.Generator) -> None:
    server = RedisServer(tmp_path).start()
    store = RedisProfiles(server.url, VOCAB, timeout_seconds=0.05, retry_seconds=60.0)
    try:
        store.push(load_profiles(write_users(tmp_path / "profiles", random_users(rng, 5))))
        assert store.lookup(KEY("user-0")) is not None
        server.pause()
        started = time.monotonic()
        with pytest.raises(ProfileUnavailable):
            store.lookup(KEY("user-0"))
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(100):
            with pytest.raises(ProfileUnavailable):
                store.lookup(KEY("user-1"))
        rest = time.monotonic() - started
    finally:
        server.stop()
    assert first < 1.0  # the timeout, not redis-py's retries with backoff
    assert rest < 0.1  # inside the retry delay, no lookup waits on Redis


def test_the_url_is_reported_without_its_password() -> None:
    assert safe_url("redis://:secret@host:6379/0") == "redis://:***@host:6379/0"
    assert safe_url("redis://user:secret@host/1") == "redis://user:***@host/1"
    assert safe_url("redis://host:6379/0") == "redis://host:6379/0"
    assert "secret" not in RedisProfiles("redis://:secret@127.0.0.1:1/0", VOCAB).version
