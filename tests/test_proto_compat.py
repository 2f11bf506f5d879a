"""Callers built on the API before it carried OpenRTB 2.6 in full keep working: their messages (the
earlier proto, kept in tests/compat/) are read as before, and they read the answers they always did."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

from personabid.client import sample_request
from personabid.decision.reasons import NoBid
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World
from tests.conftest import ThreadedServer

EARLIER = Path(__file__).resolve().parent / "compat" / "bidder_v1_before_openrtb_2_6.proto"


@pytest.fixture(scope="module")
def earlier() -> dict[str, Any]:
    """The earlier API's message classes, in a descriptor pool of their own (the current API's messages
    have the same names in the default pool)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "earlier.pb"
        code = protoc.main(["protoc", f"-I{EARLIER.parent}", f"--descriptor_set_out={out}", EARLIER.name])
        assert code == 0
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    names = ("BidRequest", "BidResponse", "Imp", "Banner", "User", "Tag")
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"personabid.v1.{n}")) for n in names
    }


def bid_with_the_earlier_shape(server: ThreadedServer, earlier: dict[str, Any], request: Any) -> Any:
    with grpc.insecure_channel(server.addr) as channel:
        call: Any = channel.unary_unary(
            "/personabid.v1.Bidder/Bid",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=earlier["BidResponse"].FromString,
        )
        return call(request, timeout=10)


def test_an_earlier_callers_request_is_bid_on_and_read_back(
    server: ThreadedServer, earlier: dict[str, Any], world: World, stub: pb_grpc.BidderStub
) -> None:
    current = next(
        r
        for r in (as_test(sample_request(world, np.random.default_rng(seed))) for seed in range(50))
        if stub.Bid(r, timeout=10).seatbid
    )
    request = earlier["BidRequest"]()
    request.ParseFromString(current.SerializeToString())
    request.DiscardUnknownFields()  # only the fields the earlier API knew
    answer = bid_with_the_earlier_shape(server, earlier, request)
    bid = answer.seatbid[0].bid[0]
    assert answer.id == request.id and answer.cur == "USD"
    assert bid.price > 0 and bid.campaign_id and bid.creative_id and bid.adomain and 0 <= bid.pctr <= 1


def as_test(request: pb.BidRequest) -> pb.BidRequest:
    """A test auction: nothing is reserved, so the same request decides the same way again."""
    request.test = 1
    return request


def test_an_earlier_callers_request_without_a_profile_is_unmatched(
    server: ThreadedServer, earlier: dict[str, Any]
) -> None:
    request = earlier["BidRequest"](id="old-1")
    request.imp.add(id="1", banner=earlier["Banner"](w=300, h=250))
    answer = bid_with_the_earlier_shape(server, earlier, request)
    assert (answer.id, answer.nbr) == ("old-1", NoBid.UNMATCHED_USER)
