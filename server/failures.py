"""How each domain error is answered: one table, used by every RPC and by the HTTP door.

A failure is answered by its status code on a unary call, by its HTTP status on the HTTP door, by its
no-bid reason inside a stream (where a status would end the stream for the other auctions on it), and
counted by its outcome in the metrics.
The decision core raises the errors; only the serving layer reads this table.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from personabid.decision.reasons import NoBid
from personabid.errors import ArtifactError, InvalidRequest, NotReady, ShuttingDown
from personabid.notices import ForgedNotice
from personabid.spend.store import StateUnavailable


@dataclass(frozen=True)
class Failure:
    code: grpc.StatusCode  # the status of a unary call
    nbr: NoBid  # the no-bid reason inside a stream
    outcome: str  # the `outcome` label of personabid_bid_requests_total
    http: int  # the HTTP status
    expected: bool = True  # False: a fault of ours, logged with its traceback (at a bounded rate)


FAILURES: dict[type[Exception], Failure] = {
    InvalidRequest: Failure(grpc.StatusCode.INVALID_ARGUMENT, NoBid.INVALID_REQUEST, "invalid", 400),
    # A notice whose signature does not hold: it adds or removes nothing.
    ForgedNotice: Failure(grpc.StatusCode.PERMISSION_DENIED, NoBid.INVALID_REQUEST, "forged", 403),
    NotReady: Failure(grpc.StatusCode.UNAVAILABLE, NoBid.NOT_READY, "unavailable", 503),
    ShuttingDown: Failure(grpc.StatusCode.UNAVAILABLE, NoBid.NOT_READY, "unavailable", 503),
    StateUnavailable: Failure(grpc.StatusCode.UNAVAILABLE, NoBid.STATE_UNAVAILABLE, "unavailable", 503),
    ArtifactError: Failure(grpc.StatusCode.FAILED_PRECONDITION, NoBid.TECHNICAL_ERROR, "refused", 503),
}
UNEXPECTED = Failure(grpc.StatusCode.INTERNAL, NoBid.TECHNICAL_ERROR, "error", 500, expected=False)
# What a client is told of an unexpected failure: its details stay in the server's log.
UNEXPECTED_DETAIL = "internal error"


def failure_of(error: BaseException) -> Failure:
    """The table's entry for `error`'s class or its nearest listed base; UNEXPECTED for anything else."""
    for kind in type(error).__mro__:
        failure = FAILURES.get(kind)
        if failure is not None:
            return failure
    return UNEXPECTED


def detail_of(error: BaseException) -> str:
    """The message a client gets: the error's own for expected failures, nothing of ours otherwise."""
    return str(error) if failure_of(error).expected else UNEXPECTED_DETAIL
