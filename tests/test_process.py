"""`personabid serve` as a real process: ready line, addresses from the environment, draining on SIGTERM."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from personabid.client import health_status, sample_request
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World
from tests.processes import ServerProcess, personabid


@pytest.fixture
def served(demo_dir: Path) -> Iterator[tuple[ServerProcess, str]]:
    process = ServerProcess(
        personabid("serve", "--data-dir", str(demo_dir)),
        env={
            "PERSONABID_GRPC_ADDR": "127.0.0.1:0",
            "PERSONABID_METRICS_ADDR": "127.0.0.1:0",
            "PERSONABID_ADMIN_ADDR": "127.0.0.1:0",
        },
    )
    try:
        addr, _ = process.wait_ready(60)
        yield process, addr
    finally:
        process.stop()


def test_server_takes_its_addresses_from_the_environment_and_serves(
    served: tuple[ServerProcess, str],
) -> None:
    _, addr = served
    assert addr.startswith("127.0.0.1:") and not addr.endswith(":0")
    assert health_status(addr, "personabid.v1.Bidder", 5) == "SERVING"


def test_sigterm_lets_an_open_stream_finish(
    served: tuple[ServerProcess, str], world: World, rng: np.random.Generator
) -> None:
    process, addr = served
    requests = [sample_request(world, rng) for _ in range(20)]
    outbox: list[pb.BidRequest | None] = []
    sent = threading.Condition()

    def feed() -> Iterator[pb.BidRequest]:
        for i in range(len(requests)):
            with sent:

                def queued(i: int = i) -> bool:
                    return len(outbox) > i

                sent.wait_for(queued, timeout=10)
                item = outbox[i]
            if item is None:
                return
            yield item

    with grpc.insecure_channel(addr) as channel:
        answers = pb_grpc.BidderStub(channel).BidStream(feed(), timeout=30)
        with sent:
            outbox.append(requests[0])
            sent.notify_all()
        first = next(answers)
        process.signal(signal.SIGTERM)
        with sent:
            outbox.extend(requests[1:])
            sent.notify_all()
        rest = list(answers)
    assert [a.id for a in [first, *rest]] == [r.id for r in requests]
    assert process.process.wait(30) == 0


def test_sigterm_refuses_new_calls_and_exits_cleanly(served: tuple[ServerProcess, str]) -> None:
    process, addr = served
    process.signal(signal.SIGTERM)
    assert process.process.wait(30) == 0
    with pytest.raises(grpc.RpcError):
        health_status(addr, "personabid.v1.Bidder", 2)
