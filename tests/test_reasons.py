"""The core's no-bid reasons and the proto's NoBidReason are the same table."""

from __future__ import annotations

from personabid.decision.reasons import NoBid
from personabid.v1 import bidder_pb2 as pb


def test_core_reasons_equal_the_proto_enum() -> None:
    proto = {value.name: value.number for value in pb.NoBidReason.DESCRIPTOR.values}
    assert {reason.name: reason.value for reason in NoBid} == proto
