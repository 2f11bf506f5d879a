"""The notice URLs personabid hands out with each bid (nurl, burl, lurl, and the click URL), and the
notices read back from them.

After the auction the exchange fetches the bid's win notice (nurl), billing notice (burl) or loss notice
(lurl), having replaced the OpenRTB macros in it (`${AUCTION_PRICE}` and the others) with their values.
Exchanges replace the macro text as it stands, so the macros are written into the URL verbatim, never
percent-encoded. The bid's identity (auction, impression, bid, campaign) travels in the query, signed
with a key derived from the server's secret: a notice whose identity was forged or altered is refused
(ForgedNotice) before it can add or release any spend. The signature also covers the kind of notice,
so that a loss URL cannot be replayed as a win. The price is the exchange's to fill in and cannot be
signed: it is checked here for its form only.

The click URL is the ad's own link: the markup sends the user's click through it, and the server counts
the click and sends the user on to the advertiser's site. An advertiser's conversion postback may carry
the click's signed identity to name the bid it followed (personabid.conversions).

A notice read back is the core's Notification, the same as a gRPC Notify event: validate_notification
and SpendControl judge and apply it, deduplicated by its identity.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from personabid.errors import InvalidRequest, PersonabidError
from personabid.keyed_hash import KeyedHash
from personabid.spend.control import Notification

# The notice kinds, their paths under the server's base URL, and the Notification type each becomes:
# a billing notice is a billed impression.
PATHS = {
    "win": "/openrtb2/win",
    "bill": "/openrtb2/bill",
    "loss": "/openrtb2/loss",
    "click": "/openrtb2/click",
}
TYPES = {"win": "win", "bill": "impression", "loss": "loss", "click": "click"}

# OpenRTB 2.5+ substitution macros, as the exchange expects to find them in the URL.
AUCTION_PRICE = "${AUCTION_PRICE}"
AUCTION_CURRENCY = "${AUCTION_CURRENCY}"
AUCTION_LOSS = "${AUCTION_LOSS}"
AUCTION_MIN_TO_WIN = "${AUCTION_MIN_TO_WIN}"

IDENTITY = ("auction", "imp", "bid", "campaign")  # query parameters, in the order they are signed
SIGNATURE_BYTES = 16
KEY_LABEL = b"personabid notice-signing v1"
MAX_QUERY_FIELDS = 16  # a notice URL has at most 9; more is not ours

_MACRO = re.compile(r"\$\{[A-Z_]+\}")
# What a URL carries as it is (RFC 3986's unreserved characters): most ids need no quoting, and a match
# costs a tenth of quote's.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CODE = re.compile(r"[0-9]{1,10}")
_INT32_MAX = 2**31 - 1


class ForgedNotice(PersonabidError):
    """A notice whose signature is missing or does not match its identity: refused, applied to nothing.

    The message names the kind of notice and never the values, which are the sender's."""


@dataclass(frozen=True)
class NoticeUrls:
    nurl: str  # win notice
    burl: str  # billing notice
    lurl: str  # loss notice
    click: str  # the ad's link: counts the click, then redirects to the advertiser's site


def notice_key(secret: bytes) -> bytes:
    """The key that signs notice URLs, derived from the server's secret (the pseudonymisation key), so
    that the secret itself never signs anything an exchange can see."""
    _check_key(secret)
    return hmac.new(secret, KEY_LABEL, hashlib.sha256).digest()


def notice_urls(
    base_url: str, key: bytes, auction_id: str, imp_id: str, bid_id: str, campaign_id: str
) -> NoticeUrls:
    """The win, billing, loss notice and click URLs of one bid, under `base_url` (scheme, host, port and
    an optional path prefix, e.g. "http://127.0.0.1:8080"; no query)."""
    _check_key(key)
    ids = {"auction_id": auction_id, "imp_id": imp_id, "bid_id": bid_id, "campaign_id": campaign_id}
    try:
        encoded = [value if _UNRESERVED.fullmatch(value) else quote(value, safe="") for value in ids.values()]
    except UnicodeEncodeError:
        name, value = next((n, v) for n, v in ids.items() if not _is_utf8(v))
        raise InvalidRequest(name, value, "must be valid Unicode text (no lone surrogates)") from None
    identity = "&".join(f"{name}={value}" for name, value in zip(IDENTITY, encoded, strict=True))
    base = base_url.rstrip("/")
    encoded_ids = _encoded(tuple(ids.values()))

    def url(kind: str, macros: str) -> str:
        signed = f"{base}{PATHS[kind]}?{identity}&sig={_sign_encoded(key, kind, encoded_ids)}"
        return f"{signed}&{macros}" if macros else signed

    return NoticeUrls(
        nurl=url("win", f"price={AUCTION_PRICE}&cur={AUCTION_CURRENCY}"),
        burl=url("bill", f"price={AUCTION_PRICE}&cur={AUCTION_CURRENCY}"),
        lurl=url("loss", f"loss={AUCTION_LOSS}&min_to_win={AUCTION_MIN_TO_WIN}&cur={AUCTION_CURRENCY}"),
        # No macros: the user's browser fetches it, not the exchange.
        click=url("click", ""),
    )


def parse_query(query: str) -> dict[str, str]:
    """The parameters of a notice URL's raw query string ("a=1&b=2"), percent-decoded. Blank values are
    kept (an empty bid id is an id); a parameter given twice is refused, so that the value read is the
    one signed."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="replace", max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise InvalidRequest("query", query, f"more than {MAX_QUERY_FIELDS} parameters") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidRequest(name, value, "given more than once")
        params[name] = value
    return params


def read_notice(kind: str, query: Mapping[str, str], key: bytes, arrived: float) -> Notification:
    """The Notification a fetched notice URL stands for.

    `kind` is "win", "bill", "loss" or "click" (the path), `query` the URL's decoded parameters
    (parse_query), `arrived` the unix seconds it reached the server. Raises ForgedNotice when the signature
    is missing or does not match, InvalidRequest naming the parameter when one is missing or malformed."""
    if kind not in TYPES:
        raise InvalidRequest("kind", kind, f"must be one of {sorted(TYPES)}")
    auction_id, imp_id, bid_id, campaign_id = signed_identity(kind, query, key)
    if kind == "click":
        return Notification(
            type="click",
            auction_id=auction_id,
            imp_id=imp_id,
            bid_id=bid_id,
            campaign_id=campaign_id,
            arrived=arrived,
        )
    cur = query.get("cur", "")
    if cur == AUCTION_CURRENCY:
        # Not every exchange fills it in, and OpenRTB's clearing price is in the bid's currency anyway.
        cur = ""
    if kind == "loss":
        price = _min_to_win(query.get("min_to_win", ""))
        loss_reason = _loss_reason(query.get("loss"))
    else:
        price = _price("price", query.get("price"))
        loss_reason = 0
    return Notification(
        type=TYPES[kind],
        auction_id=auction_id,
        imp_id=imp_id,
        bid_id=bid_id,
        campaign_id=campaign_id,
        price=price,
        loss_reason=loss_reason,
        cur=cur,
        arrived=arrived,
    )


def signed_identity(kind: str, query: Mapping[str, str], key: bytes) -> tuple[str, str, str, str]:
    """The (auction, imp, bid, campaign) of a URL's query, once its `sig` is checked as a `kind` URL's.

    Raises InvalidRequest naming a missing identity parameter, ForgedNotice when the signature is
    missing or does not match."""
    _check_key(key)
    for name in IDENTITY:
        if name not in query:
            raise InvalidRequest(name, None, "missing from the notice")
    ids = (query["auction"], query["imp"], query["bid"], query["campaign"])
    given = query.get("sig")
    if given is None:
        raise ForgedNotice(f"{kind} notice: signature missing")
    expected = _sign(key, kind, ids)
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii")):
        raise ForgedNotice(f"{kind} notice: signature does not match the notice's identity")
    return ids


def _sign(key: bytes, kind: str, ids: tuple[str, ...]) -> str:
    return _sign_encoded(key, kind, _encoded(ids))


def _encoded(ids: tuple[str, ...]) -> bytes:
    """The identity's part of a signed message; each field is length-prefixed, so that no moving of
    characters between fields keeps the signature. surrogatepass: an id no URL was issued for
    (notice_urls refuses them) still signs, and never matches."""
    parts = [value.encode("utf-8", "surrogatepass") for value in ids]
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def _sign_encoded(key: bytes, kind: str, encoded_ids: bytes) -> str:
    # One bid signs four URLs over the same identity: it is encoded once (_encoded).
    name = kind.encode()
    digest = _keyed(key).digest(len(name).to_bytes(4, "big") + name + encoded_ids)
    return base64.urlsafe_b64encode(digest[:SIGNATURE_BYTES]).rstrip(b"=").decode("ascii")


@functools.lru_cache(maxsize=8)  # a server signs with one key; tests and reloads with a few
def _keyed(key: bytes) -> KeyedHash:
    return KeyedHash(key)


def _price(name: str, text: str | None) -> float:
    """A CPM the exchange substituted for a macro: a finite, non-negative decimal number."""
    if text is None:
        raise InvalidRequest(name, None, "missing from the notice")
    if _MACRO.fullmatch(text):
        raise InvalidRequest(name, text, "the exchange did not substitute the macro")
    return amount(name, text, "CPM")


def amount(name: str, given: float | str, what: str) -> float:
    """A finite, non-negative amount (`what` names it in the refusal): as a URL carries it, decimal text,
    or as a message carries it, a number."""
    if isinstance(given, str) and not _NUMBER.fullmatch(given):
        raise InvalidRequest(name, given, f"must be a decimal number ({what})")
    value = float(given)
    if not math.isfinite(value):
        raise InvalidRequest(name, given, "must be finite")
    if value < 0:
        raise InvalidRequest(name, given, "must not be negative")
    return value


def _min_to_win(text: str) -> float:
    """A loss's minimum price to win, 0.0 when the exchange does not fill it in (few do): it only
    informs, and no spend depends on it."""
    if text == "" or text == AUCTION_MIN_TO_WIN:
        return 0.0
    return _price("min_to_win", text)


def _loss_reason(text: str | None) -> int:
    if text is None:
        raise InvalidRequest("loss", None, "missing from the notice")
    if _MACRO.fullmatch(text):
        raise InvalidRequest("loss", text, "the exchange did not substitute the macro")
    if not _CODE.fullmatch(text) or int(text) > _INT32_MAX:
        raise InvalidRequest("loss", text, "must be an OpenRTB loss reason code (a non-negative integer)")
    return int(text)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_key(key: bytes) -> None:
    if len(key) < 16:
        raise ValueError("a notice signing key needs at least 16 bytes")
