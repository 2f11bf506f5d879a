"""The server under test: a `personabid serve` child on free 127.0.0.1 ports, its log, and what every
probe needs around it (a source of realistic requests, bounded concurrent calls)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format

from personabid.bench.probe.results import ProbeResult
from personabid.bench.processes import HOST, free_port, parse_ready
from personabid.client import sample_request
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc

BID = "/personabid.v1.Bidder/Bid"
NOTIFY_ONE = "/personabid.v1.Bidder/NotifyOne"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
UNKNOWN_METHOD = "/personabid.v1.Bidder/NoSuchMethod"
BID_STREAM = "/personabid.v1.Bidder/BidStream"


def identity(data: bytes) -> bytes:
    return data


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
        self.http_port = free_port()
        self.command = [
            python, "-m", "personabid", "serve",
            "--data-dir", str(data_dir),
            "--grpc-addr", f"{HOST}:{self.grpc_port}",
            # The OpenRTB HTTP door too, on a port of its own: never the default, which another may hold.
            "--http-addr", f"{HOST}:{self.http_port}",
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
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(map(parse_ready, self.log_path.read_text(errors="replace").splitlines())):
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
