"""GDPR consent: may this user's profile choose the ad?

personabid bids by matching a profile of the user's interests, which under the GDPR needs the user's
consent to two purposes of the IAB Transparency and Consent Framework (TCF v2): 3, "create profiles for
personalised advertising", and 4, "use profiles to select personalised advertising". When a request says
`regs.gdpr = 1`, its consent string (OpenRTB 2.6 `user.consent`, the TC string) must grant both, or the
request is bid on its context alone (decision/restrictions.py): no profile read, no user data used.
Consent to personabid as a vendor is the exchange's to check before it calls a bidder (personabid holds no
vendor id of its own), so only the purposes are read.

A TC string is segments joined by ".", each base64url without padding; the first, the core segment,
begins with fixed-width fields. The purpose consents are its 24 bits from bit 152 on (after version 6,
created 36, last updated 36, CMP id 12, CMP version 12, consent screen 6, consent language 12, vendor list
version 12, policy version 6, service-specific 1, non-standard stacks 1 and special features 12 bits).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re

PERSONALISED_ADS = (3, 4)
TCF_VERSION = 2
PURPOSES_AT = 152  # bit offset of purpose 1's consent in the core segment
PURPOSE_BITS = 24
BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


@functools.lru_cache(maxsize=1024)  # a CMP's few strings recur across a user's requests
def consent_refusal(consent: str) -> str | None:
    """None when the TC string `consent` grants personalised advertising, else why not (for nbr_detail)."""
    if not consent:
        return "is empty: no consent string"
    core = consent.split(".", 1)[0]
    if not BASE64URL.fullmatch(core):
        return "is not a TC string (not base64url)"
    try:
        data = base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))
    except binascii.Error:  # a length no encoding gives
        return "is not a TC string (not base64url)"
    bits = len(data) * 8
    if bits < PURPOSES_AT + PURPOSE_BITS:
        return "is not a TC string (core segment too short)"
    value = int.from_bytes(data, "big")

    def field(offset: int, width: int) -> int:
        return (value >> (bits - offset - width)) & ((1 << width) - 1)

    version = field(0, 6)
    if version != TCF_VERSION:
        return f"is a TCF version {version} string; version {TCF_VERSION} is required"
    missing = [p for p in PERSONALISED_ADS if not field(PURPOSES_AT + p - 1, 1)]
    if missing:
        return f"does not consent to TCF purposes {missing} (personalised advertising)"
    return None
