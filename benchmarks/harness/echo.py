"""The echo service: the Bidder's Bid and BidStream answered with a fixed, typical BidResponse.

It is served exactly as the Bidder is (same server options, same process model with --workers, health
checking on the same port), so that what it costs is what Python gRPC costs: the floor under the bidder.

With --work-us N each call first works N microseconds of its thread's CPU in Python (building and
dropping small dicts and lists, as a request path does), then answers. gRPC's and asyncio's own cost per
call is not fixed: it grows with the handler's length (measured by `personabid bench`'s handler-length
block), so an echo that works as long as the bidder's path is the floor that says what the bidder costs
beyond any handler of its length.
Run: python -m personabid.bench.echo --grpc-addr 127.0.0.1:PORT [--workers N] [--work-us N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from personabid.app import server_options
from personabid.bench import echo_pb2_grpc
from personabid.config import Settings
from personabid.v1 import bidder_pb2 as pb

log = logging.getLogger(__name__)
SERVICE_NAME = "personabid.bench.echo.Echo"  # benchmarks/harness/proto/echo.proto
MAX_WORK_US = 1_000_000.0  # a second a call: far past any bidder's path


def typical_response() -> pb.BidResponse:
    """A bid on one impression, with fields as long as the bidder's (README's example response)."""
    response = pb.BidResponse(id="08259a83b2d44da3a7b1ff3f592d6ba4", cur="USD")
    response.seatbid.add(seat="personabid").bid.add(
        id="1-cmp-003717",
        impid="1",
        price=3.41,
        campaign_id="cmp-003717",
        creative_id="cr-003717-160x600",
        adomain=["brand00858.example"],
        pctr=0.031,
        match_score=0.90,
    )
    return response


def check_work(work_us: float) -> None:
    """Raise ValueError unless `work_us` (microseconds of CPU a call) lies in [0, MAX_WORK_US]."""
    if not 0.0 <= work_us <= MAX_WORK_US:  # False for NaN too
        raise ValueError(f"--work-us {work_us:g}: must lie in [0, {MAX_WORK_US:g}]")


def work(seconds: float) -> int:
    """Spend `seconds` of this thread's CPU time in Python allocation and dict work; returns how many
    rounds it took (so that nothing is optimised away)."""
    until = time.thread_time() + seconds
    rounds = 0
    while time.thread_time() < until:
        fields = {f"f{i}": i * 0.5 for i in range(16)}
        rounds += len([str(value) for value in fields.values()])
    return rounds


class EchoServicer(echo_pb2_grpc.EchoServicer):
    def __init__(self, work_us: float = 0.0) -> None:
        check_work(work_us)
        self._response = typical_response()
        self._work = work_us / 1e6

    async def Bid(self, request: pb.BidRequest, context: grpc.aio.ServicerContext) -> pb.BidResponse:
        if self._work:
            work(self._work)
        return self._response

    async def BidStream(
        self, request_iterator: AsyncIterator[pb.BidRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.BidResponse]:
        async for _ in request_iterator:
            if self._work:
                work(self._work)
            yield self._response


async def serve_echo(settings: Settings, grace: float = 2.0, work_us: float = 0.0) -> None:
    """Serve the echo service on settings.grpc_addr until SIGTERM or SIGINT, each call working
    `work_us` of CPU first."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    server = grpc.aio.server(options=server_options(settings))
    echo_pb2_grpc.add_EchoServicer_to_server(EchoServicer(work_us), server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    port = server.add_insecure_port(settings.grpc_addr)
    if port == 0:
        raise OSError(f"cannot listen on {settings.grpc_addr}")
    await server.start()
    for service in (SERVICE_NAME, ""):
        await checks.set(service, health_pb2.HealthCheckResponse.SERVING)
    host = settings.grpc_addr.rpartition(":")[0]
    log.info("personabid echo ready: grpc=%s:%d", host, port)
    await stopping.wait()
    await server.stop(grace)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m personabid.bench.echo", description=__doc__)
    parser.add_argument("--grpc-addr", default="127.0.0.1:0", help="listen address (default %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    parser.add_argument(
        "--work-us",
        type=float,
        default=0.0,
        help="microseconds of CPU each call works in Python before it answers (default %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        check_work(args.work_us)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(grpc_addr=args.grpc_addr, workers=args.workers)
    if settings.workers > 1:
        from personabid.workers import check_ports, run_workers

        check_ports(settings)
        return run_workers(
            settings.workers, lambda _worker: asyncio.run(serve_echo(settings, work_us=args.work_us))
        )
    asyncio.run(serve_echo(settings, work_us=args.work_us))
    return 0


if __name__ == "__main__":
    sys.exit(main())
