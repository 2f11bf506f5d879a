"""Real OpenRTB requests (../shared/openrtb) map onto BidRequest one to one, and get an answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personabid.client import parse_request
from personabid.decision.reasons import NoBid
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from tests.conftest import SHARED

SAMPLES = sorted((SHARED / "openrtb").glob("*/b*req*.json")) + sorted(
    (SHARED / "openrtb").glob("*/bid-request*.json")
)
pytestmark = pytest.mark.skipif(
    not SAMPLES, reason=f"no OpenRTB samples at {SHARED / 'openrtb'} (../shared absent)"
)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_openrtb_fields_map_one_to_one(path: Path) -> None:
    data = json.loads(path.read_text())
    request = parse_request(path.read_text())
    assert request.id == data["id"]
    assert [i.id for i in request.imp] == [i["id"] for i in data["imp"]]
    assert [i.bidfloor for i in request.imp] == [i.get("bidfloor", 0.0) for i in data["imp"]]
    assert [(i.banner.w, i.banner.h) for i in request.imp] == [
        (i.get("banner", {}).get("w", 0), i.get("banner", {}).get("h", 0)) for i in data["imp"]
    ]
    assert list(request.bcat) == data.get("bcat", [])
    assert list(request.badv) == data.get("badv", [])
    assert request.device.geo.country == data.get("device", {}).get("geo", {}).get("country", "")
    assert request.device.devicetype == data.get("device", {}).get("devicetype", 0)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_openrtb_request_without_a_profile_is_an_unmatched_user(path: Path, stub: pb_grpc.BidderStub) -> None:
    response = stub.Bid(parse_request(path.read_text()), timeout=5)
    assert response.nbr == NoBid.UNMATCHED_USER
