"""Clicks and conversions as users' browsers and advertisers' sites send them: the bid's signed click URL,
which redirects to the advertiser's site, and the conversion postback, each counted once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import grpc
import numpy as np
import pytest
from msgspec.structs import replace

from personabid.client import sample_auction, sample_request
from personabid.notices import notice_urls
from personabid.openrtb.codec import encode
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World
from tests.conftest import RedisServer, ThreadedServer, server_settings
from tests.http import Reply, call, fetch, post_bid
from tests.test_metrics import value


@pytest.fixture(scope="module")
def served(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadedServer, Path]]:
    log = tmp_path_factory.mktemp("clicks") / "events.jsonl"
    running = ThreadedServer(
        server_settings(demo_dir, event_log=log, currencies={"USD": 1.0, "EUR": 1.08})
    ).start()
    yield running, log
    running.stop()


def a_bid(running: ThreadedServer, world: World) -> dict[str, Any]:
    """The first bid of a fresh auction (an id no other test used) from the HTTP door."""
    fresh = uuid.uuid4().hex[:8]
    for seed in range(200):
        request = replace(sample_auction(world, np.random.default_rng(seed)), id=f"{fresh}-{seed}")
        reply = post_bid(running.http_addr, encode(request))
        if reply.status == 200:
            return dict(reply.json()["seatbid"][0]["bid"][0])
    raise AssertionError("no bid in 200 requests")


def logged(log: Path) -> list[dict[str, Any]]:
    text = "".join(day.read_text() for day in sorted(log.parent.glob("events-*.jsonl")))
    return [json.loads(line) for line in text.splitlines()]


def convert(addr: str, method: str = "GET", **params: str) -> Reply:
    return call(addr, method, f"/conversion?{urlencode(params)}")


def order(**changes: str) -> dict[str, str]:
    """A valid postback's parameters, but for `changes`: a new order id each time."""
    return {
        "advertiser": "adv-1",
        "order_id": uuid.uuid4().hex,
        "value": "42.50",
        "currency": "USD",
        **changes,
    }


def click_identity(bid: dict[str, Any]) -> dict[str, str]:
    """The signed bid identity of a bid's click URL, as a site passes it on in its postback."""
    query = dict(parse_qsl(urlsplit(bid["ext"]["clickurl"]).query, keep_blank_values=True))
    return {name: query[name] for name in ("auction", "imp", "bid", "campaign", "sig")}


def test_a_bid_carries_its_click_url(served: tuple[ThreadedServer, Path], world: World) -> None:
    bid = a_bid(served[0], world)
    assert urlsplit(bid["ext"]["clickurl"]).path == "/openrtb2/click"


def test_an_image_banner_links_through_the_click_url(
    served: tuple[ThreadedServer, Path], world: World
) -> None:
    for _ in range(20):
        bid = a_bid(served[0], world)
        if bid["adm"].startswith("<a href="):
            assert bid["adm"].startswith(f'<a href="{bid["ext"]["clickurl"].replace("&", "&amp;")}"')
            return
    raise AssertionError("no image banner among 20 bids")


def test_a_grpc_bid_carries_its_click_url(served: tuple[ThreadedServer, Path], world: World) -> None:
    with grpc.insecure_channel(served[0].addr) as channel:
        stub = pb_grpc.BidderStub(channel)
        for seed in range(100):
            response = stub.Bid(sample_request(world, np.random.default_rng(seed)), timeout=5)
            if response.seatbid:
                click_url = response.seatbid[0].bid[0].click_url
                assert urlsplit(click_url).path == "/openrtb2/click"
                return
    raise AssertionError("no bid in 100 requests")


def test_a_click_redirects_to_the_advertisers_site(served: tuple[ThreadedServer, Path], world: World) -> None:
    bid = a_bid(served[0], world)
    reply = fetch(bid["ext"]["clickurl"])
    assert (reply.status, reply.headers["location"]) == (302, f"https://{bid['adomain'][0]}/")


def test_a_click_fetched_twice_counts_once_and_still_redirects(
    served: tuple[ThreadedServer, Path], world: World
) -> None:
    running, log = served
    bid = a_bid(running, world)
    first, second = fetch(bid["ext"]["clickurl"]), fetch(bid["ext"]["clickurl"])
    assert (first.status, second.status) == (302, 302)
    auction = click_identity(bid)["auction"]
    clicks = [r for r in logged(log) if r["event"] == "click" and r["request_id"] == auction]
    assert len(clicks) == 1


def test_a_click_on_a_campaign_the_index_does_not_know_is_answered_204(
    served: tuple[ThreadedServer, Path],
) -> None:
    running = served[0]
    key = running.server.pseudonym.signing_key()
    urls = notice_urls(f"http://{running.http_addr}", key, "a-1", "1", "b-1", "no-such-campaign")
    assert fetch(urls.click).status == 204


def test_a_forged_click_is_refused(served: tuple[ThreadedServer, Path], world: World) -> None:
    bid = a_bid(served[0], world)
    reply = fetch(bid["ext"]["clickurl"].replace("sig=", "sig=x"))
    assert reply.status == 403 and "signature" in reply.json()["error"]


def test_a_click_without_its_campaign_is_refused_naming_it(
    served: tuple[ThreadedServer, Path], world: World
) -> None:
    bid = a_bid(served[0], world)
    reply = fetch(bid["ext"]["clickurl"].replace("&campaign=", "&campaig="))
    assert (reply.status, reply.json()["field"]) == (400, "campaign")


def test_a_conversion_is_accepted(served: tuple[ThreadedServer, Path]) -> None:
    reply = convert(served[0].http_addr, **order())
    assert (reply.status, reply.json()) == (200, {"accepted": 1, "duplicates": 0})


def test_a_conversion_may_be_posted(served: tuple[ThreadedServer, Path]) -> None:
    assert convert(served[0].http_addr, "POST", **order()).json() == {"accepted": 1, "duplicates": 0}


def test_an_order_reported_twice_counts_once(served: tuple[ThreadedServer, Path]) -> None:
    running, log = served
    params = order()
    convert(running.http_addr, **params)
    again = convert(running.http_addr, **params)
    assert (again.status, again.json()) == (200, {"accepted": 0, "duplicates": 1})
    assert len([r for r in logged(log) if r.get("order_id") == params["order_id"]]) == 1


def test_the_same_order_id_of_two_advertisers_is_two_orders(served: tuple[ThreadedServer, Path]) -> None:
    params = order()
    convert(served[0].http_addr, **params)
    other = convert(served[0].http_addr, **{**params, "advertiser": "adv-2"})
    assert other.json() == {"accepted": 1, "duplicates": 0}


@pytest.mark.parametrize(
    ("changes", "field", "shown"),
    [
        ({"value": "-1"}, "conversion.value", "-1"),
        ({"value": "nan"}, "conversion.value", "nan"),
        ({"value": "lots"}, "conversion.value", "lots"),
        ({"currency": "XYZ"}, "conversion.currency", "XYZ"),
        ({"advertiser": ""}, "conversion.advertiser", ""),
        ({"order_id": "o" * 129}, "conversion.order_id", "o" * 129),
    ],
)
def test_a_malformed_conversion_is_refused_naming_field_and_value(
    served: tuple[ThreadedServer, Path], changes: dict[str, str], field: str, shown: str
) -> None:
    reply = convert(served[0].http_addr, **order(**changes))
    assert reply.status == 400
    assert {k: reply.json()[k] for k in ("field", "value")} == {"field": field, "value": shown}


def test_a_conversion_without_an_order_id_is_refused_naming_it(served: tuple[ThreadedServer, Path]) -> None:
    params = order()
    del params["order_id"]
    reply = convert(served[0].http_addr, **params)
    assert (reply.status, reply.json()["field"]) == (400, "order_id")


def test_a_conversion_in_another_configured_currency_is_valued_in_usd(
    served: tuple[ThreadedServer, Path],
) -> None:
    running, log = served
    params = order(value="100", currency="EUR")
    convert(running.http_addr, **params)
    (line,) = [r for r in logged(log) if r.get("order_id") == params["order_id"]]
    assert (line["value"], line["currency"], line["value_usd"]) == (100.0, "EUR", pytest.approx(108.0))


def test_a_conversions_user_is_logged_as_a_pseudonym_only(served: tuple[ThreadedServer, Path]) -> None:
    running, log = served
    params = order(user="raw-shopper-77")
    convert(running.http_addr, **params)
    (line,) = [r for r in logged(log) if r.get("order_id") == params["order_id"]]
    assert line["user"] == running.server.pseudonym("raw-shopper-77")
    assert "raw-shopper-77" not in "".join(d.read_text() for d in log.parent.glob("events-*.jsonl"))


def test_a_conversion_naming_its_clicked_bid_is_logged_with_it(
    served: tuple[ThreadedServer, Path], world: World
) -> None:
    running, log = served
    bid = a_bid(running, world)
    params = order(**click_identity(bid))
    assert convert(running.http_addr, **params).json() == {"accepted": 1, "duplicates": 0}
    (line,) = [r for r in logged(log) if r.get("order_id") == params["order_id"]]
    assert (line["imp_id"], line["campaign"]) == (bid["impid"], bid["cid"])


def test_a_conversion_naming_a_bid_without_its_signature_is_refused(
    served: tuple[ThreadedServer, Path], world: World
) -> None:
    bid = a_bid(served[0], world)
    identity = click_identity(bid)
    reply = convert(served[0].http_addr, **order(**{**identity, "campaign": "cmp-000001"}))
    assert reply.status == 403


def test_a_conversions_arms_are_the_users_assignment(
    served: tuple[ThreadedServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, log = served

    class Assignment:
        def arms_for_user(self, pseudonym: str) -> tuple[str, ...]:
            return (f"trial:{pseudonym[:4]}",)

    monkeypatch.setattr(running.server, "experiments", Assignment(), raising=False)
    params = order(user="shopper-9")
    convert(running.http_addr, **params)
    (line,) = [r for r in logged(log) if r.get("order_id") == params["order_id"]]
    assert line["arms"] == [f"trial:{running.server.pseudonym('shopper-9')[:4]}"]


def test_another_method_is_refused(served: tuple[ThreadedServer, Path]) -> None:
    assert call(served[0].http_addr, "PUT", f"/conversion?{urlencode(order())}").status == 405


def conversion_event(**changes: Any) -> pb.Event:
    fields: dict[str, Any] = {
        "type": pb.Event.CONVERSION,
        "advertiser": "adv-1",
        "order_id": uuid.uuid4().hex,
        "value": 19.9,
        "user_id": "raw-user-5",
    }
    return pb.Event(**{**fields, **changes})


def test_a_grpc_conversion_is_accepted_and_deduplicated(served: tuple[ThreadedServer, Path]) -> None:
    event = conversion_event()
    with grpc.insecure_channel(served[0].addr) as channel:
        stub = pb_grpc.BidderStub(channel)
        first, second = stub.NotifyOne(event, timeout=5), stub.NotifyOne(event, timeout=5)
    assert (first.accepted, second.duplicates) == (1, 1)


def test_a_grpc_conversion_without_an_order_id_is_rejected_naming_it(
    served: tuple[ThreadedServer, Path],
) -> None:
    with grpc.insecure_channel(served[0].addr) as channel:
        ack = pb_grpc.BidderStub(channel).NotifyOne(conversion_event(order_id=""), timeout=5)
    assert ack.rejected == 1 and ack.errors[0].startswith("event.order_id=''")


def test_a_grpc_conversion_naming_half_a_bid_is_rejected(served: tuple[ThreadedServer, Path]) -> None:
    with grpc.insecure_channel(served[0].addr) as channel:
        ack = pb_grpc.BidderStub(channel).NotifyOne(conversion_event(auction_id="a-1"), timeout=5)
    assert ack.rejected == 1 and ack.errors[0].startswith("event.imp_id=''")


def test_a_conversion_is_counted_in_the_funnel(served: tuple[ThreadedServer, Path]) -> None:
    running = served[0]
    labels = {"event": "conversion", "arm": "none"}
    before = value(running, "personabid_funnel_events_total", labels)
    convert(running.http_addr, **order(value="10"))
    assert value(running, "personabid_funnel_events_total", labels) == before + 1


def test_an_order_is_counted_once_across_servers_sharing_redis(
    demo_dir: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    servers = [
        ThreadedServer(
            server_settings(demo_dir, redis_url=redis_server.url, event_log=tmp_path / f"{i}" / "e.jsonl")
        ).start()
        for i in range(2)
    ]
    try:
        params = order()
        answers = [convert(s.http_addr, **params).json() for s in servers]
    finally:
        for s in servers:
            s.stop()
    assert answers == [{"accepted": 1, "duplicates": 0}, {"accepted": 0, "duplicates": 1}]
