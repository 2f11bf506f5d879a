"""Which asynchronous HTTP server the OpenRTB JSON door is built on: the candidates measured as echoes.

Run:

    .venv/bin/python benchmarks/http_servers.py [--rounds 4] [--duration 5] \
        [--out benchmarks/results/http_servers.json]

The door serves `POST /openrtb2/bid` in the bidder's process, on the event loop its grpc.aio server runs
on (the standard asyncio loop: grpc.aio shares it, so no uvloop). Each candidate is served that way, in
a process of its own on 127.0.0.1: an idle grpc.aio echo server on the same loop, and the HTTP echo,
which reads the POST body (an OpenRTB BidRequest of 0.9 to 1.4 KB), decodes it with msgspec and answers a
fixed 663-byte BidResponse (application/json, keep-alive). Candidates:

- aiohttp-server: aiohttp's low-level `web.Server` (a handler, no router, no application);
- aiohttp-app: an aiohttp `web.Application` with one POST route, as aiohttp is usually used;
- uvicorn-httptools: uvicorn with httptools, a raw ASGI callable (no framework), `uvicorn.Server.serve()`
  started inside the running loop, with its signal handling left to the process.

Every candidate takes the same closed-loop load (personabid.bench.http_load: aiohttp clients, keep-alive)
from separate load processes; the candidates alternate, the idle ones paused (SIGSTOP), for several
rounds on a shared machine. Figures are medians over rounds: throughput, the server's CPU time per
request (from /proc, the whole process), latency p50 and p99. Before measuring, each candidate answers a
gzip-compressed request (Content-Encoding: gzip): the check records whether the library inflates it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gzip
import json
import logging
import multiprocessing
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from personabid.artifact import write_atomic
from personabid.bench import report
from personabid.bench.http_echo import PATH, typical_response
from personabid.bench.load import LoadResult, LoadSpec
from personabid.bench.processes import HOST, free_port
from personabid.bench.services import Service

log = logging.getLogger("http_servers")
CANDIDATES = ("aiohttp-server", "aiohttp-app", "uvicorn-httptools")
POOL_SIZE = 2000
START_DELAY = 0.5  # seconds from handing out a job to its start: every load process begins together
WORLD_SEED = 7  # the demo world's

Stop = Callable[[], Awaitable[None]]


# -- the candidates (run in the server process) ---------------------------------------------------------


def _answer(body: bytes) -> tuple[int, bytes]:
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        return 400, msgspec.json.encode({"error": f"request body is not JSON: {exc}"})
    return 200, RESPONSE


RESPONSE = msgspec.json.encode(typical_response())


async def _aiohttp(port: int, with_app: bool) -> Stop:
    from aiohttp import web

    async def bid(request: web.BaseRequest) -> web.StreamResponse:
        if not with_app and (request.method != "POST" or request.path != PATH):
            return web.Response(status=404)
        status, body = _answer(await request.read())
        return web.Response(status=status, body=body, content_type="application/json")

    runner: web.BaseRunner
    if with_app:
        app = web.Application()
        app.router.add_post(PATH, bid)
        runner = web.AppRunner(app, access_log=None)
    else:
        runner = web.ServerRunner(web.Server(bid, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    return runner.cleanup


async def _uvicorn(port: int) -> Stop:
    import uvicorn

    headers = [(b"content-type", b"application/json")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] != "POST" or scope["path"] != PATH:
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        status, body = _answer(b"".join(chunks))
        length = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + length})
        await send({"type": "http.response.body", "body": body})

    class EmbeddedServer(uvicorn.Server):
        # serve() would take SIGINT and SIGTERM over with signal.signal; the process handles its signals.
        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            yield

    config = uvicorn.Config(
        app, host=HOST, port=port, loop="asyncio", http="httptools", lifespan="off", access_log=False,
        log_level="warning",
    )  # fmt: skip
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise OSError(f"uvicorn stopped before it served on {HOST}:{port}")
        await asyncio.sleep(0.01)

    async def stop() -> None:
        server.should_exit = True
        await task

    return stop


async def serve_candidate(name: str, port: int) -> None:
    """Serve candidate `name` on `port` beside an idle grpc.aio echo on the same loop, until SIGTERM."""
    import grpc

    from personabid.bench import echo_pb2_grpc
    from personabid.bench.echo import EchoServicer

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    grpc_server = grpc.aio.server()
    echo_pb2_grpc.add_EchoServicer_to_server(EchoServicer(), grpc_server)
    grpc_port = grpc_server.add_insecure_port(f"{HOST}:0")
    await grpc_server.start()
    if name == "uvicorn-httptools":
        stop = await _uvicorn(port)
    else:
        stop = await _aiohttp(port, with_app=name == "aiohttp-app")
    print(f"personabid echo ready: grpc={HOST}:{grpc_port} http={HOST}:{port}", flush=True)
    try:
        await stopping.wait()
    finally:
        await stop()
        await grpc_server.stop(1.0)


# -- the load processes ---------------------------------------------------------------------------------


def _load_process(pipe: Connection, number: int) -> None:
    from personabid.bench.http_load import json_request_pool, run_in_loop
    from personabid.world import World

    pool = json_request_pool(World(WORLD_SEED), POOL_SIZE, 1000 + number)
    pipe.send(("ok", len(pool)))
    while (message := pipe.recv()) is not None:
        spec, seed = message
        try:
            pipe.send(("ok", run_in_loop(spec, pool, seed)))
        except Exception as exc:
            pipe.send(("error", repr(exc)))


class LoadProcesses:
    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        for number in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=_load_process, args=(child, number), daemon=True)
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)
        for pipe in self.pipes:
            self._receive(pipe, 120.0)
        self.jobs = 0

    def start(self, spec: LoadSpec) -> float:
        """Hand `spec` to every process, all to begin together; returns the start time (monotonic)."""
        start = time.monotonic() + START_DELAY
        self.jobs += 1
        for number, pipe in enumerate(self.pipes):
            job = dataclasses.replace(spec, start_at=start, id_prefix=self.jobs * 256 + number)
            pipe.send((job, self.jobs * 7919 + number))
        return start

    def results(self, spec: LoadSpec) -> list[LoadResult]:
        limit = START_DELAY + spec.warmup + spec.duration + spec.timeout + 30.0
        return [self._receive(pipe, limit) for pipe in self.pipes]

    @staticmethod
    def _receive(pipe: Connection, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise TimeoutError(f"a load process did not answer within {timeout:.0f} s")
        kind, value = pipe.recv()
        if kind == "error":
            raise RuntimeError(f"a load process failed: {value}")
        return value

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)


# -- the measurement ------------------------------------------------------------------------------------


def gzip_check(port: int, body: bytes) -> dict[str, Any]:
    """POST `body` gzip-compressed with Content-Encoding: gzip; what came back."""
    request = urllib.request.Request(
        f"http://{HOST}:{port}{PATH}",
        data=gzip.compress(body),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5.0) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return {
        "status": status,
        "inflated_by_library": status == 200,
        "body": raw[:120].decode(errors="replace"),
    }


def measure(
    service: Service, others: list[Service], loads: LoadProcesses, spec: LoadSpec, meta: dict[str, Any]
) -> dict[str, Any]:
    for other in others:
        other.pause()
    service.resume()
    start = loads.start(spec)
    time.sleep(max(0.0, start + spec.warmup - time.monotonic()))
    before = service.cpu_seconds()
    time.sleep(max(0.0, start + spec.warmup + spec.duration - time.monotonic()))
    cpu = service.cpu_seconds() - before
    record = report.run_record(loads.results(spec), cpu, meta)
    for key in ("cdf", "histogram"):
        record.pop(key, None)
    latency = record["latency"]
    log.info(
        "round %d %-18s %7.0f/s  server CPU %6.1f us/req  client CPU %6.1f us/req  p50 %6s us  p99 %6s us"
        "  errors %s",
        meta["round"], meta["candidate"], record["throughput_rps"], record["server_cpu_us_per_request"],
        record["client_cpu_us_per_request"], latency.get("p50_us"), latency.get("p99_us"), record["errors"],
    )  # fmt: skip
    return record


def summarize(runs: list[dict[str, Any]], baseline: str) -> dict[str, Any]:
    def median(candidate: str, pick: Callable[[dict[str, Any]], float]) -> float:
        return round(statistics.median(pick(r) for r in runs if r["candidate"] == candidate), 1)

    figures = {
        name: {
            "throughput_rps": median(name, lambda r: r["throughput_rps"]),
            "server_cpu_us_per_request": median(name, lambda r: r["server_cpu_us_per_request"]),
            "client_cpu_us_per_request": median(name, lambda r: r["client_cpu_us_per_request"]),
            "p50_us": median(name, lambda r: r["latency"]["p50_us"]),
            "p99_us": median(name, lambda r: r["latency"]["p99_us"]),
            "errors": sum(sum(r["errors"].values()) for r in runs if r["candidate"] == name),
        }
        for name in sorted({r["candidate"] for r in runs}, key=CANDIDATES.index)
    }
    # Against the baseline in the same round (the machine's load drifts between rounds), then the median.
    by_round = {(r["candidate"], r["round"]): r for r in runs}
    for name, values in figures.items():
        for figure, key in (("throughput", "throughput_rps"), ("server_cpu", "server_cpu_us_per_request")):
            paired = [
                r[key] / by_round[baseline, r["round"]][key]
                for r in runs
                if r["candidate"] == name and (baseline, r["round"]) in by_round
            ]
            values[f"{figure}_x_{baseline}"] = round(statistics.median(paired), 3)
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp
    import uvicorn

    from personabid.bench.http_load import json_request_pool
    from personabid.world import World

    sample = json_request_pool(World(WORLD_SEED), 1, 1)[0]
    spec = LoadSpec(
        target="", service=PATH, concurrency=args.concurrency, warmup=args.warmup, duration=args.duration,
        timeout=2.0, max_requests=args.max_requests,
    )  # fmt: skip
    logs = Path(tempfile.mkdtemp(prefix="http-servers-"))
    services: dict[str, Service] = {}
    ports: dict[str, int] = {}
    runs: list[dict[str, Any]] = []
    loads = LoadProcesses(args.load_processes)
    started = time.perf_counter()
    load_start = os.getloadavg()
    try:
        for name in args.candidates:
            ports[name] = free_port()
            command = [sys.executable, __file__, "serve", name, "--port", str(ports[name])]
            services[name] = Service(name, command, 1, logs / f"{name}.log")
            services[name].wait_ready(60.0)
        gzip_checks = {name: gzip_check(ports[name], sample) for name in args.candidates}
        for number in range(args.rounds):
            order = (
                args.candidates[number % len(args.candidates) :]
                + args.candidates[: number % len(args.candidates)]
            )
            for name in order:
                target = dataclasses.replace(spec, target=f"{HOST}:{ports[name]}")
                others = [s for n, s in services.items() if n != name]
                runs.append(
                    measure(services[name], others, loads, target, {"candidate": name, "round": number})
                )
    finally:
        loads.close()
        for service in services.values():
            service.stop()
    return {
        "command": " ".join([".venv/bin/python", "benchmarks/http_servers.py", *sys.argv[1:]]),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {
            "python": platform.python_version(), "cpus": os.cpu_count(), "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
        "versions": {"aiohttp": aiohttp.__version__, "uvicorn": uvicorn.__version__,
                     "httptools": _version("httptools"), "msgspec": msgspec.__version__},
        "load": {
            "processes": args.load_processes, "connections_per_process": args.concurrency,
            "warmup_s": args.warmup, "window_s": args.duration, "rounds": args.rounds,
            "request_bytes_mean": statistics.mean(r["request_bytes_mean"] for r in runs),
            "response_bytes": len(RESPONSE),
        },
        "summary": summarize(runs, args.candidates[0]),
        "gzip_request": gzip_checks,
        "runs": runs,
    }  # fmt: skip


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        serve = argparse.ArgumentParser(prog="http_servers.py serve")
        serve.add_argument("candidate", choices=CANDIDATES)
        serve.add_argument("--port", type=int, required=True)
        served = serve.parse_args(argv[1:])
        asyncio.run(serve_candidate(served.candidate, served.port))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--candidates", type=lambda s: s.split(","), default=list(CANDIDATES))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each window")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per window")
    parser.add_argument("--concurrency", type=int, default=16, help="connections per load process")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=200_000, help="per load process and window")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/http_servers.json"))
    args = parser.parse_args(argv)
    unknown = set(args.candidates) - set(CANDIDATES)
    if unknown:
        parser.error(f"--candidates: unknown {sorted(unknown)}; known: {', '.join(CANDIDATES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, json.dumps(results, indent=1) + "\n")
    print(json.dumps({"summary": results["summary"], "gzip_request": results["gzip_request"]}, indent=1))
    print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
