"""The two ways into a server, as an exchange and an advertiser's site use them.

HTTP: bid requests POSTed as OpenRTB JSON; the notice URLs of each bid fetched with the exchange's macros
substituted (${AUCTION_PRICE}, ${AUCTION_CURRENCY}, ${AUCTION_LOSS}, ${AUCTION_MIN_TO_WIN}); the bid's
click URL fetched as a browser would, without following its redirect to the landing page; conversions
sent to /conversion as a site's postback. Plain http.client, one keep-alive connection per thread and
host, so that `pip install personabid` is enough to run it.

gRPC: Bidder.Bid, and the same notices as Notify events (WIN, IMPRESSION, LOSS, CLICK, CONVERSION).

Calls are blocking; the driver runs them on a thread pool. Each returns an outcome word for the summary:
"ok", "duplicate", "rejected" or what went wrong ("http 404", "UNAVAILABLE", "unreachable"...).
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

import grpc

from personabid import wire
from personabid.httpdoor import BID_PATH
from personabid.notices import AUCTION_CURRENCY, AUCTION_LOSS, AUCTION_MIN_TO_WIN, AUCTION_PRICE
from personabid.openrtb.codec import encode
from personabid.openrtb.request import BidRequest
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc

CONVERSION_PATH = "/conversion"
CLICK_IDENTITY = ("auction", "imp", "bid", "campaign", "sig")  # what a conversion may carry of its click
CURRENCY = "USD"


@dataclass(frozen=True)
class Offer:
    """One bid of a response, as the market and the user see it."""

    request_id: str
    imp_id: str
    bid_id: str
    campaign: str
    price: float  # USD CPM
    nurl: str = ""
    burl: str = ""
    lurl: str = ""
    click_url: str = ""  # signed; empty when the server gives none


@dataclass(frozen=True)
class Answer:
    offers: tuple[Offer, ...]
    outcome: str  # "bid", "no-bid" or what went wrong
    nbr: int | None = None  # the no-bid reason


@dataclass(frozen=True)
class Notice:
    """Something an exchange or a site tells the server about one bid (or, for a conversion, a user)."""

    kind: str  # "win", "bill", "loss", "click" or "conversion"
    offer: Offer
    price: float = 0.0  # win, bill: the clearing price (USD CPM)
    loss_reason: int = 0
    min_to_win: float | None = None  # loss: given by some exchanges only
    advertiser: str = ""  # conversion
    order_id: str = ""
    value: float = 0.0  # USD
    user: str = ""  # the raw id the bidder knows the user by (user.buyeruid); "" when the site has none
    names_click: bool = False  # the conversion carries the click's signed identity


class Door(Protocol):
    def bid(self, request: BidRequest) -> Answer: ...
    def send(self, notice: Notice) -> str: ...
    def close(self) -> None: ...


def substitute(url: str, notice: Notice) -> str:
    """A notice URL with the macros an exchange fills in replaced by the notice's values. A minimum to
    win the exchange does not tell is left empty."""
    min_to_win = "" if notice.min_to_win is None else _cpm(notice.min_to_win)
    return (
        url.replace(AUCTION_PRICE, _cpm(notice.price))
        .replace(AUCTION_CURRENCY, CURRENCY)
        .replace(AUCTION_LOSS, str(notice.loss_reason))
        .replace(AUCTION_MIN_TO_WIN, min_to_win)
    )


def conversion_query(notice: Notice) -> str:
    params = {
        "advertiser": notice.advertiser,
        "order_id": notice.order_id,
        "value": f"{notice.value:.2f}",
        "currency": CURRENCY,
    }
    if notice.user:
        params["user"] = notice.user
    if notice.names_click and notice.offer.click_url:
        clicked = dict(parse_qsl(urlsplit(notice.offer.click_url).query, keep_blank_values=True))
        params.update({name: clicked[name] for name in CLICK_IDENTITY if name in clicked})
    return urlencode(params)


def _cpm(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


class HttpDoor:
    """The HTTP door at `target` (HOST:PORT); notice and click URLs go wherever they point."""

    def __init__(self, target: str, timeout: float = 5.0) -> None:
        self.target, self.timeout = target, timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []

    def bid(self, request: BidRequest) -> Answer:
        headers = {"content-type": "application/json", "x-openrtb-version": "2.6"}
        try:
            status, head, body = self._call(self.target, "POST", BID_PATH, encode(request), headers)
        except OSError:
            return Answer((), "unreachable")
        if status == 204:
            return Answer((), "no-bid", int(head.get("x-nbr", "0") or 0))
        if status != 200:
            return Answer((), f"http {status}")
        response = json.loads(body)
        if not response.get("seatbid"):
            return Answer((), "no-bid", response.get("nbr"))
        offers = tuple(
            Offer(
                request_id=request.id,
                imp_id=str(b["impid"]),
                bid_id=str(b["id"]),
                campaign=str(b.get("cid", "")),
                price=float(b["price"]),
                nurl=b.get("nurl", ""),
                burl=b.get("burl", ""),
                lurl=b.get("lurl", ""),
                click_url=(b.get("ext") or {}).get("clickurl", ""),
            )
            for seat in response["seatbid"]
            for b in seat.get("bid", ())
        )
        return Answer(offers, "bid")

    def send(self, notice: Notice) -> str:
        if notice.kind == "conversion":
            url = f"http://{self.target}{CONVERSION_PATH}?{conversion_query(notice)}"
        else:
            template = {
                "win": notice.offer.nurl,
                "bill": notice.offer.burl,
                "loss": notice.offer.lurl,
                "click": notice.offer.click_url,
            }[notice.kind]
            if not template:
                return "no url"
            url = substitute(template, notice)
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            status, _, body = self._call(parts.netloc, "GET", path, None, {})
        except OSError:
            return "unreachable"
        if notice.kind == "click":
            return "ok" if status in (302, 204) else f"http {status}"
        if status != 200:
            return f"http {status}"
        try:
            ack = json.loads(body)
        except ValueError:
            return "ok"
        return "duplicate" if ack.get("duplicates") and not ack.get("accepted") else "ok"

    def _call(
        self, netloc: str, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """One exchange on this thread's keep-alive connection to `netloc`, opened again once if the
        server closed it in between."""
        for attempt in (0, 1):
            connection = self._connection(netloc, fresh=attempt == 1)
            try:
                connection.request(method, path, body=body, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                return answer.status, {k.lower(): v for k, v in answer.getheaders()}, payload
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                if attempt == 1:
                    raise
            except (OSError, http.client.HTTPException):
                connection.close()
                raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def _connection(self, netloc: str, fresh: bool) -> http.client.HTTPConnection:
        pool: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        if fresh or netloc not in pool:
            host, _, port = netloc.rpartition(":")
            pool[netloc] = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=self.timeout)
            with self._lock:
                self._all.append(pool[netloc])
        return pool[netloc]

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()


EVENT_TYPES = {
    "win": pb.Event.WIN,
    "bill": pb.Event.IMPRESSION,
    "loss": pb.Event.LOSS,
    "click": pb.Event.CLICK,
    "conversion": pb.Event.CONVERSION,
}
_EVENT_FIELDS = frozenset(pb.Event.DESCRIPTOR.fields_by_name)
_BID_FIELDS = frozenset(pb.Bid.DESCRIPTOR.fields_by_name)


class GrpcDoor:
    """The gRPC Bidder at `target` (HOST:PORT)."""

    def __init__(self, target: str, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._channel = grpc.insecure_channel(target)
        self._stub = pb_grpc.BidderStub(self._channel)

    def bid(self, request: BidRequest) -> Answer:
        try:
            response = self._stub.Bid(wire.to_message(request), timeout=self.timeout)
        except grpc.RpcError as exc:
            return Answer((), exc.code().name)
        offers = tuple(
            Offer(
                request_id=request.id,
                imp_id=b.impid,
                bid_id=b.id,
                campaign=b.campaign_id,
                price=b.price,
                nurl=b.nurl,
                burl=b.burl,
                lurl=b.lurl,
                click_url=getattr(b, "click_url", "") if "click_url" in _BID_FIELDS else "",
            )
            for seat in response.seatbid
            for b in seat.bid
        )
        if not offers:
            return Answer((), "no-bid", response.nbr)
        return Answer(offers, "bid")

    def send(self, notice: Notice) -> str:
        offer = notice.offer
        fields: dict[str, object] = {"type": EVENT_TYPES[notice.kind], "cur": CURRENCY}
        if notice.kind != "conversion" or notice.names_click:
            fields.update(
                auction_id=offer.request_id,
                imp_id=offer.imp_id,
                bid_id=offer.bid_id,
                campaign_id=offer.campaign,
            )
        if notice.kind in ("win", "bill"):
            fields["price"] = notice.price
        elif notice.kind == "loss":
            fields.update(loss_reason=notice.loss_reason, price=notice.min_to_win or 0.0)
        elif notice.kind == "conversion":
            if "order_id" not in _EVENT_FIELDS:
                return "unsupported"  # a server whose API predates conversions with a value
            fields.update(
                value=notice.value,
                order_id=notice.order_id,
                advertiser=notice.advertiser,
                user_id=notice.user,
            )
        try:
            ack = self._stub.NotifyOne(pb.Event(**fields), timeout=self.timeout)  # type: ignore[arg-type]
        except grpc.RpcError as exc:
            return str(exc.code().name)
        if ack.rejected:
            return "rejected"
        return "duplicate" if ack.duplicates and not ack.accepted else "ok"

    def close(self) -> None:
        self._channel.close()
