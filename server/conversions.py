"""Conversions: an order on the advertiser's site, reported back to the bidder, read and checked.

An advertiser's site reports each order as a postback (HTTP `GET|POST /conversion?...`, unsigned like a
tracking pixel) or a gRPC CONVERSION event: the advertiser, its order id, the order's value and currency,
and the id the bidder knows the user by when the site has it. The id is pseudonymised as the conversion is
read; the raw id goes no further. A conversion may also name the bid it followed (auction, impression,
bid, campaign): on HTTP that identity must carry the click URL's signature, so that nobody can credit a
bid with orders it did not bring; gRPC callers are the bidder's partners, trusted as for every event.

The same (advertiser, order id) counts once, in every worker (ConversionNotice.dedupe_key, through the
spend store that deduplicates notices); reports deduplicate again and attribute conversions to bids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from personabid.decision.currency import USD, Currencies
from personabid.errors import InvalidRequest
from personabid.notices import IDENTITY, amount, signed_identity

MAX_ID = 128  # characters of an advertiser or order id
MAX_USER = 256  # characters of a user id
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
WITHHELD = "(withheld)"  # what an error shows of a user id: never the id itself


@dataclass(frozen=True)
class ConversionNotice:
    """A conversion as it arrived, not yet checked: `user` is still the raw id."""

    advertiser: str
    order_id: str
    value: float | str  # a number (gRPC) or the postback's text
    currency: str  # "" means USD
    user: str = ""
    request_id: str = ""
    imp_id: str = ""
    bid_id: str = ""
    campaign: str = ""
    timestamp_ms: int = 0  # unix milliseconds, as the sender stamped it; 0: not stamped
    arrived: float = 0.0  # unix seconds on the server's clock; 0.0: not stamped yet

    @property
    def names_bid(self) -> bool:
        return bool(self.request_id or self.imp_id or self.bid_id or self.campaign)


@dataclass(frozen=True)
class Conversion:
    """A checked conversion: `user` the pseudonym ("" when not given), `value_usd` the value in USD."""

    ts: float  # unix seconds of the order
    advertiser: str
    order_id: str
    value: float
    currency: str
    value_usd: float
    user: str = ""
    request_id: str = ""
    imp_id: str = ""
    bid_id: str = ""
    campaign: str = ""

    @property
    def dedupe_key(self) -> str:
        # Length-prefixed: no id containing ":" can pose as another advertiser's order.
        return f"order:{len(self.advertiser)}:{self.advertiser}:{self.order_id}"


def read_postback(query: Mapping[str, str], key: bytes, arrived: float) -> ConversionNotice:
    """The ConversionNotice of a postback's decoded query (notices.parse_query).

    Parameters: advertiser, order_id, value, currency (default USD), user (optional), and optionally
    the bid: auction, imp, bid, campaign and sig, as in the bid's click URL. Raises InvalidRequest naming
    a parameter that is missing, ForgedNotice when a named bid's signature does not hold."""
    for name in ("advertiser", "order_id", "value"):
        if name not in query:
            raise InvalidRequest(name, None, "missing from the conversion")
    ids = ("", "", "", "")
    named = [name for name in (*IDENTITY, "sig") if name in query]
    if named:
        ids = signed_identity("click", query, key)
    return ConversionNotice(
        advertiser=query["advertiser"],
        order_id=query["order_id"],
        value=query["value"],
        currency=query.get("currency", ""),
        user=query.get("user", ""),
        request_id=ids[0],
        imp_id=ids[1],
        bid_id=ids[2],
        campaign=ids[3],
        arrived=arrived,
    )


def check_conversion(
    notice: ConversionNotice,
    currencies: Currencies,
    pseudonymize: Callable[[str], str],
    where: str = "conversion",
) -> Conversion:
    """The checked Conversion of `notice`, its user pseudonymised; InvalidRequest naming the field (under
    `where`) and the value of the first thing wrong."""
    for name in ("advertiser", "order_id"):
        _check_id(f"{where}.{name}", getattr(notice, name))
    value = amount(f"{where}.value", notice.value, "the order's value")
    currency = notice.currency or USD
    value_usd = currencies.to_usd(value, currency)
    if value_usd is None:
        configured = _codes(currencies)
        raise InvalidRequest(f"{where}.currency", notice.currency, f"not one of the configured {configured}")
    if len(notice.user) > MAX_USER or _CONTROL.search(notice.user):
        raise InvalidRequest(f"{where}.user", WITHHELD, f"must be at most {MAX_USER} printable characters")
    if notice.names_bid:
        for name in ("request_id", "imp_id", "campaign"):
            if not getattr(notice, name):
                raise InvalidRequest(f"{where}.{name}", "", "a conversion that names its bid names all of it")
    if notice.timestamp_ms < 0:
        raise InvalidRequest(f"{where}.timestamp_ms", notice.timestamp_ms, "must not be negative")
    return Conversion(
        ts=notice.timestamp_ms / 1000.0 if notice.timestamp_ms else notice.arrived,
        advertiser=notice.advertiser,
        order_id=notice.order_id,
        value=value,
        currency=currency,
        value_usd=value_usd,
        user=pseudonymize(notice.user) if notice.user else "",
        request_id=notice.request_id,
        imp_id=notice.imp_id,
        bid_id=notice.bid_id,
        campaign=notice.campaign,
    )


def _check_id(field: str, text: str) -> None:
    if not text:
        raise InvalidRequest(field, text, "must not be empty")
    if len(text) > MAX_ID:
        raise InvalidRequest(field, text, f"must be at most {MAX_ID} characters")
    if _CONTROL.search(text):
        raise InvalidRequest(field, text, "must not contain control characters")


def _codes(currencies: Currencies) -> list[str]:
    return sorted(currencies.usd_per_unit)
