"""SIGTERM while calls are inside the decision: every one of them completes, and the server then stops.

The calls are held by a gate inside the decision (tests/gated_serve.py), so the signal provably arrives
while they are in flight: no sleep decides the interleaving.
"""

from __future__ import annotations

import json
import queue
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest

from personabid.client import sample_auction, sample_request
from personabid.openrtb.codec import encode
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World
from tests.http import post_bid
from tests.processes import ServerProcess

HELD = 3
ROOT = Path(__file__).resolve().parent.parent


def _gated(demo_dir: Path, decision_threads: int) -> ServerProcess:
    return ServerProcess(
        [sys.executable, "-m", "tests.gated_serve", "--data-dir", str(demo_dir)],
        env={
            "PERSONABID_GRPC_ADDR": "127.0.0.1:0",
            "PERSONABID_METRICS_ADDR": "127.0.0.1:0",
            "PERSONABID_ADMIN_ADDR": "127.0.0.1:0",
            "PERSONABID_DECISION_THREADS": str(decision_threads),
        },
        cwd=ROOT,
        stdin=True,
    )


def _next_line(process: ServerProcess, prefix: str, timeout: float = 30.0) -> str:
    """The next log line that starts with (or, for log records, contains) `prefix`."""
    while True:
        try:
            line = process.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line with {prefix!r}:\n" + "".join(process.log)) from None
        process.log.append(line)
        if line.startswith(prefix) or f": {prefix}" in line:
            return line


@pytest.fixture
def requests(world: World) -> list[pb.BidRequest]:
    rng = np.random.default_rng(5)
    return [sample_request(world, rng) for _ in range(HELD)]


@pytest.fixture
def threaded(demo_dir: Path) -> Iterator[tuple[ServerProcess, str]]:
    process = _gated(demo_dir, decision_threads=HELD)
    try:
        addr, _ = process.wait_ready(60)
        yield process, addr
    finally:
        process.release()
        process.stop()


def _send(addr: str, requests: list[pb.BidRequest], pool: ThreadPoolExecutor) -> list[Future[pb.BidResponse]]:
    def call(request: pb.BidRequest) -> pb.BidResponse:
        with grpc.insecure_channel(addr) as channel:
            return pb_grpc.BidderStub(channel).Bid(request, timeout=60)

    return [pool.submit(call, request) for request in requests]


def test_calls_held_inside_the_decision_when_sigterm_arrives_all_complete(
    threaded: tuple[ServerProcess, str], requests: list[pb.BidRequest]
) -> None:
    process, addr = threaded
    with ThreadPoolExecutor(HELD) as pool:
        answers = _send(addr, requests, pool)
        entered = {_next_line(process, "entered ").split()[1] for _ in requests}
        assert entered == {r.id for r in requests}
        process.signal(signal.SIGTERM)
        _next_line(process, "signal received")  # the server is stopping while the calls are held
        process.release()
        responses = [answer.result(60) for answer in answers]
    assert [r.id for r in responses] == [r.id for r in requests]
    assert all(r.seatbid or r.nbr for r in responses)  # each one decided: a bid or a no-bid reason
    assert process.process.wait(30) == 0


def test_a_call_sent_after_the_drain_began_is_still_answered(
    threaded: tuple[ServerProcess, str], requests: list[pb.BidRequest]
) -> None:
    process, addr = threaded
    with ThreadPoolExecutor(HELD) as pool:
        first = _send(addr, requests[:1], pool)
        _next_line(process, "entered ")
        process.signal(signal.SIGTERM)
        _next_line(process, "signal received")
        # The held call keeps the drain open: a call sent now is served, not cancelled.
        late = _send(addr, requests[1:2], pool)
        _next_line(process, "entered ")
        process.release()
        assert first[0].result(60).id == requests[0].id
        assert late[0].result(60).id == requests[1].id
    assert process.process.wait(30) == 0


def test_a_call_held_on_the_event_loop_completes_though_sigterm_waits_for_it(
    demo_dir: Path, requests: list[pb.BidRequest]
) -> None:
    # With decisions on the event loop (decision_threads = 0), the signal is handled only once the held
    # decision returns; the call must still complete rather than be cancelled by the stop that follows.
    process = _gated(demo_dir, decision_threads=0)
    try:
        addr, _ = process.wait_ready(60)
        with ThreadPoolExecutor(1) as pool:
            answer = _send(addr, requests[:1], pool)
            _next_line(process, "entered ")
            process.signal(signal.SIGTERM)
            process.release()
            assert answer[0].result(60).id == requests[0].id
        _next_line(process, "signal received")
        assert process.process.wait(30) == 0
    finally:
        process.release()
        process.stop()


def test_after_the_drain_new_calls_are_refused_unavailable(
    threaded: tuple[ServerProcess, str], requests: list[pb.BidRequest]
) -> None:
    process, addr = threaded
    process.release()  # no gate: the drain ends as soon as the server is quiet
    process.signal(signal.SIGTERM)
    assert process.process.wait(30) == 0
    with grpc.insecure_channel(addr) as channel, pytest.raises(grpc.RpcError) as refused:
        pb_grpc.BidderStub(channel).Bid(requests[0], timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_http_calls_held_inside_the_decision_when_sigterm_arrives_all_complete(
    threaded: tuple[ServerProcess, str], world: World
) -> None:
    process, _ = threaded
    rng = np.random.default_rng(6)
    bodies = [encode(sample_auction(world, rng)) for _ in range(HELD)]
    with ThreadPoolExecutor(HELD) as pool:
        answers = [pool.submit(post_bid, process.http_addr, body) for body in bodies]
        entered = {_next_line(process, "entered ").split()[1] for _ in bodies}
        assert entered == {json.loads(body)["id"] for body in bodies}
        process.signal(signal.SIGTERM)
        _next_line(process, "signal received")
        process.release()
        replies = [answer.result(60) for answer in answers]
    assert [r.status for r in replies if r.status not in (200, 204)] == []
    assert process.process.wait(30) == 0
