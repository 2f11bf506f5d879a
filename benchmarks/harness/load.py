"""Load generators, run inside one load process: closed loop and open loop, unary and streaming.

- Closed loop: a fixed number of calls in flight; each ends before the next begins in its slot. It finds
  the most a server can do, but it hides queueing: a slow answer delays the next request, so the requests
  that would have waited are never sent (coordinated omission).
- Open loop: arrivals at Poisson times at a target rate, whatever the server does. A call's latency runs
  from the time it was meant to start, so time spent queueing (in the server, or behind a slow client)
  shows in the tail, as an exchange sending at its own pace would see it.

Each generator runs for a warm-up, then a measured window, bounded in time and in count. Latency (in
microseconds) goes into an HDR histogram for the calls that started in the window; throughput counts the
answers that arrived in the window. Requests travel as pre-serialized bytes (requests.py); responses are
decoded, to count bids, no-bids by reason and errors.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import numpy as np

from personabid.bench.histogram import new_histogram
from personabid.bench.requests import RequestStream
from personabid.v1 import bidder_pb2 as pb

# Distinct TCP connections per channel: with a shared subchannel pool, every channel of a process to the
# same address would ride one connection, and SO_REUSEPORT spreads connections, not calls, over workers.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]
CONNECT_TIMEOUT = 10.0


class RequestSource(Protocol):
    """Where the loops take their requests: a RequestStream, or http_load's JSON one."""

    def next(self) -> bytes: ...


@dataclass(frozen=True)
class LoadSpec:
    target: str  # HOST:PORT
    service: str  # full service name: personabid.v1.Bidder or personabid.bench.echo.Echo
    rpc: str = "unary"  # "unary" (Bid) or "stream" (BidStream)
    mode: str = "closed"  # "closed" (fixed concurrency) or "open" (Poisson arrivals)
    concurrency: int = 32  # closed loop: calls in flight in this process
    rate: float = 0.0  # open loop: arrivals per second from this process
    streams: int = 4  # stream: streams open from this process
    channels: int = 4  # connections from this process
    warmup: float = 1.0  # seconds before the measured window
    duration: float = 5.0  # seconds measured
    max_requests: int = 2_000_000  # calls started at most, warm-up included
    timeout: float = 2.0  # deadline of a call (unary) or of a response (stream)
    max_in_flight: int = 5000  # open loop: arrivals beyond it are shed, counted and not sent
    start_at: float = 0.0  # time.monotonic() at which every load process begins
    id_prefix: int = 0  # keeps auction ids distinct across load processes

    def __post_init__(self) -> None:
        if self.rpc not in ("unary", "stream") or self.mode not in ("closed", "open"):
            raise ValueError(f"rpc={self.rpc!r} mode={self.mode!r}: expected unary|stream, closed|open")
        if self.mode == "open" and self.rate <= 0:
            raise ValueError("an open loop needs a rate")


@dataclass
class LoadResult:
    """What one load process measured in its window."""

    histogram: bytes  # HDR histogram, encoded, of the latencies in microseconds
    send_lag: bytes = b""  # open loop: HDR histogram of how late calls were sent, by the client's fault
    started: int = 0  # calls started in the window
    completed: int = 0  # answers (OK) that arrived in the window
    bids: int = 0  # of the answers started in the window: with a bid
    no_bids: dict[int, int] = field(default_factory=dict)  # no-bid answers by reason
    errors: dict[str, int] = field(default_factory=dict)  # failed calls by status code
    shed: int = 0  # open loop: arrivals not sent, too many calls in flight
    response_bytes: int = 0
    request_bytes: int = 0
    client_cpu_seconds: float = 0.0  # this process's CPU time in the window
    window_seconds: float = 0.0


class _Tally:
    """Counts and latencies of one run, kept apart for the measured window."""

    def __init__(self, spec: LoadSpec) -> None:
        self.window_start = spec.start_at + spec.warmup
        self.window_end = self.window_start + spec.duration
        self.histogram = new_histogram()
        self.send_lag = new_histogram()
        self.result = LoadResult(histogram=b"", window_seconds=spec.duration)
        self.issued = 0

    def in_window(self, t: float) -> bool:
        return self.window_start <= t < self.window_end

    def started(self, t: float, size: int) -> bool:
        """Note a call started (or meant to start) at `t`; True when it counts."""
        self.issued += 1
        counts = self.in_window(t)
        if counts:
            self.result.started += 1
            self.result.request_bytes += size
        return counts

    def arrived(self, began: float, size: int) -> bool:
        """Note an answer of `size` bytes to a call started at `began`; True when its content counts."""
        done = time.monotonic()
        if self.in_window(done):
            self.result.completed += 1
        if not self.in_window(began):
            return False
        self.histogram.record_value(max(1, int((done - began) * 1e6)))
        self.result.response_bytes += size
        return True

    def answered(self, began: float, raw: bytes) -> None:
        if not self.arrived(began, len(raw)):
            return
        response = pb.BidResponse.FromString(raw)
        if response.seatbid:
            self.result.bids += 1
        else:
            self.result.no_bids[response.nbr] = self.result.no_bids.get(response.nbr, 0) + 1

    def failed(self, began: float, code: str) -> None:
        if self.in_window(began):
            self.result.errors[code] = self.result.errors.get(code, 0) + 1


async def run_load(spec: LoadSpec, pool: list[bytes], rng: np.random.Generator) -> LoadResult:
    """Run `spec` against its target; returns what the measured window saw."""
    requests = RequestStream(pool, spec.id_prefix)
    tally = _Tally(spec)
    channels = [grpc.aio.insecure_channel(spec.target, options=CHANNEL_OPTIONS) for _ in range(spec.channels)]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), CONNECT_TIMEOUT)
        cpu = asyncio.create_task(_client_cpu(tally))
        await _sleep_until(spec.start_at)
        # Raw bytes both ways (no serializers): the multi-callables' message types say nothing here.
        methods: list[Any]
        if spec.rpc == "unary":
            methods = [
                channel.unary_unary(
                    f"/{spec.service}/Bid", request_serializer=None, response_deserializer=None
                )
                for channel in channels
            ]
            run = _closed_unary if spec.mode == "closed" else _open_unary
            await run(spec, methods, requests, tally, rng)
        else:
            methods = [
                channel.stream_stream(
                    f"/{spec.service}/BidStream", request_serializer=None, response_deserializer=None
                )
                for channel in channels
            ]
            await _streams(spec, methods, requests, tally, rng)
        cpu.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cpu
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))
    tally.result.histogram = tally.histogram.encode()
    tally.result.send_lag = tally.send_lag.encode()
    return tally.result


async def _client_cpu(tally: _Tally) -> None:
    """This process's CPU time in the window (to the load's end, if a count bound ended it sooner)."""
    await _sleep_until(tally.window_start)
    before = time.process_time()
    try:
        await _sleep_until(tally.window_end)
    finally:
        tally.result.client_cpu_seconds = time.process_time() - before


async def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# A unary call: (method, request, began, tally, timeout); it notes the answer or the failure in the tally.
UnaryCall = Callable[[Any, bytes, float, _Tally, float], Coroutine[Any, Any, None]]


async def _unary_call(method: Any, request: bytes, began: float, tally: _Tally, timeout: float) -> None:
    try:
        raw = await method(request, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        tally.failed(began, exc.code().name)
    else:
        tally.answered(began, raw)


async def _closed_unary(
    spec: LoadSpec,
    methods: list[Any],
    requests: RequestSource,
    tally: _Tally,
    rng: np.random.Generator,
    call: UnaryCall = _unary_call,
) -> None:
    async def slot(i: int) -> None:
        method = methods[i % len(methods)]
        while time.monotonic() < tally.window_end and tally.issued < spec.max_requests:
            request = requests.next()
            began = time.monotonic()
            tally.started(began, len(request))
            await call(method, request, began, tally, spec.timeout)

    await asyncio.gather(*(slot(i) for i in range(spec.concurrency)))


def _arrivals(spec: LoadSpec, rng: np.random.Generator) -> Iterator[float]:
    """Poisson arrival times from start_at to the window's end, at most max_requests of them."""
    t = spec.start_at
    end = spec.start_at + spec.warmup + spec.duration
    for _ in range(spec.max_requests):
        t += float(rng.exponential(1.0 / spec.rate))
        if t >= end:
            return
        yield t


async def _pace(
    spec: LoadSpec, tally: _Tally, rng: np.random.Generator, launch: Callable[[float], None]
) -> None:
    """Call `launch(t)` for each arrival time t, as soon as it is due (late ones at once: the lateness is
    part of their latency)."""
    for t in _arrivals(spec, rng):
        delay = t - time.monotonic()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        if tally.in_window(t):
            tally.send_lag.record_value(max(1, int((time.monotonic() - t) * 1e6)))
        launch(t)


async def _open_unary(
    spec: LoadSpec,
    methods: list[Any],
    requests: RequestSource,
    tally: _Tally,
    rng: np.random.Generator,
    call: UnaryCall = _unary_call,
) -> None:
    in_flight: set[asyncio.Task[None]] = set()

    def launch(t: float) -> None:
        if len(in_flight) >= spec.max_in_flight:
            if tally.in_window(t):
                tally.result.shed += 1
            return
        request = requests.next()
        tally.started(t, len(request))
        method = methods[tally.issued % len(methods)]
        task = asyncio.create_task(call(method, request, t, tally, spec.timeout))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    await _pace(spec, tally, rng, launch)
    if in_flight:
        await asyncio.wait(in_flight, timeout=spec.timeout + 1.0)


async def _streams(
    spec: LoadSpec, methods: list[Any], requests: RequestStream, tally: _Tally, rng: np.random.Generator
) -> None:
    """Streaming, closed (each stream keeps concurrency/streams requests in flight) or open (arrivals
    dealt to the streams in turn). Responses come back in request order on each stream."""
    streams = [_Stream(methods[i % len(methods)](), tally, spec) for i in range(spec.streams)]
    readers = [asyncio.create_task(stream.read_all()) for stream in streams]
    try:
        if spec.mode == "closed":
            window = max(1, spec.concurrency // spec.streams)
            await asyncio.gather(*(stream.write_closed(requests, window) for stream in streams))
        else:
            turn = 0

            def launch(t: float) -> None:
                nonlocal turn
                if sum(len(s.pending) for s in streams) >= spec.max_in_flight:
                    if tally.in_window(t):
                        tally.result.shed += 1
                    return
                streams[turn % len(streams)].queue.put_nowait(t)
                turn += 1

            writers = [asyncio.create_task(stream.write_open(requests)) for stream in streams]
            await _pace(spec, tally, rng, launch)
            for stream in streams:
                stream.queue.put_nowait(None)
            await asyncio.gather(*writers)
        for stream in streams:
            await stream.call.done_writing()
        await asyncio.wait(readers, timeout=spec.timeout + 1.0)
    finally:
        for stream, reader in zip(streams, readers, strict=True):
            reader.cancel()
            stream.call.cancel()
        for stream in streams:
            stream.fail_pending("CANCELLED")


class _Stream:
    """One BidStream call: a writer and a reader, and the start times of the requests awaiting answers."""

    def __init__(self, call: Any, tally: _Tally, spec: LoadSpec) -> None:
        self.call = call
        self.tally = tally
        self.spec = spec
        self.pending: collections.deque[float] = collections.deque()
        self.queue: asyncio.Queue[float | None] = asyncio.Queue()
        self._slots: asyncio.Semaphore | None = None

    async def _write(self, request: bytes, began: float) -> bool:
        """Send one request; False once the stream is broken (its reader counts the failures)."""
        self.tally.started(began, len(request))
        self.pending.append(began)
        try:
            await self.call.write(request)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):
            return False
        return True

    async def write_closed(self, requests: RequestStream, window: int) -> None:
        self._slots = asyncio.Semaphore(window)
        while (
            now := time.monotonic()
        ) < self.tally.window_end and self.tally.issued < self.spec.max_requests:
            try:
                # Bounded: a stream whose answers stopped must not hold the run past its window.
                await asyncio.wait_for(self._slots.acquire(), self.tally.window_end - now)
            except TimeoutError:
                return
            if not await self._write(requests.next(), time.monotonic()):
                return

    async def write_open(self, requests: RequestStream) -> None:
        broken = False
        while (t := await self.queue.get()) is not None:
            if broken:
                self.tally.started(t, 0)
                self.tally.failed(t, "UNAVAILABLE")
            elif not await self._write(requests.next(), t):
                broken = True

    async def read_all(self) -> None:
        try:
            while True:
                raw = await asyncio.wait_for(self.call.read(), self.spec.timeout)
                if raw is grpc.aio.EOF:
                    return
                self.tally.answered(self.pending.popleft(), raw)
                if self._slots is not None:
                    self._slots.release()
        except TimeoutError:
            self.fail_pending("DEADLINE_EXCEEDED")
        except grpc.aio.AioRpcError as exc:
            self.fail_pending(exc.code().name)

    def fail_pending(self, code: str) -> None:
        while self.pending:
            self.tally.failed(self.pending.popleft(), code)


def run_in_loop(spec: LoadSpec, pool: list[bytes], seed: int) -> LoadResult:
    return asyncio.run(run_load(spec, pool, np.random.default_rng(seed)))
