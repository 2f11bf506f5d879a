"""Profile lookups at bid time: the embedded store at 1,000,000 profiles of 20 tags each, and the Redis round
trip; and the memory a profile takes in the artifact.

The profiles are synthetic (random keys, 20 distinct tags each, random weights), written once per session
as a real artifact and memory-mapped as a server maps it. Each lookup takes the next of 10,000 random
users, so that the binary search does not run on a cache-hot key. Untimed (`--benchmark-disable`, as `make
test` runs them) the artifact holds 100,000 users, enough to check the answers without a long build.

Redis holds a sample of the users (100,000 timed, 2,000 untimed): a GET costs the same whatever the number
of keys, and pushing a million would only lengthen the session.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from personabid.bench.processes import RedisProcess
from personabid.decision.blend import Blender
from personabid.index.vocab import Vocabulary
from personabid.privacy import Pseudonymizer
from personabid.profiles.artifact import (
    ARRAYS,
    ProfileArrays,
    Profiles,
    key_check,
    load_profiles,
    write_profiles,
)
from personabid.profiles.redis_store import RedisProfiles
from personabid.profiles.store import EmbeddedProfiles, open_embedded
from personabid.profiles.suppression import Suppression
from personabid.profiles.taxonomy import standard

USERS, UNTIMED_USERS = 1_000_000, 100_000
TAGS_PER_USER = 20
SAMPLE = 10_000
KEY = Pseudonymizer(b"benchmark-profile-key-0123456789")
VOCAB = standard().vocabulary()  # the standard vocabulary, which the blend's rules are written for
DIMS = VOCAB.dims
# What a typical request carries besides the id: a page category, the device and the country.
CONTEXT = ("cat:IAB17-1", "os:ios", "devicetype:4", "country:USA")


def synthetic(users: int, rng: np.random.Generator) -> ProfileArrays:
    keys = np.unique(rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, users, dtype=np.int64))
    users = len(keys)  # two draws alike in 2^64 are unlikely, but possible
    # Distinct tags per user: a random start and a stride coprime with DIMS.
    start = rng.integers(0, DIMS, (users, 1))
    tags = ((start + 7 * np.arange(TAGS_PER_USER)) % DIMS).astype(np.uint16).ravel()
    return ProfileArrays(
        keys=keys,
        offsets=np.arange(0, users * TAGS_PER_USER + 1, TAGS_PER_USER, dtype=np.int64),
        tags=tags,
        weights=rng.uniform(0.01, 1.0, users * TAGS_PER_USER).astype(np.float32),
        kinds=rng.integers(1, 512, users * TAGS_PER_USER).astype(np.uint16),
    )


def pseudonym_of(key: int) -> str:
    # Any pseudonym whose first 64 bits are the key finds the user; the rest is not stored.
    return f"{key & (1 << 64) - 1:016x}" + "0" * 16


@pytest.fixture(scope="session")
def profiles(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Profiles]:
    users = UNTIMED_USERS if request.config.getoption("benchmark_disable") else USERS
    root = tmp_path_factory.mktemp("profiles")
    fields = {"key_check": key_check(KEY), "engine": "synthetic", "report": {}}
    write_profiles(root, synthetic(users, np.random.default_rng(5)), VOCAB, fields)
    yield load_profiles(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def store(profiles: Profiles) -> EmbeddedProfiles:
    return open_embedded(profiles.directory, VOCAB, KEY, Suppression(None))


@pytest.fixture(scope="session")
def sample(profiles: Profiles) -> list[str]:
    rows = np.random.default_rng(6).choice(profiles.arrays.users, SAMPLE, replace=False)
    return [pseudonym_of(int(profiles.arrays.keys[r])) for r in rows]


def test_embedded_lookup(benchmark: BenchmarkFixture, store: EmbeddedProfiles, sample: list[str]) -> None:
    for pseudonym in sample[:100]:
        found = store.lookup(pseudonym)
        assert found is not None and len(found) == TAGS_PER_USER
    users = itertools.cycle(sample)
    found = benchmark(lambda: store.lookup(next(users)))
    assert found is not None
    benchmark.extra_info["users"] = store.users


def test_embedded_lookup_and_blend(
    benchmark: BenchmarkFixture, store: EmbeddedProfiles, sample: list[str]
) -> None:
    """What the decision spends on the user vector of a known user: the lookup, and the blend of the profile
    with the request's context (the issue's budget: 20 us at 1,000,000 profiles)."""
    blender = Blender(VOCAB, standard(), (1.0, 0.6, 0.4))
    users = itertools.cycle(sample)

    def user_vector() -> tuple[np.ndarray | None, tuple[str, ...]]:
        return blender.blend(store.lookup(next(users)), (), CONTEXT)

    vector, sources = benchmark(user_vector)
    assert vector is not None and sources == ("profile", "context")
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    benchmark.extra_info["users"] = store.users


def test_embedded_lookup_of_an_unknown_user(benchmark: BenchmarkFixture, store: EmbeddedProfiles) -> None:
    strangers = itertools.cycle([KEY(f"stranger-{i}") for i in range(SAMPLE)])
    assert benchmark(lambda: store.lookup(next(strangers))) is None


def test_embedded_lookup_through_a_vocabulary_remap(
    benchmark: BenchmarkFixture, profiles: Profiles, sample: list[str]
) -> None:
    # The index's vocabulary in another order and without a tenth of the tags: a gather and a filter.
    index_vocab = Vocabulary(tuple(reversed(VOCAB.tags))[: DIMS - DIMS // 10])
    remapped = EmbeddedProfiles(profiles, index_vocab, Suppression(None))
    users = itertools.cycle(sample)
    found = benchmark(lambda: remapped.lookup(next(users)))
    assert found is not None and len(found) <= TAGS_PER_USER and int(found.positions.max()) < index_vocab.dims


def test_memory_per_profile(benchmark: BenchmarkFixture, profiles: Profiles) -> None:
    arrays = profiles.arrays
    total = sum(getattr(arrays, name).nbytes for name in ARRAYS)
    per_user = total / arrays.users
    # keys 8 + offsets 8 + per tag 2 (position) + 4 (weight) + 2 (kinds)
    assert per_user == pytest.approx(16 + 8 * TAGS_PER_USER, abs=0.01)
    benchmark.extra_info.update({"bytes": total, "users": arrays.users, "bytes_per_profile": per_user})
    benchmark(lambda: None)


@pytest.fixture(scope="module")
def redis_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, profiles: Profiles
) -> Iterator[RedisProfiles]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is missing: `make deps` installs it (Debian package redis-server)")
    server = RedisProcess(binary, tmp_path_factory.mktemp("redis")).start()
    try:
        store = RedisProfiles(server.url, VOCAB, timeout_seconds=0.05)
        pushed = 2_000 if request.config.getoption("benchmark_disable") else 100_000
        arrays = profiles.arrays
        part = ProfileArrays(
            keys=np.asarray(arrays.keys[:pushed]),
            offsets=np.asarray(arrays.offsets[: pushed + 1]),
            tags=np.asarray(arrays.tags[: pushed * TAGS_PER_USER]),
            weights=np.asarray(arrays.weights[: pushed * TAGS_PER_USER]),
            kinds=np.asarray(arrays.kinds[: pushed * TAGS_PER_USER]),
        )
        assert (
            store.push(Profiles(profiles.version, profiles.directory, VOCAB, part, profiles.manifest))
            == pushed
        )
        yield store
    finally:
        server.stop()


def test_redis_round_trip(
    benchmark: BenchmarkFixture, redis_store: RedisProfiles, store: EmbeddedProfiles, profiles: Profiles
) -> None:
    pushed = min(2_000, profiles.arrays.users)
    held = [pseudonym_of(int(k)) for k in profiles.arrays.keys[:pushed]]
    for pseudonym in held[:50]:
        from_redis, embedded = redis_store.lookup(pseudonym), store.lookup(pseudonym)
        assert from_redis is not None and embedded is not None
        assert from_redis.positions.tolist() == embedded.positions.tolist()
        assert from_redis.weights.tobytes() == embedded.weights.tobytes()
    users = itertools.cycle(held)
    found = benchmark(lambda: redis_store.lookup(next(users)))
    assert found is not None
