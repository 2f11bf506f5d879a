"""The OpenRTB HTTP door of a real server on 127.0.0.1: what it answers, and how."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import zlib
from pathlib import Path

import numpy as np
import pytest

from personabid.client import sample_auction
from personabid.decision.reasons import NoBid
from personabid.httpdoor import MAX_BODY
from personabid.openrtb.codec import encode
from personabid.world import World
from tests.conftest import ThreadedServer, server_settings
from tests.http import call, post_bid
from tests.test_metrics import value


def sample_body(world: World, seed: int) -> bytes:
    return encode(sample_auction(world, np.random.default_rng(seed)))


@pytest.fixture(scope="module")
def bid_body(server: ThreadedServer, world: World) -> bytes:
    for seed in range(50):
        body = sample_body(world, seed)
        if post_bid(server.http_addr, body).status == 200:
            return body
    raise AssertionError("no sample request among 50 got a bid")


def test_a_bid_is_answered_200_with_an_openrtb_response(server: ThreadedServer, bid_body: bytes) -> None:
    reply = post_bid(server.http_addr, bid_body)
    answer = reply.json()
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    assert answer["id"] == json.loads(bid_body)["id"] and answer["cur"] == "USD"
    bid = answer["seatbid"][0]["bid"][0]
    assert bid["impid"] == "1" and bid["price"] > 0 and bid["mtype"] == 1


def test_a_bid_carries_servable_markup_and_notice_urls(server: ThreadedServer, bid_body: bytes) -> None:
    bid = post_bid(server.http_addr, bid_body).json()["seatbid"][0]["bid"][0]
    assert bid["adm"].startswith("<") and bid["crid"] and bid["adomain"]
    assert "${AUCTION_PRICE}" in bid["nurl"] and "${AUCTION_PRICE}" in bid["burl"]
    assert "${AUCTION_LOSS}" in bid["lurl"]
    assert all(bid[u].startswith(f"http://{server.http_addr}/openrtb2/") for u in ("nurl", "burl", "lurl"))


def test_a_no_bid_is_204_without_body_and_its_reason_in_x_nbr(server: ThreadedServer) -> None:
    reply = post_bid(server.http_addr, {"id": "a", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}]})
    assert (reply.status, reply.body) == (204, b"")
    assert reply.headers["x-nbr"] == str(int(NoBid.UNMATCHED_USER))


def test_debug_answers_a_no_bid_200_with_its_reason_and_detail(server: ThreadedServer) -> None:
    reply = call(
        server.http_addr,
        "POST",
        "/openrtb2/bid?debug=1",
        json.dumps({"id": "a", "imp": [{"id": "1", "banner": {}}]}).encode(),
    )
    assert reply.status == 200
    assert reply.json()["nbr"] == NoBid.UNMATCHED_USER and reply.json()["ext"]["detail"]


def test_an_invalid_request_is_400_naming_the_field_and_the_value(server: ThreadedServer) -> None:
    reply = post_bid(
        server.http_addr, {"id": "a", "imp": [{"id": "1", "banner": {"format": [{"w": 300, "h": 0}]}}]}
    )
    assert reply.status == 400
    assert reply.json() == {
        "error": "imp[0].banner.format[0].h=0: must be positive",
        "field": "imp[0].banner.format[0].h",
        "value": 0,
        "reason": "must be positive",
    }


def test_a_value_of_the_wrong_json_type_is_400_naming_its_path(server: ThreadedServer) -> None:
    reply = post_bid(server.http_addr, {"id": "a", "imp": [{"id": "1", "banner": {"w": "300"}}]})
    assert reply.status == 400 and reply.json()["field"] == "imp[0].banner.w"
    assert reply.json()["value"] == "300"


def test_a_body_that_is_not_json_is_400(server: ThreadedServer) -> None:
    reply = post_bid(server.http_addr, b"{not json")
    assert reply.status == 400 and reply.json()["field"] == "(body)"


def test_a_gzip_request_body_is_read(server: ThreadedServer, bid_body: bytes) -> None:
    reply = post_bid(server.http_addr, gzip.compress(bid_body), **{"content-encoding": "gzip"})
    assert reply.status == 200


def test_the_answer_is_gzipped_when_the_client_accepts_it(server: ThreadedServer, bid_body: bytes) -> None:
    reply = post_bid(server.http_addr, bid_body, **{"accept-encoding": "gzip, deflate"})
    assert reply.headers.get("content-encoding") == "gzip" and reply.json()["seatbid"]


def test_a_body_over_the_limit_is_413(server: ThreadedServer) -> None:
    assert post_bid(server.http_addr, b" " * (MAX_BODY + 1)).status == 413


def test_a_gzip_body_inflating_over_the_limit_is_413(server: ThreadedServer) -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    body = bomb.compress(b" " * (8 * MAX_BODY)) + bomb.flush()
    assert len(body) < MAX_BODY
    assert post_bid(server.http_addr, body, **{"content-encoding": "gzip"}).status == 413


def test_a_body_that_is_not_gzip_as_declared_is_400(server: ThreadedServer) -> None:
    assert post_bid(server.http_addr, b"{}", **{"content-encoding": "gzip"}).status == 400


def test_another_openrtb_major_version_is_400(server: ThreadedServer, bid_body: bytes) -> None:
    reply = post_bid(server.http_addr, bid_body, **{"x-openrtb-version": "3.0"})
    assert reply.status == 400 and "x-openrtb-version" in reply.json()["error"]


def test_openrtb_2_5_is_answered_as_2_6(server: ThreadedServer, bid_body: bytes) -> None:
    reply = post_bid(server.http_addr, bid_body, **{"x-openrtb-version": "2.5"})
    assert reply.status == 200 and reply.headers["x-openrtb-version"] == "2.6"


def test_get_on_the_bid_path_is_405(server: ThreadedServer) -> None:
    reply = call(server.http_addr, "GET", "/openrtb2/bid")
    assert reply.status == 405 and reply.headers["allow"] == "POST"


def test_an_unknown_path_is_404(server: ThreadedServer) -> None:
    assert call(server.http_addr, "POST", "/nowhere", b"{}").status == 404


def test_health_is_200_when_serving(server: ThreadedServer) -> None:
    assert call(server.http_addr, "GET", "/healthz").status == 200


def test_http_auctions_are_counted_under_their_own_method(server: ThreadedServer, bid_body: bytes) -> None:
    labels = {"method": "http", "outcome": "bid", "nbr": ""}
    before = value(server, "personabid_bid_requests_total", labels)
    post_bid(server.http_addr, bid_body)
    assert value(server, "personabid_bid_requests_total", labels) == before + 1


def test_a_server_still_loading_answers_503(demo_dir: Path) -> None:
    loading = ThreadedServer(server_settings(demo_dir)).start(load=False)
    try:
        reply = post_bid(loading.http_addr, {"id": "a", "imp": [{"id": "1", "banner": {}}]})
        assert reply.status == 503
        assert call(loading.http_addr, "GET", "/healthz").status == 503
    finally:
        loading.stop()


def test_malformed_http_is_refused_and_logged_at_a_bounded_rate(
    server: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = server.http_addr.rsplit(":", 1)
    caplog.set_level(logging.DEBUG, logger="uvicorn")
    answers = []
    for _ in range(40):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            answers.append(raw.recv(64))
    assert all(a.startswith(b"HTTP/1.1 400") for a in answers)
    logged = [r for r in caplog.records if r.name.startswith("uvicorn")]
    assert 1 <= len(logged) <= 6  # the first few, then one saying how many were left out
    assert call(server.http_addr, "GET", "/healthz").status == 200


def test_json_nested_beyond_any_request_is_400(server: ThreadedServer) -> None:
    deep = b'{"id":"a","ext":' + b"[" * 5000 + b"]" * 5000 + b',"imp":[{"id":"1","banner":{}}]}'
    reply = post_bid(server.http_addr, deep)
    assert reply.status == 400 and "nested too deeply" in reply.json()["error"]


def test_an_overlong_user_id_is_400_though_ids_are_hashed_at_the_door(server: ThreadedServer) -> None:
    body = {"id": "a", "imp": [{"id": "1", "banner": {}}], "user": {"id": "u" * 100_000}}
    reply = post_bid(server.http_addr, body)
    assert reply.status == 400 and reply.json()["field"] == "user.id"
