"""What one request costs the server, part by part, outside gRPC and HTTP.

The gRPC door's work on a call is: decode the message (gRPC does it, with the generated parser), copy it
into the core's request (wire.to_auction); then the Auctioneer's, shared by both doors: pseudonymise the
user's ids, decide (its stages time themselves), build the core's response (Responder.respond) and count
it in the metrics; then copy the response into its message (wire.to_response) and encode it. The HTTP
door decodes the JSON body straight into the core's request (decode_json, in place of decode and
to_auction) and encodes the core's response as JSON (encode_json, in place of to_response and encode).

Each part is timed here on the same requests the load sends, in this process, one request at a time,
with spend control on as the server runs it; medians per part. `total` is the gRPC door's path,
`total_http` the HTTP door's. What the server spends beyond them is gRPC's or HTTP's and asyncio's: the
echo services' CPU per request measure those floors in the same run.

A cProfile of the same calls (the gRPC path; the functions that cost most, by own time) goes beside the
results.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from prometheus_client import CollectorRegistry

from personabid import wire
from personabid.bench.requests import RequestStream, request_pool
from personabid.config import Settings
from personabid.decision.pipeline import STAGES, Decider, DecisionSettings
from personabid.decision.snapshot import Snapshot
from personabid.openrtb.codec import decode_request, encode, pseudonymised
from personabid.privacy import Pseudonymizer
from personabid.reload import warm_up
from personabid.respond import Responder
from personabid.spend.control import SpendControl, SpendSettings
from personabid.spend.store import MemoryStore
from personabid.telemetry import Metrics
from personabid.v1 import bidder_pb2 as pb

# The gRPC door's path, in order; `total` is their sum.
PARTS = (
    "decode",
    "to_auction",
    "pseudonymise",
    *STAGES,
    "decide_other",
    "respond",
    "metrics",
    "to_response",
    "encode",
)
# The HTTP door's own parts; `total_http` is the path with these in place of the gRPC door's own.
HTTP_PARTS = ("decode_json", "encode_json")


SEAT = Settings.seat  # the seat the server answers with by default
NOTICE_BASE_URL = "http://127.0.0.1:8080"  # where the notice URLs of the bids point (their cost only)


def profile_requests(world_dir: Path, requests: int, seed: int = 99) -> dict[str, Any]:
    """Median microseconds per part of the request path over `requests` calls, and the top functions."""
    faiss.omp_set_num_threads(1)  # as the server runs it (app.BidServer)
    snapshot = Snapshot.load(world_dir / "index", world_dir / "model")
    settings = DecisionSettings()
    warm_up(Decider(snapshot, settings))
    decider = Decider(snapshot, settings, spend=SpendControl(MemoryStore(), SpendSettings()))
    metrics = Metrics(CollectorRegistry())
    pseudonym = Pseudonymizer(b"bench-profile-key-0123456789abcdef")
    responder = Responder(SEAT, NOTICE_BASE_URL, pseudonym.signing_key())
    stream = RequestStream(request_pool(world_dir, min(requests, 2000), seed), prefix=0xBE)
    raws = [stream.next() for _ in range(requests)]
    # The same requests as the JSON the HTTP door reads (only decoded: no auction is decided twice).
    bodies = [encode(wire.to_auction(pb.BidRequest.FromString(raw))) for raw in raws]

    def one(raw: bytes, body: bytes, parts: dict[str, list[float]] | None) -> None:
        t0 = time.perf_counter()
        message = pb.BidRequest.FromString(raw)
        t1 = time.perf_counter()
        auction = wire.to_auction(message)
        t2 = time.perf_counter()
        request = pseudonymised(auction, pseudonym)
        t3 = time.perf_counter()
        decision = decider.decide(request)
        t4 = time.perf_counter()
        response = responder.respond(decision)
        t5 = time.perf_counter()
        metrics.observe_decision("Bid", decision, t5 - t2)
        t6 = time.perf_counter()
        answer = wire.to_response(response)
        t7 = time.perf_counter()
        answer.SerializeToString()
        t8 = time.perf_counter()
        if parts is None:
            return
        # The HTTP door's own parts, on the same request and the same response.
        h0 = time.perf_counter()
        decode_request(body)
        h1 = time.perf_counter()
        encode(response)
        h2 = time.perf_counter()
        staged = sum(decision.stages.values())
        for name, seconds in (
            ("decode", t1 - t0),
            ("to_auction", t2 - t1),
            ("pseudonymise", t3 - t2),
            *((stage, decision.stages.get(stage, 0.0)) for stage in STAGES),
            ("decide_other", max(0.0, t4 - t3 - staged)),
            ("respond", t5 - t4),
            ("metrics", t6 - t5),
            ("to_response", t7 - t6),
            ("encode", t8 - t7),
            ("decode_json", h1 - h0),
            ("encode_json", h2 - h1),
        ):
            parts[name].append(seconds * 1e6)
        grpc_only = (t1 - t0) + (t2 - t1) + (t8 - t6)
        parts["total"].append((t8 - t0) * 1e6)
        parts["total_http"].append((t8 - t0 - grpc_only + h2 - h0) * 1e6)

    for raw, body in list(zip(raws, bodies, strict=True))[:200]:  # warm caches, not measured
        one(raw, body, None)
    parts: dict[str, list[float]] = {name: [] for name in (*PARTS, *HTTP_PARTS, "total", "total_http")}
    for raw, body in zip(raws, bodies, strict=True):
        one(raw, body, parts)

    profiler = cProfile.Profile()
    profiler.enable()
    for raw, body in zip(raws, bodies, strict=True):
        one(raw, body, None)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)

    return {
        "campaigns": len(snapshot.bundle.campaigns),
        "index_type": snapshot.bundle.manifest.index_type,
        "requests": requests,
        "median_us": {name: round(float(np.median(v)), 2) for name, v in parts.items()},
        "mean_us": {name: round(float(np.mean(v)), 2) for name, v in parts.items()},
        "cprofile": text.getvalue(),
    }
