"""Deals, banner formats, video and native through both doors of a real server: the same bid on each,
and the bid is what the impression asked for."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from msgspec.structs import replace

from personabid import wire
from personabid.decision.snapshot import Snapshot
from personabid.openrtb.codec import encode
from personabid.openrtb.request import Banner, BidRequest, Deal, Format, Native, Pmp, Video
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from tests.auctions import MTYPES, banner_imp, campaign_with, persona_auction
from tests.conftest import ThreadedServer
from tests.http import post_bid


def snapshot_of(server: ThreadedServer) -> Snapshot:
    decider = server.server.decider
    assert decider is not None
    return decider.snapshot


def both_doors(server: ThreadedServer, stub: pb_grpc.BidderStub, request: BidRequest) -> list[dict[str, Any]]:
    """The bids of `request` (a test auction: nothing is spent, so both doors see the same state) over
    HTTP, after checking that gRPC answered the same bids."""
    request = replace(request, test=1)
    reply = post_bid(server.http_addr, encode(request))
    assert reply.status == 200, (reply.status, reply.headers.get("x-nbr"))
    over_http = [b for s in reply.json()["seatbid"] for b in s["bid"]]
    over_grpc = [b for s in stub.Bid(wire.to_message(request), timeout=10).seatbid for b in s.bid]
    keys = ("impid", "cid", "crid", "price", "dealid", "mtype", "w", "h", "adm", "nurl")
    assert [
        tuple(b.get(k, type(getattr(g, k))()) for k in keys)
        for b, g in zip(over_http, over_grpc, strict=True)
    ] == [tuple(getattr(g, k) for k in keys) for g in over_grpc]
    return over_http


def with_imp(request: BidRequest, **fields: object) -> BidRequest:
    return replace(request, imp=(replace(request.imp[0], **fields),))


def test_a_video_impression_gets_a_vast_video_bid_on_both_doors(
    server: ThreadedServer, stub: pb_grpc.BidderStub
) -> None:
    snapshot = snapshot_of(server)
    row, _ = campaign_with(snapshot.bundle.campaigns, "video")
    video = Video(mimes=("video/mp4",), protocols=(2, 3, 5, 6, 7, 8), w=640, h=360)
    bids = both_doors(server, stub, with_imp(persona_auction(snapshot, row), banner=None, video=video))
    assert [b["mtype"] for b in bids] == [MTYPES["video"]]
    assert "<VAST" in bids[0]["adm"]


def test_a_native_impression_gets_a_native_response_on_both_doors(
    server: ThreadedServer, stub: pb_grpc.BidderStub
) -> None:
    snapshot = snapshot_of(server)
    row, _ = campaign_with(snapshot.bundle.campaigns, "native")
    native = Native(request='{"ver":"1.2","assets":[{"id":1,"required":1,"title":{"len":90}}]}', ver="1.2")
    bids = both_doors(server, stub, with_imp(persona_auction(snapshot, row), banner=None, native=native))
    assert [b["mtype"] for b in bids] == [MTYPES["native"]]
    assert json.loads(bids[0]["adm"])["native"]["assets"]


def test_a_banner_of_formats_gets_a_creative_of_one_of_them_on_both_doors(
    server: ThreadedServer, stub: pb_grpc.BidderStub
) -> None:
    snapshot = snapshot_of(server)
    table = snapshot.bundle.campaigns
    imp = banner_imp(table, 13)
    assert imp.banner is not None
    formats = (Format(w=970, h=250), Format(w=imp.banner.w, h=imp.banner.h))
    bids = both_doors(server, stub, with_imp(persona_auction(snapshot, 13), banner=Banner(format=formats)))
    assert bids and all((b["w"], b["h"]) in {(f.w, f.h) for f in formats} for b in bids)


@pytest.fixture
def dealer(server: ThreadedServer) -> Callable[[], tuple[int, str]]:
    def find() -> tuple[int, str]:
        table = snapshot_of(server).bundle.campaigns
        for row in np.flatnonzero(table.deal_bits.any(axis=1)):
            code = next(
                c
                for c in range(1, len(table.deals))
                if table.deal_bits[row, 0] >> np.uint64(c) & np.uint64(1)
            )
            return int(row), str(table.deals[code])
        raise LookupError("no campaign buys through a deal")

    return find


def test_a_private_auction_is_bid_through_its_deal_on_both_doors(
    server: ThreadedServer, stub: pb_grpc.BidderStub, dealer: Callable[[], tuple[int, str]]
) -> None:
    row, deal = dealer()
    pmp = Pmp(private_auction=1, deals=(Deal(id=deal, bidfloor=0.05),))
    bids = both_doors(server, stub, with_imp(persona_auction(snapshot_of(server), row), pmp=pmp))
    assert bids and all(b["dealid"] == deal and b["price"] >= 0.05 for b in bids)
