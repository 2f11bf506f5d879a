"""`personabid simulate`: a compressed market day against a real server on 127.0.0.1, through either door,
and what it tells the server agrees with what the server logged; the draws of a seed are reproducible
whatever the server answers when.

The servers here run their clock 3600 times real time, so an hour of market passes in a second."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from personabid import cli
from personabid.demo import read_people
from personabid.openrtb.request import BidRequest
from personabid.training.simulation.admin import ServerClock, close_window, read_clock
from personabid.training.simulation.arms import read_split
from personabid.training.simulation.doors import Answer, Notice, Offer, conversion_query, substitute
from personabid.training.simulation.driver import Plan, Simulation
from personabid.training.simulation.market import Market, exchanges
from personabid.training.simulation.outcomes import GroundTruth
from personabid.training.simulation.summary import ALL, Window, iso
from personabid.training.simulation.traffic import Audience
from personabid.world import World
from tests.conftest import ThreadedServer, server_settings
from tests.demo_world import TEST_WORLD

SPEED = 3600.0
HOURS = 8
RATE = "300"
# A steady rate (the server's clock starts at the time of day the test runs), a market the server wins
# most of, and twenty times the buyers, so that a few seconds give hundreds of impressions and some sales.
MARKET = ("--flat", "--market-cpm", "2.5", "--conversion-scale", "20")
EXPERIMENT = """\
name = "bid-multiplier"
version = 1
salt = "simulate-test-salt"
[[arms]]
name = "control"
share = 0.5
[[arms]]
name = "double"
share = 0.5
bid_multiplier = 2.0
"""


def served(demo_dir: Path, directory: Path) -> ThreadedServer:
    settings = server_settings(
        demo_dir,
        clock_speed=SPEED,
        event_log=directory / "events.jsonl",
        experiments_path=directory / "experiments",
    )
    return ThreadedServer(settings).start()


def simulate(server: ThreadedServer, demo_dir: Path, out: Path, *extra: str) -> dict[str, Any]:
    code = cli.main(
        [
            "simulate", "--hours", str(HOURS), "--rate", RATE, "--seed", "5", "--data-dir", str(demo_dir),
            "--admin", f"127.0.0.1:{server.server.admin_port}", "--out", str(out), "--max-seconds", "120",
            "--events", str(out.parent), *MARKET, *extra,
        ]
    )  # fmt: skip
    assert code == 0
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def logged(directory: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted(directory.glob("events*.jsonl")):
        with path.open() as log:
            lines.extend(json.loads(line) for line in log)
    return lines


Run = tuple[dict[str, Any], Path]


@pytest.fixture(scope="module")
def http_run(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("simulate-http")
    server = served(demo_dir, directory)
    try:
        summary = simulate(server, demo_dir, directory / "out", "--target", server.http_addr)
    finally:
        server.stop()
    yield summary, directory


@pytest.fixture(scope="module")
def grpc_run(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("simulate-grpc")
    server = served(demo_dir, directory)
    try:
        summary = simulate(server, demo_dir, directory / "out", "--door", "grpc", "--target", server.addr)
    finally:
        server.stop()
    yield summary, directory


@pytest.fixture(scope="module")
def experiment_run(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("simulate-experiment")
    (directory / "bid-multiplier.toml").write_text(EXPERIMENT)
    server = served(demo_dir, directory)
    try:
        summary = simulate(
            server, demo_dir, directory / "out", "--target", server.http_addr,
            "--experiment", str(directory / "bid-multiplier.toml"),
        )  # fmt: skip
    finally:
        server.stop()
    yield summary, directory


def kinds(directory: Path) -> Counter[str]:
    return Counter(line.get("event", "") for line in logged(directory))


@pytest.mark.parametrize("door", ["http_run", "grpc_run"])
def test_the_market_buys_and_loses_through_the_door(door: str, request: pytest.FixtureRequest) -> None:
    summary, _ = request.getfixturevalue(door)
    totals = summary["totals"]
    assert 0 < totals["wins"] < totals["bids"] <= totals["requests"], totals


@pytest.mark.parametrize("door", ["http_run", "grpc_run"])
def test_every_notice_the_simulator_sent_was_accepted(door: str, request: pytest.FixtureRequest) -> None:
    summary, _ = request.getfixturevalue(door)
    refused = {k: v for k, v in summary["notices"].items() if not k.endswith((" ok", " duplicate"))}
    assert refused == {}


@pytest.mark.parametrize("door", ["http_run", "grpc_run"])
def test_the_server_logged_every_win_the_simulator_counted(door: str, request: pytest.FixtureRequest) -> None:
    summary, directory = request.getfixturevalue(door)
    assert kinds(directory)["win"] == summary["totals"]["wins"]


@pytest.mark.parametrize("door", ["http_run", "grpc_run"])
def test_the_server_logged_a_billing_line_per_impression(door: str, request: pytest.FixtureRequest) -> None:
    summary, directory = request.getfixturevalue(door)
    assert kinds(directory)["billing"] == summary["totals"]["impressions"] > 0


@pytest.mark.parametrize("door", ["http_run", "grpc_run"])
def test_the_server_logged_every_click(door: str, request: pytest.FixtureRequest) -> None:
    summary, directory = request.getfixturevalue(door)
    assert kinds(directory)["click"] == summary["totals"]["clicks"] > 0


@pytest.mark.parametrize("door", ["http_run", "grpc_run"])
def test_the_server_logged_every_conversion_once(door: str, request: pytest.FixtureRequest) -> None:
    summary, directory = request.getfixturevalue(door)
    assert kinds(directory)["conversion"] == summary["totals"]["conversions"] > 0


def test_the_conversions_logged_carry_the_values_sent(http_run: Run) -> None:
    summary, directory = http_run
    value = sum(line["value_usd"] for line in logged(directory) if line.get("event") == "conversion")
    assert value == pytest.approx(summary["totals"]["revenue"])


@pytest.mark.parametrize("door", ["http_run", "grpc_run"])
def test_the_conversions_after_a_click_name_its_bid(door: str, request: pytest.FixtureRequest) -> None:
    summary, directory = request.getfixturevalue(door)
    named = [line for line in logged(directory) if line.get("event") == "conversion" and line["request_id"]]
    assert len(named) == summary["totals"]["conversions_post_click"]


def test_the_server_logged_the_losses_with_the_price_to_win_where_the_exchange_told_it(
    http_run: Run,
) -> None:
    _, directory = http_run
    losses = [line for line in logged(directory) if line.get("event") == "loss"]
    told = sum(1 for line in losses if line["min_to_win"] > 0)
    assert 0 < told < len(losses)


def test_the_spend_counted_is_the_clearing_prices_logged(http_run: Run) -> None:
    summary, directory = http_run
    spend = sum(line["price"] for line in logged(directory) if line.get("event") == "win") / 1000.0
    assert spend == pytest.approx(summary["totals"]["spend"])


def test_the_clicks_drawn_agree_with_the_true_click_rate(http_run: Run) -> None:
    _, directory = http_run
    truth = json.loads((directory / "out" / "truth.json").read_text())["arms"][ALL]
    expected = truth["expected_clicks"]
    # Clicks are Bernoulli draws of the true probabilities: their count is within 5 standard deviations.
    assert abs(truth["clicks_drawn"] - expected) < 5 * np.sqrt(expected) + 1, truth


def test_the_summary_names_the_report_command_of_the_runs_window(http_run: Run) -> None:
    summary, directory = http_run
    window = summary["window"]
    span = f"--since {iso(math.floor(window['since']))} --until {iso(math.ceil(window['until']))}"
    assert summary["report_commands"][0] == (
        f"personabid report kpis --events {directory} --out {directory / 'out' / 'kpis'} {span}"
    )


def test_the_window_is_the_hours_of_server_clock_asked_for(http_run: Run) -> None:
    window = http_run[0]["window"]
    assert (window["stopped"], window["server_hours"]) == ("window", pytest.approx(HOURS))


def test_the_window_closes_at_the_servers_clock_once_the_calls_are_answered(
    demo_dir: Path, tmp_path: Path
) -> None:
    # The clock read at the start runs behind the server's by the read's latency times its speed; events
    # stamped after the extrapolated end must still fall in the window the report commands name.
    server = served(demo_dir, tmp_path)
    try:
        admin_addr = f"127.0.0.1:{server.server.admin_port}"
        answered = read_clock(admin_addr).unix
        behind = Window(answered - 3600.0, answered - 60.0, answered - 60.0, SPEED, "server", 1.0, "window")
        closed = close_window(behind, admin_addr)
    finally:
        server.stop()
    assert closed.until >= answered


def test_an_experiment_splits_the_traffic_between_its_arms(
    experiment_run: Run,
) -> None:
    summary, _ = experiment_run
    arms = summary["arms"]
    requests = [arms[f"bid-multiplier:{arm}"]["requests"] for arm in ("control", "double")]
    assert abs(requests[0] - requests[1]) < 0.25 * sum(requests), arms


def test_the_arms_the_simulator_tells_are_the_servers(experiment_run: Run) -> None:
    summary, directory = experiment_run
    bids = Counter(a for line in logged(directory) if line.get("event") == "bid" for a in line["arms"])
    assert {arm: row["bids"] for arm, row in summary["arms"].items()} == dict(bids)


def test_the_doubled_bids_win_more_often(experiment_run: Run) -> None:
    summary, _ = experiment_run
    arms = summary["arms"]
    assert arms["bid-multiplier:double"]["win_rate"] > arms["bid-multiplier:control"]["win_rate"]


def test_the_truth_gives_the_lift_of_each_arm(experiment_run: Run) -> None:
    _, directory = experiment_run
    truth = json.loads((directory / "out" / "truth.json").read_text())
    assert set(truth["relative_lift"]) == {"bid-multiplier:double"}


def test_the_run_keeps_the_experiment_it_put_in_force_beside_its_summary(experiment_run: Run) -> None:
    _, directory = experiment_run
    assert (directory / "out" / "experiment.toml").read_text() == EXPERIMENT


def test_the_printed_experiment_report_reads_the_kept_file_for_its_control(experiment_run: Run) -> None:
    summary, directory = experiment_run
    command = summary["report_commands"][1].split()
    assert command[command.index("--experiment-file") + 1] == str(directory / "out" / "experiment.toml")
    assert cli.main(command[1:]) == 0
    report = json.loads((directory / "out" / "experiment" / "experiment.json").read_text())
    assert (report["control"], report["shares_source"]) == (
        "control",
        str(directory / "out" / "experiment.toml"),
    )


def test_the_experiment_file_reads_as_the_server_splits(tmp_path: Path) -> None:
    (tmp_path / "e.toml").write_text(EXPERIMENT)
    split, _ = read_split(tmp_path / "e.toml")
    assert (split.name, split.arms, split.bounds, split.control) == (
        "bid-multiplier", ("control", "double"), (0.5, 1.0), "control",
    )  # fmt: skip


# Without a server: a door that bids the same on everything, to hold the draws of a seed to account.


class BiddingDoor:
    """Bids `price` for one campaign on every request and takes every notice; records them."""

    def __init__(self, campaign: str, price: float, interrupt_after: int | None = None) -> None:
        self.campaign, self.price, self.interrupt_after = campaign, price, interrupt_after
        self.notices: list[Notice] = []
        self.requests = 0

    def bid(self, request: BidRequest) -> Answer:
        self.requests += 1
        if self.interrupt_after is not None and self.requests > self.interrupt_after:
            raise KeyboardInterrupt
        offer = Offer(request.id, request.imp[0].id, "b1", self.campaign, self.price)
        return Answer((offer,), "bid")

    def send(self, notice: Notice) -> str:
        self.notices.append(notice)
        return "ok"

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def ground(demo_dir: Path, world: World) -> tuple[Audience, GroundTruth]:
    audience = Audience(world, read_people(demo_dir, world), seed=1)
    return audience, GroundTruth(world, TEST_WORLD.campaigns, seed=1)


def offline_run(ground: tuple[Audience, GroundTruth], door: BiddingDoor, requests: int = 300) -> Simulation:
    audience, truth = ground
    # 100 hours of market pass in a second; the requests come in the first third of it, slowly enough
    # that none is dropped for want of a free thread.
    simulation = Simulation(
        door,
        ServerClock(1_764_547_200.0, 360_000.0),
        Plan(hours=100, rate=1000, seed=9, max_requests=requests, concurrency=64),
        audience,
        Market(9),
        exchanges("mixed", 0.5),
        truth,
    )
    simulation.run()
    return simulation


def outcomes(door: BiddingDoor) -> list[tuple[str, int, float, int, float | None]]:
    return sorted(
        (n.kind, int(n.offer.request_id.rsplit("-", 1)[1]), n.price, n.loss_reason, n.min_to_win)
        for n in door.notices
        if n.kind in ("win", "loss", "bill")
    )


def test_a_seed_draws_the_same_market_outcomes(ground: tuple[Audience, GroundTruth]) -> None:
    first, second = BiddingDoor("cmp-000001", 4.0), BiddingDoor("cmp-000001", 4.0)
    offline_run(ground, first)
    offline_run(ground, second)
    assert outcomes(first) == outcomes(second)


def test_a_seed_draws_the_same_clicks_and_purchases(ground: tuple[Audience, GroundTruth]) -> None:
    runs = [offline_run(ground, BiddingDoor("cmp-000001", 4.0)).tally.truth[ALL] for _ in range(2)]
    assert runs[0].as_dict() == runs[1].as_dict()


def test_the_run_stops_at_its_request_limit(ground: tuple[Audience, GroundTruth]) -> None:
    assert offline_run(ground, BiddingDoor("cmp-000001", 4.0), requests=120).tally.by_arm[ALL].requests == 120


def test_a_higher_bid_wins_more_of_the_market(ground: tuple[Audience, GroundTruth]) -> None:
    low = offline_run(ground, BiddingDoor("cmp-000001", 2.0)).tally.by_arm[ALL]
    high = offline_run(ground, BiddingDoor("cmp-000001", 8.0)).tally.by_arm[ALL]
    assert high.wins / high.bids > low.wins / low.bids


def test_ctrl_c_stops_the_run_with_what_it_counted(ground: tuple[Audience, GroundTruth]) -> None:
    door = BiddingDoor("cmp-000001", 4.0, interrupt_after=50)
    audience, truth = ground
    simulation = Simulation(
        door,
        ServerClock(1_764_547_200.0, 360_000.0),
        Plan(hours=100, rate=1000, seed=9, max_requests=300, concurrency=64),
        audience,
        Market(9),
        exchanges("mixed", 0.5),
        truth,
    )
    window = simulation.run()
    assert (window.stopped, simulation.tally.by_arm[ALL].requests >= 50) == ("interrupted", True)


def test_a_win_notice_carries_the_clearing_price_in_place_of_the_macro() -> None:
    offer = Offer(
        "a", "1", "b", "c", 3.0, nurl="http://h:1/openrtb2/win?price=${AUCTION_PRICE}&cur=${AUCTION_CURRENCY}"
    )
    assert substitute(offer.nurl, Notice("win", offer, price=1.25)).endswith("price=1.25&cur=USD")


def test_a_loss_notice_leaves_the_price_to_win_empty_where_the_exchange_does_not_tell_it() -> None:
    offer = Offer(
        "a", "1", "b", "c", 3.0, lurl="http://h:1/l?loss=${AUCTION_LOSS}&min_to_win=${AUCTION_MIN_TO_WIN}"
    )
    assert substitute(offer.lurl, Notice("loss", offer, loss_reason=102)).endswith("loss=102&min_to_win=")


def test_a_post_click_conversion_carries_the_clicks_signed_identity() -> None:
    click = "http://h:1/openrtb2/click?auction=a&imp=1&bid=b&campaign=c&sig=XYZ"
    offer = Offer("a", "1", "b", "c", 3.0, click_url=click)
    notice = Notice(
        "conversion", offer, advertiser="adv", order_id="o1", value=12.5, user="u", names_click=True
    )
    assert conversion_query(notice).endswith("&auction=a&imp=1&bid=b&campaign=c&sig=XYZ")


def test_a_negative_rate_is_refused_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["simulate", "--rate", "-5", "--out", str(tmp_path)])
    assert (code, "rate=-5.0" in capsys.readouterr().err) == (2, True)


def test_a_data_dir_without_a_world_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["simulate", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    assert (code, f"--data-dir {tmp_path}" in capsys.readouterr().err) == (2, True)


class GarbledDoor(BiddingDoor):
    """Answers every third request with something the simulator cannot read."""

    def bid(self, request: BidRequest) -> Answer:
        if int(request.id.rsplit("-", 1)[1]) % 3 == 0:
            raise ValueError("not JSON")
        return super().bid(request)


def test_an_answer_that_cannot_be_read_is_counted_and_the_run_goes_on(
    ground: tuple[Audience, GroundTruth],
) -> None:
    answers = offline_run(ground, GarbledDoor("cmp-000001", 4.0), requests=90).tally.answers
    assert answers == Counter({"bid": 60, "failed: ValueError": 30})


def test_a_run_of_no_requests_ends_at_once(ground: tuple[Audience, GroundTruth]) -> None:
    audience, truth = ground
    # A window of 1000 hours on a real-time clock: only the request limit can end it before --max-seconds.
    plan = Plan(hours=1000, rate=1, seed=9, max_seconds=30, max_requests=0)
    simulation = Simulation(
        BiddingDoor("cmp-000001", 4.0), ServerClock(1_764_547_200.0), plan, audience, Market(9),
        exchanges("mixed", 0.5), truth,
    )  # fmt: skip
    assert simulation.run().stopped == "max-requests"
