"""Probe 1: request bodies that are not BidRequests, sent as raw bytes to Bidder/Bid (and, every few,
to other methods)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator

import grpc
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2

from personabid.bench.probe.results import CallTally, ProbeResult
from personabid.bench.probe.server import (
    BID,
    HEALTH_CHECK,
    NOTIFY_ONE,
    UNKNOWN_METHOD,
    Context,
    drain,
    good_request_answer,
    identity,
    stopped_early,
)
from personabid.v1 import bidder_pb2 as pb


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


# Wire types the BidRequest's own fields 1..12 use: strings and messages 2, `at` and `tmax` 0.
FIELD_WIRE_TYPES = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 0, 8: 0, 9: 2, 10: 2, 11: 2, 12: 2}


def garbage(kind: str, rng: random.Random, real: bytes) -> bytes:
    """A body of `kind`: meant not to be a BidRequest, though a few decode as one by chance."""
    if kind == "random":
        return rng.randbytes(rng.choice((1, 2, 3, 8, 64, 512, 4096)))
    if kind == "truncated":
        return real[: rng.randrange(1, len(real))]
    if kind == "bit_flips":
        data = bytearray(real)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "wrong_wire_type":
        number = rng.choice(list(FIELD_WIRE_TYPES))
        wire_type = rng.choice([t for t in (0, 1, 2, 3, 5, 6, 7) if t != FIELD_WIRE_TYPES[number]])
        body = {0: _varint(rng.getrandbits(64)), 1: rng.randbytes(8), 2: _varint(3) + b"abc", 5: b"\0" * 4}
        return real + _key(number, wire_type) + body.get(wire_type, b"")
    if kind == "nested_groups":
        depth = rng.choice((50, 99, 100, 101, 1_000, 100_000))
        number = rng.choice((2, 6, 99, 536_870_911))
        return _key(number, 3) * depth + _key(number, 4) * depth
    if kind == "unterminated_group":
        return real + _key(rng.choice((2, 99)), 3) + _varint(5)
    if kind == "stray_end_group":
        return real + _key(rng.choice((1, 99)), 4)
    if kind == "bad_utf8":
        # proto3 strings must be UTF-8; the id (field 1) or a tag id inside user (6) -> tags (3).
        bad = rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"))
        if rng.random() < 0.5:
            return real + _length_delimited(1, b"id-" + bad)
        return real + _length_delimited(6, _length_delimited(3, _length_delimited(1, bad)))
    if kind == "overlong_length":
        return real + _key(rng.choice((1, 2, 6)), 2) + _varint(rng.choice((1 << 31, 1 << 40, 100))) + b"xy"
    if kind == "overlong_varint":
        return real + _key(rng.choice((7, 8)), 0) + b"\xff" * rng.choice((10, 11, 20))
    if kind == "field_zero":
        return _key(0, rng.choice((0, 2))) + b"\x01\x01" + real
    if kind == "packed_floats_misaligned":
        # user.tag_vector is packed float32: a length that is not a multiple of 4.
        return real + _length_delimited(6, _length_delimited(2, b"\0" * rng.choice((1, 2, 3, 5, 7))))
    raise ValueError(kind)


GARBAGE_KINDS = (
    "random", "truncated", "bit_flips", "wrong_wire_type", "nested_groups", "unterminated_group",
    "stray_end_group", "bad_utf8", "overlong_length", "overlong_varint", "field_zero",
    "packed_floats_misaligned",
)  # fmt: skip


# Every few bodies go to another method: each service's parser must refuse them alike.
OTHER_METHODS: dict[str, type[Message] | None] = {
    NOTIFY_ONE: pb.Event,
    HEALTH_CHECK: health_pb2.HealthCheckRequest,
    UNKNOWN_METHOD: None,
}


def decodes(data: bytes, message: type[Message] | None = pb.BidRequest) -> bool:
    """Whether a body parses as `message` here, with the same protobuf runtime as the server's."""
    if message is None:
        return False
    try:
        message.FromString(data)
    except DecodeError:
        return False
    except Exception:  # a parser that raises anything else refuses the body just the same
        return False
    return True


async def _raw_unary(channel: grpc.aio.Channel, method: str, data: bytes, timeout: float) -> tuple[str, str]:
    call = channel.unary_unary(method, request_serializer=identity, response_deserializer=identity)
    try:
        await call(data, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, exc.details() or ""
    return "OK", ""


def probe_undecodable(ctx: Context, count: int, limit: float) -> ProbeResult:
    result = ProbeResult("1. undecodable payloads")
    rng = random.Random(ctx.seed)
    real = [r.SerializeToString() for r in ctx.requests(64, ctx.seed)]
    undecodable, by_chance, others, by_kind = CallTally(), CallTally(), CallTally(), Counter[str]()
    defects: list[tuple[str, bytes, str]] = []
    other_methods = list(OTHER_METHODS)

    def payloads() -> Iterator[tuple[str, str, bytes]]:
        for i in range(count):
            kind = GARBAGE_KINDS[i % len(GARBAGE_KINDS)]
            method = BID if i % 20 else other_methods[i // 20 % len(other_methods)]
            yield kind, method, garbage(kind, rng, rng.choice(real))

    with ctx.server("undecodable") as server:
        mark = server.mark()
        started = time.monotonic()

        async def run() -> int:
            async with grpc.aio.insecure_channel(server.addr) as channel:

                async def handle(item: tuple[str, str, bytes]) -> None:
                    kind, method, data = item
                    code, detail = await _raw_unary(channel, method, data, timeout=10)
                    if method != BID:
                        readable = "decodable" if decodes(data, OTHER_METHODS[method]) else "undecodable"
                        others.add(f"{method.rsplit('/', 1)[1]} {readable} {code}", detail)
                        if code in ("INTERNAL", "UNKNOWN"):
                            defects.append((kind, data, f"{method} {code}: {detail}"))
                        return
                    tally = by_chance if decodes(data) else undecodable
                    tally.add(code, detail)
                    if tally is undecodable:
                        by_kind[f"{kind} {code}"] += 1
                        if code != "INVALID_ARGUMENT":
                            defects.append((kind, data, f"{code}: {detail}"))
                    elif code in ("INTERNAL", "UNKNOWN"):
                        defects.append((kind, data, f"{code}: {detail}"))

                return await drain(payloads(), handle, ctx.concurrency, started + limit)

        sent = asyncio.run(run())
        elapsed = time.monotonic() - started
        span = server.since(mark)
        after = good_request_answer(server.addr, ctx.requests(1, ctx.seed + 1)[0])
    result.seconds = elapsed
    stopped_early(result, sent, count, limit)
    result.put("payloads sent", sent)
    result.put("calls per second", sent / elapsed if elapsed else 0.0)
    result.put("undecodable: status codes", dict(undecodable.codes))
    result.put("undecodable: sample messages", undecodable.samples)
    result.put("decodable by chance: status codes", dict(by_chance.codes))
    result.put("decodable by chance: sample messages", by_chance.samples)
    result.put("undecodable by kind and status", dict(by_kind))
    result.put("other methods: status codes", dict(others.codes))
    result.put("other methods: sample messages", others.samples)
    result.put("server log lines during probe", len(span.lines))
    result.put("server log bytes during probe", span.size)
    result.put("server log sample lines", span.lines[:6])
    result.put("good request after probe", after)
    for i, (kind, data, what) in enumerate(defects[:5]):
        path = ctx.save(f"undecodable-{i}-{kind}", data)
        result.defects.append(f"undecodable body ({kind}, {len(data)} bytes) answered {what}; body: {path}")
    if len(defects) > 5:
        result.defects.append(f"... {len(defects)} undecodable bodies in all not answered INVALID_ARGUMENT")
    if len(span.lines) > max(100, sent // 100):
        result.defects.append(f"{len(span.lines)} log lines for {sent} bad bodies: not bounded")
    if not after.startswith("OK"):
        result.defects.append(f"good request after the probe: {after}")
    return result
