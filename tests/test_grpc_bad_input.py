"""Every kind of bad input gets INVALID_ARGUMENT naming the field and the value, and the server goes on."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import numpy as np
import pytest

from personabid.client import sample_request
from personabid.decision.reasons import NoBid
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World, vocabulary


def _dense(world: World, rng: np.random.Generator) -> pb.BidRequest:
    request = sample_request(world, rng, dense=True)
    assert len(request.user.tag_vector) == world.vocab.dims == 402, "written for the demo vocabulary"
    return request


def wrong_length(r: pb.BidRequest) -> None:
    del r.user.tag_vector[-1]


def nan_weight(r: pb.BidRequest) -> None:
    r.user.tag_vector[3] = float("nan")


def infinite_weight(r: pb.BidRequest) -> None:
    r.user.tag_vector[5] = float("inf")


def infinite_tag_weight(r: pb.BidRequest) -> None:
    r.user.ClearField("tag_vector")
    r.user.tags.add(id="interest:travel", weight=float("-inf"))


def no_impressions(r: pb.BidRequest) -> None:
    r.ClearField("imp")


def negative_floor(r: pb.BidRequest) -> None:
    r.imp[0].bidfloor = -1.5


def duplicate_imp_ids(r: pb.BidRequest) -> None:
    r.imp.add(id=r.imp[0].id, banner=pb.Banner(w=300, h=250))


def malformed_currency(r: pb.BidRequest) -> None:
    r.ClearField("cur")
    r.cur.append("euro")


def malformed_floor_currency(r: pb.BidRequest) -> None:
    r.imp[0].bidfloorcur = "jpy"


def zero_tmax(r: pb.BidRequest) -> None:
    r.tmax = 0


def negative_tmax(r: pb.BidRequest) -> None:
    r.tmax = -20


def both_profiles(r: pb.BidRequest) -> None:
    r.user.tags.add(id="interest:travel", weight=1.0)


def empty_id(r: pb.BidRequest) -> None:
    r.id = ""


def unknown_devicetype(r: pb.BidRequest) -> None:
    r.device.devicetype = 42


def overlong_consent(r: pb.BidRequest) -> None:
    r.user.consent = "C" * 20_000


def overlong_imp_id(r: pb.BidRequest) -> None:
    r.imp[0].id = "i" * 1_000_000  # echoed twice in a bid: the answer would outgrow a client's limit


def overlong_request_id(r: pb.BidRequest) -> None:
    r.id = "r" * 300


def overlong_tagid(r: pb.BidRequest) -> None:
    r.imp[0].tagid = "t" * 5_000


def too_many_blocked_categories(r: pb.BidRequest) -> None:
    r.bcat.extend(f"IAB{i}" for i in range(2_000))


CASES: list[tuple[Callable[[pb.BidRequest], None], str, str]] = [
    (wrong_length, "user.tag_vector", f"length {len(vocabulary().tags) - 1}"),
    (nan_weight, "user.tag_vector[3]", "nan"),
    (infinite_weight, "user.tag_vector[5]", "inf"),
    (infinite_tag_weight, "user.tags[0].weight", "-inf"),
    (no_impressions, "imp", "[]"),
    (negative_floor, "imp[0].bidfloor", "-1.5"),
    (duplicate_imp_ids, "imp[1].id", "'1'"),
    (malformed_currency, "cur[0]", "euro"),
    (malformed_floor_currency, "imp[0].bidfloorcur", "jpy"),
    (zero_tmax, "tmax", "=0"),
    (negative_tmax, "tmax", "-20"),
    (both_profiles, "user", "tag_vector and tags"),
    (empty_id, "id", "''"),
    (unknown_devicetype, "device.devicetype", "42"),
    (overlong_consent, "user.consent", "20000 characters"),
    (overlong_imp_id, "imp[0].id", "1000000 characters"),
    (overlong_request_id, "id", "300 characters"),
    (overlong_tagid, "imp[0].tagid", "5000 characters"),
    (too_many_blocked_categories, "bcat", "2000 items"),
]


@pytest.mark.parametrize(("spoil", "field", "value"), CASES, ids=[c[0].__name__ for c in CASES])
def test_bad_input_is_invalid_argument_naming_field_and_value(
    stub: pb_grpc.BidderStub,
    world: World,
    rng: np.random.Generator,
    spoil: Callable[[pb.BidRequest], None],
    field: str,
    value: str,
) -> None:
    request = _dense(world, rng)
    spoil(request)
    with pytest.raises(grpc.RpcError) as failure:
        stub.Bid(request, timeout=5)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = failure.value.details() or ""
    assert details.startswith(field + "="), details
    assert value in details, details


def test_server_keeps_serving_after_bad_input(
    stub: pb_grpc.BidderStub, world: World, rng: np.random.Generator
) -> None:
    for spoil, _, _ in CASES:
        request = _dense(world, rng)
        spoil(request)
        with pytest.raises(grpc.RpcError):
            stub.Bid(request, timeout=5)
    good = _dense(world, rng)
    assert stub.Bid(good, timeout=5).id == good.id


def test_a_floor_in_a_currency_without_a_rate_is_a_no_bid_not_an_error(
    stub: pb_grpc.BidderStub, world: World, rng: np.random.Generator
) -> None:
    request = _dense(world, rng)
    request.imp[0].bidfloorcur = "JPY"  # well formed; the test server's table has USD only
    assert stub.Bid(request, timeout=5).nbr == NoBid.UNSUPPORTED_CURRENCY
