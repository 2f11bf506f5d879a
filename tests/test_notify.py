"""Notifications over real gRPC: idempotent, checked at the edge, logged for training, and safe when the
shared state store goes away and comes back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from personabid.client import sample_auction, sample_request
from personabid.decision.pipeline import Decider
from personabid.decision.reasons import NoBid
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World
from tests.conftest import RedisServer, ThreadedServer, server_settings


@pytest.fixture
def served(demo_dir: Path, tmp_path: Path) -> Iterator[ThreadedServer]:
    server = ThreadedServer(server_settings(demo_dir, event_log=tmp_path / "events.jsonl")).start()
    yield server
    server.stop()


def won(
    stub: pb_grpc.BidderStub, world: World, seed: int = 0, user: str = ""
) -> tuple[pb.BidRequest, pb.Bid]:
    """A request and the bid it got (the first seed from `seed` up whose request gets one)."""
    for s in range(seed, seed + 50):
        request = sample_request(world, np.random.default_rng(s))
        if user:
            request.user.id = user
        response = stub.Bid(request, timeout=5)
        if response.seatbid:
            return request, response.seatbid[0].bid[0]
    raise AssertionError("no bid in 50 requests")


def event(kind: pb.Event.Type, request: pb.BidRequest, bid: pb.Bid, price: float = 0.0) -> pb.Event:
    return pb.Event(
        type=kind,
        auction_id=request.id,
        imp_id=bid.impid,
        bid_id=bid.id,
        campaign_id=bid.campaign_id,
        price=price,
    )


def spent(server: ThreadedServer) -> float:
    return server.server.registry.get_sample_value("personabid_spend_usd_total") or 0.0


def test_duplicate_win_counts_once(served: ThreadedServer, world: World) -> None:
    with grpc.insecure_channel(served.addr) as channel:
        stub = pb_grpc.BidderStub(channel)
        request, bid = won(stub, world)
        first = stub.NotifyOne(event(pb.Event.WIN, request, bid, price=bid.price * 0.8), timeout=5)
        second = stub.NotifyOne(event(pb.Event.WIN, request, bid, price=bid.price * 0.8), timeout=5)
    assert (first.accepted, first.duplicates) == (1, 0)
    assert (second.accepted, second.duplicates) == (0, 1)
    assert spent(served) == pytest.approx(bid.price * 0.8 / 1000)


def test_invalid_event_is_rejected_naming_its_field(served: ThreadedServer) -> None:
    with grpc.insecure_channel(served.addr) as channel:
        ack = pb_grpc.BidderStub(channel).NotifyOne(
            pb.Event(type=pb.Event.WIN, auction_id="a", imp_id="1", campaign_id="c", price=-2.0), timeout=5
        )
    assert ack.rejected == 1
    assert ack.errors[0].startswith("event.price=-2.0")


def test_stream_of_events_is_tallied(served: ThreadedServer, world: World) -> None:
    with grpc.insecure_channel(served.addr) as channel:
        stub = pb_grpc.BidderStub(channel)
        request, bid = won(stub, world)
        other, lost = won(stub, world, seed=100)
        events = [
            event(pb.Event.WIN, request, bid, price=bid.price),
            event(pb.Event.WIN, request, bid, price=bid.price),
            event(pb.Event.CLICK, request, bid),
            event(pb.Event.LOSS, other, lost),
            pb.Event(type=pb.Event.CLICK, imp_id="1", campaign_id="c"),
        ]
        ack = stub.Notify(iter(events), timeout=10)
    assert (ack.accepted, ack.duplicates, ack.rejected) == (3, 1, 1)
    assert ack.errors[0].startswith("events[4].auction_id")


def test_win_and_click_reach_the_event_log_without_the_raw_user_id(
    served: ThreadedServer, world: World, tmp_path: Path
) -> None:
    with grpc.insecure_channel(served.addr) as channel:
        stub = pb_grpc.BidderStub(channel)
        request, bid = won(stub, world, user="raw-user-1234")
        stub.NotifyOne(event(pb.Event.WIN, request, bid, price=bid.price), timeout=5)
        stub.NotifyOne(event(pb.Event.CLICK, request, bid), timeout=5)
    text = "".join(path.read_text() for path in sorted(tmp_path.glob("events-*.jsonl")))
    # The bid lines of the auctions come first; what the notices added follows.
    records = [r for r in map(json.loads, text.splitlines()) if r["event"] != "bid"]
    assert [(r["event"], r["request_id"], r["campaign"]) for r in records] == [
        ("win", request.id, bid.campaign_id),
        ("click", request.id, bid.campaign_id),
    ]
    assert records[0]["user"] and "raw-user-1234" not in text


ROUNDS = 40


def capped_seed(serving: Decider, world: World) -> int:
    """The first seed whose sample request a campaign with a frequency cap under ROUNDS wins, as the
    serving decision decides it before anyone has been shown anything (no spend control)."""
    table = serving.snapshot.bundle.campaigns
    unlimited = Decider(serving.snapshot, serving.settings, serving.clock)
    for seed in range(100):
        bids = unlimited.decide(sample_auction(world, np.random.default_rng(seed))).bids
        if bids and 0 < table.freq_cap[bids[0].campaign_row] < ROUNDS:
            return seed
    raise AssertionError("no sample request among 100 is won by a frequency-capped campaign")


def test_frequency_cap_stops_bids_to_a_user_over_grpc(served: ThreadedServer, world: World) -> None:
    serving = served.server.decider
    assert serving is not None
    table = serving.snapshot.bundle.campaigns
    seed = capped_seed(serving, world)
    with grpc.insecure_channel(served.addr) as channel:
        stub = pb_grpc.BidderStub(channel)
        shown: dict[str, int] = {}
        for round_ in range(ROUNDS):
            request = sample_request(world, np.random.default_rng(seed))
            request.id = f"cap-{round_}"
            request.user.id = "capped-user"
            response = stub.Bid(request, timeout=5)
            if not response.seatbid:
                break
            bid = response.seatbid[0].bid[0]
            shown[bid.campaign_id] = shown.get(bid.campaign_id, 0) + 1
            stub.NotifyOne(event(pb.Event.WIN, request, bid, price=bid.price), timeout=5)
    caps = {c: int(table.freq_cap[np.flatnonzero(table.campaign_id == c)[0]]) for c in shown}
    # The cap must have been reached for the test to prove that it stops bids, not merely that no
    # capped campaign won often.
    assert any(cap and shown[c] == cap for c, cap in caps.items()), (shown, caps)
    assert all(cap == 0 or shown[c] <= cap for c, cap in caps.items()), (shown, caps)


def test_redis_outage_is_survived_and_recovered(demo_dir: Path, tmp_path: Path, world: World) -> None:
    redis_server = RedisServer(tmp_path).start()
    server = ThreadedServer(
        server_settings(demo_dir, redis_url=redis_server.url, event_log=tmp_path / "e.jsonl")
    )
    server.start()
    try:
        with grpc.insecure_channel(server.addr) as channel:
            stub = pb_grpc.BidderStub(channel)
            request, bid = won(stub, world)
            assert stub.NotifyOne(event(pb.Event.WIN, request, bid, price=bid.price), timeout=5).accepted == 1

            redis_server.stop()
            outage = until_state_unavailable(stub, world, timeout=5)
            assert not outage.seatbid and outage.nbr == NoBid.STATE_UNAVAILABLE
            # From then on every request is still answered, and none with a bid on budgets that cannot be
            # checked.
            for seed in range(5):
                response = stub.Bid(sample_request(world, np.random.default_rng(seed)), timeout=5)
                assert not response.seatbid and response.nbr, response
            with pytest.raises(grpc.RpcError) as refused:
                stub.NotifyOne(event(pb.Event.CLICK, request, bid), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert (server.server.registry.get_sample_value("personabid_state_store_errors_total") or 0) > 0

            redis_server.start()
            deadline = time.monotonic() + 20
            recovered = None
            while time.monotonic() < deadline:
                answer = stub.Bid(won_request(world), timeout=5)
                if answer.seatbid:
                    recovered = answer
                    break
                time.sleep(0.2)
            assert recovered is not None, "bids again once Redis is back"
            assert stub.NotifyOne(event(pb.Event.CLICK, request, bid), timeout=5).accepted == 1
    finally:
        server.stop()
        redis_server.stop()


# The call's deadline: far above what a loaded machine needs to answer, and finite, where a store call
# without its short socket timeout would wait for a hung Redis forever.
HUNG_STORE_DEADLINE = 20.0


def test_hung_redis_is_answered_with_state_unavailable_before_the_deadline(
    demo_dir: Path, tmp_path: Path, world: World
) -> None:
    redis_server = RedisServer(tmp_path).start()
    server = ThreadedServer(server_settings(demo_dir, redis_url=redis_server.url)).start()
    try:
        with grpc.insecure_channel(server.addr) as channel:
            stub = pb_grpc.BidderStub(channel)
            won(stub, world)  # the store's connections are open and in use
            redis_server.pause()
            answer = until_state_unavailable(stub, world, timeout=HUNG_STORE_DEADLINE)
        assert not answer.seatbid and answer.nbr == NoBid.STATE_UNAVAILABLE, answer
    finally:
        # Redis first: stopping it ends any store call still waiting on it, which would hold the server.
        redis_server.stop()
        server.stop()


def until_state_unavailable(stub: pb_grpc.BidderStub, world: World, timeout: float) -> pb.BidResponse:
    """The first answer that is not a bid, once Redis is gone. Bids are made from the budget slices the
    worker leased until its background thread's next turn meets the outage (every few milliseconds under
    traffic, 0.1 s when idle): a bounded number of calls, each within `timeout`, bids before that."""
    answer = pb.BidResponse()
    for _ in range(500):
        answer = stub.Bid(won_request(world), timeout=timeout)
        if not answer.seatbid:
            return answer
        time.sleep(0.01)  # the outage is the background's to meet: leave it the event loop's turns
    return answer


def won_request(world: World) -> pb.BidRequest:
    """A request that gets a bid when the state store is up (a demo user, fixed seed, fresh id)."""
    request = sample_request(world, np.random.default_rng(0))
    request.id = f"r-{time.monotonic_ns()}"
    return request
