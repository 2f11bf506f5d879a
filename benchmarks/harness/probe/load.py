"""Steady unary load from threads, every call recorded with its start, end and outcome (the SIGTERM and
Redis probes)."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass

import grpc

from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc


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
