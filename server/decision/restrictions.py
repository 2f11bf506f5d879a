"""What a request allows to be known of its user.

Privacy decides what may be used, not whether to bid: a restricted request is bid on its context alone
(the page or app, the device, the country), with no profile read, none of what the exchange says of the
user, and no counting by user (frequency caps, the event log's user).

A request is restricted when:
- `regs.coppa = 1`: the user may be a child (COPPA), who is never profiled;
- `regs.gdpr = 1` and `user.consent` does not grant TCF purposes 3 and 4 (personalised advertising);
- `device.dnt = 1`: the browser asks not to be tracked;
- `device.lmt = 1`: the operating system's "limit ad tracking" is on.
"""

from __future__ import annotations

from personabid.decision.consent import consent_refusal
from personabid.openrtb.request import BidRequest

RESTRICTIONS = ("coppa", "gdpr", "dnt", "lmt")


def restriction(request: BidRequest) -> str | None:
    """The first of RESTRICTIONS that applies to `request`, or None when its user may be profiled."""
    regs, device = request.regs, request.device
    if regs.coppa == 1:
        return "coppa"
    if regs.gdpr == 1 and consent_refusal(request.user.consent) is not None:
        return "gdpr"
    if device.dnt == 1:
        return "dnt"
    if device.lmt == 1:
        return "lmt"
    return None
