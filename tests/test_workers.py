"""`personabid serve --workers 2` as a real process: both workers serve one port, SIGTERM stops them all."""

from __future__ import annotations

import os
import re
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest

from personabid.bench.processes import free_port
from personabid.client import sample_request
from personabid.config import Settings
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.workers import worker_settings
from personabid.world import World
from tests.http import post_bid
from tests.processes import ServerProcess, personabid

WORKER_PID = re.compile(r"started 2 workers: pids (\d+) (\d+)")


def free_port_pair() -> int:
    """A port p such that p and p + 1 are both free (the two workers' metrics ports)."""
    for _ in range(50):
        base = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise AssertionError("no two adjacent free ports")


@dataclass
class Workers:
    process: ServerProcess
    grpc_addr: str
    metrics_ports: tuple[int, int]


@pytest.fixture
def workers(demo_dir: Path) -> Iterator[Workers]:
    grpc_port, metrics_port = free_port(), free_port_pair()
    process = ServerProcess(
        personabid(
            "serve", "--data-dir", str(demo_dir), "--workers", "2",
            "--grpc-addr", f"127.0.0.1:{grpc_port}",
            "--http-addr", f"127.0.0.1:{free_port()}",
            "--metrics-addr", f"127.0.0.1:{metrics_port}",
            "--admin-addr", "127.0.0.1:0",
        )
    )  # fmt: skip
    try:
        first, _ = process.wait_ready(90)
        second, _ = process.wait_ready(90)
        assert first == second == f"127.0.0.1:{grpc_port}"
        yield Workers(process, first, (metrics_port, metrics_port + 1))
    finally:
        process.stop()


def bid_requests_counted(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("personabid_bid_requests_total{")
    )


def test_both_workers_answer_bids_on_the_shared_port(
    workers: Workers, world: World, rng: np.random.Generator
) -> None:
    # The kernel spreads connections, not calls: 16 connections all on one worker would be a 1 in 32768.
    for _ in range(16):
        channel = grpc.insecure_channel(workers.grpc_addr, options=[("grpc.use_local_subchannel_pool", 1)])
        with channel:
            response = pb_grpc.BidderStub(channel).Bid(sample_request(world, rng), timeout=10)
        assert response.id
    counts = [bid_requests_counted(port) for port in workers.metrics_ports]
    assert all(count > 0 for count in counts), counts
    assert sum(counts) == 16


def test_sigterm_stops_every_worker_with_exit_code_0(workers: Workers) -> None:
    # The parent logs its workers' pids before they load, so the line is already in the log.
    found = WORKER_PID.search("".join(workers.process.log))
    assert found is not None, "".join(workers.process.log)
    pids = [int(found.group(1)), int(found.group(2))]
    workers.process.signal()
    assert workers.process.process.wait(30) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_several_workers_need_a_given_grpc_port(demo_dir: Path) -> None:
    process = ServerProcess(
        personabid("serve", "--data-dir", str(demo_dir), "--workers", "2", "--grpc-addr", "127.0.0.1:0")
    )
    assert process.process.wait(30) == 2
    process.stop()
    output = "".join(process.lines.queue)
    assert "workers share one port" in output


def test_each_worker_serves_metrics_on_its_own_port() -> None:
    settings = Settings(metrics_addr="127.0.0.1:9464", workers=3)
    ports = [worker_settings(settings, worker).metrics_addr for worker in range(3)]
    assert ports == ["127.0.0.1:9464", "127.0.0.1:9465", "127.0.0.1:9466"]


def test_several_workers_need_a_given_http_port(demo_dir: Path) -> None:
    process = ServerProcess(
        personabid(
            "serve", "--data-dir", str(demo_dir), "--workers", "2",
            "--grpc-addr", f"127.0.0.1:{free_port()}", "--http-addr", "127.0.0.1:0",
        )
    )  # fmt: skip
    assert process.process.wait(30) == 2
    process.stop()
    assert "setting http_addr='127.0.0.1:0'" in "".join(process.lines.queue)


def test_the_workers_answer_on_their_shared_http_port(workers: Workers) -> None:
    http_addr = workers.process.http_addr
    replies = [post_bid(http_addr, {"id": f"w{i}", "imp": [{"id": "1", "banner": {}}]}) for i in range(20)]
    assert {r.status for r in replies} == {204}
