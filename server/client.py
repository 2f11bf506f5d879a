"""Client side: requests as JSON, sample requests for demo users, and calls to a running server."""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request
import uuid

import grpc
import numpy as np
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from personabid import wire
from personabid.behaviour import Population, page_category
from personabid.httpdoor import BID_PATH
from personabid.openrtb.codec import decode_request
from personabid.openrtb.request import Banner, BidRequest, Device, Geo, Imp, Site, Tag, User
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import DEVICE_SIZES, SIZES, World


def parse_request(text: str) -> pb.BidRequest:
    """The API's message for an OpenRTB 2.5 or 2.6 request in JSON: read by the HTTP door's own decoder
    (openrtb/codec.py: 2.5's ext fields mapped, flags given as booleans read as 0/1, unknown fields
    ignored), then copied into the message by wire.to_message. InvalidRequest names a value of the
    wrong JSON type."""
    return wire.to_message(decode_request(text.encode()))


def to_json(message: pb.BidRequest | pb.BidResponse) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2)


def sample_auction(world: World, rng: np.random.Generator, dense: bool = False) -> BidRequest:
    """A request for a random user of the demo world, on a banner slot that fits the user's device."""
    users = world.users(1, rng)
    weights = users.vectors[0]
    devicetype = int(users.devicetype[0])
    w, h = SIZES[int(rng.choice(DEVICE_SIZES[devicetype]))]
    if dense:
        profile = User(id=f"demo-user-{rng.integers(1 << 30)}", tag_vector=weights.astype(np.float32))
    else:
        profile = User(
            id=f"demo-user-{rng.integers(1 << 30)}",
            tags=tuple(
                Tag(id=world.vocab.tags[p], weight=float(weights[p])) for p in np.flatnonzero(weights)
            ),
        )
    return BidRequest(
        id=uuid.uuid4().hex,
        imp=(Imp(id="1", banner=Banner(w=w, h=h), bidfloor=0.1, bidfloorcur="USD"),),
        site=Site(id="demo-site", domain="news.example", cat=("IAB12",)),
        device=Device(devicetype=devicetype, os=str(users.os[0]), geo=Geo(country=str(users.country[0]))),
        user=profile,
        tmax=100,
        cur=("USD",),
    )


def exchange_auction(
    world: World, people: Population, rng: np.random.Generator, person: int | None = None
) -> BidRequest:
    """What an exchange sends for a person of the demo world (`person`, or a random one): their id
    (user.buyeruid, the id this bidder syncs with the exchange), the page they read (an IAB content
    category), their device and country; no tag vector. The server finds the person's profile by the id."""
    if person is None:
        person = int(rng.integers(len(people.ids)))
    users = people.users
    devicetype = int(users.devicetype[person])
    w, h = SIZES[int(rng.choice(DEVICE_SIZES[devicetype]))]
    category = page_category(world, users.vectors[person], rng)
    return BidRequest(
        id=uuid.uuid4().hex,
        imp=(Imp(id="1", banner=Banner(w=w, h=h), bidfloor=0.1, bidfloorcur="USD"),),
        site=Site(id="demo-site", domain="pages.example", cat=(category,), page="https://pages.example/a"),
        device=Device(
            devicetype=devicetype, os=str(users.os[person]), geo=Geo(country=str(users.country[person]))
        ),
        user=User(buyeruid=people.ids[person]),
        tmax=100,
        cur=("USD",),
    )


def sample_request(world: World, rng: np.random.Generator, dense: bool = False) -> pb.BidRequest:
    """sample_auction as the API's message."""
    return wire.to_message(sample_auction(world, rng, dense))


def bid(addr: str, request: pb.BidRequest, timeout: float) -> pb.BidResponse:
    with grpc.insecure_channel(addr) as channel:
        return pb_grpc.BidderStub(channel).Bid(request, timeout=timeout)


def health_status(addr: str, service: str, timeout: float) -> str:
    """The health service's answer for `service`, by name (SERVING, NOT_SERVING...)."""
    with grpc.insecure_channel(addr) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def post_http(
    addr: str, body: bytes, timeout: float, debug: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """POST `body` (OpenRTB JSON) to the HTTP door at `addr` (HOST:PORT): status, headers, inflated body."""
    url = f"http://{addr}{BID_PATH}" + ("?debug=1" if debug else "")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"content-type": "application/json", "accept-encoding": "gzip", "x-openrtb-version": "2.6"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, headers, payload = answer.status, dict(answer.headers.items()), answer.read()
    except urllib.error.HTTPError as error:
        status, headers, payload = error.code, dict(error.headers.items()), error.read()
    if headers.get("content-encoding", headers.get("Content-Encoding", "")) == "gzip":
        payload = gzip.decompress(payload)
    return status, {k.lower(): v for k, v in headers.items()}, payload
