"""TC strings (IAB TCF v2 consent strings) for tests, written field by field from the specification."""

from __future__ import annotations

import base64
from collections.abc import Set as AbstractSet


def tc_string(
    purposes: AbstractSet[int], version: int = 2, vendors: AbstractSet[int] = frozenset({755}), tail: str = ""
) -> str:
    """A TC string granting consent to `purposes`, written field by field from the TCF v2 specification."""
    fields = [
        (version, 6), (16_000_000_000, 36), (16_000_000_000, 36),  # version, created, last updated (ds)
        (7, 12), (1, 12), (1, 6), (4 * 64 + 13, 12),  # CMP id and version, consent screen, language "EN"
        (150, 12), (4, 6), (1, 1), (0, 1), (0, 12),  # vendor list, policy, service-specific, stacks, features
        (sum(1 << (24 - p) for p in purposes), 24),  # purpose consents, purpose 1 first
        (0, 24), (0, 1), (4 * 64 + 18, 12),  # legitimate interests, purpose one treatment, publisher "ES"
    ]  # fmt: skip
    top = max(vendors)
    fields += [(top, 16), (0, 1), (sum(1 << (top - v) for v in vendors), top)]  # vendor consents, bitfield
    fields += [(0, 16), (0, 1), (0, 12)]  # no legitimate-interest vendors, no publisher restrictions
    bits = "".join(format(value, f"0{width}b") for value, width in fields)
    bits += "0" * (-len(bits) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return base64.urlsafe_b64encode(data).decode().rstrip("=") + tail
