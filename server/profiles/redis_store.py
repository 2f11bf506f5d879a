"""Profiles in Redis, for deployments that update them continuously: one GET per lookup, with a short
timeout; an outage makes lookups raise ProfileUnavailable (the bid goes on with the context alone) and is
logged once when it starts and once when it ends.

Keys:

    personabid:profile:<16 hex digits>     a user's packed profile, by the user's key (the pseudonym's
                                           first 64 bits, as the artifact stores users: artifact.user_key)
    personabid:profile-vocab:<vocab id>    hash: tag position -> tag name, of the vocabulary the profiles
                                           packed with that id refer to

A value is a 16-byte header (value format, tag count, vocabulary id) and then the tags' float32 weights,
uint16 positions and uint16 event-kind masks, little-endian. The vocabulary id is a hash of the tag names
in order: a reader maps positions to its index's vocabulary by name, through the hash it reads once per
id, so that profiles pushed under an older vocabulary keep their meaning after the index changes its own.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from personabid.errors import ArtifactError
from personabid.index.vocab import Vocabulary
from personabid.lograte import RateLimitedLog
from personabid.profiles.artifact import Profiles
from personabid.profiles.store import Profile, ProfileUnavailable, parse_key
from personabid.profiles.suppression import Suppression

log = logging.getLogger(__name__)

PROFILE_PREFIX = "personabid:profile:"
VOCAB_PREFIX = "personabid:profile-vocab:"
VALUE_FORMAT = 1
HEADER = struct.Struct("<HH8s4x")  # value format, tags, vocabulary id; 16 bytes keep the weights aligned
KEY_MASK = (1 << 64) - 1
ADMIN_TIMEOUT = 30.0  # push, forget and show are offline commands, not bound by a bid's tmax


def profile_key(key: int) -> str:
    """The Redis key of the user with key `key`."""
    return f"{PROFILE_PREFIX}{key & KEY_MASK:016x}"


def vocabulary_id(vocab: Vocabulary) -> bytes:
    return hashlib.sha256("\n".join(vocab.tags).encode()).digest()[:8]


def pack(vocab_id: bytes, tags: np.ndarray, weights: np.ndarray, kinds: np.ndarray) -> bytes:
    return b"".join(
        (
            HEADER.pack(VALUE_FORMAT, len(tags), vocab_id),
            np.asarray(weights, dtype="<f4").tobytes(),
            np.asarray(tags, dtype="<u2").tobytes(),
            np.asarray(kinds, dtype="<u2").tobytes(),
        )
    )


def unpack(value: bytes) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """(vocabulary id, tags, weights, kinds) of a packed value; ValueError if it is not one."""
    if len(value) < HEADER.size:
        raise ValueError(f"{len(value)} bytes, shorter than the header")
    version, count, vocab_id = HEADER.unpack_from(value)
    if version != VALUE_FORMAT:
        raise ValueError(f"value format {version}, expected {VALUE_FORMAT}")
    if len(value) != HEADER.size + 8 * count:
        raise ValueError(f"{len(value)} bytes for {count} tags")
    weights = np.frombuffer(value, dtype="<f4", count=count, offset=HEADER.size)
    tags = np.frombuffer(value, dtype="<u2", count=count, offset=HEADER.size + 4 * count)
    kinds = np.frombuffer(value, dtype="<u2", count=count, offset=HEADER.size + 6 * count)
    return vocab_id, tags, weights, kinds


def safe_url(url: str) -> str:
    """`url` without its password, fit for logs and printed reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" if parts.username else f":***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _client(url: str, timeout: float) -> redis.Redis:
    # No retries: redis-py's default retries a timed-out call with backoff, which would turn a 5 ms
    # bound into hundreds of milliseconds. A lookup that fails is answered without the profile.
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


class RedisProfiles:
    """Profiles in Redis as a store for the index vocabulary `vocab`. After a failed call, lookups raise
    ProfileUnavailable at once for `retry_seconds` rather than each waiting out the timeout."""

    def __init__(
        self,
        url: str,
        vocab: Vocabulary,
        timeout_seconds: float = 0.005,
        suppressed: Suppression | None = None,
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.vocab = vocab
        self.suppressed = suppressed if suppressed is not None else Suppression(None)
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.version = f"redis:{safe_url(url)}"
        self._redis = _client(url, timeout_seconds)
        self._admin: redis.Redis | None = None
        # vocabulary id -> (remap to self.vocab, whether it drops tags); read once per id
        self._remaps: dict[bytes, tuple[np.ndarray, bool]] = {}
        self._down_until = 0.0
        self._outage_started: float | None = None
        self._outage_lock = threading.Lock()
        self._bad = RateLimitedLog(log)

    # -- availability --------------------------------------------------------------------------------

    @property
    def outage_started(self) -> float | None:
        """When the current outage began (clock time), or None while Redis answers."""
        return self._outage_started

    def _call(self, action: Callable[[], Any]) -> Any:
        if self._down_until and self.clock() < self._down_until:
            raise ProfileUnavailable("the profile store is unreachable; retrying shortly")
        try:
            result = action()
        except redis.RedisError as exc:
            self._went_down(exc)
            raise ProfileUnavailable(f"redis: {exc}") from exc
        if self._outage_started is not None:  # the common case is read without the lock
            self._came_back()
        return result

    def _went_down(self, error: Exception) -> None:
        now = self.clock()
        self._down_until = now + self.retry_seconds
        # One line when the outage starts and one when it ends, however many lookups meet it: the
        # caller counts the lookups that went without a profile.
        with self._outage_lock:
            if self._outage_started is not None:
                return
            self._outage_started = now
            log.warning("profile store unreachable (%s): bidding on context only until it answers", error)

    def _came_back(self) -> None:
        with self._outage_lock:
            if self._outage_started is not None:
                log.warning("profile store reachable again after %.1f s", self.clock() - self._outage_started)
                self._outage_started = None
                self._down_until = 0.0

    # -- bid time ------------------------------------------------------------------------------------

    def lookup(self, pseudonym: str) -> Profile | None:
        key = parse_key(pseudonym)
        if key is None or self.suppressed.has_key(key):
            return None
        value = self._call(lambda: self._redis.get(profile_key(key)))
        if value is None:
            return None
        try:
            vocab_id, tags, weights, kinds = unpack(value)
        except ValueError as exc:
            self._bad.log(logging.WARNING, "value", "unreadable profile value in Redis: %s", exc)
            return None
        remapped = self._remaps.get(vocab_id)
        if remapped is None:
            remapped = self._read_remap(vocab_id)
            if remapped is None:
                return None
        remap, drops = remapped
        if len(tags) and int(tags.max()) >= len(remap):
            self._bad.log(logging.WARNING, "value", "a profile in Redis has a tag beyond its vocabulary")
            return None
        positions = remap[tags]
        if drops:
            kept = positions >= 0
            if not kept.all():
                return Profile(positions[kept], weights[kept], kinds[kept])
        return Profile(positions, weights, kinds)

    def _read_remap(self, vocab_id: bytes) -> tuple[np.ndarray, bool] | None:
        names = self._call(lambda: self._redis.hgetall(VOCAB_PREFIX + vocab_id.hex()))
        vocab = _vocabulary(names)
        if vocab is None:
            # Not cached: the vocabulary may be pushed in a moment (push writes it first).
            self._bad.log(
                logging.WARNING, "vocab", "no vocabulary %s in Redis for its profiles", vocab_id.hex()
            )
            return None
        remap = np.array([self.vocab.position(tag) for tag in vocab.tags], dtype=np.int32).reshape(-1)
        entry = (remap, bool((remap < 0).any()))
        self._remaps[vocab_id] = entry
        return entry

    # -- offline: push, forget, show ------------------------------------------------------------------

    def _admin_client(self) -> redis.Redis:
        if self._admin is None:
            self._admin = _client(self.url, ADMIN_TIMEOUT)
        return self._admin

    def _admin_call(self, action: Callable[[redis.Redis], Any]) -> Any:
        try:
            return action(self._admin_client())
        except redis.RedisError as exc:
            raise ProfileUnavailable(f"redis at {safe_url(self.url)}: {exc}") from exc

    def push(self, profiles: Profiles, batch: int = 10_000) -> int:
        """Write every user of `profiles` but the suppressed ones, in pipelined batches of `batch`
        users; the vocabulary first, so that a reader never meets a profile it cannot map. Returns the
        users written. Users already in Redis and absent from `profiles` are left as they are."""
        vocab_id = vocabulary_id(profiles.vocab)
        tags_of = profiles.vocab.tags
        self._admin_call(
            lambda r: (
                r.hset(VOCAB_PREFIX + vocab_id.hex(), mapping={str(i): t for i, t in enumerate(tags_of)})
                if tags_of
                else 0
            )
        )
        arrays = profiles.arrays
        keys = np.asarray(arrays.keys)
        keep = ~np.isin(keys, self.suppressed.keys())
        rows = np.flatnonzero(keep)
        offsets = np.asarray(arrays.offsets)
        weights = np.asarray(arrays.weights, dtype="<f4").view(np.uint8)
        tags = np.asarray(arrays.tags, dtype="<u2").view(np.uint8)
        kinds = np.asarray(arrays.kinds, dtype="<u2").view(np.uint8)
        for first in range(0, len(rows), batch):
            chunk = rows[first : first + batch].tolist()

            def write(r: redis.Redis, chunk: list[int] = chunk) -> None:
                pipe = r.pipeline(transaction=False)
                for i in chunk:
                    start, stop = int(offsets[i]), int(offsets[i + 1])
                    value = b"".join(
                        (
                            HEADER.pack(VALUE_FORMAT, stop - start, vocab_id),
                            weights[4 * start : 4 * stop].tobytes(),
                            tags[2 * start : 2 * stop].tobytes(),
                            kinds[2 * start : 2 * stop].tobytes(),
                        )
                    )
                    pipe.set(profile_key(int(keys[i])), value)
                pipe.execute()

            self._admin_call(write)
        return len(rows)

    def forget(self, pseudonym: str) -> bool:
        """Delete the user's profile now; True if Redis held one."""
        key = parse_key(pseudonym)
        if key is None:
            return False
        return bool(self._admin_call(lambda r: r.delete(profile_key(key))))

    def held(self, pseudonym: str) -> list[tuple[str, float, int]] | None:
        """What Redis holds about the user, by the names of the tags it was pushed with: (tag, weight,
        event-kind mask) per tag; None if nothing. Suppression is not applied: this is what is held."""
        key = parse_key(pseudonym)
        if key is None:
            return None
        value = self._admin_call(lambda r: r.get(profile_key(key)))
        if value is None:
            return None
        try:
            vocab_id, tags, weights, kinds = unpack(value)
        except ValueError as exc:
            raise ProfileUnavailable(f"unreadable profile value in Redis: {exc}") from exc
        vocab = _vocabulary(self._admin_call(lambda r: r.hgetall(VOCAB_PREFIX + vocab_id.hex())))
        names = vocab.tags if vocab is not None else ()
        return [
            (names[t] if t < len(names) else f"#{t}", float(w), int(k))
            for t, w, k in zip(tags.tolist(), weights.tolist(), kinds.tolist(), strict=True)
        ]


def _vocabulary(names: dict[bytes, bytes]) -> Vocabulary | None:
    """The vocabulary stored as a hash of position -> name; None if absent or not a sequence."""
    if not names:
        return None
    try:
        by_position = {int(p): n.decode() for p, n in names.items()}
    except (ValueError, UnicodeDecodeError):
        return None
    if sorted(by_position) != list(range(len(by_position))):
        return None
    try:
        return Vocabulary(tuple(by_position[i] for i in range(len(by_position))))
    except ArtifactError:  # duplicate names
        return None
