"""Prometheus metrics: exported over HTTP, valid for promtool, and counting what happened."""

from __future__ import annotations

import subprocess
import urllib.request

import grpc
import numpy as np
import pytest

from personabid.client import sample_request
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World
from tests.conftest import ThreadedServer, system_command


def scrape(server: ThreadedServer) -> str:
    with urllib.request.urlopen(server.metrics_url, timeout=5) as answer:
        return answer.read().decode()


def value(server: ThreadedServer, name: str, labels: dict[str, str]) -> float:
    return server.server.registry.get_sample_value(name, labels) or 0.0


def test_metrics_pass_promtool_check(
    server: ThreadedServer, stub: pb_grpc.BidderStub, world: World, rng: np.random.Generator
) -> None:
    promtool = system_command("promtool", "prometheus")
    for _ in range(5):
        stub.Bid(sample_request(world, rng), timeout=5)
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=scrape(server), capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_answer_is_counted_by_outcome(
    server: ThreadedServer, stub: pb_grpc.BidderStub, world: World, rng: np.random.Generator
) -> None:
    def total() -> float:
        return sum(
            value(server, "personabid_bid_requests_total", {"method": "Bid", "outcome": o, "nbr": n})
            for o, n in [("bid", ""), ("invalid", "2")] + [("nobid", str(c)) for c in (8, 15, 500, 501, 504)]
        )

    before = total()
    for _ in range(10):
        stub.Bid(sample_request(world, rng), timeout=5)
    bad = sample_request(world, rng)
    bad.ClearField("imp")
    with pytest.raises(grpc.RpcError):
        stub.Bid(bad, timeout=5)
    assert total() - before == 11


def test_invalid_requests_are_counted_with_reason_2(
    server: ThreadedServer, stub: pb_grpc.BidderStub, world: World, rng: np.random.Generator
) -> None:
    labels = {"method": "Bid", "outcome": "invalid", "nbr": "2"}
    before = value(server, "personabid_bid_requests_total", labels)
    bad = sample_request(world, rng)
    bad.tmax = -1
    with pytest.raises(grpc.RpcError):
        stub.Bid(bad, timeout=5)
    assert value(server, "personabid_bid_requests_total", labels) == before + 1


STAGES = ("validate", "user_vector", "match", "filter", "score", "price")


def test_a_request_that_bids_is_timed_once_in_every_stage(
    server: ThreadedServer, stub: pb_grpc.BidderStub, world: World, rng: np.random.Generator
) -> None:
    # The histograms' label children exist from start-up, so their lines prove nothing: count what one
    # request adds. Only a request that bids runs every stage, hence the search for one.
    def counts() -> dict[str, float]:
        found = {s: value(server, "personabid_stage_duration_seconds_count", {"stage": s}) for s in STAGES}
        found["call"] = value(server, "personabid_bid_duration_seconds_count", {"method": "Bid"})
        return found

    for _ in range(50):
        before = counts()
        if stub.Bid(sample_request(world, rng), timeout=5).seatbid:
            after = counts()
            assert {k: after[k] - before[k] for k in after} == {k: 1.0 for k in after}
            return
    raise AssertionError("no bid in 50 requests")


def test_index_and_model_versions_are_exported(server: ThreadedServer) -> None:
    decider = server.server.decider
    assert decider is not None
    text = scrape(server)
    assert f'version="{decider.snapshot.bundle.version}"' in text
    assert f'version="{decider.snapshot.model.version}"' in text
    assert value(server, "personabid_index_campaigns", {}) == len(decider.snapshot.bundle.campaigns)


def test_the_request_paths_cpu_is_counted_per_method(
    server: ThreadedServer, stub: pb_grpc.BidderStub, world: World, rng: np.random.Generator
) -> None:
    labels = {"method": "Bid"}
    before = value(server, "personabid_bid_cpu_seconds_total", labels)
    for _ in range(5):
        stub.Bid(sample_request(world, rng), timeout=5)
    assert value(server, "personabid_bid_cpu_seconds_total", labels) > before


def test_an_invalid_requests_cpu_is_counted_too(
    server: ThreadedServer, stub: pb_grpc.BidderStub, world: World, rng: np.random.Generator
) -> None:
    labels = {"method": "Bid"}
    before = value(server, "personabid_bid_cpu_seconds_total", labels)
    bad = sample_request(world, rng)
    bad.tmax = -1
    with pytest.raises(grpc.RpcError):
        stub.Bid(bad, timeout=5)
    assert value(server, "personabid_bid_cpu_seconds_total", labels) > before
