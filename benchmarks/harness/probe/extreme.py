"""Probe 2: well-formed BidRequests with extreme values (floors, weights, sizes, strings...), each answer
judged by the API's own promises."""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator

import grpc
import numpy as np

from personabid.bench.probe.results import CallTally, ProbeResult, percentile
from personabid.bench.probe.server import Context, drain, good_request_answer, stopped_early
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc

FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_DENORMAL = float(np.float32(1e-45))  # the smallest positive float32

Mutation = Callable[[pb.BidRequest, random.Random, int], str]

FLOORS = (
    0.0, -0.0, 5e-324, 1e-300, 1e-9, 0.01, 0.1, 1.0, 1.99, 2.0, 2.01, 5.0, 10.0, 50.0, 100.0, 999.99,
    1e3, 1e4, 1e5, 1e6, 1e300, sys.float_info.max,
)  # fmt: skip
INVALID_FLOORS = (-1e-9, -1.0, -1e6, math.nan, math.inf, -math.inf)
WEIGHTS = (
    FLOAT32_MAX, -FLOAT32_MAX, 1e38, 1e30, 1e20, 1e10, 1.0, 1e-10, 1e-30, 1e-38, 1e-40, FLOAT32_DENORMAL,
    0.0, -0.0, -1.0, 1e39, math.nan, math.inf, -math.inf,
)  # fmt: skip
SIZES = (
    (0, 0), (0, 250), (300, 0), (1, 1), (300, 250), (320, 50), (728, 90), (65_535, 65_535),
    (2**31 - 1, 2**31 - 1), (-1, 50), (-(2**31), -(2**31)),
)  # fmt: skip
INT32_EXTREMES = (0, 1, 2, 3, 4, 5, 6, 10, 100, 499, 500, 501, 2**31 - 1, -1, -(2**31))
UNICODE = (
    "\u202eevil", "\U0001f4b5\U0001f525", "nul\x00byte", "e\u0301\u0301\u0301", "\ufeffbom", "ＵＳＡ",
    "\u0130stanbul", "\uffff", "\U0010ffff", "line\nbreak", "%s%n{0}", "' OR 1=1 --",
)  # fmt: skip


def _floor(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    value = rng.choice(FLOORS + INVALID_FLOORS) if rng.random() < 0.3 else rng.choice(FLOORS)
    for imp in request.imp:
        imp.bidfloor = value
    return f"floor={value!r}"


def _floor_currency(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    value = rng.choice(("EUR", "usd", "", "USD\x00", "XXX", "X" * 1000, "\U0001f4b5", "JPY"))
    for imp in request.imp:
        imp.bidfloorcur = value
    return f"bidfloorcur={value[:12]!r}"


def _currencies(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    value = rng.choice(
        (["XXX"], ["usd"], ["USD", "EUR"], ["EUR"], [""], ["US D"], ["\U0001f4b5"], ["USD"] * 1000, [])
    )
    del request.cur[:]
    request.cur.extend(value)
    return f"cur={value[:3]!r}{'...' if len(value) > 3 else ''}"


def _tag_weights(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    value = rng.choice(WEIGHTS)
    if not request.user.tags:
        request.user.ClearField("tag_vector")
        request.user.tags.add(id="interest:travel", weight=1.0)
    everywhere = rng.random() < 0.5
    for i, tag in enumerate(request.user.tags):
        if everywhere or i == 0:
            tag.weight = value
    return f"tag weight{'s' if everywhere else '[0]'}={value!r}"


def _dense(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    pattern = rng.choice(
        ("1e20", "f32max", "denormal", "zeros", "one 1e20", "alternating 1e20", "nan at end", "inf",
         "short", "long", "huge length", "with tags")
    )  # fmt: skip
    values: list[float]
    if pattern == "1e20":
        values = [1e20] * dims
    elif pattern == "f32max":
        values = [FLOAT32_MAX] * dims
    elif pattern == "denormal":
        values = [FLOAT32_DENORMAL] * dims
    elif pattern == "zeros":
        values = [0.0] * dims
    elif pattern == "one 1e20":
        values = [0.0] * dims
        values[rng.randrange(dims)] = 1e20
    elif pattern == "alternating 1e20":
        values = [1e20 if i % 2 else -1e20 for i in range(dims)]
    elif pattern == "nan at end":
        values = [0.5] * (dims - 1) + [math.nan]
    elif pattern == "inf":
        values = [math.inf] + [0.5] * (dims - 1)
    elif pattern == "short":
        values = [0.5] * (dims - 1)
    elif pattern == "long":
        values = [0.5] * (dims + 1)
    elif pattern == "huge length":
        values = [0.5] * 200_000
    else:
        values = [0.5] * dims
    if pattern != "with tags":
        request.user.ClearField("tags")
    del request.user.tag_vector[:]
    request.user.tag_vector.extend(values)
    return f"tag_vector={pattern}"


def _impressions(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    count = rng.choice((0, 1, 2, 8, 32, 63, 64, 65, 100, 1000))
    template = request.imp[0] if request.imp else pb.Imp(id="1")
    duplicate = rng.random() < 0.2
    del request.imp[:]
    for i in range(count):
        imp = request.imp.add()
        imp.CopyFrom(template)
        imp.tagid = imp.tagid[:64]  # a long string is its own mutation; a thousand copies are not the point
        imp.id = "dup" if duplicate else str(i + 1)
    return f"imps={count}{' same id' if duplicate else ''}"


def _sizes(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    w, h = rng.choice(SIZES)
    for imp in request.imp:
        imp.banner.w, imp.banner.h = w, h
    return f"size={w}x{h}"


def _tmax(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    choice = rng.choice((*INT32_EXTREMES, None))
    if choice is None:
        request.ClearField("tmax")
    else:
        request.tmax = choice
    return f"tmax={choice}"


def _auction_type(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    request.at = rng.choice(INT32_EXTREMES)
    return f"at={request.at}"


def _long_string(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    length = rng.choice((1_000, 65_536, 1_000_000))
    text = rng.choice(("x", "\u00e9", "\U0001f600")) * length
    where = rng.choice(
        ("id", "user.id", "device.os", "geo.country", "geo.city", "site.domain", "imp.tagid", "imp.id",
         "tag id", "consent", "bcat x10k", "badv x10k", "site.cat x10k")
    )  # fmt: skip
    if where == "id":
        request.id = text
    elif where == "user.id":
        request.user.id = text
    elif where == "device.os":
        request.device.os = text
    elif where == "geo.country":
        request.device.geo.country = text
    elif where == "geo.city":
        request.device.geo.city = text
    elif where == "site.domain":
        request.site.domain = text
    elif where == "imp.tagid" and request.imp:
        request.imp[0].tagid = text
    elif where == "imp.id" and request.imp:
        request.imp[0].id = text
    elif where == "tag id":
        request.user.ClearField("tag_vector")
        request.user.tags.add(id=text, weight=1.0)
    elif where == "consent":
        request.regs.gdpr = 1
        request.user.consent = text
    elif where.endswith("x10k"):
        target = {"bcat": request.bcat, "badv": request.badv, "site.cat": request.site.cat}[where.split()[0]]
        target.extend(f"{text[:20]}{i}" for i in range(10_000))
    return f"long {where} ({length} chars)"


def _unicode(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    text = rng.choice(UNICODE)
    where = rng.choice(("id", "os", "country", "imp.id", "tag id", "cur", "bcat", "domain"))
    if where == "id":
        request.id = text
    elif where == "os":
        request.device.os = text
    elif where == "country":
        request.device.geo.country = text
    elif where == "imp.id" and request.imp:
        request.imp[0].id = text
    elif where == "tag id":
        request.user.ClearField("tag_vector")
        request.user.tags.add(id=f"interest:{text}", weight=1.0)
    elif where == "cur":
        request.cur.append(text)
    elif where == "bcat":
        request.bcat.append(text)
    else:
        request.site.domain = text
    return f"unicode {where}={text!r}"


def _duplicates(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    if rng.random() < 0.5 and request.imp:
        request.imp.add().CopyFrom(request.imp[0])
        return "duplicate imp id"
    request.user.ClearField("tag_vector")
    request.user.tags.add(id="interest:travel", weight=0.5)
    request.user.tags.add(id="interest:travel", weight=0.7)
    return "duplicate tag id"


def _many_tags(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    # Tags unknown to the vocabulary are ignored, but each must still be read: the cap is what bounds it.
    count = rng.choice((4096, 4097, 20_000))
    request.user.ClearField("tag_vector")
    request.user.ClearField("tags")
    for i in range(count):
        request.user.tags.add(id=f"unknown:{i}", weight=1.0)
    return f"{count} tags"


def _device_and_regs(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    what = rng.choice(("devicetype", "coppa", "gdpr", "consent"))
    if what == "devicetype":
        request.device.devicetype = rng.choice(INT32_EXTREMES)
        return f"devicetype={request.device.devicetype}"
    if what == "coppa":
        request.regs.coppa = rng.choice(INT32_EXTREMES)
        return f"coppa={request.regs.coppa}"
    request.regs.gdpr = rng.choice((1, 1, 2, -1)) if what == "gdpr" else 1
    request.user.consent = rng.choice(("", "garbage", "CO" + "A" * 200, "\U0001f600", "C" * 16_385))
    return f"gdpr={request.regs.gdpr} consent={request.user.consent[:8]!r}"


def _emptied(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    what = rng.choice(("id", "user", "profile", "site", "device", "everything but id"))
    if what == "id":
        request.id = ""
    elif what == "user":
        request.ClearField("user")
    elif what == "profile":
        request.user.ClearField("tags")
        request.user.ClearField("tag_vector")
    elif what == "site":
        request.ClearField("site")
    elif what == "device":
        request.ClearField("device")
    else:
        keep = request.id
        request.Clear()
        request.id = keep
    return f"no {what}"


def _app(request: pb.BidRequest, rng: random.Random, dims: int) -> str:
    request.app.bundle = rng.choice(("com.example", "", "\U0001f600" * 100))
    request.app.cat.extend(rng.sample(["IAB1", "IAB25", "IAB25-3", "IAB26", "", "IAB999"], 2))
    return f"app bundle={request.app.bundle[:10]!r}"


MUTATIONS: tuple[Mutation, ...] = (
    _floor, _floor, _floor, _floor_currency, _currencies, _tag_weights, _tag_weights, _dense, _dense,
    _impressions, _sizes, _tmax, _auction_type, _long_string, _unicode, _duplicates, _many_tags,
    _device_and_regs, _emptied, _app,
)  # fmt: skip


def extreme_requests(
    base: list[pb.BidRequest], count: int, seed: int, dims: int
) -> Iterator[tuple[int, str, pb.BidRequest]]:
    rng = random.Random(seed)
    for i in range(count):
        request = pb.BidRequest()
        request.CopyFrom(rng.choice(base))
        request.id = f"x{i}"
        labels = [m(request, rng, dims) for m in rng.sample(MUTATIONS, rng.choice((1, 1, 2, 3)))]
        yield i, " + ".join(labels), request


def response_problems(request: pb.BidRequest, response: pb.BidResponse) -> list[str]:
    """What is wrong with an OK answer, judged by the API's own promises."""
    problems = []
    if response.id != request.id:
        problems.append(f"response id {response.id[:20]!r} != request id {request.id[:20]!r}")
    floors = {imp.id: imp.bidfloor for imp in request.imp}
    bids = [bid for seat in response.seatbid for bid in seat.bid]
    if bids and response.nbr:
        problems.append(f"bids together with nbr {response.nbr}")
    if len({bid.id for bid in bids}) != len(bids):
        problems.append("bid ids not unique")
    for bid in bids:
        if bid.impid not in floors:
            problems.append(f"bid for unknown impid {bid.impid!r}")
            continue
        if not math.isfinite(bid.price) or bid.price <= 0:
            problems.append(f"bid price {bid.price!r}")
        elif bid.price < floors[bid.impid]:
            problems.append(f"bid price {bid.price} below the floor {floors[bid.impid]}")
        if not 0.0 <= bid.pctr <= 1.0:
            problems.append(f"pctr {bid.pctr!r} outside [0, 1]")
        if not -1.001 <= bid.match_score <= 1.001:
            problems.append(f"match_score {bid.match_score!r} outside [-1, 1]")
    return problems


def probe_extreme(ctx: Context, count: int, limit: float) -> ProbeResult:
    result = ProbeResult("2. extreme requests")
    base = ctx.requests(64, ctx.seed + 2)
    dims = len(ctx.world.vocab.tags)
    codes, nbrs, failures = Counter[str](), Counter[str](), CallTally()
    latencies: list[float] = []
    defects: list[tuple[str, pb.BidRequest, str]] = []
    problems = Counter[str]()
    oversized: list[str] = []  # answers larger than a client accepts by default

    with ctx.server("extreme") as server:
        mark = server.mark()
        started = time.monotonic()

        async def run() -> int:
            options = [("grpc.max_send_message_length", 64 << 20)]
            async with grpc.aio.insecure_channel(server.addr, options=options) as channel:
                stub = pb_grpc.BidderStub(channel)

                async def handle(item: tuple[int, str, pb.BidRequest]) -> None:
                    _, label, request = item
                    sent = time.monotonic()
                    try:
                        response = await stub.Bid(request, timeout=10)
                    except grpc.aio.AioRpcError as exc:
                        code = exc.code().name
                        codes[code] += 1
                        failures.add(code, f"[{label}] {exc.details()}")
                        if "CLIENT: Received message larger than max" in (exc.details() or ""):
                            oversized.append(f"[{label}] {request.ByteSize()} bytes: {exc.details()}")
                        if code not in ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"):
                            defects.append((label, request, f"{code}: {exc.details()}"))
                        return
                    latencies.append(time.monotonic() - sent)
                    codes["OK"] += 1
                    nbrs["bid" if response.seatbid else str(response.nbr)] += 1
                    for problem in response_problems(request, response):
                        problems[" ".join(problem.split(" ")[:2])] += 1
                        defects.append((label, request, problem))

                requests = extreme_requests(base, count, ctx.seed + 3, dims)
                return await drain(requests, handle, ctx.concurrency // 2, started + limit)

        sent = asyncio.run(run())
        elapsed = time.monotonic() - started
        span = server.since(mark)
        after = good_request_answer(server.addr, base[0])
    result.seconds = elapsed
    stopped_early(result, sent, count, limit)
    result.put("requests sent", sent)
    result.put("calls per second", sent / elapsed if elapsed else 0.0)
    result.put("status codes", dict(codes))
    result.put("OK answers: nbr (bid = at least one bid)", dict(nbrs))
    result.put("OK latency p50 / p99 / max ms", [percentile(latencies, q) * 1000 for q in (50, 99, 100)])
    result.put("failure sample messages", failures.samples)
    result.put("OK answers breaking the API's promises", dict(problems))
    result.put("server log lines during probe", len(span.lines))
    result.put("server log bytes during probe", span.size)
    result.put("server log ERROR/Traceback lines", len(span.matching("ERROR", "Traceback")))
    result.put("server log sample errors", span.matching("ERROR", "Traceback", "Error")[:6])
    result.put("answers over the client's 4 MiB limit", len(oversized))
    result.put("good request after probe", after)
    _report_defects(ctx, result, "extreme", defects)
    if oversized:
        result.findings.append(
            f"{len(oversized)} request(s) within the server's 4 MiB limit got an answer over a default "
            f"client's 4 MiB limit (long ids are echoed, the imp id twice), e.g. {oversized[0][:200]}"
        )
    if span.matching("Traceback"):
        first = span.matching("ERROR")[:1] or span.matching("Traceback")[:1]
        result.findings.append(
            f"the server logged {len(span.matching('Traceback'))} traceback(s) a client caused, "
            f"outside its rate-limited log: {first[0][:200]}"
        )
    if not after.startswith("OK"):
        result.defects.append(f"good request after the probe: {after}")
    return result


def _report_defects(
    ctx: Context, result: ProbeResult, name: str, defects: list[tuple[str, pb.BidRequest, str]]
) -> None:
    """The first example of each kind of defect, its request saved for replay."""
    seen: set[str] = set()
    for label, request, what in defects:
        kind = what.split(":")[0].split(" ")[0] + " " + label.split("=")[0]
        if kind in seen or len(seen) >= 10:
            continue
        seen.add(kind)
        path = ctx.save(f"{name}-{len(seen)}", request)
        result.defects.append(f"[{label}] -> {what[:300]}; request: {path}")
    if len(defects) > len(seen):
        result.defects.append(f"... {len(defects)} defective answers in all")
