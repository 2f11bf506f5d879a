"""A steady gRPC Bid load on a real server from a few threads, for tests that change what serves (index
swaps, experiments) while calls are in flight and must show that none failed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import grpc

from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc


class SteadyLoad:
    """`workers` threads, each calling Bid over its own channel with `requests` in turn until stopped."""

    def __init__(self, addr: str, requests: Sequence[pb.BidRequest], workers: int = 4) -> None:
        self.addr = addr
        self.requests = list(requests)
        self.failures: list[str] = []
        self._answered = [0] * workers
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._load, args=(w,)) for w in range(workers)]

    def _load(self, worker: int) -> None:
        with grpc.insecure_channel(self.addr) as channel:
            stub = pb_grpc.BidderStub(channel)
            deadline = time.monotonic() + 300
            for i in range(100_000):  # bounded in count and time
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                request = self.requests[(worker * 17 + i) % len(self.requests)]
                try:
                    response = stub.Bid(request, timeout=5)
                except grpc.RpcError as exc:
                    self.failures.append(f"{exc.code().name}: {exc.details()}")
                    continue
                if response.id != request.id or not (response.seatbid or response.nbr):
                    self.failures.append(f"bad response {response}")
                with self._progress:
                    self._answered[worker] += 1
                    self._progress.notify_all()

    def every_worker_answered_again(self) -> None:
        """Wait until every worker has had an answer since the call. Instead of sleeping: each change a
        test makes falls among the calls however fast or slow the machine is."""
        with self._progress:
            marks = list(self._answered)
            done = self._progress.wait_for(
                lambda: all(a > m for a, m in zip(self._answered, marks, strict=True)), 60
            )
        assert done, f"the load stalled: {self.failures[:3]}"

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


@contextmanager
def steady_load(addr: str, requests: Sequence[pb.BidRequest], workers: int = 4) -> Iterator[SteadyLoad]:
    load = SteadyLoad(addr, requests, workers)
    load.start()
    try:
        yield load
    finally:
        load.stop()
