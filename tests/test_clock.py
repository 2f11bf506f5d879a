"""The server's clock: real time run at a speed, and the one time every part of a server reads."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from personabid.client import sample_auction
from personabid.clock import Clock
from personabid.config import load_settings
from personabid.errors import ConfigError
from personabid.notifications import Notifier, Tally
from personabid.openrtb.codec import encode
from personabid.spend.control import Notification, SpendControl
from personabid.spend.store import MemoryStore
from personabid.world import World
from tests.conftest import ThreadedServer, server_settings
from tests.http import fetch, post_bid
from tests.test_http_notices import substituted
from tests.test_metrics import value

START = 1_800_000_000.0


class Monotonic:
    """Real seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_the_clock_starts_at_its_start() -> None:
    assert Clock(speed=60, start=START, ticks=Monotonic()).now() == START


def test_the_clock_runs_speed_times_faster_than_real_time() -> None:
    monotonic = Monotonic()
    clock = Clock(speed=60, start=START, ticks=monotonic)
    monotonic.now += 2.5
    assert clock.now() == START + 150.0


def test_at_speed_one_the_clock_starts_at_the_wall_clock() -> None:
    before = time.time()
    started = Clock().now()
    assert before <= started <= time.time()


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf"), 1e9])
def test_a_speed_outside_its_range_is_refused_naming_it(speed: float) -> None:
    with pytest.raises(ValueError, match=r"clock speed="):
        Clock(speed=speed)


def test_the_setting_refuses_a_speed_outside_its_range() -> None:
    with pytest.raises(ConfigError, match=r"clock_speed=0\.0"):
        load_settings({"clock_speed": 0.0}, environ={})


def test_the_notifier_stamps_an_unstamped_notice_on_the_servers_clock() -> None:
    seen: list[Notification] = []
    spend = SpendControl(MemoryStore(), clock=lambda: START)
    notifier = Notifier(
        spend, lambda note, record, status: seen.append(note), lambda *_: None, clock=lambda: START
    )
    notifier.handle(Notification("click", "a", "1", "b", "c"), Tally(), "event")
    assert [note.ts for note in seen] == [START]


@pytest.fixture(scope="module")
def fast(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadedServer, Path]]:
    """A server whose clock runs an hour a second."""
    log = tmp_path_factory.mktemp("fast") / "events.jsonl"
    running = ThreadedServer(server_settings(demo_dir, event_log=log, clock_speed=3600.0)).start()
    yield running, log
    running.stop()


def test_the_servers_clock_speed_is_exported(fast: tuple[ThreadedServer, Path]) -> None:
    assert value(fast[0], "personabid_clock_speed", {}) == 3600.0


def test_the_decider_and_spend_control_read_the_servers_clock(fast: tuple[ThreadedServer, Path]) -> None:
    server = fast[0].server
    assert server.decider is not None
    assert server.decider.clock == server.clock.now and server.spend.clock == server.clock.now


def test_a_bids_record_and_its_win_are_stamped_on_the_servers_clock(
    fast: tuple[ThreadedServer, Path], world: World
) -> None:
    running, log = fast
    server = running.server
    for seed in range(100):
        before = server.clock.now()
        reply = post_bid(running.http_addr, encode(sample_auction(world, np.random.default_rng(seed))))
        decided = server.clock.now()
        if reply.status == 200:
            break
    else:
        raise AssertionError("no bid in 100 requests")
    bid = reply.json()["seatbid"][0]["bid"][0]
    assert fetch(substituted(bid["nurl"], price=bid["price"])).status == 200
    notified = server.clock.now()
    text = "".join(day.read_text() for day in sorted(log.parent.glob("events-*.jsonl")))
    lines = [json.loads(line) for line in text.splitlines()]
    (win,) = [r for r in lines if r["event"] == "win" and r["request_id"] == reply.json()["id"]]
    assert before <= win["ts"] <= decided <= win["notice_ts"] <= notified


def test_a_bid_stays_in_flight_for_real_seconds_on_a_faster_clock(fast: tuple[ThreadedServer, Path]) -> None:
    # Notices take real time to arrive, however fast the market's clock runs: a bid's record must still
    # be there when its win comes.
    server = fast[0].server
    assert server.spend.settings.inflight_seconds == server.settings.inflight_seconds * 3600.0
