"""What either door does on either side of a decision, for a typical request and its bid.

gRPC: protobuf decode and encode of the request and response, and the copies between the messages and
the core's objects (wire.to_auction, wire.to_response). HTTP: OpenRTB JSON decoded straight into the
core's request (codec.decode_request) and the response encoded (codec.encode). Both: pseudonymising the
user's ids, validating the request, building the response (Responder). The two ways in are timed as the
doors take them, bytes to a validated request, so that they compare directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from personabid import wire
from personabid.client import sample_request
from personabid.decision.pipeline import Decider, Decision
from personabid.demo import read_world
from personabid.openrtb import codec
from personabid.openrtb.request import BidRequest
from personabid.openrtb.response import BidResponse
from personabid.openrtb.validation import validate
from personabid.privacy import Pseudonymizer
from personabid.respond import Responder
from personabid.v1 import bidder_pb2 as pb

SEAT = "personabid"
NOTICE_BASE_URL = "http://127.0.0.1:8080"


@pytest.fixture(scope="module")
def typical_request(bench_dir: Path) -> pb.BidRequest:
    """A demo-world user's request: sparse tags (about 20), one banner impression."""
    return sample_request(read_world(bench_dir), np.random.default_rng(3))


@pytest.fixture(scope="module")
def typical_json(typical_request: pb.BidRequest) -> bytes:
    """The same request as the OpenRTB JSON an exchange POSTs to the HTTP door."""
    return codec.encode(wire.to_auction(typical_request))


@pytest.fixture(scope="module")
def pseudonym() -> Pseudonymizer:
    return Pseudonymizer(b"bench-key-0123456789abcdef")


@pytest.fixture(scope="module")
def bid_decision(decider: Decider, typical_request: pb.BidRequest) -> Decision:
    decision = decider.decide(wire.to_auction(typical_request))
    assert decision.bids, "the typical request should get a bid"
    return decision


@pytest.fixture(scope="module")
def bid_response(pseudonym: Pseudonymizer, bid_decision: Decision) -> BidResponse:
    return Responder(SEAT, NOTICE_BASE_URL, pseudonym.signing_key()).respond(bid_decision)


def test_decode_request(benchmark: BenchmarkFixture, typical_request: pb.BidRequest) -> None:
    raw = typical_request.SerializeToString()
    assert pb.BidRequest.FromString(raw) == typical_request
    benchmark(pb.BidRequest.FromString, raw)


def test_encode_request(benchmark: BenchmarkFixture, typical_request: pb.BidRequest) -> None:
    assert pb.BidRequest.FromString(typical_request.SerializeToString()) == typical_request
    benchmark(typical_request.SerializeToString)


def test_request_to_auction(benchmark: BenchmarkFixture, typical_request: pb.BidRequest) -> None:
    auction = wire.to_auction(typical_request)
    assert auction.id == typical_request.id and len(auction.user.tags) == len(typical_request.user.tags)
    assert [t.id for t in auction.user.tags] == [t.id for t in typical_request.user.tags]
    assert auction.imp[0].banner is not None and auction.imp[0].banner.w == typical_request.imp[0].banner.w
    benchmark(wire.to_auction, typical_request)


def test_pseudonymise(
    benchmark: BenchmarkFixture, typical_request: pb.BidRequest, pseudonym: Pseudonymizer
) -> None:
    auction = wire.to_auction(typical_request)
    hidden = codec.pseudonymised(auction, pseudonym)
    assert hidden.user.id == pseudonym(typical_request.user.id) != typical_request.user.id
    assert hidden.user.tags == auction.user.tags
    benchmark(codec.pseudonymised, auction, pseudonym)


def _pb_door(raw: bytes, dims: int) -> BidRequest:
    request = wire.to_auction(pb.BidRequest.FromString(raw))
    validate(request, dims)
    return request


def _json_door(body: bytes, dims: int) -> BidRequest:
    request = codec.decode_request(body)
    validate(request, dims)
    return request


def test_request_in_through_grpc(
    benchmark: BenchmarkFixture, decider: Decider, typical_request: pb.BidRequest
) -> None:
    """Protobuf bytes to a validated core request: the gRPC door's way in."""
    raw, dims = typical_request.SerializeToString(), decider.snapshot.dims
    assert _pb_door(raw, dims) == wire.to_auction(typical_request)
    benchmark(_pb_door, raw, dims)


def test_request_in_through_http(
    benchmark: BenchmarkFixture, decider: Decider, typical_request: pb.BidRequest, typical_json: bytes
) -> None:
    """OpenRTB JSON bytes to a validated core request: the HTTP door's way in, to the same request."""
    dims = decider.snapshot.dims
    assert _json_door(typical_json, dims) == wire.to_auction(typical_request)
    benchmark(_json_door, typical_json, dims)


def test_respond(benchmark: BenchmarkFixture, pseudonym: Pseudonymizer, bid_decision: Decision) -> None:
    """The core's BidResponse of a decision with a bid: markup, signed notice URLs."""
    responder = Responder(SEAT, NOTICE_BASE_URL, pseudonym.signing_key())
    response = responder.respond(bid_decision)
    bid = response.seatbid[0].bid[0]
    assert bid.cid == bid_decision.bids[0].campaign_id and bid.nurl.startswith(NOTICE_BASE_URL)
    benchmark(responder.respond, bid_decision)


def test_response_from_decision_encoded(benchmark: BenchmarkFixture, bid_response: BidResponse) -> None:
    """The gRPC door's way out: the core's response to the message, serialized."""

    def encode() -> bytes:
        return wire.to_response(bid_response).SerializeToString()

    response = pb.BidResponse.FromString(encode())
    assert response.seatbid[0].bid[0].campaign_id == bid_response.seatbid[0].bid[0].cid
    benchmark(encode)


def test_response_encoded_as_json(benchmark: BenchmarkFixture, bid_response: BidResponse) -> None:
    """The HTTP door's way out: the core's response as OpenRTB JSON."""
    assert codec.decode_response(codec.encode(bid_response)) == bid_response
    benchmark(codec.encode, bid_response)


def test_decode_response(benchmark: BenchmarkFixture, bid_response: BidResponse) -> None:
    raw = wire.to_response(bid_response).SerializeToString()
    assert pb.BidResponse.FromString(raw).seatbid[0].bid[0].price == bid_response.seatbid[0].bid[0].price
    benchmark(pb.BidResponse.FromString, raw)
