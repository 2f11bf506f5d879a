"""The event log, schema 2: a line for every bid (sampled per auction) and for what became of it, in one
file per day of the server's clock, read back by training."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from msgspec.structs import replace as replace_struct

from personabid.bidrecord import BidRecord, click_line, unknown_win_line
from personabid.client import sample_auction
from personabid.conversions import Conversion
from personabid.eventlog import EventLog, day_path, keeps_auction
from personabid.openrtb.codec import encode
from personabid.spend.control import Notification
from personabid.training.events import read_events
from personabid.training.logs import BadRows
from personabid.world import World
from tests.conftest import ThreadedServer, server_settings
from tests.http import fetch, post_bid
from tests.test_http_notices import substituted

MIDNIGHT = 1_800_057_600.0  # 2027-01-16T00:00:00Z
RECORD = BidRecord(
    ts=MIDNIGHT - 100.0,
    request_id="r1",
    imp_id="1",
    user="3f1c0e",
    campaign="cmp-1",
    advertiser="adv-1",
    category="IAB3-1",
    devicetype=4,
    os="ios",
    country="USA",
    w=320,
    h=50,
    match=0.5,
    tags=("interest:travel",),
    pctr=0.03,
    price=2.0,
    model="m1",
    sources=("profile",),
    arms=("bid-multiplier:double",),
)
RECORD_FIELDS = (
    "request_id", "imp_id", "user", "campaign", "advertiser", "category", "devicetype", "os", "country",
    "w", "h", "match", "tags", "pctr", "price", "model", "sources", "arms",
)  # fmt: skip


class Ticking:
    """A server clock for the log, set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_bid_line_carries_the_records_fields_and_its_sampling_rate() -> None:
    line = json.loads(RECORD.bid_line(0.25))
    assert (line["v"], line["event"], line["ts"], line["sample"]) == (2, "bid", RECORD.ts, 0.25)
    assert {name: line[name] for name in RECORD_FIELDS} == {
        name: list(v) if isinstance(v, tuple) else v
        for name, v in ((n, getattr(RECORD, n)) for n in RECORD_FIELDS)
    }


def test_a_win_line_has_the_clearing_price_the_bid_and_both_moments() -> None:
    line = json.loads(RECORD.win_line("1-cmp-1", 1.5, MIDNIGHT))
    assert (line["event"], line["price"], line["bid_price"]) == ("win", 1.5, 2.0)
    assert (line["ts"], line["notice_ts"], line["bid_id"]) == (RECORD.ts, MIDNIGHT, "1-cmp-1")


def test_a_win_line_never_says_more_than_the_bid_was_paid() -> None:
    assert json.loads(RECORD.win_line("b", 9.0, MIDNIGHT))["price"] == 2.0


def test_a_win_line_without_a_clearing_price_says_the_bid() -> None:
    assert json.loads(RECORD.win_line("b", 0.0, MIDNIGHT))["price"] == 2.0


def test_an_auction_is_sampled_whole_and_at_its_rate() -> None:
    ids = [f"auction-{i}" for i in range(20_000)]
    kept = [keeps_auction(i, 0.25) for i in ids]
    assert kept == [keeps_auction(i, 0.25) for i in ids]  # the same answer for each of its bids
    assert abs(np.mean(kept) - 0.25) < 0.02


def test_every_auction_is_kept_at_rate_one() -> None:
    assert all(keeps_auction(f"a{i}", 1.0) for i in range(1000))


def test_the_day_file_is_named_for_the_utc_day() -> None:
    assert day_path(Path("var/demo/events.jsonl"), MIDNIGHT - 1) == Path("var/demo/events-2027-01-15.jsonl")
    assert day_path(Path("var/demo/events.jsonl"), MIDNIGHT) == Path("var/demo/events-2027-01-16.jsonl")


def test_lines_go_to_the_file_of_the_day_of_the_clock_at_write_time(tmp_path: Path) -> None:
    clock = Ticking(MIDNIGHT - 1)
    log = EventLog(tmp_path / "events.jsonl", clock)
    note = Notification("click", "r1", "1", "b", "cmp-1", arrived=MIDNIGHT - 2)
    log.record(note, None, "applied")
    clock.now = MIDNIGHT + 1
    log.record(replace(note, auction_id="r2"), None, "applied")
    log.close()
    assert [r["request_id"] for r in lines_of(tmp_path / "events-2027-01-15.jsonl")] == ["r1"]
    assert [r["request_id"] for r in lines_of(tmp_path / "events-2027-01-16.jsonl")] == ["r2"]


def test_a_billing_notice_after_the_win_adds_a_billing_line_only(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl", Ticking(MIDNIGHT))
    log.record(Notification("win", "r1", "1", "b", "cmp-1", price=1.5, arrived=MIDNIGHT), RECORD, "applied")
    bill = Notification("impression", "r1", "1", "b", "cmp-1", arrived=MIDNIGHT + 1)
    log.record(bill, None, "billed already")
    log.close()
    assert [r["event"] for r in lines_of(tmp_path / "events-2027-01-16.jsonl")] == ["win", "billing"]


def test_a_billing_notice_first_adds_the_win_and_the_billing_line(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl", Ticking(MIDNIGHT))
    log.record(Notification("impression", "r1", "1", "b", "cmp-1", arrived=MIDNIGHT), RECORD, "applied")
    log.close()
    win, billing = lines_of(tmp_path / "events-2027-01-16.jsonl")
    assert (win["event"], win["price"], billing["event"], billing["price"]) == ("win", 2.0, "billing", 0.0)


def test_a_loss_line_carries_the_bids_dimensions_when_it_is_known(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl", Ticking(MIDNIGHT))
    note = Notification("loss", "r1", "1", "b", "cmp-1", price=1.25, loss_reason=102, arrived=MIDNIGHT)
    log.record(note, RECORD, "applied")
    log.close()
    (loss,) = lines_of(tmp_path / "events-2027-01-16.jsonl")
    assert (loss["loss_reason"], loss["min_to_win"], loss["arms"], loss["country"]) == (
        102,
        1.25,
        ["bid-multiplier:double"],
        "USA",
    )


def test_a_conversion_line_carries_its_order_and_the_users_arms(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl", Ticking(MIDNIGHT))
    conversion = Conversion(
        ts=MIDNIGHT, advertiser="adv-1", order_id="o-1", value=30.0, currency="EUR", value_usd=32.4, user="u"
    )
    log.conversion(conversion, ("bid-multiplier:double",))
    log.close()
    (line,) = lines_of(tmp_path / "events-2027-01-16.jsonl")
    assert {
        k: line[k] for k in ("event", "order_id", "value", "currency", "value_usd", "arms", "campaign")
    } == {
        "event": "conversion",
        "order_id": "o-1",
        "value": 30.0,
        "currency": "EUR",
        "value_usd": 32.4,
        "arms": ["bid-multiplier:double"],
        "campaign": "",
    }


def test_training_reads_win_lines_as_impressions_and_click_lines_as_clicks(tmp_path: Path) -> None:
    path = tmp_path / "events-2027-01-16.jsonl"
    other = replace(RECORD, request_id="r2")
    path.write_text(
        "\n".join(
            [
                RECORD.bid_line(1.0),
                other.bid_line(1.0),
                RECORD.win_line("1-cmp-1", 1.5, MIDNIGHT),
                other.win_line("1-cmp-1", 1.5, MIDNIGHT),
                click_line(MIDNIGHT + 5, "r1", "1", "1-cmp-1", "cmp-1"),
                unknown_win_line(MIDNIGHT, "r9", "1", "b", "cmp-1", 1.0),
            ]
        )
        + "\n"
    )
    bad = BadRows()
    (chunk,) = read_events(path, bad)
    assert (chunk.labels.tolist(), chunk.lines.tolist(), bad.count) == ([1.0, 0.0], [3, 4], 0)


def test_training_still_reads_a_schema_1_log(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    click = {"v": 1, "event": "click", "ts": MIDNIGHT, "request_id": "r1", "imp_id": "1", "campaign": "cmp-1"}
    path.write_text(RECORD.log_line() + "\n" + json.dumps(click) + "\n")
    (chunk,) = read_events(path, BadRows())
    assert chunk.labels.tolist() == [1.0]


@pytest.fixture(scope="module")
def served(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadedServer, Path]]:
    log = tmp_path_factory.mktemp("v2") / "events.jsonl"
    running = ThreadedServer(server_settings(demo_dir, event_log=log, bid_log_sample=0.5)).start()
    yield running, log
    running.stop()


def logged(log: Path) -> list[dict[str, Any]]:
    return [r for day in sorted(log.parent.glob("events-*.jsonl")) for r in lines_of(day)]


def bids_from(running: ThreadedServer, world: World, count: int) -> list[tuple[str, dict[str, Any]]]:
    """(auction id, its first bid) of `count` auctions that got a bid."""
    found = []
    fresh = uuid.uuid4().hex[:8]  # auction ids no other test used
    for seed in range(500):
        request = sample_auction(world, np.random.default_rng(seed))
        reply = post_bid(running.http_addr, encode(replace_struct(request, id=f"{fresh}-{seed}")))
        if reply.status == 200:
            found.append((reply.json()["id"], reply.json()["seatbid"][0]["bid"][0]))
            if len(found) == count:
                return found
    raise AssertionError(f"{len(found)} bids in 500 requests")


def test_the_server_writes_bid_lines_of_the_sampled_auctions_only(
    served: tuple[ThreadedServer, Path], world: World
) -> None:
    running, log = served
    auctions = [auction for auction, _ in bids_from(running, world, 30)]
    lines = [r for r in logged(log) if r["event"] == "bid" and r["request_id"] in auctions]
    assert {r["request_id"] for r in lines} == {a for a in auctions if keeps_auction(a, 0.5)}
    assert {r["sample"] for r in lines} == {0.5}


def test_the_server_writes_a_win_and_a_billing_line_for_a_billed_win(
    served: tuple[ThreadedServer, Path], world: World
) -> None:
    running, log = served
    ((auction, bid),) = bids_from(running, world, 1)
    assert fetch(substituted(bid["nurl"], price=0.5)).status == 200
    assert fetch(substituted(bid["burl"], price=0.5)).status == 200
    lines = [r for r in logged(log) if r["request_id"] == auction and r["event"] != "bid"]
    assert [(r["event"], r["price"]) for r in lines] == [("win", 0.5), ("billing", 0.5)]
    assert lines[0]["bid_price"] == pytest.approx(bid["price"])


def test_the_server_writes_a_loss_line_with_the_minimum_to_win(
    served: tuple[ThreadedServer, Path], world: World
) -> None:
    running, log = served
    ((auction, bid),) = bids_from(running, world, 1)
    assert fetch(substituted(bid["lurl"], loss=102)).status == 200
    (loss,) = [r for r in logged(log) if r["request_id"] == auction and r["event"] == "loss"]
    assert (loss["loss_reason"], loss["min_to_win"], loss["campaign"]) == (102, 1.25, bid["cid"])


def test_a_line_with_text_utf8_cannot_carry_is_still_written_escaped() -> None:
    assert json.loads(click_line(MIDNIGHT, "r\ud800", "1", "b", "cmp-1"))["request_id"] == "r\ud800"
