"""What one request costs the server, part by part, outside gRPC.

The servicer's work on a call is: decode the message (gRPC does it, with the generated parser), copy it
into the core's request (wire.to_auction, which also pseudonymises the user id), decide (its stages time
themselves), count it in the metrics, build the response (wire.to_response) and encode it. Each part is
timed here on the same requests the load sends, in this process, one request at a time, with spend
control on as the server runs it; medians per part. What the server spends beyond their sum is gRPC's
and asyncio's: the echo service's CPU per request measures that floor in the same run.

A cProfile of the same calls (the functions that cost most, by own time) goes beside the results.
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
from personabid.privacy import Pseudonymizer
from personabid.reload import warm_up
from personabid.spend.control import SpendControl, SpendSettings
from personabid.spend.store import MemoryStore
from personabid.telemetry import Metrics
from personabid.v1 import bidder_pb2 as pb

PARTS = ("decode", "to_auction", *STAGES, "decide_other", "metrics", "to_response", "encode")


SEAT = Settings.seat  # the seat the server answers with by default


def profile_requests(world_dir: Path, requests: int, seed: int = 99) -> dict[str, Any]:
    """Median microseconds per part of the request path over `requests` calls, and the top functions."""
    faiss.omp_set_num_threads(1)  # as the server runs it (app.BidServer)
    snapshot = Snapshot.load(world_dir / "index", world_dir / "model")
    settings = DecisionSettings()
    warm_up(Decider(snapshot, settings))
    decider = Decider(snapshot, settings, spend=SpendControl(MemoryStore(), SpendSettings()))
    metrics = Metrics(CollectorRegistry())
    pseudonym = Pseudonymizer(b"bench-profile-key-0123456789abcdef")
    stream = RequestStream(request_pool(world_dir, min(requests, 2000), seed), prefix=0xBE)
    raws = [stream.next() for _ in range(requests)]

    def one(raw: bytes, parts: dict[str, list[float]] | None) -> None:
        t0 = time.perf_counter()
        message = pb.BidRequest.FromString(raw)
        t1 = time.perf_counter()
        auction = wire.to_auction(message, pseudonym)
        t2 = time.perf_counter()
        decision = decider.decide(auction)
        t3 = time.perf_counter()
        metrics.observe_decision("Bid", decision, t3 - t2)
        t4 = time.perf_counter()
        response = wire.to_response(decision, SEAT)
        t5 = time.perf_counter()
        response.SerializeToString()
        t6 = time.perf_counter()
        if parts is None:
            return
        staged = sum(decision.stages.values())
        for name, seconds in (
            ("decode", t1 - t0),
            ("to_auction", t2 - t1),
            *((stage, decision.stages.get(stage, 0.0)) for stage in STAGES),
            ("decide_other", max(0.0, t3 - t2 - staged)),
            ("metrics", t4 - t3),
            ("to_response", t5 - t4),
            ("encode", t6 - t5),
        ):
            parts[name].append(seconds * 1e6)
        parts["total"].append((t6 - t0) * 1e6)

    for raw in raws[: min(200, len(raws))]:  # warm caches and branch predictors, not measured
        one(raw, None)
    parts: dict[str, list[float]] = {name: [] for name in (*PARTS, "total")}
    for raw in raws:
        one(raw, parts)

    profiler = cProfile.Profile()
    profiler.enable()
    for raw in raws:
        one(raw, None)
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
