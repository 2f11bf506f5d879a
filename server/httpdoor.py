"""The HTTP door: OpenRTB 2.5/2.6 JSON over HTTP, as most exchanges call bidders, and the notice URLs.

Served by uvicorn (httptools parser) as a raw ASGI callable on the process's event loop, beside gRPC
(benchmarks/RESULTS.md, "HTTP server library", says why this library). Paths:

- `POST /openrtb2/bid`: a BidRequest (JSON; gzip when `Content-Encoding: gzip`). 200 with the BidResponse;
  204 and no body for a no-bid, its reason in `X-Nbr` (with `?debug=1`: 200 and the no-bid's `nbr` and
  `ext.detail`, for people testing an integration); 400 with a JSON body naming the field and the value
  for an invalid request or a body that is not JSON; 503 while not ready or stopping. The answer is
  gzipped when `Accept-Encoding` allows. `x-openrtb-version` is read when present: 2.x is answered
  (as 2.6), another major version is a 400.
- `GET /openrtb2/win`, `/openrtb2/bill`, `/openrtb2/loss` (POST too): the signed notices of notices.py,
  after the exchange substituted its macros. 200 when applied or already applied (a notice fetched twice
  counts once), 400 when malformed, 403 when its signature does not hold (counted, applied to nothing),
  503 when the shared spend state is unreachable (fetch again).
- `GET /openrtb2/click` (POST too): the bid's signed click URL, which the ad links through. 302 to the
  campaign's site (https://<adomain>/) when the serving index knows the campaign, else 204; a click
  fetched twice counts once and still redirects. 400 malformed, 403 forged, 503 as for the notices.
- `GET /conversion` (POST too): an advertiser's postback of an order (conversions.py): advertiser,
  order_id, value, currency, optionally user and the bid's signed click identity. 200 with
  {"accepted", "duplicates"} (an order id reported again: accepted 0, duplicates 1); 400 with the field,
  value and reason; 403 when a named bid's signature does not hold.
- `GET /healthz`: 200 "SERVING" when ready, 503 "NOT_SERVING" otherwise.

Anything else is 404 (405 for a known path with another method); nothing a client sends gets a 5xx.
"""

from __future__ import annotations

import gzip
import logging
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import msgspec

from personabid.auction import Answer, Auctioneer
from personabid.conversions import read_postback
from personabid.errors import InvalidRequest, PersonabidError
from personabid.failures import detail_of, failure_of
from personabid.index.campaigns import CampaignTable
from personabid.lograte import RateLimitedLog
from personabid.notices import PATHS, parse_query, read_notice
from personabid.notifications import Notifier, Tally
from personabid.openrtb.codec import decode_request, encode
from personabid.telemetry import Metrics

log = logging.getLogger(__name__)

BID_PATH = "/openrtb2/bid"
HEALTH_PATH = "/healthz"
CONVERSION_PATH = "/conversion"
METHOD = "http"  # the `method` label of the HTTP door's metrics
MAX_BODY = 1 << 20  # bytes of JSON, after inflating; an OpenRTB request is a few kilobytes
MIN_GZIP = 512  # answers shorter than this are sent as they are: gzip would not make them smaller
OPENRTB_VERSION = b"2.6"
GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib's window bits for a gzip container
NOTICE_KINDS = {path: kind for kind, path in PATHS.items()}
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
JSON = [(b"content-type", b"application/json")]


class HttpError(PersonabidError):
    """A request the door answers with an error status before any auction: wrong path, method, size."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []


class HttpDoor:
    """The ASGI callable."""

    def __init__(
        self,
        auctioneer: Auctioneer,
        notifier: Notifier | None,
        notice_key: bytes,
        metrics: Metrics,
        ready: Callable[[], bool],
        clock: Callable[[], float] = time.time,
        campaigns: Callable[[], CampaignTable | None] = lambda: None,
    ) -> None:
        self._auctioneer = auctioneer
        self._notifier = notifier
        self._notice_key = notice_key
        self._metrics = metrics
        self._ready = ready
        self._clock = clock  # the server's: notices are stamped with it as they arrive
        self._sites = Sites(campaigns)
        self._log = RateLimitedLog(log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan events are turned off; nothing else is offered
            return
        path = scope["path"]
        try:
            if path == BID_PATH:
                await self._bid(scope, receive, send)
            elif path in NOTICE_KINDS:
                await self._notice(NOTICE_KINDS[path], scope, receive, send)
            elif path == CONVERSION_PATH:
                await self._conversion(scope, send)
            elif path == HEALTH_PATH:
                ready = self._ready() and not self._auctioneer.closing
                await send_response(send, 200 if ready else 503, b"SERVING" if ready else b"NOT_SERVING", [])
            else:
                raise HttpError(404, f"no such path {path[:100]!r}; bid requests go to POST {BID_PATH}")
        except HttpError as exc:
            await send_response(send, exc.status, _error_body(str(exc)), [*JSON, *exc.headers])

    async def _bid(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            raise HttpError(
                405, f"{scope['method'][:10]} {BID_PATH}: POST a BidRequest", [(b"allow", b"POST")]
            )
        headers = _headers(scope)
        version = headers.get(b"x-openrtb-version", b"")
        try:
            body = await read_body(receive, headers.get(b"content-encoding", b""))
            if version and not version.strip().startswith(b"2."):
                raise InvalidRequest(
                    "x-openrtb-version", version.decode("latin-1")[:20], "OpenRTB 2.x is served"
                )
        except (HttpError, InvalidRequest) as exc:
            self._metrics.observe_failure(METHOD, "invalid", 2, 0.0)
            raise HttpError(getattr(exc, "status", 400), str(exc)) from None
        answer: Answer = await self._auctioneer.answer(METHOD, lambda: decode_request(body))
        out = [(b"x-openrtb-version", OPENRTB_VERSION)]
        if answer.failure is not None:
            await send_response(send, answer.failure.http, _failure_body(answer), [*JSON, *out])
            return
        response = answer.response
        assert response is not None
        if response.nbr is not None and not _debug(scope):
            await send_response(send, 204, b"", [*out, (b"x-nbr", str(response.nbr).encode())])
            return
        payload = encode(response)
        if len(payload) >= MIN_GZIP and b"gzip" in headers.get(b"accept-encoding", b"").lower():
            payload = gzip.compress(payload, compresslevel=5)
            out.append((b"content-encoding", b"gzip"))
        await send_response(send, 200, payload, [*JSON, *out])

    async def _notice(self, kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        notifier = self._notifier_for(scope, "notice")
        try:
            query = parse_query(scope["query_string"].decode("latin-1"))
            note = read_notice(kind, query, self._notice_key, self._clock())
            tally = Tally()
            notifier.handle(note, tally, "notice")
        except Exception as exc:
            await self._failed(send, "click" if kind == "click" else kind, exc)
            return
        if tally.refusal is not None:
            await send_response(send, 400, _invalid_body(tally.refusal), JSON)
            return
        if kind == "click":
            # Counted (or already counted): the user goes on to the advertiser's site either way.
            site = self._sites.of(note.campaign_id)
            if site is None:
                await send_response(send, 204, b"", [])
            else:
                await send_response(send, 302, b"", [(b"location", site.encode("ascii"))])
            return
        await send_response(
            send, 200, msgspec.json.encode({"accepted": tally.accepted, "duplicates": tally.duplicates}), JSON
        )

    async def _conversion(self, scope: Scope, send: Send) -> None:
        notifier = self._notifier_for(scope, "conversion")
        try:
            query = parse_query(scope["query_string"].decode("latin-1"))
            notice = read_postback(query, self._notice_key, self._clock())
            tally = Tally()
            notifier.handle(notice, tally, "conversion")
        except Exception as exc:
            await self._failed(send, "conversion", exc)
            return
        if tally.refusal is not None:
            await send_response(send, 400, _invalid_body(tally.refusal), JSON)
            return
        await send_response(
            send, 200, msgspec.json.encode({"accepted": tally.accepted, "duplicates": tally.duplicates}), JSON
        )

    def _notifier_for(self, scope: Scope, what: str) -> Notifier:
        if scope["method"] not in ("GET", "POST"):
            raise HttpError(405, f"{scope['method'][:10]} {what}: GET it", [(b"allow", b"GET, POST")])
        if self._notifier is None:
            raise HttpError(404, f"this server keeps no spend state: {what}s are not taken")
        return self._notifier

    async def _failed(self, send: Send, kind: str, exc: Exception) -> None:
        """Answer a notice or a conversion that failed before it was applied, as failures.py says."""
        failure = failure_of(exc)
        if failure.outcome == "forged":
            self._metrics.observe_notification(kind, "forged")
        elif isinstance(exc, InvalidRequest):
            self._metrics.observe_notification(kind, "rejected")
        elif not failure.expected:
            self._log.log(logging.ERROR, "failed", "%s notice failed", kind, exc_info=exc)
        body = _invalid_body(exc) if isinstance(exc, InvalidRequest) else _error_body(detail_of(exc))
        await send_response(send, failure.http, body, JSON)


class Sites:
    """Where a click on a campaign's ad leads: https://<the campaign's adomain>/, from the serving index."""

    def __init__(self, campaigns: Callable[[], CampaignTable | None]) -> None:
        self._campaigns = campaigns
        self._table: CampaignTable | None = None
        self._sites: dict[str, str] = {}

    def of(self, campaign_id: str) -> str | None:
        """The campaign's site, None when the index does not know the campaign or its domain is no host
        name (what goes into a Location header must be one)."""
        table = self._campaigns()
        if table is None:
            return None
        if table is not self._table:
            # Rebuilt when a reload swaps the index in, and only then: swapped whole, so a concurrent
            # reader sees the old map or the new one.
            self._sites = {
                str(c): f"https://{d}/"
                for c, d in zip(table.campaign_id.tolist(), table.adomain.tolist(), strict=True)
                if _DOMAIN.fullmatch(str(d))
            }
            self._table = table
        return self._sites.get(campaign_id)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in scope["headers"]}


def _debug(scope: Scope) -> bool:
    query = scope["query_string"]
    return bool(query) and parse_qs(query.decode("latin-1")).get("debug", [""])[0] in ("1", "true")


async def read_body(receive: Receive, encoding: bytes) -> bytes:
    """The request body, inflated when `encoding` is gzip; HttpError over MAX_BODY bytes either way."""
    encoding = encoding.strip().lower()
    if encoding not in (b"", b"identity", b"gzip"):
        raise HttpError(415, f"content-encoding {encoding.decode('latin-1')[:20]!r}: gzip or none")
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "the client closed the connection before the body was read")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(413, f"the body is over {MAX_BODY} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    if encoding != b"gzip":
        return body
    inflater = zlib.decompressobj(GZIP_WBITS)
    try:
        # Inflated at most MAX_BODY + 1 bytes: a small body that inflates to gigabytes is refused
        # without ever holding them.
        plain = inflater.decompress(body, MAX_BODY + 1)
    except zlib.error as exc:
        raise HttpError(400, f"content-encoding gzip, but the body is not gzip: {exc}") from None
    if len(plain) > MAX_BODY:
        raise HttpError(413, f"the body inflates to over {MAX_BODY} bytes")
    if not inflater.eof:
        raise HttpError(400, "content-encoding gzip, but the gzip body is truncated")
    return plain


def _error_body(message: str) -> bytes:
    return msgspec.json.encode({"error": message})


def _invalid_body(error: InvalidRequest) -> bytes:
    """A refusal's body: the message, and the field, value and reason apart."""
    value = error.value if error.value is None or isinstance(error.value, str | int) else str(error.value)
    return msgspec.json.encode(
        {"error": str(error), "field": error.field, "value": value, "reason": error.reason}
    )


def _failure_body(answer: Answer) -> bytes:
    """An invalid request's body names the field and the value, apart as well as in the message."""
    return msgspec.json.encode({"error": answer.detail, **(answer.fields or {})})


async def send_response(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """One whole answer, its length given (without it the server would send it chunked)."""
    length = [(b"content-length", b"%d" % len(body))] if status != 204 else []
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *length]})
    await send({"type": "http.response.body", "body": body})
