"""A body that is not the method's message is bad input: INVALID_ARGUMENT with a short message (or a no-bid
or rejected event inside a stream), counted, and logged at a bounded rate, on every service."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest

from personabid.v1 import bidder_pb2 as pb
from tests.conftest import ThreadedServer

# A length-delimited field whose length runs past the end of the body: no protobuf parser accepts it.
GARBAGE = b"\x0a\xff\xff\xff\x07garbage"


def raw(kind: str, channel: grpc.Channel, path: str):  # type: ignore[no-untyped-def]
    make = channel.unary_unary if kind == "unary" else channel.stream_stream
    return make(path, request_serializer=lambda body: body, response_deserializer=lambda body: body)


def counted(server: ThreadedServer, method: str) -> float:
    value = server.server.registry.get_sample_value(
        "personabid_undecodable_requests_total", {"method": method}
    )
    return value or 0.0


@pytest.mark.parametrize(
    "path",
    [
        "/personabid.v1.Bidder/Bid",
        "/personabid.v1.Bidder/NotifyOne",
        "/grpc.health.v1.Health/Check",
    ],
)
def test_an_undecodable_unary_request_is_invalid_argument_with_a_short_message(
    server: ThreadedServer, channel: grpc.Channel, path: str
) -> None:
    method = path.rsplit("/", 1)[1]
    before = counted(server, method)
    with pytest.raises(grpc.RpcError) as refused:
        raw("unary", channel, path)(GARBAGE, timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    assert details.startswith("request body: not a valid ") and "<class" not in details
    assert counted(server, method) == before + 1


def test_an_undecodable_bid_counts_as_an_invalid_bid_request(
    server: ThreadedServer, channel: grpc.Channel
) -> None:
    labels = {"method": "Bid", "outcome": "invalid", "nbr": "2"}
    before = server.server.registry.get_sample_value("personabid_bid_requests_total", labels) or 0.0
    with pytest.raises(grpc.RpcError):
        raw("unary", channel, "/personabid.v1.Bidder/Bid")(GARBAGE, timeout=5)
    assert server.server.registry.get_sample_value("personabid_bid_requests_total", labels) == before + 1


def test_an_undecodable_message_on_a_bid_stream_gets_a_no_bid_and_the_stream_goes_on(
    channel: grpc.Channel,
) -> None:
    good = pb.BidRequest(id="after", imp=[pb.Imp(id="1", banner=pb.Banner(w=300, h=250))])
    answers = list(
        raw("stream", channel, "/personabid.v1.Bidder/BidStream")(
            iter([GARBAGE, good.SerializeToString()]), timeout=5
        )
    )
    first, second = (pb.BidResponse.FromString(a) for a in answers)
    assert first.nbr == pb.INVALID_REQUEST and first.nbr_detail.startswith("request body: not a valid ")
    assert second.id == "after"


def test_an_undecodable_event_on_notify_is_rejected_and_the_rest_applied(channel: grpc.Channel) -> None:
    click = pb.Event(type=pb.Event.CLICK, auction_id="a", imp_id="1", bid_id="b", campaign_id="c")
    notify = channel.stream_unary(
        "/personabid.v1.Bidder/Notify", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    ack = pb.NotifyAck.FromString(notify(iter([GARBAGE, click.SerializeToString()]), timeout=5))
    assert (ack.rejected, ack.accepted + ack.duplicates) == (1, 1)
    assert ack.errors[0].startswith("events[0]: request body: not a valid personabid.v1.Event")


def test_undecodable_reflection_requests_end_the_call_with_invalid_argument(channel: grpc.Channel) -> None:
    call = raw("stream", channel, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    with pytest.raises(grpc.RpcError) as refused:
        list(call(iter([GARBAGE]), timeout=5))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def servicer_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="personabid")
    yield caplog


def test_a_flood_of_undecodable_requests_writes_a_bounded_number_of_log_lines(
    channel: grpc.Channel, servicer_log: pytest.LogCaptureFixture
) -> None:
    call = raw("unary", channel, "/personabid.v1.Bidder/Bid")
    refused = 0
    for i in range(300):
        with pytest.raises(grpc.RpcError) as error:
            call(GARBAGE + bytes([i % 256]), timeout=5)
        refused += error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused == 300
    lines = [r for r in servicer_log.records if r.name.startswith("personabid")]
    # At most one interval's burst, and the next one's should the flood straddle two (test_lograte.py
    # shows the limiter writing its burst, then holding back).
    assert len(lines) <= 10
    assert not any(r.exc_info for r in lines)
