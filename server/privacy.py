"""Pseudonymisation: user ids leave the request only as a keyed hash (HMAC-SHA256).

A keyed hash, unlike a plain one, cannot be reversed by hashing a list of candidate ids without the key.
The key comes from PERSONABID_PSEUDONYM_KEY, or from a key file created on first use (mode 0600).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from personabid.keyed_hash import KeyedHash
from personabid.notices import notice_key

KEY_ENV = "PERSONABID_PSEUDONYM_KEY"


class Pseudonymizer:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a pseudonymisation key needs at least 16 bytes")
        self._key = key
        self._hash = KeyedHash(key)

    def signing_key(self) -> bytes:
        """The key that signs notice URLs: derived from this one, which never signs anything itself."""
        return notice_key(self._key)

    def __call__(self, user_id: str) -> str:
        if not user_id:
            return ""
        return self._hash.digest(user_id.encode()).hex()[:32]

    @classmethod
    def from_environment(cls, key_file: Path) -> Pseudonymizer:
        from_env = os.environ.get(KEY_ENV)
        if from_env:
            return cls(from_env.encode())
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
        return cls(key_file.read_text().strip().encode())
