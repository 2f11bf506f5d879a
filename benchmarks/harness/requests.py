"""The requests a load process sends: demo-world users, serialized once, each sent with a fresh id.

Serializing in the load loop would spend client CPU that the server's figures do not need; a pool of
pre-serialized requests is sent as raw bytes instead. Every call still carries a unique auction id,
written over the id field of its template, so that spend control sees distinct auctions (as it would from
an exchange) rather than one reservation overwritten again and again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from personabid.client import sample_request
from personabid.demo import read_world

ID_LENGTH = 32  # sample_request's ids are uuid4 hex
# protobuf writes fields in number order: id (field 1, length-delimited) leads, as tag 0x0A, length 32.
ID_PREFIX = bytes((0x0A, ID_LENGTH))


def request_pool(world_dir: Path, count: int, seed: int) -> list[bytes]:
    """`count` serialized BidRequests for random users of the demo world in `world_dir`."""
    world = read_world(world_dir)
    rng = np.random.default_rng(seed)
    pool = [sample_request(world, rng).SerializeToString() for _ in range(count)]
    for template in pool:
        if not template.startswith(ID_PREFIX):
            raise ValueError("a request template does not start with its 32-character id")
    return pool


class RequestStream:
    """Requests from a pool in turn, each with a new id: `prefix` (a few hex digits) plus a counter.

    Each template starts with `id_prefix` (the encoding's bytes before the id: protobuf's tag and length
    by default, `{"id":"` for JSON) and its ID_LENGTH-character id, which is replaced."""

    def __init__(self, pool: list[bytes], prefix: int, id_prefix: bytes = ID_PREFIX) -> None:
        self._bodies = [template[len(id_prefix) + ID_LENGTH :] for template in pool]
        self._id_prefix = id_prefix
        self._prefix = prefix
        self._sent = 0

    def next(self) -> bytes:
        body = self._bodies[self._sent % len(self._bodies)]
        auction = b"%08x%024x" % (self._prefix, self._sent)
        self._sent += 1
        return self._id_prefix + auction + body
