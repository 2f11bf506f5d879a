"""Real OpenRTB requests (../shared/openrtb: the 2.5 specification's examples and a bid-request set) go
through both doors and are answered alike; the gRPC message carries every field the core reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from personabid import wire
from personabid.client import parse_request
from personabid.openrtb.codec import decode_request, decode_response
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from tests.conftest import SHARED, ThreadedServer
from tests.http import call

SAMPLES = sorted(
    {*(SHARED / "openrtb").glob("*/breq*.json"), *(SHARED / "openrtb").glob("*/bid-request*.json")}
)
pytestmark = pytest.mark.skipif(
    not SAMPLES, reason=f"no OpenRTB samples at {SHARED / 'openrtb'} (../shared absent)"
)


def without_ext(value: Any) -> Any:
    """The builtin form of a core object, its ext objects left out (2.5's ext fields are mapped by now)."""
    if isinstance(value, dict):
        return {k: without_ext(v) for k, v in value.items() if k != "ext"}
    if isinstance(value, list):
        return [without_ext(v) for v in value]
    return value


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_the_grpc_message_carries_every_field_the_core_reads(path: Path) -> None:
    core = decode_request(path.read_bytes())
    through_grpc = wire.to_auction(wire.to_message(core))
    assert without_ext(msgspec.to_builtins(through_grpc)) == without_ext(msgspec.to_builtins(core))


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_the_http_door_answers_200_or_204(path: Path, server: ThreadedServer) -> None:
    reply = call(server.http_addr, "POST", "/openrtb2/bid", path.read_bytes())
    assert reply.status in (200, 204), reply.body[:300]


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_both_doors_give_the_same_decision(
    path: Path, server: ThreadedServer, stub: pb_grpc.BidderStub
) -> None:
    reply = call(server.http_addr, "POST", "/openrtb2/bid?debug=1", path.read_bytes())
    over_http = reply.json()
    over_grpc = stub.Bid(parse_request(path.read_text()), timeout=10)
    assert over_http["id"] == over_grpc.id == json.loads(path.read_text())["id"]
    assert over_http.get("nbr", 0) == over_grpc.nbr
    assert [b["crid"] for s in over_http.get("seatbid", []) for b in s["bid"]] == [
        b.crid for s in over_grpc.seatbid for b in s.bid
    ]


RESPONSES = sorted(
    {*(SHARED / "openrtb").glob("*/bres*.json"), *(SHARED / "openrtb").glob("*/bid-response*.json")}
)


@pytest.mark.parametrize("path", RESPONSES, ids=[p.name for p in RESPONSES])
def test_real_bid_responses_read_as_the_response_model(path: Path) -> None:
    data = json.loads(path.read_text())
    response = decode_response(path.read_bytes())
    assert response.id == data["id"]
    assert [b.impid for s in response.seatbid for b in s.bid] == [
        b["impid"] for s in data.get("seatbid", []) for b in s["bid"]
    ]
