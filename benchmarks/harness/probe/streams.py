"""Probe 3: concurrent BidStream calls, some with invalid or undecodable messages, some cancelled by the
client mid-way."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass

import grpc

from personabid.bench.probe.results import ProbeResult
from personabid.bench.probe.server import BID_STREAM, Context, good_request_answer, identity
from personabid.v1 import bidder_pb2 as pb

INVALID_REQUEST_NBR = 2


@dataclass
class StreamPlan:
    index: int
    messages: list[bytes]
    expected: list[str]  # the id each answer must carry, in order ("" for an undecodable message)
    refused: frozenset[int]  # positions of invalid or undecodable messages: answered with nbr 2
    cancel_after: int | None  # answers the client reads before it cancels; None: it never does


@dataclass
class StreamOutcome:
    plan: StreamPlan
    code: str
    received: list[pb.BidResponse]
    detail: str = ""


def stream_plans(
    base: list[pb.BidRequest], streams: int, per_stream: int, cancel_share: float, seed: int
) -> list[StreamPlan]:
    """Streams of requests, some invalid (answered with nbr 2 and their id) and some with an
    undecodable body (answered with nbr 2 and an empty id), a share to be cancelled mid-way."""
    rng = random.Random(seed)
    plans = []
    for s in range(streams):
        messages, expected, refused = [], [], set()
        garbage_at = rng.randrange(per_stream) if rng.random() < 0.2 else -1
        for j in range(per_stream):
            if j == garbage_at:
                messages.append(b"\xff\xff\xff")
                expected.append("")
                refused.add(j)
                continue
            request = pb.BidRequest()
            request.CopyFrom(rng.choice(base))
            request.id = f"s{s}-r{j}"
            if rng.random() < 0.05:
                del request.imp[:]  # invalid: answered in the stream, which goes on
                refused.add(j)
            messages.append(request.SerializeToString())
            expected.append(request.id)
        cancel = rng.randrange(1, per_stream) if per_stream > 1 and rng.random() < cancel_share else None
        plans.append(StreamPlan(s, messages, expected, frozenset(refused), cancel))
    return plans


async def run_stream(channel: grpc.aio.Channel, plan: StreamPlan, timeout: float) -> StreamOutcome:
    method = channel.stream_stream(
        BID_STREAM, request_serializer=identity, response_deserializer=pb.BidResponse.FromString
    )
    call = method(timeout=timeout)

    async def write() -> None:
        # A cancelled call refuses further writes: that is the point of cancelling, not a failure.
        with contextlib.suppress(Exception):
            for message in plan.messages:
                await call.write(message)
            await call.done_writing()

    writer = asyncio.create_task(write())
    received: list[pb.BidResponse] = []
    detail = ""
    try:
        while True:
            if plan.cancel_after is not None and len(received) >= plan.cancel_after:
                call.cancel()
                break
            answer = await call.read()
            if answer is grpc.aio.EOF:
                break
            assert isinstance(answer, pb.BidResponse)
            received.append(answer)
    except grpc.aio.AioRpcError as exc:
        detail = exc.details() or ""
    except asyncio.CancelledError:
        pass
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await writer
    code = await call.code()
    return StreamOutcome(plan, code.name, received, detail or (await call.details()) or "")


def probe_streams(
    ctx: Context, streams: int, per_stream: int, cancel_share: float, limit: float
) -> ProbeResult:
    result = ProbeResult("3. streams with cancellations")
    plans = stream_plans(ctx.requests(64, ctx.seed + 4), streams, per_stream, cancel_share, ctx.seed + 5)
    with ctx.server("streams") as server:
        mark = server.mark()
        started = time.monotonic()

        async def run() -> list[StreamOutcome]:
            # Exchanges spread streams over a few connections; so does this.
            channels = [grpc.aio.insecure_channel(server.addr) for _ in range(8)]
            try:
                return await asyncio.gather(
                    *(run_stream(channels[p.index % len(channels)], p, timeout=limit) for p in plans)
                )
            finally:
                for channel in channels:
                    await channel.close()

        outcomes = asyncio.run(run())
        elapsed = time.monotonic() - started
        span = server.since(mark)
        after = good_request_answer(server.addr, ctx.requests(1, ctx.seed + 6)[0])
    result.seconds = elapsed
    whole = [o for o in outcomes if o.plan.cancel_after is None]
    cancelled = [o for o in outcomes if o.plan.cancel_after is not None]
    out_of_order, short, wrong_nbr = [], [], []
    for outcome in outcomes:
        ids = [answer.id for answer in outcome.received]
        if ids != outcome.plan.expected[: len(ids)]:
            out_of_order.append(outcome)
        if outcome.plan.cancel_after is None and len(ids) != len(outcome.plan.expected):
            short.append(outcome)
        for j, answer in enumerate(outcome.received):
            if (answer.nbr == INVALID_REQUEST_NBR) != (j in outcome.plan.refused):
                wrong_nbr.append(f"stream {outcome.plan.index} answer {j}: nbr {answer.nbr}")
    nbrs = Counter("bid" if a.seatbid else str(a.nbr) for o in outcomes for a in o.received)
    result.put("streams (whole / cancelled by client)", f"{len(whole)} / {len(cancelled)}")
    result.put("requests per stream", per_stream)
    result.put("answers received", sum(len(o.received) for o in outcomes))
    result.put("seconds", elapsed)
    result.put("whole streams: status codes", dict(Counter(o.code for o in whole)))
    result.put("cancelled streams: status codes", dict(Counter(o.code for o in cancelled)))
    result.put("answers: nbr (bid = at least one bid)", dict(nbrs))
    result.put("streams with answers out of order", len(out_of_order))
    result.put("whole streams missing answers", len(short))
    result.put("answers with nbr 2 exactly for invalid messages", "yes" if not wrong_nbr else "no")
    result.put("server log lines during probe", len(span.lines))
    result.put("server log bytes during probe", span.size)
    result.put("server log ERROR/Traceback lines", len(span.matching("ERROR", "Traceback")))
    result.put("server log sample lines", span.lines[:6])
    result.put("good request after probe", after)
    for outcome in out_of_order[:3]:
        got = [a.id for a in outcome.received]
        first = next(i for i, (a, b) in enumerate(zip(got, outcome.plan.expected, strict=False)) if a != b)
        result.defects.append(
            f"stream {outcome.plan.index}: answer {first} has id {got[first]!r}, "
            f"expected {outcome.plan.expected[first]!r}"
        )
    for outcome in short[:3]:
        result.defects.append(
            f"stream {outcome.plan.index} (not cancelled): {len(outcome.received)} of "
            f"{len(outcome.plan.expected)} answers, status {outcome.code} {outcome.detail[:120]!r}"
        )
    if wrong_nbr:
        result.defects.append(
            f"{len(wrong_nbr)} answer(s) with nbr 2 for a valid request or another nbr for an invalid "
            f"one: {wrong_nbr[:3]}"
        )
    odd = [o for o in whole if o.code != "OK"]
    for outcome in odd[:3]:
        result.defects.append(f"stream {outcome.plan.index} ended {outcome.code}: {outcome.detail[:200]!r}")
    if span.matching("Traceback"):
        result.defects.append(f"server logged tracebacks during the probe: {span.matching('Traceback')[:2]}")
    if not after.startswith("OK"):
        result.defects.append(f"good request after the probe: {after}")
    return result
