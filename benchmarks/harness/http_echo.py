"""The HTTP echo service: `POST /openrtb2/bid` answered with a fixed, typical BidResponse as OpenRTB JSON.

It is served as the bidder's HTTP door is to be: uvicorn with httptools and a raw ASGI callable (no
framework), started inside the running standard asyncio loop, beside a grpc.aio server (the gRPC echo)
on the same loop. So what it costs is what Python HTTP costs there: the floor under the HTTP door. Each
request's body is read (inflated first when it is gzip) and decoded as JSON, as the door must.

Answers: 200 with the typical response; 400 for a body that is not a JSON object; 404 for another path,
405 for another method, 413 for a body over MAX_BODY bytes (inflated or not), 415 for an encoding other
than gzip; errors as {"error": "..."}.

Run: python -m personabid.bench.http_echo --http-addr 127.0.0.1:PORT [--grpc-addr 127.0.0.1:0] [--workers N]
Ready line: "personabid echo ready: grpc=ADDR http=ADDR" (processes.parse_ready reads both).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
import msgspec
import uvicorn

from personabid.app import server_options
from personabid.bench import echo_pb2_grpc
from personabid.bench.echo import EchoServicer
from personabid.config import Settings
from personabid.httpdoor import (
    BID_PATH,
    JSON,
    HttpError,
    Receive,
    Scope,
    Send,
    read_body,
    send_response,
)

log = logging.getLogger(__name__)
PATH = BID_PATH


def typical_response() -> dict[str, Any]:
    """A bid on one impression as OpenRTB 2.6 JSON: echo.py's typical response, with notice URLs."""
    notices = "https://notify.personabid.example/v1/{}?auction=${{AUCTION_ID}}&bid=1-cmp-003717&{}"
    return {
        "id": "08259a83b2d44da3a7b1ff3f592d6ba4",
        "bidid": "1-cmp-003717",
        "cur": "USD",
        "seatbid": [
            {
                "seat": "personabid",
                "bid": [
                    {
                        "id": "1-cmp-003717",
                        "impid": "1",
                        "price": 3.41,
                        "nurl": notices.format("win", "price=${AUCTION_PRICE}"),
                        "burl": notices.format("bill", "price=${AUCTION_PRICE}"),
                        "lurl": notices.format("loss", "reason=${AUCTION_LOSS}"),
                        "adomain": ["brand00858.example"],
                        "cid": "cmp-003717",
                        "crid": "cr-003717-160x600",
                        "cat": ["IAB12"],
                        "w": 160,
                        "h": 600,
                        "mtype": 1,
                        "ext": {"pctr": 0.031, "match_score": 0.9},
                    }
                ],
            }
        ],
    }


class EchoApp:
    """The ASGI callable: reads, inflates and decodes the body, answers the typical response."""

    def __init__(self) -> None:
        self._response = msgspec.json.encode(typical_response())
        self._decode = msgspec.json.Decoder()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; nothing else is offered
            return
        try:
            if scope["path"] != PATH:
                raise HttpError(404, f"no such path {scope['path']!r}; requests go to {PATH}")
            if scope["method"] != "POST":
                raise HttpError(405, f"method {scope['method']} not allowed; POST a BidRequest")
            body = await read_body(receive, _header(scope, b"content-encoding"))
            try:
                request = self._decode.decode(body)
            except msgspec.DecodeError as exc:
                raise HttpError(400, f"the body is not JSON: {exc}") from None
            if not isinstance(request, dict):
                raise HttpError(400, f"the body is JSON {type(request).__name__}, not a BidRequest object")
        except HttpError as exc:
            await send_response(send, exc.status, msgspec.json.encode({"error": str(exc)}), JSON)
            return
        await send_response(send, 200, self._response, JSON)


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


class EmbeddedServer(uvicorn.Server):
    """uvicorn in a loop it did not start: the process keeps its own signal handling (serve() would take
    SIGINT and SIGTERM over with signal.signal, and the loop's handlers would never run)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(addr: str, reuse_port: bool) -> socket.socket:
    """A listening TCP socket on HOST:PORT (port 0: the OS's choice); SO_REUSEPORT for workers sharing it.

    Bound here rather than by uvicorn, which calls sys.exit when it cannot bind."""
    host, _, port = addr.rpartition(":")
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # accepted sockets inherit it. Without it, a response written in two parts (uvicorn writes the head,
    # then the body) waits on Nagle's algorithm and the client's delayed ACK: 40 ms a request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {addr}: {exc}") from exc
    sock.setblocking(False)
    return sock


async def start_http(app: Any, sock: socket.socket, grace: float) -> Callable[[], Awaitable[None]]:
    """Serve `app` on `sock` with uvicorn (httptools) in the running loop; returns the coroutine that
    stops it (open requests get `grace` seconds)."""
    config = uvicorn.Config(
        app, loop="asyncio", http="httptools", ws="none", lifespan="off", access_log=False,
        log_config=None, log_level="warning", timeout_graceful_shutdown=int(max(1, grace)),
    )  # fmt: skip
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise OSError("the HTTP server stopped before it served")
        await asyncio.sleep(0.005)

    async def stop() -> None:
        server.should_exit = True
        await task

    return stop


async def serve_http_echo(http_addr: str, grpc_addr: str, workers: int = 1, grace: float = 2.0) -> None:
    """Serve the HTTP echo on `http_addr` and the gRPC echo on `grpc_addr`, until SIGTERM or SIGINT."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    sock = listen(http_addr, reuse_port=workers > 1)
    grpc_server = grpc.aio.server(options=server_options(Settings(grpc_addr=grpc_addr, workers=workers)))
    echo_pb2_grpc.add_EchoServicer_to_server(EchoServicer(), grpc_server)
    grpc_port = grpc_server.add_insecure_port(grpc_addr)
    if grpc_port == 0:
        sock.close()
        raise OSError(f"cannot listen on {grpc_addr}")
    await grpc_server.start()
    try:
        stop_http = await start_http(EchoApp(), sock, grace)
        try:
            host, port = sock.getsockname()[:2]
            grpc_host = grpc_addr.rpartition(":")[0]
            log.info("personabid echo ready: grpc=%s:%d http=%s:%d", grpc_host, grpc_port, host, port)
            await stopping.wait()
        finally:
            await stop_http()
    finally:
        await grpc_server.stop(grace)
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m personabid.bench.http_echo", description=__doc__)
    parser.add_argument(
        "--http-addr", default="127.0.0.1:0", help="HTTP listen address (default %(default)s)"
    )
    parser.add_argument(
        "--grpc-addr", default="127.0.0.1:0", help="gRPC listen address (default %(default)s)"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the ports")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: at least 1")
    if args.workers > 1 and args.http_addr.endswith(":0"):
        parser.error(
            f"--http-addr {args.http_addr}: {args.workers} workers share one port, which must be given"
        )
    if args.workers > 1:
        from personabid.workers import run_workers

        def work(_worker: int) -> None:
            asyncio.run(serve_http_echo(args.http_addr, args.grpc_addr, args.workers))

        return run_workers(args.workers, work)
    asyncio.run(serve_http_echo(args.http_addr, args.grpc_addr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
