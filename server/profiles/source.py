"""Where a server's profile store comes from: made once per index vocabulary and profile version.

A store answers in the serving index's vocabulary, so a new index version needs a new store (a remap by
tag name, cheap), and so does a new profile version (the artifact, loaded and verified: checksums, and the
key it was built with). The reloader asks this source for both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from personabid.artifact import CURRENT, MANIFEST
from personabid.index.vocab import Vocabulary
from personabid.profiles.artifact import Profiles, load_profiles
from personabid.profiles.redis_store import RedisProfiles
from personabid.profiles.store import EmbeddedProfiles, ProfileStore, check_key
from personabid.profiles.suppression import Suppression

log = logging.getLogger(__name__)


class ProfileSource:
    def __init__(
        self,
        kind: str,
        root: Path,
        suppression: Suppression,
        pseudonymize: Callable[[str], str],
        redis_url: str = "",
        timeout_seconds: float = 0.005,
    ) -> None:
        self.kind = kind  # "embedded", "redis" or "none" (config.PROFILE_STORES)
        self.root = root
        self.suppression = suppression
        self._pseudonymize = pseudonymize
        self._redis_url = redis_url
        self._timeout = timeout_seconds

    @property
    def watched(self) -> bool:
        """Whether the profile artifact root is the server's to load and watch for new versions."""
        return self.kind == "embedded"

    def present(self) -> bool:
        return (self.root / CURRENT).is_file() or (self.root / MANIFEST).is_file()

    def load(self, directory: Path | None = None) -> Profiles:
        """A profile version (default: the root's CURRENT), verified, built with this server's key."""
        profiles = load_profiles(directory or self.root)
        check_key(profiles, self._pseudonymize)
        return profiles

    def store(self, vocab: Vocabulary, artifact: Profiles | None) -> ProfileStore | None:
        """The store for an index of `vocab`: over `artifact` (embedded), or Redis; None without one."""
        if self.kind == "redis":
            return RedisProfiles(self._redis_url, vocab, self._timeout, self.suppression)
        if self.kind == "embedded" and artifact is not None:
            return EmbeddedProfiles(artifact, vocab, self.suppression)
        return None
