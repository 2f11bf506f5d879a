"""The auction request as the core sees it, and its validation: the one place that judges input.

The gRPC layer copies a message into these classes without judging it; `validate` then checks every
rule of the API and raises InvalidRequest naming the field and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from personabid.errors import InvalidRequest

DEFAULT_CURRENCY = "USD"
AUCTION_TYPES = (1, 2)  # and 500+ for exchange-specific auctions
MAX_IMPRESSIONS = 64
# TC strings with every vendor of the global list run to a few kilobytes; far more is not a consent string.
MAX_CONSENT_CHARS = 16_384
MAX_TAGS = 4096
MAX_ID_CHARS = 256  # ids are UUIDs or shorter in practice; OpenRTB sets no limit
MAX_TEXT_CHARS = 1024  # any other string: domains, tag ids, codes
MAX_LIST_ITEMS = 1024  # blocked categories and advertisers run to hundreds
FLOAT32_MAX = float(np.finfo(np.float32).max)
WEIGHT_RANGE = "must lie within float32's range, |w| <= 3.4e38 (the weights are float32 on the wire)"


@dataclass(frozen=True)
class Impression:
    id: str
    w: int = 0
    h: int = 0
    bidfloor: float = 0.0
    bidfloorcur: str = ""
    tagid: str = ""


@dataclass(frozen=True)
class AuctionRequest:
    id: str
    impressions: tuple[Impression, ...]
    tag_vector: np.ndarray | None = None  # float32 (dims,), the dense profile
    tags: tuple[tuple[str, float], ...] = ()  # the sparse profile
    user_id: str = ""
    devicetype: int = 0
    os: str = ""
    country: str = ""
    region: str = ""
    city: str = ""
    site_id: str = ""
    domain: str = ""
    categories: tuple[str, ...] = ()
    at: int = 2
    tmax_ms: int | None = None
    cur: tuple[str, ...] = ()
    bcat: tuple[str, ...] = ()
    badv: tuple[str, ...] = ()
    coppa: int = 0
    gdpr: int = 0
    consent: str = ""  # the TCF v2 consent string, read when gdpr = 1


def validate(request: AuctionRequest, dims: int, currencies: frozenset[str]) -> None:
    """Raise InvalidRequest for the first rule `request` breaks; `dims` is the serving vocabulary's size."""
    if not request.id:
        raise InvalidRequest("id", request.id, "must not be empty")
    _validate_sizes(request)
    if request.tmax_ms is not None and request.tmax_ms <= 0:
        raise InvalidRequest("tmax", request.tmax_ms, "must be a positive number of milliseconds")
    if request.at not in AUCTION_TYPES and request.at < 500:
        raise InvalidRequest("at", request.at, "must be 1 (first price), 2 (second price) or 500+")
    if request.cur and not currencies.intersection(request.cur):
        raise InvalidRequest(
            "cur", list(request.cur), f"no supported currency; supported: {sorted(currencies)}"
        )
    _validate_impressions(request.impressions, currencies)
    if not 0 <= request.devicetype <= 8:
        raise InvalidRequest(
            "device.devicetype", request.devicetype, "must be an OpenRTB device type, 0 to 8"
        )
    for name, flag in (("regs.coppa", request.coppa), ("regs.gdpr", request.gdpr)):
        if flag not in (0, 1):
            raise InvalidRequest(name, flag, "must be 0 or 1")
    if len(request.consent) > MAX_CONSENT_CHARS:
        raise InvalidRequest(
            "user.consent", f"{len(request.consent)} characters", f"at most {MAX_CONSENT_CHARS} are accepted"
        )
    _validate_profile(request, dims)


def _validate_sizes(request: AuctionRequest) -> None:
    """Every string and list has a size limit: ids come back in the response (an impression's twice), so an
    unbounded one would make an answer larger than the request and than what a client accepts."""
    if _within_sizes(request):
        return
    _name_oversized(request)


def _within_sizes(request: AuctionRequest) -> bool:
    """True when every size limit holds: the common case, checked without building any message (plain
    loops: this runs on every request)."""
    if len(request.id) > MAX_ID_CHARS:
        return False
    for text in (request.site_id, request.domain, request.os, request.country, request.region, request.city):
        if len(text) > MAX_TEXT_CHARS:
            return False
    for items in (request.categories, request.bcat, request.badv, request.cur):
        if len(items) > MAX_LIST_ITEMS:
            return False
        for text in items:
            if len(text) > MAX_TEXT_CHARS:
                return False
    if len(request.impressions) > MAX_IMPRESSIONS or len(request.tags) > MAX_TAGS:
        return False  # validated with its own message later; the items are then not worth reading
    for imp in request.impressions:
        if (
            len(imp.id) > MAX_ID_CHARS
            or len(imp.tagid) > MAX_TEXT_CHARS
            or len(imp.bidfloorcur) > MAX_TEXT_CHARS
        ):
            return False
    return max([len(tag) for tag, _ in request.tags], default=0) <= MAX_ID_CHARS


def _name_oversized(request: AuctionRequest) -> None:
    """Raise InvalidRequest for the first string or list over its limit."""
    texts: list[tuple[str, str, int]] = [
        ("id", request.id, MAX_ID_CHARS),
        ("site.id", request.site_id, MAX_TEXT_CHARS),
        ("site.domain", request.domain, MAX_TEXT_CHARS),
        ("device.os", request.os, MAX_TEXT_CHARS),
        ("device.geo.country", request.country, MAX_TEXT_CHARS),
        ("device.geo.region", request.region, MAX_TEXT_CHARS),
        ("device.geo.city", request.city, MAX_TEXT_CHARS),
    ]
    for i, imp in enumerate(request.impressions[:MAX_IMPRESSIONS]):
        texts += [
            (f"imp[{i}].id", imp.id, MAX_ID_CHARS),
            (f"imp[{i}].tagid", imp.tagid, MAX_TEXT_CHARS),
            (f"imp[{i}].bidfloorcur", imp.bidfloorcur, MAX_TEXT_CHARS),
        ]
    lists = (
        ("site.cat", request.categories),
        ("bcat", request.bcat),
        ("badv", request.badv),
        ("cur", request.cur),
    )
    for name, items in lists:
        if len(items) > MAX_LIST_ITEMS:
            raise InvalidRequest(name, f"{len(items)} items", f"at most {MAX_LIST_ITEMS} are accepted")
        texts += [(f"{name}[{i}]", item, MAX_TEXT_CHARS) for i, item in enumerate(items)]
    texts += [(f"user.tags[{i}].id", tag, MAX_ID_CHARS) for i, (tag, _) in enumerate(request.tags[:MAX_TAGS])]
    for name, text, limit in texts:
        if len(text) > limit:
            raise InvalidRequest(name, f"{len(text)} characters", f"at most {limit} are accepted")


def _validate_impressions(impressions: tuple[Impression, ...], currencies: frozenset[str]) -> None:
    if not impressions:
        raise InvalidRequest("imp", [], "at least one impression is required")
    if len(impressions) > MAX_IMPRESSIONS:
        raise InvalidRequest(
            "imp", f"{len(impressions)} impressions", f"at most {MAX_IMPRESSIONS} are accepted"
        )
    seen: set[str] = set()
    for i, imp in enumerate(impressions):
        where = f"imp[{i}]"
        if not imp.id:
            raise InvalidRequest(f"{where}.id", imp.id, "must not be empty")
        if imp.id in seen:
            raise InvalidRequest(f"{where}.id", imp.id, "duplicate impression id")
        seen.add(imp.id)
        if not math.isfinite(imp.bidfloor) or imp.bidfloor < 0:
            raise InvalidRequest(f"{where}.bidfloor", imp.bidfloor, "must be a finite, non-negative CPM")
        if imp.bidfloorcur and imp.bidfloorcur not in currencies:
            raise InvalidRequest(
                f"{where}.bidfloorcur",
                imp.bidfloorcur,
                f"unsupported currency; supported: {sorted(currencies)}",
            )
        if imp.w < 0 or imp.h < 0:
            raise InvalidRequest(
                f"{where}.banner", f"{imp.w}x{imp.h}", "width and height must not be negative"
            )


def _validate_profile(request: AuctionRequest, dims: int) -> None:
    vector = request.tag_vector
    has_vector = vector is not None and len(vector) > 0
    if has_vector and request.tags:
        raise InvalidRequest(
            "user", "tag_vector and tags", "exactly one of user.tag_vector or user.tags may carry the profile"
        )
    if has_vector:
        assert vector is not None
        if len(vector) != dims:
            raise InvalidRequest("user.tag_vector", f"length {len(vector)}", f"must have {dims} weights")
        bad = np.flatnonzero(~np.isfinite(vector))
        if bad.size:
            raise InvalidRequest(
                f"user.tag_vector[{bad[0]}]", float(vector[bad[0]]), "weights must be finite"
            )
        if vector.dtype != np.float32:  # the wire's float32 cannot hold more; the core's own callers can
            bad = np.flatnonzero(np.abs(vector) > FLOAT32_MAX)
            if bad.size:
                raise InvalidRequest(f"user.tag_vector[{bad[0]}]", float(vector[bad[0]]), WEIGHT_RANGE)
    if len(request.tags) > MAX_TAGS:
        raise InvalidRequest("user.tags", f"{len(request.tags)} tags", f"at most {MAX_TAGS} are accepted")
    seen: set[str] = set()
    for i, (tag, weight) in enumerate(request.tags):
        if not tag:
            raise InvalidRequest(f"user.tags[{i}].id", tag, "must not be empty")
        if tag in seen:
            raise InvalidRequest(f"user.tags[{i}].id", tag, "duplicate tag")
        seen.add(tag)
        if not math.isfinite(weight):
            raise InvalidRequest(f"user.tags[{i}].weight", weight, "must be finite")
        if abs(weight) > FLOAT32_MAX:
            raise InvalidRequest(f"user.tags[{i}].weight", weight, WEIGHT_RANGE)
