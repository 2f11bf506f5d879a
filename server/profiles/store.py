"""Profile stores: a user's tag profile by pseudonym, at bid time.

Two stores answer the same protocol. `EmbeddedProfiles` reads the profile artifact, memory-mapped, so that
every worker shares the page cache's one copy and a lookup is a binary search and three slices.
`RedisProfiles` (personabid.profiles.redis_store) reads one key per lookup, for deployments that update
profiles continuously. Both return positions in the *serving index's* vocabulary, remapped by tag name,
so that a profile built against one vocabulary still means the same tags after the index changes its
own; and neither ever returns the profile of a suppressed user (personabid.profiles.suppression).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from personabid.errors import ArtifactError, PersonabidError
from personabid.index.vocab import Vocabulary
from personabid.profiles.artifact import Profiles, key_check, load_profiles
from personabid.profiles.suppression import Suppression

KEY_HEX = 16  # the hex digits of a pseudonym that make its key (artifact.user_key)


class ProfileUnavailable(PersonabidError):
    """The profile store cannot answer now (Redis down or slow): bid on what the request carries."""


@dataclass(frozen=True, slots=True, eq=False)
class Profile:
    """One user's profile: tag positions in the serving index's vocabulary, with weights and the bit mask
    of the event kinds (artifact.EVENT_KINDS) each tag came from. Read-only arrays."""

    positions: np.ndarray  # int32
    weights: np.ndarray  # float32
    kinds: np.ndarray  # uint16

    def __len__(self) -> int:
        return len(self.positions)


class ProfileStore(Protocol):
    version: str

    def lookup(self, pseudonym: str) -> Profile | None:
        """The user's profile; None for a user the store does not know, or one who is suppressed. Raises
        ProfileUnavailable when the store cannot answer."""
        ...


def parse_key(pseudonym: str) -> int | None:
    """The user key of a pseudonym (artifact.user_key), or None for a string that is not one (an empty
    id must not find the user whose key happens to be 0)."""
    if len(pseudonym) < KEY_HEX:
        return None
    try:
        return int.from_bytes(bytes.fromhex(pseudonym[:KEY_HEX]), "big", signed=True)
    except ValueError:
        return None


def remap_positions(source: Vocabulary, target: Vocabulary) -> np.ndarray:
    """int32 (source.dims,): each source tag's position in `target` by name, -1 where it has none."""
    return np.array([target.position(tag) for tag in source.tags], dtype=np.int32).reshape(-1)


class EmbeddedProfiles:
    """The profile artifact as a store. The tag remap to the index's vocabulary is computed once, here;
    tags the index does not know are left out of every profile."""

    def __init__(self, profiles: Profiles, vocab: Vocabulary, suppressed: Suppression) -> None:
        self.profiles = profiles
        self.version = profiles.version
        self.vocab = vocab
        self.suppressed = suppressed
        arrays = profiles.arrays
        # Plain ndarray views of the memory maps: slicing an np.memmap costs about ten times as much
        # (its __array_finalize__), and a lookup slices three of them.
        self._keys = np.asarray(arrays.keys)
        self._tags = np.asarray(arrays.tags)
        self._weights = np.asarray(arrays.weights)
        self._kinds = np.asarray(arrays.kinds)
        # Indexing a memoryview gives a Python int without a numpy scalar in between.
        self._key_at = self._keys.data if len(self._keys) else None
        self._offset_at = np.asarray(arrays.offsets).data
        self._users = len(self._keys)
        remap = remap_positions(profiles.vocab, vocab)
        self.dropped_tags = tuple(
            t for t, p in zip(profiles.vocab.tags, remap.tolist(), strict=True) if p < 0
        )
        self._remap = remap
        self._drops = bool(self.dropped_tags)
        # Same names at the same positions: a cast instead of a gather.
        self._identity = not self._drops and bool(np.array_equal(remap, np.arange(len(remap))))

    @property
    def users(self) -> int:
        return self._users

    def lookup(self, pseudonym: str) -> Profile | None:
        key = parse_key(pseudonym)
        if key is None or self.suppressed.has_key(key):
            return None
        i = int(self._keys.searchsorted(key))
        if i >= self._users or self._key_at is None or self._key_at[i] != key:
            return None
        start, stop = self._offset_at[i], self._offset_at[i + 1]
        tags = self._tags[start:stop]
        weights = self._weights[start:stop]
        kinds = self._kinds[start:stop]
        if self._identity:
            return Profile(tags.astype(np.int32), weights, kinds)
        positions = self._remap[tags]
        if self._drops:
            kept = positions >= 0
            if not kept.all():
                return Profile(positions[kept], weights[kept], kinds[kept])
        return Profile(positions, weights, kinds)


def open_embedded(
    path: Path, vocab: Vocabulary, pseudonymize: Callable[[str], str], suppression: Suppression
) -> EmbeddedProfiles:
    """Load the profile artifact at `path` (a version, or a root's CURRENT one) as a store for the index
    vocabulary `vocab`. An artifact whose users were pseudonymised with another key than `pseudonymize`'s
    is refused: every lookup would miss, and the server would bid as if it knew nobody."""
    profiles = load_profiles(path)
    check_key(profiles, pseudonymize)
    return EmbeddedProfiles(profiles, vocab, suppression)


def check_key(profiles: Profiles, pseudonymize: Callable[[str], str]) -> None:
    """Raise ArtifactError unless `profiles` was built with the pseudonymisation key of `pseudonymize`."""
    if not profiles.key_check:
        raise ArtifactError(f"{profiles.directory}: the profile manifest has no key_check; refusing it")
    if profiles.key_check != key_check(pseudonymize):
        raise ArtifactError(
            f"{profiles.directory}: key_check mismatch: the profiles were pseudonymised with another key "
            "than this server's (PERSONABID_PSEUDONYM_KEY or the pseudonym key file); refusing them"
        )
