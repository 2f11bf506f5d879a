"""Protobuf decode and encode of a typical request and response, and the copies between the messages
and the core's objects (what the servicer does on either side of a decision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from personabid import wire
from personabid.client import sample_request
from personabid.decision.pipeline import Decider, Decision
from personabid.demo import read_world
from personabid.privacy import Pseudonymizer
from personabid.v1 import bidder_pb2 as pb


@pytest.fixture(scope="module")
def typical_request(bench_dir: Path) -> pb.BidRequest:
    """A demo-world user's request: sparse tags (about 20), one banner impression."""
    return sample_request(read_world(bench_dir), np.random.default_rng(3))


@pytest.fixture(scope="module")
def bid_decision(decider: Decider, typical_request: pb.BidRequest) -> Decision:
    decision = decider.decide(wire.to_auction(typical_request))
    assert decision.bids, "the typical request should get a bid"
    return decision


def test_decode_request(benchmark: BenchmarkFixture, typical_request: pb.BidRequest) -> None:
    raw = typical_request.SerializeToString()
    assert pb.BidRequest.FromString(raw) == typical_request
    benchmark(pb.BidRequest.FromString, raw)


def test_encode_request(benchmark: BenchmarkFixture, typical_request: pb.BidRequest) -> None:
    assert pb.BidRequest.FromString(typical_request.SerializeToString()) == typical_request
    benchmark(typical_request.SerializeToString)


def test_request_to_auction(benchmark: BenchmarkFixture, typical_request: pb.BidRequest) -> None:
    pseudonym = Pseudonymizer(b"bench-key-0123456789abcdef")
    auction = wire.to_auction(typical_request, pseudonym)
    assert auction.id == typical_request.id and len(auction.tags) == len(typical_request.user.tags)
    assert auction.user_id == pseudonym(typical_request.user.id) != typical_request.user.id
    benchmark(wire.to_auction, typical_request, pseudonym)


def test_response_from_decision_encoded(benchmark: BenchmarkFixture, bid_decision: Decision) -> None:
    def encode() -> bytes:
        return wire.to_response(bid_decision, "personabid").SerializeToString()

    response = pb.BidResponse.FromString(encode())
    assert response.seatbid[0].bid[0].campaign_id == bid_decision.bids[0].campaign_id
    benchmark(encode)


def test_decode_response(benchmark: BenchmarkFixture, bid_decision: Decision) -> None:
    raw = wire.to_response(bid_decision, "personabid").SerializeToString()
    assert pb.BidResponse.FromString(raw).seatbid[0].bid[0].price == bid_decision.bids[0].price
    benchmark(pb.BidResponse.FromString, raw)
