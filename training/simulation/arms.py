"""The arm a simulated request falls in, computed as the server computes it (the experiment file's
assignment rule), so that what the simulator drew can be told apart by arm without asking the server.

u = the first 8 bytes of HMAC-SHA256(key=salt, msg=pseudonym) as a big-endian integer / 2^64; the arm is
the first whose cumulative share exceeds u. A request without a user id is assigned by
"auction:" + its request id. The pseudonym is the server's keyed hash of the raw id: the simulator reads
the same key (the data directory's pseudonym.key, or PERSONABID_PSEUDONYM_KEY) and never writes an id.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from personabid.errors import ConfigError
from personabid.privacy import KEY_ENV, Pseudonymizer

AUCTION_PREFIX = "auction:"
NO_ARM = "none"


@dataclass(frozen=True)
class Split:
    """An experiment as far as assignment goes."""

    name: str
    salt: str
    arms: tuple[str, ...]
    bounds: tuple[float, ...]  # cumulative shares
    control: str

    def arm(self, message: str) -> str:
        digest = hmac.new(self.salt.encode(), message.encode(), hashlib.sha256).digest()
        u = int.from_bytes(digest[:8], "big") / 2.0**64
        for name, bound in zip(self.arms, self.bounds, strict=True):
            if bound > u:
                return name
        return self.arms[-1]

    def label(self, message: str) -> str:
        return f"{self.name}:{self.arm(message)}"


def read_split(path: Path) -> tuple[Split, str]:
    """The experiment of a TOML file (C4's format) and its text. The server checks the file in full when
    it is put; this reads what assignment needs and names the field when that is missing."""
    text = path.read_text()
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML: {exc}") from None
    for name in ("name", "salt", "arms"):
        if name not in document:
            raise ConfigError(f"{path}: {name} missing")
    arms = document["arms"]
    if not isinstance(arms, list) or not arms or not all(isinstance(a, dict) for a in arms):
        raise ConfigError(f"{path}: arms={arms!r}: expected [[arms]] tables")
    names, shares = [], []
    for i, arm in enumerate(arms):
        share = arm.get("share")
        if not isinstance(arm.get("name"), str) or not isinstance(share, int | float) or share < 0:
            raise ConfigError(f"{path}: arms[{i}]={arm!r}: expected a name and a share >= 0")
        names.append(arm["name"])
        shares.append(float(share))
    control = document.get("control", names[0])
    if control not in names:
        raise ConfigError(f"{path}: control={control!r}: not an arm (arms: {names})")
    bounds = tuple(itertools.accumulate(shares))
    split = Split(str(document["name"]), str(document["salt"]), tuple(names), bounds, control)
    return split, text


def read_pseudonymizer(key_file: Path) -> Pseudonymizer | None:
    """The server's pseudonymisation, if its key can be read here; None otherwise (a key is never made
    up: one that is not the server's would put users in the wrong arms)."""
    if os.environ.get(KEY_ENV):
        return Pseudonymizer(os.environ[KEY_ENV].encode())
    if key_file.is_file():
        return Pseudonymizer(key_file.read_text().strip().encode())
    return None
