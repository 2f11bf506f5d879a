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

The Decider is built as the server builds it (serving.py: its profile store too, so that the user vector's
profile lookup is paid here as there), and each decision with bids is written to a bid log as the
server's event log writes it (`bid_log`). Then the same requests go through the real servicer on an event
loop (BidderServicer.Bid over the Auctioneer, as `personabid serve` wires them, decode and encode
beside): `servicer_call` is that call's cost, and `servicer_other` what it adds to the parts (the
coroutines, the Auctioneer's bookkeeping). Means are given beside medians: the server's CPU per request
is a mean, and the accounting of a request's CPU (runner.summarize) adds means. The machine is shared:
elapsed time counts the moments another process held the core, so the path's and the servicer's call's
CPU time (`total_cpu`, `servicer_call_cpu`, this thread's) are kept too, and the accounting reads them.

A cProfile of the same calls (the gRPC path; the functions that cost most, by own time) goes beside the
results.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from personabid import wire
from personabid.auction import Auctioneer
from personabid.bench.requests import RequestStream, request_pool
from personabid.bench.serving import serving
from personabid.config import Settings
from personabid.decision.pipeline import STAGES
from personabid.eventlog import EventLog
from personabid.openrtb.codec import decode_request, encode, pseudonymised
from personabid.respond import Responder
from personabid.servicer import BidderServicer
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
    "bid_log",
    "to_response",
    "encode",
)
# The HTTP door's own parts; `total_http` is the path with these in place of the gRPC door's own.
HTTP_PARTS = ("decode_json", "encode_json")


SEAT = Settings.seat  # the seat the server answers with by default
NOTICE_BASE_URL = "http://127.0.0.1:8080"  # where the notice URLs of the bids point (their cost only)


def profile_requests(world_dir: Path, requests: int, seed: int = 99) -> dict[str, Any]:
    """Median and mean microseconds per part of the request path over `requests` calls, the servicer's
    call, and the top functions."""
    served = serving(world_dir, spend=SpendControl(MemoryStore(), SpendSettings()))
    snapshot, decider, pseudonym = served.snapshot, served.decider, served.pseudonym
    metrics = Metrics(CollectorRegistry())
    responder = Responder(SEAT, NOTICE_BASE_URL, pseudonym.signing_key())
    scratch = Path(tempfile.mkdtemp(prefix="personabid-profile-"))
    event_log = EventLog(scratch / "events.jsonl", bid_sample=served.settings.bid_log_sample)
    stream = RequestStream(request_pool(world_dir, min(requests, 2000), seed), prefix=0xBE)
    raws = [stream.next() for _ in range(requests)]
    # The same requests as the JSON the HTTP door reads (only decoded: no auction is decided twice).
    bodies = [encode(wire.to_auction(pb.BidRequest.FromString(raw))) for raw in raws]

    def one(raw: bytes, body: bytes, parts: dict[str, list[float]] | None) -> None:
        c0 = time.thread_time()
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
        if decision.bids:
            event_log.bids(decision)
        t6b = time.perf_counter()
        answer = wire.to_response(response)
        t7 = time.perf_counter()
        answer.SerializeToString()
        t8 = time.perf_counter()
        c8 = time.thread_time()
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
            ("bid_log", t6b - t6),
            ("to_response", t7 - t6b),
            ("encode", t8 - t7),
            ("decode_json", h1 - h0),
            ("encode_json", h2 - h1),
        ):
            parts[name].append(seconds * 1e6)
        grpc_only = (t1 - t0) + (t2 - t1) + (t8 - t6b)
        parts["total"].append((t8 - t0) * 1e6)
        parts["total_cpu"].append((c8 - c0) * 1e6)
        parts["total_http"].append((t8 - t0 - grpc_only + h2 - h0) * 1e6)

    for raw, body in list(zip(raws, bodies, strict=True))[:200]:  # warm caches, not measured
        one(raw, body, None)
    parts: dict[str, list[float]] = {
        name: [] for name in (*PARTS, *HTTP_PARTS, "total", "total_http", "total_cpu")
    }
    for raw, body in zip(raws, bodies, strict=True):
        one(raw, body, parts)

    auctioneer = Auctioneer(lambda: decider, metrics, pseudonym, responder, on_decision=event_log.bids)
    parts["servicer_call"], parts["servicer_call_cpu"] = _servicer_calls(raws, auctioneer, metrics)
    # The same calls with the core's private caches (L1, L2) emptied before each (untimed): in the server,
    # gRPC's machinery and the event loop run on the same core between two calls and evict the path's
    # data from them (the last-level cache is shared and large, hundreds of MB on these machines). An
    # estimate of what the server pays in cache misses that the warm loop above does not.
    _, parts["servicer_call_cpu_cold"] = _servicer_calls(raws, auctioneer, metrics, _cache_sweep())
    event_log.close()

    profiler = cProfile.Profile()
    profiler.enable()
    for raw, body in zip(raws, bodies, strict=True):
        one(raw, body, None)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)

    median = {name: round(float(np.median(v)), 2) for name, v in parts.items()}
    mean = {name: round(float(np.mean(v)), 2) for name, v in parts.items()}
    # What the servicer's call adds to the parts it is made of (a difference of means: a median of a
    # difference would need both timed on one call).
    mean["servicer_other"] = round(max(0.0, mean["servicer_call"] - mean["total"]), 2)
    return {
        "campaigns": len(snapshot.bundle.campaigns),
        "index_type": snapshot.bundle.manifest.index_type,
        "requests": requests,
        "profile_store": served.settings.profile_store if decider.profiles is not None else "none",
        "median_us": median,
        "mean_us": mean,
        "cprofile": text.getvalue(),
    }


def _cache_sweep() -> np.ndarray:
    """A buffer twice the size of the core's L2 cache (2 MiB when the system does not say)."""
    size = 2 << 20
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip()
        size = 2 * int(text.rstrip("KMG")) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
    except (OSError, ValueError):
        pass
    return np.ones(size // 8)


def _servicer_calls(
    raws: list[bytes], auctioneer: Auctioneer, metrics: Metrics, sweep: np.ndarray | None = None
) -> tuple[list[float], list[float]]:
    """Microseconds per call of the real servicer's Bid (decode and encode beside, as gRPC does them),
    awaited one at a time on an event loop: elapsed, and this thread's CPU time (which, unlike elapsed
    time, does not count the moments another process had the core)."""
    servicer = BidderServicer(auctioneer, metrics)

    async def calls() -> tuple[list[float], list[float]]:
        elapsed, cpu = [], []
        for raw in raws:
            if sweep is not None:
                sweep.sum()  # reads every line of the buffer: the caches hold it, not the path's data
            c0 = time.thread_time()
            t0 = time.perf_counter()
            # The context is read only when a call fails, which these calls do not.
            answer = await servicer.Bid(pb.BidRequest.FromString(raw), None)  # type: ignore[arg-type]
            answer.SerializeToString()
            elapsed.append((time.perf_counter() - t0) * 1e6)
            cpu.append((time.thread_time() - c0) * 1e6)
        return elapsed, cpu

    return asyncio.run(calls())
