"""Win, billing and loss notices as an exchange sends them: the bid's own signed URLs, macros substituted,
fetched from a real server's HTTP door."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from msgspec.structs import replace

from personabid.client import sample_auction
from personabid.openrtb.codec import encode
from personabid.world import World
from tests.conftest import ThreadedServer, server_settings
from tests.http import fetch, post_bid
from tests.test_metrics import value


@pytest.fixture
def bid(server: ThreadedServer, world: World) -> dict[str, Any]:
    """A fresh bid (a new auction id each time) from the HTTP door."""
    for seed in range(100):
        reply = post_bid(server.http_addr, encode(sample_auction(world, np.random.default_rng(seed))))
        if reply.status == 200:
            return dict(reply.json()["seatbid"][0]["bid"][0])
    raise AssertionError("no sample request among 100 got a bid")


def substituted(url: str, price: float | None = None, loss: int = 102) -> str:
    """`url` as the exchange fetches it: every macro replaced by its value."""
    for macro, text in (
        ("${AUCTION_PRICE}", f"{price:.4f}" if price is not None else ""),
        ("${AUCTION_CURRENCY}", "USD"),
        ("${AUCTION_LOSS}", str(loss)),
        ("${AUCTION_MIN_TO_WIN}", "1.25"),
    ):
        url = url.replace(macro, text)
    return url


def spent(server: ThreadedServer) -> float:
    return value(server, "personabid_spend_usd_total", {})


def test_a_win_notice_is_counted_once_when_fetched_twice(server: ThreadedServer, bid: dict[str, Any]) -> None:
    # The clearing price as the macro carries it: to the 4 decimals `substituted` writes.
    cleared = round(bid["price"] * 0.8, 4)
    url = substituted(bid["nurl"], price=cleared)
    before = spent(server)
    first, second = fetch(url), fetch(url)
    assert (first.status, first.json()) == (200, {"accepted": 1, "duplicates": 0})
    assert (second.status, second.json()) == (200, {"accepted": 0, "duplicates": 1})
    assert spent(server) == pytest.approx(before + cleared / 1000)


def test_a_tampered_win_notice_is_refused_and_counted(server: ThreadedServer, bid: dict[str, Any]) -> None:
    url = substituted(bid["nurl"], price=1.0).replace(f"bid={bid['id']}", f"bid={bid['id']}x")
    labels = {"type": "win", "outcome": "forged"}
    before, money = value(server, "personabid_notifications_total", labels), spent(server)
    reply = fetch(url)
    assert reply.status == 403 and "signature" in reply.json()["error"]
    assert value(server, "personabid_notifications_total", labels) == before + 1
    assert spent(server) == money


def test_a_notice_with_its_signature_removed_is_refused(server: ThreadedServer, bid: dict[str, Any]) -> None:
    url = substituted(bid["nurl"], price=1.0)
    head, _, tail = url.partition("&sig=")
    assert fetch(head + "&" + tail.partition("&")[2]).status == 403


def test_a_win_notice_whose_price_macro_was_not_substituted_is_400(
    server: ThreadedServer, bid: dict[str, Any]
) -> None:
    reply = fetch(bid["nurl"].replace("${AUCTION_CURRENCY}", "USD"))
    assert reply.status == 400 and "price" in reply.json()["error"]


def test_a_billing_notice_is_applied(server: ThreadedServer, bid: dict[str, Any]) -> None:
    labels = {"type": "impression", "outcome": "accepted"}
    before = value(server, "personabid_notifications_total", labels)
    reply = fetch(substituted(bid["burl"], price=bid["price"]))
    assert reply.status == 200 and reply.json()["accepted"] == 1
    assert value(server, "personabid_notifications_total", labels) == before + 1


def test_a_loss_notice_is_applied(server: ThreadedServer, bid: dict[str, Any]) -> None:
    labels = {"type": "loss", "outcome": "accepted"}
    before = value(server, "personabid_notifications_total", labels)
    reply = fetch(substituted(bid["lurl"]))
    assert reply.status == 200 and reply.json()["accepted"] == 1
    assert value(server, "personabid_notifications_total", labels) == before + 1


def test_a_loss_url_replayed_as_a_win_is_refused(server: ThreadedServer, bid: dict[str, Any]) -> None:
    url = substituted(bid["lurl"]).replace("/openrtb2/loss?", "/openrtb2/win?") + "&price=1.0"
    assert fetch(url).status == 403


def test_a_win_price_above_the_bid_spends_no_more_than_the_bid(
    server: ThreadedServer, bid: dict[str, Any]
) -> None:
    before = spent(server)
    assert fetch(substituted(bid["nurl"], price=bid["price"] * 100)).status == 200
    assert spent(server) == pytest.approx(before + bid["price"] / 1000)


@pytest.fixture(scope="module")
def euro_server(demo_dir: Path) -> Iterator[ThreadedServer]:
    running = ThreadedServer(server_settings(demo_dir, currencies={"USD": 1.0, "EUR": 2.0})).start()
    yield running
    running.stop()


def test_a_win_in_the_currency_bid_in_is_charged_in_usd(euro_server: ThreadedServer, world: World) -> None:
    bid = None
    for seed in range(100):
        request = replace(sample_auction(world, np.random.default_rng(seed)), cur=("EUR",))
        reply = post_bid(euro_server.http_addr, encode(request))
        if reply.status == 200:
            assert reply.json()["cur"] == "EUR"
            bid = reply.json()["seatbid"][0]["bid"][0]
            break
    assert bid is not None, "no sample request among 100 got a bid"
    before = spent(euro_server)
    url = substituted(bid["nurl"], price=bid["price"]).replace("cur=USD", "cur=EUR")
    assert fetch(url).status == 200
    assert spent(euro_server) == pytest.approx(before + bid["price"] * 2.0 / 1000, rel=1e-4)
