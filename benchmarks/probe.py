"""Probe a personabid server from outside, as an exchange and an attacker would.

Run: .venv/bin/python benchmarks/probe.py [--quick] [--json FILE] [--probes undecodable,extreme,...]

Every probe starts its own `python -m personabid serve` on free 127.0.0.1 ports (traffic goes nowhere
else), captures the server's whole log to a file, and is bounded in count and time. Probes:

  undecodable  request bodies that are not BidRequests, sent as raw bytes to Bidder/Bid
  extreme      well-formed BidRequests with extreme values (floors, weights, sizes, strings...)
  streams      concurrent BidStream calls, some cancelled by the client mid-way
  sigterm      SIGTERM under a steady unary load: calls in flight must finish
  redis        a Redis outage (stopped, restarted, frozen) under load; needs redis-server on PATH

The report is a table per probe, then the defects found; --json FILE writes the same as data. Requests
that exposed a defect are saved under --out-dir (JSON, replayable with `personabid call FILE --addr`;
raw bodies as .bin).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import math
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from personabid.client import sample_request  # noqa: E402
from personabid.demo import read_world  # noqa: E402
from personabid.v1 import bidder_pb2 as pb  # noqa: E402
from personabid.v1 import bidder_pb2_grpc as pb_grpc  # noqa: E402

BID = "/personabid.v1.Bidder/Bid"
NOTIFY_ONE = "/personabid.v1.Bidder/NotifyOne"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
UNKNOWN_METHOD = "/personabid.v1.Bidder/NoSuchMethod"
BID_STREAM = "/personabid.v1.Bidder/BidStream"
READY = "personabid ready:"
HOST = "127.0.0.1"
INVALID_REQUEST_NBR = 2
STATE_UNAVAILABLE_NBR = 506
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_DENORMAL = float(np.float32(1e-45))  # the smallest positive float32


def identity(data: bytes) -> bytes:
    return data


# ---------------------------------------------------------------------------------------------------------
# Results


@dataclass
class ProbeResult:
    """One probe's report: rows for the table, the same values as data, and what it found.

    A defect breaks a promise of the API or of the server's documentation; a finding is behaviour a
    client would not expect that may still be by design.
    """

    name: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    defects: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def put(self, label: str, value: Any) -> None:
        self.rows.append((label, _show(value)))
        self.data[label] = _plain(value)


def _plain(value: Any) -> Any:
    """`value` as JSON data: counters and tuples become dicts and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _show(value: Any) -> str:
    if isinstance(value, dict):
        if not value:
            return "-"
        items = sorted(value.items(), key=lambda kv: -_size(kv[1]))
        if any(isinstance(v, list | dict) for _, v in items):
            return "\n".join(f"{k}: {_show(v)}" for k, v in items)
        return ", ".join(f"{k}: {_show(v)}" for k, v in items)
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | tuple):
        if not value:
            return "-"
        # Log lines and messages one to a line; numbers side by side.
        return ("\n" if any(isinstance(v, str) for v in value) else " / ").join(_show(v) for v in value)
    return str(value)


def _size(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ---------------------------------------------------------------------------------------------------------
# The server under test


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LogSpan:
    """What the server wrote to its log between two marks."""

    lines: list[str]
    size: int

    def matching(self, *words: str) -> list[str]:
        return [line for line in self.lines if any(word in line for word in words)]


class ServerProcess:
    """A `personabid serve` child on free ports, its stdout and stderr in one log file."""

    def __init__(self, python: str, data_dir: Path, out_dir: Path, name: str, extra: list[str]) -> None:
        self.log_path = out_dir / f"{name}.log"
        self.grpc_port = free_port()
        self.command = [
            python, "-m", "personabid", "serve",
            "--data-dir", str(data_dir),
            "--grpc-addr", f"{HOST}:{self.grpc_port}",
            "--metrics-addr", f"{HOST}:{free_port()}",
            "--admin-addr", f"{HOST}:{free_port()}",
            # The server's impression log stays with the probe's files, not in the shared data directory.
            "--event-log", str(out_dir / f"{name}.events.jsonl"),
            *extra,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    def start(self, timeout: float = 120.0) -> ServerProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY in self.log_path.read_text(errors="replace"):
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.tail(20)}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout:.0f}s: {self.tail(20)}")

    def mark(self) -> int:
        """The log's size now: `since(mark)` is what the server wrote from here on."""
        return self.log_path.stat().st_size

    def since(self, mark: int, settle: float = 0.5) -> LogSpan:
        time.sleep(settle)  # lines of the last calls may still be on their way to the file
        with self.log_path.open("rb") as log:
            log.seek(mark)
            data = log.read()
        return LogSpan(data.decode(errors="replace").splitlines(), len(data))

    def tail(self, n: int) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()[-n:]

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not end; its exit code (None if it had to be killed)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        code = self.wait(30)
        if code is None:
            self.process.kill()
            self.process.wait(10)
        return code

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def good_request_answer(addr: str, request: pb.BidRequest) -> str:
    """Status (and nbr) of one ordinary request: whether the server still serves after a probe."""
    with grpc.insecure_channel(addr) as channel:
        try:
            response = pb_grpc.BidderStub(channel).Bid(request, timeout=5)
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
    return f"OK (nbr {response.nbr})" if not response.seatbid else f"OK ({len(response.seatbid[0].bid)} bid)"


@dataclass
class Context:
    """What every probe needs: where to run the server, and a source of realistic requests."""

    python: str
    data_dir: Path
    out_dir: Path
    seed: int
    world: Any
    concurrency: int = 32

    def server(self, name: str, extra: list[str] | None = None) -> ServerProcess:
        return ServerProcess(self.python, self.data_dir, self.out_dir, name, extra or [])

    def requests(self, count: int, seed: int, dense_share: float = 0.2) -> list[pb.BidRequest]:
        rng = np.random.default_rng(seed)
        return [sample_request(self.world, rng, dense=bool(rng.random() < dense_share)) for _ in range(count)]

    def save(self, name: str, request: pb.BidRequest | bytes) -> Path:
        """Keep a request that exposed a defect, in a form `personabid call` replays."""
        path = self.out_dir / "defects" / name
        path.parent.mkdir(exist_ok=True)
        if isinstance(request, bytes):
            path = path.with_suffix(".bin")
            path.write_bytes(request)
        else:
            path = path.with_suffix(".json")
            path.write_text(json_format.MessageToJson(request, preserving_proto_field_name=True))
        return path


async def drain(
    items: Iterator[Any], handle: Callable[[Any], Awaitable[None]], workers: int, deadline: float
) -> int:
    """`handle` every item with `workers` concurrent callers until the items or the time run out."""
    taken = 0

    async def worker() -> None:
        nonlocal taken
        # One shared iterator: each item goes to exactly one worker.
        for item in items:
            if time.monotonic() > deadline:
                return
            taken += 1
            await handle(item)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return taken


def stopped_early(result: ProbeResult, sent: int, planned: int, limit: float) -> None:
    if sent < planned:
        result.notes.append(f"time limit {limit:.0f}s reached: sent {sent} of {planned}")


# ---------------------------------------------------------------------------------------------------------
# Probe 1: undecodable payloads


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


@dataclass
class CallTally:
    """Status codes of a set of calls, with a few status messages of each code."""

    codes: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, code: str, detail: str, keep: int = 3) -> None:
        self.codes[code] += 1
        if not detail:
            return
        kept = self.samples.setdefault(code, [])
        if len(kept) < keep and detail not in kept:
            kept.append(detail[:200])


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


# ---------------------------------------------------------------------------------------------------------
# Probe 2: extreme but well-formed requests

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


# ---------------------------------------------------------------------------------------------------------
# Probe 3: streams with cancellations


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


# ---------------------------------------------------------------------------------------------------------
# Probe 4: SIGTERM under load


@dataclass(frozen=True)
class TimedCall:
    start: float  # seconds from the load's start; in the SIGTERM probe, from the signal (negative: before)
    end: float
    code: str
    nbr: int = -1


class LoadThreads:
    """Threads that each call Bid back to back on their own connection, recording every call."""

    def __init__(
        self, addr: str, requests: list[pb.BidRequest], threads: int, max_calls: int, timeout: float
    ) -> None:
        self.addr = addr
        self.requests = requests
        self.max_calls = max_calls
        self.timeout = timeout
        self.origin = time.monotonic()
        self.stop = threading.Event()
        self.calls: list[list[TimedCall]] = [[] for _ in range(threads)]
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> LoadThreads:
        for thread in self.threads:
            thread.start()
        return self

    def join(self) -> list[TimedCall]:
        self.stop.set()
        for thread in self.threads:
            thread.join(self.timeout + 5)
        return sorted((c for calls in self.calls for c in calls), key=lambda c: c.start)

    def _run(self, i: int) -> None:
        rng = random.Random(i)
        with grpc.insecure_channel(self.addr) as channel:
            with contextlib.suppress(grpc.FutureTimeoutError):
                grpc.channel_ready_future(channel).result(timeout=5)
            stub = pb_grpc.BidderStub(channel)
            record = self.calls[i]
            while not self.stop.is_set() and len(record) < self.max_calls:
                request = rng.choice(self.requests)
                start = time.monotonic()
                try:
                    response = stub.Bid(request, timeout=self.timeout)
                    code, nbr = "OK", response.nbr
                except grpc.RpcError as exc:
                    code, nbr = exc.code().name, -1
                record.append(TimedCall(start - self.origin, time.monotonic() - self.origin, code, nbr))
                if code != "OK":
                    time.sleep(0.005)  # a refused call returns at once: do not spin on a server gone

    def since_origin(self) -> float:
        return time.monotonic() - self.origin


def probe_sigterm(
    ctx: Context, repeats: int, threads: int, load_seconds: float, max_calls: int, grace: float | None
) -> ProbeResult:
    result = ProbeResult("4. SIGTERM under load")
    # Requests with several impressions take longer to decide: more calls are in flight at the signal.
    requests = ctx.requests(64, ctx.seed + 7)
    for request in requests[::2]:
        for i in range(2, 9):
            request.imp.add().CopyFrom(request.imp[0])
            request.imp[-1].id = str(i)
    table: Counter[str] = Counter()
    runs = []
    for r in range(repeats):
        extra = ["--grace-seconds", str(grace)] if grace is not None else []
        server = ctx.server(f"sigterm-{r}", extra).start()
        try:
            run = _sigterm_once(server, requests, threads, load_seconds, max_calls)
        finally:
            server.stop()
        runs.append(run)
        for key, n in run["counts"].items():
            table[key] += n
        for problem in run["problems"]:
            result.defects.append(f"run {r + 1}: {problem}")
        result.findings.extend(f"run {r + 1}: {finding}" for finding in run["findings"])
        result.notes.extend(f"run {r + 1}: {note}" for note in run["notes"])
    result.put("runs", repeats)
    result.put("load threads", threads)
    result.put("calls by when they started and their status (all runs)", dict(table))
    for r, run in enumerate(runs):
        result.put(f"run {r + 1}: calls", run["counts"])
        result.put(f"run {r + 1}: in flight at SIGTERM (start < 0 < end)", run["in_flight"])
        result.put(f"run {r + 1}: last OK call started at (s after SIGTERM)", run["last_ok_start"])
        result.put(f"run {r + 1}: first UNAVAILABLE at (s after SIGTERM)", run["first_unavailable"])
        result.put(f"run {r + 1}: health not SERVING from (s after SIGTERM)", run["health_not_serving"])
        result.put(f"run {r + 1}: health answers after SIGTERM", run["health_statuses_after"])
        result.put(f"run {r + 1}: SIGTERM sent at (local time)", run["signalled_at"])
        result.put(f"run {r + 1}: exit code / seconds to exit", f"{run['exit_code']} / {run['exit_seconds']}")
        result.put(f"run {r + 1}: server's last log lines", run["last_lines"])
    result.data["runs_detail"] = _plain(runs)
    return result


class HealthWatch:
    """A thread asking the health service for the Bidder's status every few milliseconds."""

    def __init__(self, addr: str, origin: float) -> None:
        self.addr = addr
        self.origin = origin
        self.stop = threading.Event()
        self.answers: list[tuple[float, str]] = []  # (seconds since origin, status or error code)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> HealthWatch:
        self.thread.start()
        return self

    def join(self) -> list[tuple[float, str]]:
        self.stop.set()
        self.thread.join(10)
        return self.answers

    def _run(self) -> None:
        request = health_pb2.HealthCheckRequest(service="personabid.v1.Bidder")
        with grpc.insecure_channel(self.addr) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not self.stop.is_set():
                try:
                    answer = stub.Check(request, timeout=1)
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
                except grpc.RpcError as exc:
                    status = exc.code().name
                self.answers.append((time.monotonic() - self.origin, status))
                time.sleep(0.01)


# The signal handler needs a moment to run; a server still taking new calls after this long keeps
# taking them on purpose or by mistake.
ACCEPTING_AFTER_SIGNAL = 0.1


def _sigterm_once(
    server: ServerProcess, requests: list[pb.BidRequest], threads: int, load_seconds: float, max_calls: int
) -> dict[str, Any]:
    load = LoadThreads(server.addr, requests, threads, max_calls, timeout=10).start()
    health = HealthWatch(server.addr, load.origin).start()
    time.sleep(load_seconds)
    signalled = load.since_origin()
    signalled_at = dt.datetime.now().isoformat(sep=" ", timespec="milliseconds")  # as the log writes time
    server.signal(signal.SIGTERM)
    exit_code = server.wait(60)
    exit_seconds = load.since_origin() - signalled
    time.sleep(0.5)  # calls after the exit, to see what a client gets then
    calls = [dataclasses.replace(c, start=c.start - signalled, end=c.end - signalled) for c in load.join()]
    statuses = [(t - signalled, status) for t, status in health.join()]
    not_serving = [t for t, status in statuses if t >= 0 and status != "SERVING"]
    counts: Counter[str] = Counter()
    for call in calls:
        when = "before, ended before" if call.end < 0 else "before, in flight" if call.start < 0 else "after"
        counts[f"{when}: {call.code}"] += 1
    problems: list[str] = []
    findings: list[str] = []
    notes: list[str] = []
    failed_before = [c for c in calls if c.start < 0 and c.code != "OK"]
    if failed_before:
        problems.append(
            f"{len(failed_before)} call(s) started before SIGTERM did not end OK: {_spans(failed_before)}"
        )
    odd_after = [c for c in calls if c.start >= 0 and c.code not in ("OK", "UNAVAILABLE")]
    if odd_after:
        findings.append(
            f"{len(odd_after)} call(s) started after SIGTERM ended neither OK nor UNAVAILABLE: "
            f"{_spans(odd_after)}"
        )
    ok_after = [c for c in calls if c.start >= 0 and c.code == "OK"]
    if ok_after:
        latest = max(c.start for c in ok_after)
        what = (
            f"{len(ok_after)} call(s) started after SIGTERM were answered OK, the last {latest:+.3f}s "
            "after it: new calls still taken (expected UNAVAILABLE)"
        )
        (findings if latest > ACCEPTING_AFTER_SIGNAL else notes).append(what)
    if exit_code is None:
        problems.append("the server did not exit within 60s of SIGTERM")
    elif exit_code != 0:
        problems.append(f"the server exited with code {exit_code}")
    unavailable = [c.start for c in calls if c.start >= 0 and c.code == "UNAVAILABLE"]
    oks = [c.start for c in calls if c.code == "OK"]
    return {
        "counts": dict(counts),
        "in_flight": sum(1 for c in calls if c.start < 0 <= c.end),
        "last_ok_start": round(max(oks), 4) if oks else None,
        "first_unavailable": round(min(unavailable), 4) if unavailable else None,
        "health_not_serving": round(min(not_serving), 4) if not_serving else None,
        "health_statuses_after": dict(Counter(status for t, status in statuses if t >= 0)),
        "signalled_at": signalled_at,
        "exit_code": exit_code,
        "exit_seconds": round(exit_seconds, 3),
        "last_lines": server.tail(5),
        "problems": problems,
        "findings": findings,
        "notes": notes,
    }


def _spans(calls: list[TimedCall], shown: int = 4) -> str:
    """A few calls as 'CODE start..end' (seconds relative to the signal)."""
    text = ", ".join(f"{c.code} {c.start:+.3f}..{c.end:+.3f}s" for c in calls[:shown])
    return text + (", ..." if len(calls) > shown else "")


# ---------------------------------------------------------------------------------------------------------
# Probe 5: Redis outage


class RedisProcess:
    """A redis-server on a fixed free port, without persistence, that can be stopped and started again."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen process keeps SIGTERM pending
            self.process.terminate()
            self.process.wait(10)

    def freeze(self, frozen: bool) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)


def probe_redis(ctx: Context, threads: int, phase_seconds: float) -> ProbeResult:
    result = ProbeResult("5. Redis outage")
    binary = shutil.which("redis-server")
    if binary is None:
        result.notes.append("skipped: redis-server is not on PATH")
        return result
    redis = RedisProcess(binary, ctx.out_dir)
    redis.start()
    events: dict[str, float] = {}
    try:
        with ctx.server("redis", ["--redis-url", redis.url]) as server:
            mark = server.mark()
            load = LoadThreads(server.addr, ctx.requests(64, ctx.seed + 8), threads, 1_000_000, timeout=2)
            load.start()
            # Phases: up, stopped, restarted, frozen (connections open, no answer), thawed.
            time.sleep(phase_seconds)
            events["stopped"] = load.since_origin()
            redis.stop()
            time.sleep(phase_seconds)
            events["restarting"] = load.since_origin()
            redis.start()
            events["restarted"] = load.since_origin()  # answering PING again
            time.sleep(phase_seconds * 2)
            events["frozen"] = load.since_origin()
            redis.freeze(True)
            time.sleep(phase_seconds)
            events["thawed"] = load.since_origin()
            redis.freeze(False)
            time.sleep(phase_seconds * 2)
            events["end"] = load.since_origin()
            calls = load.join()
            span = server.since(mark)
            after = good_request_answer(server.addr, ctx.requests(1, ctx.seed + 9)[0])
    finally:
        redis.stop()
    phases = ("up", "stopped", "restarted", "frozen", "thawed")
    bounds = [0.0, events["stopped"], events["restarting"], events["frozen"], events["thawed"], events["end"]]
    result.put("load threads / seconds per phase", f"{threads} / {phase_seconds}")
    for name, lo, hi in zip(phases, bounds, bounds[1:], strict=False):
        inside = [c for c in calls if lo <= c.start < hi]
        outcome = Counter(_outcome(c) for c in inside)
        latency = [c.end - c.start for c in inside]
        result.put(f"{name}: calls", dict(outcome))
        result.put(f"{name}: latency p50 / max ms", [percentile(latency, q) * 1000 for q in (50, 100)])
    restart = events["restarted"]
    recovered = _first(calls, restart, _is_bid)
    thawed = _first(calls, events["thawed"], _is_bid)
    result.put("first 506 after stop (s)", _first(calls, events["stopped"], _is_506))
    result.put("Redis answering again after (s from restart command)", restart - events["restarting"])
    result.put("first bid after Redis answers again (s)", recovered)
    # A call started just before the next phase may be answered in it: windows stop a little short.
    margin = 0.1
    result.put(
        "last 506 after Redis answers again (s)", _last(calls, restart, events["frozen"] - margin, _is_506)
    )
    result.put("first 506 after freeze (s)", _first(calls, events["frozen"], _is_506))
    result.put("first bid after thaw (s)", thawed)
    result.put("last 506 after thaw (s)", _last(calls, events["thawed"], events["end"], _is_506))
    windows = (("restart", restart, events["frozen"] - margin), ("thaw", events["thawed"], events["end"]))
    for name, start, end in windows:
        first = _first(calls, start, _is_bid)
        late = [c for c in calls if first is not None and start + first < c.start < end and _is_506(c)]
        result.put(f"506 answers after the first bid since the {name}", len(late))
    result.data["timeline (start s, outcome counts per 0.25 s)"] = _timeline(calls, 0.25)
    result.data["events (s)"] = events
    result.put("server log lines during probe", len(span.lines))
    result.put("server log lines about the outage", span.matching("spend", "redis", "Redis", "WARNING")[:12])
    result.put("server log ERROR/Traceback lines", len(span.matching("ERROR", "Traceback")))
    result.put("good request after probe", after)
    odd = Counter(c.code for c in calls if c.code not in ("OK",))
    if odd:
        result.notes.append(f"calls that failed outright (not a no-bid): {dict(odd)}")
    if thawed is None:
        result.defects.append("no bid answered after Redis came back from the freeze")
    if span.matching("Traceback"):
        result.defects.append(f"server logged tracebacks during the outage: {span.matching('Traceback')[:2]}")
    return result


def _outcome(call: TimedCall) -> str:
    return call.code if call.code != "OK" else "bid" if call.nbr == 0 else f"nbr {call.nbr}"


def _is_506(call: TimedCall) -> bool:
    return call.code == "OK" and call.nbr == STATE_UNAVAILABLE_NBR


def _is_bid(call: TimedCall) -> bool:
    return call.code == "OK" and call.nbr == 0


def _timeline(calls: list[TimedCall], step: float) -> list[tuple[float, dict[str, int]]]:
    buckets: dict[int, Counter[str]] = {}
    for call in calls:
        buckets.setdefault(int(call.start // step), Counter())[_outcome(call)] += 1
    return [(round(b * step, 2), dict(counts)) for b, counts in sorted(buckets.items())]


def _first(calls: list[TimedCall], after: float, test: Callable[[TimedCall], bool]) -> float | None:
    times = [c.start - after for c in calls if c.start >= after and test(c)]
    return round(min(times), 3) if times else None


def _last(
    calls: list[TimedCall], after: float, before: float, test: Callable[[TimedCall], bool]
) -> float | None:
    times = [c.start - after for c in calls if after <= c.start < before and test(c)]
    return round(max(times), 3) if times else None


# ---------------------------------------------------------------------------------------------------------
# Report


def print_table(rows: list[tuple[str, str]], width: int = 110) -> None:
    left = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        lines = _wrap(value, width - left - 3)
        print(f"{label.ljust(left)} | {lines[0]}")
        for line in lines[1:]:
            print(f"{' ' * left} | {line}")


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for part in text.split("\n"):
        while len(part) > width:
            cut = part.rfind(" ", 0, width)
            cut = cut if cut > width // 2 else width
            lines.append(part[:cut])
            part = part[cut:].lstrip()
        lines.append(part)
    return lines or [""]


def print_report(results: list[ProbeResult], header: list[tuple[str, str]]) -> None:
    print_table(header)
    for result in results:
        print(f"\n== {result.name} ({result.seconds:.1f}s) ==")
        print_table(result.rows)
        for note in result.notes:
            print(f"  note: {note}")
    print("\n== summary ==")
    print_table([(r.name, f"{len(r.defects)} defect(s), {len(r.findings)} finding(s)") for r in results])
    for result in results:
        for defect in result.defects:
            print(f"  DEFECT {result.name}: {defect}")
        for finding in result.findings:
            print(f"  FINDING {result.name}: {finding}")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    return out.stdout.strip()


# ---------------------------------------------------------------------------------------------------------
# Command line

PROBES = ("undecodable", "extreme", "streams", "sigterm", "redis")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Probe a personabid server (started here, on 127.0.0.1) as an exchange and an attacker "
        "would, and report what it does.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var/demo"), help="demo world (%(default)s)")
    parser.add_argument("--out-dir", type=Path, help="server logs and defect examples (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--probes", default=",".join(PROBES), help="comma-separated subset of %(default)s")
    parser.add_argument("--quick", action="store_true", help="small counts: about a minute in all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per probe (%(default)s)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight (%(default)s)")
    parser.add_argument("--undecodable", type=int, default=20_000, help="bodies sent (%(default)s)")
    parser.add_argument("--extreme", type=int, default=20_000, help="requests sent (%(default)s)")
    parser.add_argument("--streams", type=int, default=200, help="concurrent BidStreams (%(default)s)")
    parser.add_argument("--stream-requests", type=int, default=50, help="requests per stream (%(default)s)")
    parser.add_argument("--cancel-share", type=float, default=0.3, help="streams cancelled (%(default)s)")
    parser.add_argument("--sigterm-repeats", type=int, default=3, help="(%(default)s)")
    parser.add_argument("--sigterm-threads", type=int, default=8, help="load threads (%(default)s)")
    parser.add_argument("--sigterm-load", type=float, default=3.0, help="seconds of load before the signal")
    parser.add_argument("--sigterm-max-calls", type=int, default=20_000, help="per thread (%(default)s)")
    parser.add_argument("--grace-seconds", type=float, help="the server's --grace-seconds (its default)")
    parser.add_argument("--redis-threads", type=int, default=4, help="(%(default)s)")
    parser.add_argument("--redis-phase", type=float, default=5.0, help="seconds per outage phase")
    args = parser.parse_args(argv)
    if args.quick:
        args.undecodable = min(args.undecodable, 2_000)
        args.extreme = min(args.extreme, 2_000)
        args.streams = min(args.streams, 40)
        args.stream_requests = min(args.stream_requests, 10)
        args.sigterm_repeats = min(args.sigterm_repeats, 1)
        args.sigterm_load = min(args.sigterm_load, 1.5)
        args.redis_phase = min(args.redis_phase, 2.0)
        args.time_limit = min(args.time_limit, 30.0)
    unknown = set(args.probes.split(",")) - set(PROBES)
    if unknown:
        parser.error(f"unknown probes {sorted(unknown)}; choose from {PROBES}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="personabid-probe-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = args.data_dir.resolve()
    world = read_world(data_dir)
    ctx = Context(sys.executable, data_dir, out_dir.resolve(), args.seed, world, args.concurrency)
    started = dt.datetime.now(dt.UTC)
    changed = len(_git("status", "--porcelain").splitlines())
    header = [
        ("started (UTC)", started.isoformat(timespec="seconds")),
        ("git HEAD", f"{_git('rev-parse', '--short', 'HEAD')} ({changed} paths changed or untracked)"),
        ("data dir", str(data_dir)),
        ("logs and defect examples", str(ctx.out_dir)),
        ("mode", "quick" if args.quick else "full"),
    ]
    chosen = args.probes.split(",")
    runs: dict[str, Callable[[], ProbeResult]] = {
        "undecodable": lambda: probe_undecodable(ctx, args.undecodable, args.time_limit),
        "extreme": lambda: probe_extreme(ctx, args.extreme, args.time_limit),
        "streams": lambda: probe_streams(
            ctx, args.streams, args.stream_requests, args.cancel_share, args.time_limit
        ),
        "sigterm": lambda: probe_sigterm(
            ctx,
            args.sigterm_repeats,
            args.sigterm_threads,
            args.sigterm_load,
            args.sigterm_max_calls,
            args.grace_seconds,
        ),
        "redis": lambda: probe_redis(ctx, args.redis_threads, args.redis_phase),
    }
    results = []
    for name in PROBES:
        if name not in chosen:
            continue
        began = time.monotonic()
        print(f"running {name}...", file=sys.stderr, flush=True)
        try:
            result = runs[name]()
        except Exception as exc:  # one probe's failure to run is reported; the others still run
            result = ProbeResult(name)
            result.defects.append(f"probe failed to run: {type(exc).__name__}: {exc}")
        if not result.seconds:
            result.seconds = time.monotonic() - began
        results.append(result)
    print_report(results, header)
    if args.json:
        document = {
            "header": dict(header),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "probes": [
                {"name": r.name, "seconds": r.seconds, "results": r.data, "defects": r.defects}
                | {"findings": r.findings, "notes": r.notes}
                for r in results
            ],
        }
        args.json.write_text(json.dumps(document, indent=2, default=str))
    return 1 if any(r.defects for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
