"""No-bid reasons. Mirrors `personabid.v1.NoBidReason` (a test keeps the two equal); the core does not
import protobuf.

COPPA_RESTRICTED (504) and NO_CONSENT (508) are kept for the callers that decode them, but the decision
does not answer them: privacy limits what the user vector may use (decision/restrictions.py), not
whether to bid, so such requests are bid on their context."""

from __future__ import annotations

from enum import IntEnum


class NoBid(IntEnum):
    UNKNOWN_ERROR = 0
    TECHNICAL_ERROR = 1
    INVALID_REQUEST = 2
    UNMATCHED_USER = 8
    INSUFFICIENT_AUCTION_TIME = 15
    BELOW_FLOOR = 500
    NO_ELIGIBLE_CAMPAIGN = 501
    BUDGET_EXHAUSTED = 502
    FREQUENCY_CAPPED = 503
    COPPA_RESTRICTED = 504  # not answered (see above)
    NOT_READY = 505
    STATE_UNAVAILABLE = 506
    PACED = 507
    NO_CONSENT = 508  # not answered (see above)
    CAPACITY_REACHED = 509
    UNSUPPORTED_CURRENCY = 510
    NO_FITTING_CREATIVE = 511
    SEAT_BLOCKED = 512


# How far an impression got before it lost every candidate; the response reports the furthest.
PROGRESS = {
    NoBid.UNMATCHED_USER: 0,
    NoBid.NO_ELIGIBLE_CAMPAIGN: 1,
    NoBid.UNSUPPORTED_CURRENCY: 2,
    NoBid.NO_FITTING_CREATIVE: 3,
    NoBid.BELOW_FLOOR: 4,
    NoBid.BUDGET_EXHAUSTED: 5,
}
