"""Which arm of an experiment a user is in: a keyed hash of the user's pseudonym, nothing else.

u = the first 8 bytes of HMAC-SHA256(key=salt, msg=pseudonym), big-endian, / 2^64, uniform in [0, 1);
the arm is the first whose cumulative share exceeds u. It is a pure function of the salt and the
pseudonym, so every worker and every machine puts a user in the same arm, on every request (sticky),
with no state shared; experiments with different salts hash independently, so the arm a user has in one
says nothing of the arm they have in another. The pseudonym is the server's keyed hash of the user id
(privacy.Pseudonymizer), the same one its logs and conversions carry, so a report can recompute it.

A request with no user id, or one whose user may not be profiled (restrictions.py), is assigned by its
auction: msg = "auction:" + the request id.
"""

from __future__ import annotations

import functools

from personabid.decision.pipeline import user_key_of
from personabid.decision.restrictions import restriction
from personabid.experiments.spec import Arm, Experiment
from personabid.keyed_hash import KeyedHash
from personabid.openrtb.request import BidRequest

AUCTION_PREFIX = "auction:"


def unit(salt: str, message: str) -> float:
    """The point in [0, 1) that `message` hashes to under `salt` (HMAC-SHA256)."""
    digest = _keyed(salt).digest(message.encode("utf-8"))
    return int.from_bytes(digest[:8], "big") / 2.0**64


@functools.lru_cache(maxsize=64)  # a salt an experiment, a few experiments running
def _keyed(salt: str) -> KeyedHash:
    return KeyedHash(salt.encode("utf-8"))


def arm_index(experiment: Experiment, message: str) -> int:
    """The index of the arm that `message` (a pseudonym, or "auction:" + a request id) is assigned to."""
    u = unit(experiment.salt, message)
    for i, bound in enumerate(experiment.bounds):
        if bound > u:
            return i
    # Shares sum to 1 within rounding: a u above the last bound belongs to the last arm with a share.
    return max(i for i, arm in enumerate(experiment.arms) if arm.share > 0)


def arm_of(experiment: Experiment, message: str) -> Arm:
    return experiment.arms[arm_index(experiment, message)]


def assignment_key(request: BidRequest) -> str:
    """What a request is assigned by: its user's pseudonym (the id frequency caps count, pipeline's
    user_key_of), or "auction:" + its id when it has none or its user may not be profiled. The request's
    ids must already be pseudonyms (openrtb.codec.pseudonymised)."""
    if restriction(request) is None:
        user = user_key_of(request)
        if user:
            return user
    return AUCTION_PREFIX + request.id


def labels(experiments: tuple[Experiment, ...], message: str) -> tuple[str, ...]:
    """ "experiment:arm" for each of `experiments` (sorted by name), for `message`."""
    return tuple(f"{e.name}:{arm_of(e, message).name}" for e in experiments)
