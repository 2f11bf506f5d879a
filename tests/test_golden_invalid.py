"""Invalid requests, one per validation rule, answered as their golden files say, through both doors:
400 naming the field and the value on the HTTP door, INVALID_ARGUMENT with the same message on gRPC."""

from __future__ import annotations

import json

import grpc
import pytest

from personabid.client import parse_request
from personabid.errors import InvalidRequest
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from tests.conftest import ThreadedServer
from tests.http import post_bid
from tests.openrtb_invalid import CASES, GOLDEN, golden_path

GOLDEN_FILES = sorted(GOLDEN.glob("*.json"))


def test_every_case_has_its_golden_file_and_no_file_is_stale() -> None:
    assert sorted(p.stem for p in GOLDEN_FILES) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_http_door_answers_as_the_golden_file_says(name: str, server: ThreadedServer) -> None:
    golden = json.loads(golden_path(name).read_text())
    reply = post_bid(server.http_addr, golden["request"])
    assert (reply.status, reply.json()) == (golden["status"], golden["body"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_grpc_answers_invalid_argument_with_the_golden_message(
    name: str, server: ThreadedServer, stub: pb_grpc.BidderStub
) -> None:
    golden = json.loads(golden_path(name).read_text())
    if name == "site-and-app":
        # A message's oneof holds one channel: the client says this request has no protobuf form.
        with pytest.raises(InvalidRequest, match=r"multiple .distributionchannel. oneof fields"):
            parse_request(json.dumps(golden["request"]))
        return
    try:
        message = parse_request(json.dumps(golden["request"]))
    except InvalidRequest as refused:
        # A value of the wrong JSON type has no protobuf form: the client, reading JSON with the door's
        # own decoder, refuses it with the door's message.
        assert str(refused) == golden["body"]["error"]
        return
    with pytest.raises(grpc.RpcError) as failed:
        stub.Bid(message, timeout=10)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failed.value.details() == golden["body"]["error"]


def test_golden_files_hold_a_request_and_its_answer() -> None:
    for path in GOLDEN_FILES:
        assert set(json.loads(path.read_text())) == {"request", "status", "body"}
