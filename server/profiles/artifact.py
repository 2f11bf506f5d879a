"""The profile artifact: one version of every user's tag profile, as the builder writes it and a server
reads it.

A versioned directory like the index's (personabid.artifact: written aside, renamed into place, every
file checksummed in the manifest and verified on load). Files of a version:

    manifest.json   kind "user-profiles", format 1; users, entries, dims, the build's parameters
                    (half_life_days, as_of, retention_days, max_tags), key_check, engine, report
    vocab.json      the tag names that `tags` positions refer to
    keys.npy        int64 (users,), ascending: each user's key (`user_key` of the pseudonym)
    offsets.npy     int64 (users + 1,): user i's entries are [offsets[i], offsets[i + 1])
    tags.npy        uint16 (entries,): tag positions in vocab.json
    weights.npy     float32 (entries,): the tag's weight, in (0, 1]
    kinds.npy       uint16 (entries,): bit mask of the event types that gave the tag (EVENT_KINDS order)
    state.parquet   the daily state an incremental build folds new events into (the server never reads it)

Users are stored by key, not by pseudonym: the first 64 bits of the 128-bit pseudonym are enough to tell
a billion users apart (two of them share a key with probability about 3e-2 at 10^9 users, 3e-8 at 10^6),
and a sorted int64 column can be memory-mapped and binary-searched by every worker without a hash table
per process. `key_check` is the pseudonym of a fixed probe id under the builder's key: a server whose key
differs would find nobody, so it refuses the artifact instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personabid.artifact import read_manifest, resolve, write_artifact
from personabid.errors import ArtifactError
from personabid.index.vocab import Vocabulary

KIND = "user-profiles"
FORMAT_VERSION = 1
EVENT_KINDS = (
    "page_view",
    "app_use",
    "search",
    "purchase",
    "declared",
    "location",
    "device",
    "click",
    "conversion",
)
KEY_PROBE = "personabid-key-check"
ARRAYS = ("keys", "offsets", "tags", "weights", "kinds")


def user_key(pseudonym: str) -> int:
    """The int64 key a user is stored under: the pseudonym's first 64 bits, big-endian, signed."""
    return int.from_bytes(bytes.fromhex(pseudonym[:16]), "big", signed=True)


def key_check(pseudonymize: Callable[[str], str]) -> str:
    return pseudonymize(KEY_PROBE)


@dataclass(frozen=True)
class ProfileArrays:
    """Every user's profile in compressed sparse rows, users in ascending key order."""

    keys: np.ndarray  # int64 (users,)
    offsets: np.ndarray  # int64 (users + 1,)
    tags: np.ndarray  # uint16 (entries,)
    weights: np.ndarray  # float32 (entries,)
    kinds: np.ndarray  # uint16 (entries,)

    def __post_init__(self) -> None:
        users, entries = len(self.keys), len(self.tags)
        if len(self.offsets) != users + 1 or self.offsets[0] != 0 or self.offsets[-1] != entries:
            raise ArtifactError(f"profile offsets do not span {entries} entries of {users} users")
        if len(self.weights) != entries or len(self.kinds) != entries:
            raise ArtifactError("profile tags, weights and kinds differ in length")
        if users > 1 and not bool(np.all(self.keys[1:] > self.keys[:-1])):
            raise ArtifactError("profile keys are not strictly ascending")

    @property
    def users(self) -> int:
        return len(self.keys)

    def user(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tags, weights, kinds) of user row `i`."""
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.tags[start:stop], self.weights[start:stop], self.kinds[start:stop]

    def find(self, key: int) -> int:
        """The row of the user with `key`, or -1."""
        i = int(np.searchsorted(self.keys, key))
        return i if i < len(self.keys) and int(self.keys[i]) == key else -1


@dataclass(frozen=True)
class Profiles:
    """A loaded, verified version of the profile artifact."""

    version: str
    directory: Path
    vocab: Vocabulary
    arrays: ProfileArrays
    manifest: dict[str, Any]

    @property
    def key_check(self) -> str:
        return str(self.manifest.get("key_check", ""))


def write_profiles(
    root: Path,
    arrays: ProfileArrays,
    vocab: Vocabulary,
    fields: dict[str, Any],
    state: Callable[[Path], None] | None = None,
) -> Path:
    """Write a new version under `root` (made CURRENT) and return its directory. `state` writes
    state.parquet, when the build has one to keep."""

    def saver(array: np.ndarray) -> Callable[[Path], None]:
        return lambda path: np.save(path, array, allow_pickle=False)

    files: dict[str, Callable[[Path], None]] = {"vocab.json": vocab.save}
    files.update({f"{name}.npy": saver(getattr(arrays, name)) for name in ARRAYS})
    if state is not None:
        files["state.parquet"] = state
    manifest = {"users": arrays.users, "entries": len(arrays.tags), "dims": vocab.dims, **fields}
    return write_artifact(root, KIND, FORMAT_VERSION, files, manifest)


def load_profiles(path: Path, mmap: bool = True) -> Profiles:
    """Load and verify a profile version (or the CURRENT version of a profile root). The arrays are
    memory-mapped by default: every worker shares the page cache's one copy."""
    directory = resolve(path)
    manifest = read_manifest(directory, KIND, (FORMAT_VERSION,))
    vocab = Vocabulary.load(directory / "vocab.json")
    try:
        loaded = {
            name: np.load(directory / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
            for name in ARRAYS
        }
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{directory}: unreadable profiles: {exc}") from exc
    expected = {"keys": np.int64, "offsets": np.int64, "tags": np.uint16, "weights": np.float32,
                "kinds": np.uint16}  # fmt: skip
    for name, dtype in expected.items():
        if loaded[name].dtype != dtype or loaded[name].ndim != 1:
            raise ArtifactError(f"{directory}/{name}.npy: {loaded[name].dtype} {loaded[name].shape}, "
                                f"expected a column of {np.dtype(dtype)}")  # fmt: skip
    arrays = ProfileArrays(**loaded)
    if arrays.users != int(manifest.get("users", -1)):
        raise ArtifactError(f"{directory}: {arrays.users} users, manifest says {manifest.get('users')}")
    if len(arrays.tags) and int(arrays.tags.max()) >= vocab.dims:
        raise ArtifactError(f"{directory}: a tag position beyond the {vocab.dims} tags of vocab.json")
    return Profiles(str(manifest["version"]), directory, vocab, arrays, manifest)
