"""Client side: requests as JSON, sample requests for demo users, and calls to a running server."""

from __future__ import annotations

import json
import uuid

import grpc
import numpy as np
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import DEVICE_SIZES, SIZES, World


def parse_request(text: str) -> pb.BidRequest:
    """A BidRequest from its JSON form, or from an OpenRTB 2.x request.

    OpenRTB fields that the API does not carry are ignored; `site.publisher.id` becomes
    `site.publisher_id`, and 0/1 flags written as booleans are read as numbers, as exchanges send both.
    OpenRTB 2.5's `regs.ext.gdpr` and `user.ext.consent` stand for 2.6's `regs.gdpr` and `user.consent`.
    """
    data = json.loads(text)
    if isinstance(data, dict):
        site = data.get("site")
        if isinstance(site, dict) and isinstance(site.get("publisher"), dict) and "publisher_id" not in site:
            site["publisher_id"] = str(site["publisher"].get("id", ""))
        regs, user = data.get("regs"), data.get("user")
        for part, name in ((regs, "gdpr"), (user, "consent")):
            if not isinstance(part, dict):
                continue
            ext = part.get("ext")
            if isinstance(ext, dict) and name in ext and name not in part:
                part[name] = ext[name]
        if isinstance(regs, dict):
            for flag in ("coppa", "gdpr"):
                if isinstance(regs.get(flag), bool):
                    regs[flag] = int(regs[flag])
    return json_format.ParseDict(data, pb.BidRequest(), ignore_unknown_fields=True)


def to_json(message: pb.BidRequest | pb.BidResponse) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2)


def sample_request(world: World, rng: np.random.Generator, dense: bool = False) -> pb.BidRequest:
    """A request for a random user of the demo world, on a slot that fits the user's device."""
    users = world.users(1, rng)
    weights = users.vectors[0]
    devicetype = int(users.devicetype[0])
    w, h = SIZES[int(rng.choice(DEVICE_SIZES[devicetype]))]
    request = pb.BidRequest(
        id=uuid.uuid4().hex,
        tmax=100,
        cur=["USD"],
        device=pb.Device(
            devicetype=devicetype, os=str(users.os[0]), geo=pb.Geo(country=str(users.country[0]))
        ),
        site=pb.Site(id="demo-site", domain="news.example", cat=["IAB12"]),
        user=pb.User(id=f"demo-user-{rng.integers(1 << 30)}"),
    )
    request.imp.add(id="1", banner=pb.Banner(w=w, h=h), bidfloor=0.1, bidfloorcur="USD")
    if dense:
        request.user.tag_vector.extend(weights.tolist())
    else:
        for position in np.flatnonzero(weights):
            request.user.tags.add(id=world.vocab.tags[position], weight=float(weights[position]))
    return request


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
