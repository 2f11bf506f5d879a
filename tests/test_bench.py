"""The end-to-end benchmark's parts: the echo service, the load generators, the figures, the results file.

The load runs against a real echo service process on 127.0.0.1 for a fraction of a second; what is
checked is what was counted, never how fast.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from benchmarks.check_results import problems
from personabid.bench import echo_pb2_grpc, markdown, report
from personabid.bench.echo import SERVICE_NAME as ECHO
from personabid.bench.echo import typical_response, work
from personabid.bench.histogram import merge, new_histogram, summary
from personabid.bench.load import LoadResult, LoadSpec, run_load
from personabid.bench.processes import free_port
from personabid.bench.requests import RequestStream, request_pool
from personabid.bench.runner import SMOKE, summarize
from personabid.bench.services import CLOCK_TICKS, Service, bidder_command, echo_command
from personabid.client import sample_request
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("echo") / "echo.log"
    with Service("echo", echo_command(free_port(), 1), 1, log) as service:
        yield service.wait_ready(60)


@pytest.fixture(scope="module")
def pool(demo_dir: Path) -> list[bytes]:
    return request_pool(demo_dir, 50, seed=1)


def _load(addr: str, pool: list[bytes], **overrides: object) -> LoadResult:
    fields: dict[str, object] = {
        "target": addr, "service": ECHO, "warmup": 0.1, "duration": 0.5,
        "concurrency": 4, "streams": 2, "channels": 2, **overrides,
    }  # fmt: skip
    spec = LoadSpec(**fields, start_at=time.monotonic() + 0.3)  # type: ignore[arg-type]
    return asyncio.run(run_load(spec, pool, np.random.default_rng(0)))


def test_the_bidders_own_count_of_its_path_is_read_from_its_metrics(
    demo_dir: Path, tmp_path: Path, world: World, rng: np.random.Generator
) -> None:
    command = bidder_command(demo_dir, free_port(), 1, tmp_path)
    with Service("bidder", command, 1, tmp_path / "bidder.log") as bidder:
        addr = bidder.wait_ready(120)
        before = bidder.path_cpu()
        with grpc.insecure_channel(addr) as channel:
            stub = pb_grpc.BidderStub(channel)
            for _ in range(3):
                stub.Bid(sample_request(world, rng), timeout=10)
        after = bidder.path_cpu()
    assert before is not None and after is not None
    assert after[1] - before[1] == 3 and after[0] > before[0]


def test_an_echo_has_no_count_of_a_path(tmp_path: Path) -> None:
    with Service("echo", echo_command(free_port(), 1), 1, tmp_path / "echo.log") as echo:
        echo.wait_ready(60)
        assert echo.path_cpu() is None


def test_echo_answers_a_bid_with_the_typical_response(
    echo: str, world: World, rng: np.random.Generator
) -> None:
    with grpc.insecure_channel(echo) as channel:
        answer = echo_pb2_grpc.EchoStub(channel).Bid(sample_request(world, rng), timeout=5)
    assert answer == typical_response()


def test_echo_answers_each_request_of_a_stream(echo: str, world: World, rng: np.random.Generator) -> None:
    requests = [sample_request(world, rng) for _ in range(5)]
    with grpc.insecure_channel(echo) as channel:
        answers = list(echo_pb2_grpc.EchoStub(channel).BidStream(iter(requests), timeout=5))
    assert answers == [typical_response()] * 5


def test_work_spends_at_least_its_cpu_time() -> None:
    before = time.thread_time()
    work(0.005)
    assert time.thread_time() - before >= 0.005


def test_a_working_echo_spends_its_work_on_each_call_and_answers_as_the_echo(
    tmp_path: Path, world: World, rng: np.random.Generator
) -> None:
    command = echo_command(free_port(), 1, work_us=20_000)
    with Service("echo-working", command, 1, tmp_path / "echo.log") as service:
        addr = service.wait_ready(60)
        with grpc.insecure_channel(addr) as channel:
            stub = echo_pb2_grpc.EchoStub(channel)
            stub.Bid(sample_request(world, rng), timeout=10)  # the channel and the server's first call
            before = service.cpu_seconds()
            answers = [stub.Bid(sample_request(world, rng), timeout=10) for _ in range(5)]
            spent = service.cpu_seconds() - before
    assert answers == [typical_response()] * 5
    # The kernel counts a process's CPU in whole clock ticks, so each of the two readings may be short by
    # up to one tick; an echo that did not work would spend a few milliseconds on the five calls.
    assert spent >= 5 * 0.020 - 2 / CLOCK_TICKS


@pytest.mark.parametrize("value", ["-1", "nan", "2000000"])
def test_the_echo_refuses_work_outside_its_range(value: str) -> None:
    command = [sys.executable, "-m", "personabid.bench.echo", "--work-us", value]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"--work-us {float(value):g}: must lie in [0, 1e+06]" in done.stderr


def test_each_request_of_a_pool_is_sent_with_its_own_auction_id(pool: list[bytes]) -> None:
    stream = RequestStream(pool, prefix=7)
    sent = [pb.BidRequest.FromString(stream.next()) for _ in range(2 * len(pool))]
    assert len({r.id for r in sent}) == len(sent)
    assert sent[0].user == pb.BidRequest.FromString(pool[0]).user


@pytest.mark.parametrize("rpc", ["unary", "stream"])
def test_a_closed_loop_counts_every_answer_it_times(echo: str, pool: list[bytes], rpc: str) -> None:
    result = _load(echo, pool, rpc=rpc, mode="closed")
    latencies = merge([result.histogram]).get_total_count()
    assert result.started > 0 and result.errors == {}
    assert latencies == result.bids == result.started  # the echo always bids


@pytest.mark.parametrize("rpc", ["unary", "stream"])
def test_an_open_loop_sends_at_the_poisson_rate(echo: str, pool: list[bytes], rpc: str) -> None:
    result = _load(echo, pool, rpc=rpc, mode="open", rate=400.0, duration=1.0)
    # 400 expected arrivals in the window: Poisson, so within +-5 standard deviations (20) nearly surely.
    assert 300 <= result.started <= 500
    assert result.errors == {} and result.shed == 0


def test_a_load_is_bounded_in_count(echo: str, pool: list[bytes]) -> None:
    result = _load(echo, pool, mode="closed", warmup=0.0, duration=10.0, max_requests=25, concurrency=1)
    assert result.started == 25


def test_percentiles_come_from_the_histogram() -> None:
    histogram = new_histogram()
    for value in range(1, 1001):
        histogram.record_value(value)
    figures = summary(histogram)
    assert (figures["p50_us"], figures["p99_us"], figures["max_us"], figures["count"]) == (
        500,
        990,
        1000,
        1000,
    )


def test_the_knee_is_the_last_load_kept_up_with_before_the_tail_grows() -> None:
    def point(offered: float, answered: float, p99: float) -> dict[str, float]:
        return {
            "offered_rps": offered,
            "throughput_rps": answered,
            "p99_us": p99,
            "error_rate": 0.0,
            "shed": 0,
        }

    curve = [point(100, 100, 500), point(200, 199, 700), point(300, 296, 2000), point(400, 310, 90_000)]
    assert report.knee(curve) == curve[2]


def test_the_http_door_is_read_against_the_http_echo_and_grpc_against_the_grpc_echo() -> None:
    def run(service: str, rpc: str, throughput: float, p99: float) -> dict[str, Any]:
        return {
            "block": "catalog", "service": service, "campaigns": SMOKE.sizes[0], "rpc": rpc, "mode": "closed",
            "throughput_rps": throughput, "latency": {"p99_us": p99}, "error_rate": 0.0, "no_bid_rate": 0.0,
            "server_cpu_us_per_request": 50.0, "client_cpu_us_per_request": 100.0,
        }  # fmt: skip

    runs = [run("echo", "unary", 3000, 50), run("http-echo", "http", 4000, 100)]
    runs += [run("bidder", "unary", 1500, 200), run("bidder", "http", 1000, 400)]
    summary = summarize(runs, SMOKE, {"median_us": {"total": 900.0, "total_http": 850.0}}, {})
    assert summary["floor"]["http"]["throughput_rps"] == 4000
    assert summary["floor"]["unary"]["throughput_rps"] == 3000
    by_load = summary["bidder"][str(SMOKE.sizes[0])]
    assert (by_load["http_closed"]["throughput_ratio"], by_load["http_closed"]["p99_ratio"]) == (0.25, 4.0)
    assert (by_load["unary_closed"]["throughput_ratio"], by_load["unary_closed"]["p99_ratio"]) == (0.5, 4.0)


def test_updating_results_md_keeps_the_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\n## End to end\n\nold figures\n\n## Index builds\n\ntheirs\n")
    markdown.update_sections(path, ["## End to end\n\nnew figures\n", "## Micro\n\nmicro figures\n"])
    text = path.read_text()
    assert "old figures" not in text and "new figures" in text and "micro figures" in text
    assert "## Index builds\n\ntheirs\n" in text


def test_the_results_checker_names_what_is_missing(tmp_path: Path) -> None:
    found = problems({"plan": {"sizes": [10_000]}, "runs": [], "summary": {}}, tmp_path)
    assert found == ["plan, runs or summary missing"]
