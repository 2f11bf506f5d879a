"""The Bidder over real gRPC on 127.0.0.1: health, bids, no-bids, streams, reflection, error boundary."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from personabid.client import sample_request
from personabid.decision.reasons import NoBid
from personabid.index.bundle import load_index
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World
from tests.conftest import ThreadedServer, server_settings
from tests.tcf import tc_string


def health_of(channel: grpc.Channel, service: str = "personabid.v1.Bidder") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_health_is_serving_once_loaded(channel: grpc.Channel) -> None:
    assert health_of(channel) == health_pb2.HealthCheckResponse.SERVING


def test_health_is_not_serving_before_the_index_is_loaded(demo_dir: Path) -> None:
    loading = ThreadedServer(server_settings(demo_dir)).start(load=False)
    try:
        with grpc.insecure_channel(loading.addr) as channel:
            assert health_of(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        loading.stop()


def test_bid_before_load_is_unavailable(demo_dir: Path, world: World, rng: np.random.Generator) -> None:
    loading = ThreadedServer(server_settings(demo_dir)).start(load=False)
    try:
        with grpc.insecure_channel(loading.addr) as channel, pytest.raises(grpc.RpcError) as failure:
            pb_grpc.BidderStub(channel).Bid(sample_request(world, rng), timeout=5)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        loading.stop()


def test_most_demo_users_get_a_bid(stub: pb_grpc.BidderStub, world: World, rng: np.random.Generator) -> None:
    responses = [stub.Bid(sample_request(world, rng), timeout=5) for _ in range(100)]
    with_bid = sum(1 for r in responses if r.seatbid)
    assert with_bid >= 60, [r.nbr for r in responses if not r.seatbid]


def test_a_bid_names_campaign_creative_price_pctr_and_match_score(
    stub: pb_grpc.BidderStub, world: World, demo_dir: Path
) -> None:
    request = next(
        r
        for r in (sample_request(world, np.random.default_rng(seed)) for seed in range(50))
        if stub.Bid(r, timeout=5).seatbid
    )
    response = stub.Bid(request, timeout=5)
    table = load_index(demo_dir / "index").campaigns
    bid = response.seatbid[0].bid[0]
    row = int(np.flatnonzero(table.campaign_id == bid.campaign_id)[0])
    assert response.id == request.id
    assert bid.impid == request.imp[0].id
    assert bid.creative_id in set(
        table.creative_id[table.creative_offsets[row] : table.creative_offsets[row + 1]]
    )
    assert request.imp[0].bidfloor <= bid.price <= table.max_bid[row]
    assert 0.0 < bid.pctr < 1.0
    assert table.min_match[row] <= bid.match_score <= 1.0 + 1e-5
    assert list(bid.adomain) == [table.adomain[row]]


def a_request_that_gets_a_bid(stub: pb_grpc.BidderStub, world: World) -> pb.BidRequest:
    request = next(
        r
        for r in (sample_request(world, np.random.default_rng(seed)) for seed in range(50))
        if stub.Bid(r, timeout=5).seatbid
    )
    request.user.id = f"another-{request.user.id}"  # a user no frequency cap has seen yet
    return request


def test_gdpr_request_without_consent_is_answered_as_if_it_had_no_user(
    stub: pb_grpc.BidderStub, world: World
) -> None:
    # Privacy decides what may be used, not whether to bid: the context alone is matched.
    request = a_request_that_gets_a_bid(stub, world)
    request.test = 1  # nothing reserved or paced: the two calls see the same campaigns
    request.regs.gdpr = 1
    anonymous = pb.BidRequest()
    anonymous.CopyFrom(request)
    anonymous.ClearField("user")
    anonymous.regs.gdpr = 0
    got, expected = stub.Bid(request, timeout=5), stub.Bid(anonymous, timeout=5)
    assert got.nbr == expected.nbr and got.nbr != 508
    assert [(b.campaign_id, b.price) for s in got.seatbid for b in s.bid] == [
        (b.campaign_id, b.price) for s in expected.seatbid for b in s.bid
    ]


def test_gdpr_request_consenting_to_personalised_ads_gets_a_bid(
    stub: pb_grpc.BidderStub, world: World
) -> None:
    request = a_request_that_gets_a_bid(stub, world)
    request.regs.gdpr = 1
    request.user.consent = tc_string({1, 3, 4})
    assert stub.Bid(request, timeout=5).seatbid


def test_vector_unlike_every_persona_gets_no_eligible_campaign(
    stub: pb_grpc.BidderStub, world: World
) -> None:
    # Personas have no negative weights, so a user who is all negative is unlike every one of them.
    request = pb.BidRequest(id="unlike", tmax=100, user=pb.User(tag_vector=[-1.0] * world.vocab.dims))
    request.imp.add(id="1", banner=pb.Banner(w=300, h=250))
    response = stub.Bid(request, timeout=5)
    assert not response.seatbid
    # The user is known, only unlike everyone: nbr 8 is for a request that carries nothing usable.
    assert response.nbr == NoBid.NO_ELIGIBLE_CAMPAIGN
    assert response.nbr_detail


def test_stream_answers_a_thousand_requests_in_order(
    stub: pb_grpc.BidderStub, world: World, rng: np.random.Generator
) -> None:
    base = sample_request(world, rng)
    requests = []
    for i in range(1000):
        request = pb.BidRequest()
        request.CopyFrom(base)
        request.id = f"auction-{i}"
        requests.append(request)
    answers = list(stub.BidStream(iter(requests), timeout=60))
    assert [a.id for a in answers] == [r.id for r in requests]


def test_stream_answers_an_invalid_request_with_nbr_2_and_goes_on(
    stub: pb_grpc.BidderStub, world: World, rng: np.random.Generator
) -> None:
    good = sample_request(world, rng)
    bad = pb.BidRequest(id="bad", user=good.user)  # no impressions
    answers = list(stub.BidStream(iter([bad, good]), timeout=10))
    assert [a.id for a in answers] == ["bad", good.id]
    assert answers[0].nbr == NoBid.INVALID_REQUEST
    assert "imp" in answers[0].nbr_detail


def test_reflection_lists_the_bidder_service(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert "personabid.v1.Bidder" in names


class _FailingDecider:
    def decide(self, request: object) -> object:
        raise RuntimeError("secret internal state /etc/personabid")


def test_unexpected_error_is_internal_without_a_traceback(
    demo_dir: Path, world: World, rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    failing = ThreadedServer(server_settings(demo_dir)).start()
    failing.server.decider = _FailingDecider()  # type: ignore[assignment]
    try:
        with grpc.insecure_channel(failing.addr) as channel, pytest.raises(grpc.RpcError) as failure:
            pb_grpc.BidderStub(channel).Bid(sample_request(world, rng), timeout=5)
        assert failure.value.code() == grpc.StatusCode.INTERNAL
        assert failure.value.details() == "internal error"
        assert any(r.exc_info and "secret internal state" in str(r.exc_info[1]) for r in caplog.records)
    finally:
        failing.stop()


def test_internal_error_log_never_carries_the_raw_user_id(
    demo_dir: Path, world: World, rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    failing = ThreadedServer(server_settings(demo_dir)).start()
    failing.server.decider = _FailingDecider()  # type: ignore[assignment]
    request = sample_request(world, rng)
    request.user.id = "raw-user-4711"
    try:
        with grpc.insecure_channel(failing.addr) as channel, pytest.raises(grpc.RpcError):
            pb_grpc.BidderStub(channel).Bid(request, timeout=5)
        # The failure's own record must be among those read, or the check below proves nothing.
        assert any(r.exc_info for r in caplog.records)
        assert all("raw-user-4711" not in r.getMessage() for r in caplog.records)
    finally:
        failing.stop()
