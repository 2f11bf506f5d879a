"""The suite: what runs, in which order, against which reference; results as JSON and PNG.

Blocks, one after the other, each with its servers started for it and stopped after it:

1. For each catalog size: the bidder and the echo services (one worker each). Over gRPC: closed loop,
   unary then streaming, and an open loop at a fixed moderate rate; over HTTP (the OpenRTB JSON door,
   POST /openrtb2/bid): a closed loop and an open loop at a fixed moderate rate. Each is repeated, the
   bidder and the echo of its protocol alternating so that both see the same machine (the idle services
   are paused). The echo figures of the block are the floor its bidder figures are divided by: the gRPC
   echo's for gRPC, the HTTP echo's (uvicorn on a grpc.aio server's loop, as the door) for HTTP.
2. At the sweep size: an open-loop sweep of offered load, unary, from a tenth of each service's closed-loop
   throughput to past it (the latency-versus-throughput curve); the bidder and the echo at one offered
   rate, half the bidder's own closed-loop maximum (its tail against the echo's at the same rate); and an
   open-loop stream.
3. At the workers size: the same closed loops with N workers for both services, against 1 (block 1).
4. At the sweep size: the bidder with its spend state in a real Redis (`--redis-url`, a redis-server
   started here) against the bidder with it in process, closed loops, alternating.
5. A profile of one request, in process (profile.py), and the recall of the match on user-like queries
   at each catalog size (recall.py). With --py-spy, a sample of the bidder under load (pyspy.py).

Every load run is bounded in time (warm-up + window + a deadline per call) and in count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personabid.bench import report
from personabid.bench.clients import LoadClients
from personabid.bench.echo import SERVICE_NAME as ECHO_SERVICE
from personabid.bench.load import LoadSpec
from personabid.bench.machine import machine_info
from personabid.bench.processes import RedisProcess, free_port
from personabid.bench.services import (
    Service,
    bidder_command,
    echo_command,
    http_echo_command,
    process_cpu_seconds,
)
from personabid.bench.targets import targets
from personabid.bench.worlds import ensure_world
from personabid.httpdoor import BID_PATH

log = logging.getLogger(__name__)
BIDDER_SERVICE = "personabid.v1.Bidder"
RESULTS_FILE = "results.json"
FORMAT_VERSION = 1
FIXED_RATE_SHARE = 0.5  # block 1's open loop offers at most this share of the bidder's closed-loop rate
# Block 1's loads, in the order each repeat runs them: (rpc, mode); rpc "http" is the OpenRTB JSON door.
CATALOG_LOADS = (
    ("unary", "closed"),
    ("stream", "closed"),
    ("unary", "open"),
    ("http", "closed"),
    ("http", "open"),
)
HTTP_ECHO = "http-echo"  # the runs' service name of the HTTP echo ("echo" is the gRPC one)
REDIS_BIDDER = "bidder-redis"  # the runs' service name of the bidder with its spend state in Redis
WARMUP_BLOCK = "redis-warmup"  # each Redis-block worker's first window after it started
REDIS_SERVER = "/usr/bin/redis-server"  # where Debian's package puts it (else found on PATH)
PY_SPY_SECONDS = 5.0  # --py-spy: how long the bidder is sampled
# The handler-length block's echoes work these shares of the bidder's own path CPU a call (echo.py). The
# shares are set from the catalog block's count, minutes before the block runs; 1.5 keeps the bidder's
# path inside the working echoes' range (read between them, not extrapolated) when the shared machine
# slows in between, as a run of 2026-12-02 did (the bidder's path grew from 630 to 1,045 us).
WORK_SHARES = (0.25, 0.5, 1.0, 1.5)
WORKING_ECHO = "echo-working"  # the runs' service name of an echo that works before it answers


@dataclass(frozen=True)
class Plan:
    name: str
    sizes: tuple[int, ...]  # catalog sizes of block 1
    sweep_size: int
    sweep_fractions: tuple[float, ...]  # offered load, as shares of each service's closed-loop throughput
    workers_size: int
    workers: int  # block 3 compares this many workers with one
    warmup: float
    duration: float
    repeats: int
    fixed_rate: float  # block 1's open loop, requests per second (all load processes together)
    open_stream_fraction: float = 0.7
    load_processes: int = 2
    concurrency: int = 32  # closed loop: calls in flight per load process
    streams: int = 4  # per load process; a closed-loop stream keeps concurrency / streams in flight
    channels: int = 4  # connections per load process
    idle_seconds: float = 2.0  # a ready service settles this long, then its idle CPU is measured as long
    profile_requests: int = 3000
    recall_queries: int = 1000  # user-like queries of the recall measurement, at each catalog size
    redis_rpcs: tuple[str, ...] = ("unary", "stream")  # the Redis block's closed loops
    ready_timeout: float = 600.0  # a million-campaign HNSW index takes a while to load and warm


FULL = Plan(
    name="full",
    sizes=(10_000, 100_000, 1_000_000),
    sweep_size=100_000,
    sweep_fractions=(0.1, 0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3),
    workers_size=100_000,
    workers=2,
    warmup=2.0,
    duration=8.0,
    repeats=3,
    fixed_rate=1000.0,
)
SMOKE = Plan(
    name="smoke",
    sizes=(10_000,),
    sweep_size=10_000,
    sweep_fractions=(0.25, 0.75, 1.25),
    workers_size=10_000,
    workers=2,
    warmup=0.4,
    duration=1.2,
    repeats=1,
    fixed_rate=500.0,
    idle_seconds=0.25,
    profile_requests=300,
    recall_queries=300,
    redis_rpcs=("unary",),
    ready_timeout=120.0,
)
PLANS = {"full": FULL, "smoke": SMOKE}


class Suite:
    def __init__(self, plan: Plan, out: Path, worlds: Path, py_spy: bool = False) -> None:
        self.plan = plan
        self.out = out
        self.worlds = worlds
        self.py_spy = py_spy
        self.py_spy_result: dict[str, Any] | None = None
        self.runs: list[dict[str, Any]] = []
        self.services: dict[str, dict[str, Any]] = {}
        self._scratch = Path(tempfile.mkdtemp(prefix="personabid-bench-"))
        (out / "logs").mkdir(parents=True, exist_ok=True)

    # -- services ------------------------------------------------------------------------------------

    def _start(self, name: str, command: list[str], workers: int) -> Service:
        service = Service(name, command, workers, self.out / "logs" / f"{name}.log")
        try:
            started = time.perf_counter()
            service.wait_ready(self.plan.ready_timeout)
        except BaseException:
            service.stop()
            raise
        # Background work with no load at all (the spend refresh, the artifact watch, gRPC's timers), once
        # the start-up work (the day's first full spend read and pacing step) has had as long to finish.
        time.sleep(self.plan.idle_seconds)
        before = service.cpu_seconds()
        time.sleep(self.plan.idle_seconds)
        idle = (service.cpu_seconds() - before) / self.plan.idle_seconds
        self.services[name] = {
            "workers": workers,
            "ready_seconds": round(time.perf_counter() - started, 1),
            "idle_cpu_ms_per_s": round(idle * 1000, 1),
        }
        log.info("%s ready at %s (idle CPU %.1f ms/s)", name, service.addr, idle * 1000)
        return service

    def _bidder(self, campaigns: int, workers: int, block: str = "", redis_url: str = "") -> Service:
        name = f"bidder-{campaigns}-w{workers}{block}"
        world = ensure_world(self.worlds, campaigns)
        scratch = self._scratch / name
        scratch.mkdir(exist_ok=True)
        command = bidder_command(
            world, free_port(), workers, scratch, http_port=free_port(), redis_url=redis_url
        )
        return self._start(name, command, workers)

    def _echo(self, workers: int, label: str) -> Service:
        return self._start(f"echo-{label}-w{workers}", echo_command(free_port(), workers), workers)

    def _http_echo(self, workers: int, label: str) -> Service:
        return self._start(f"http-echo-{label}-w{workers}", http_echo_command(free_port(), workers), workers)

    # -- one run -------------------------------------------------------------------------------------

    def measure(
        self,
        clients: LoadClients,
        service: Service,
        others: list[Service],
        spec: LoadSpec,
        meta: dict[str, Any],
        beside: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        """One load run of `service` (the `others` paused); `beside` are processes it works with (a
        Redis server), whose CPU in the window is recorded apart from the service's."""
        for other in others:
            other.pause()
        service.resume()
        # A URL path is an HTTP load, sent to the service's HTTP address.
        target = service.http_addr if spec.service.startswith("/") else service.addr
        if not target:
            raise ValueError(f"{service.name} has no address for {spec.service}")
        start = clients.start_time()
        window = (start + spec.warmup, start + spec.warmup + spec.duration)
        sampler = _CpuSampler(service, *window, beside=beside)
        sampler.start()
        results = clients.run(dataclasses.replace(spec, target=target), start)
        sampler.join()
        record = report.run_record(results, sampler.cpu_seconds, meta)
        record["worker_cpu_share"] = sampler.shares
        record["path_cpu_us_per_request"] = sampler.path_cpu_us_per_request
        if beside:
            completed = record["completed"]
            record["beside_cpu_us_per_request"] = (
                round(sampler.beside_seconds / completed * 1e6, 1) if completed else None
            )
        self.runs.append(record)
        latency = record["latency"]
        log.info(
            "%-7s %-6s %-6s %-7s %8.0f/s  p50 %6s us  p99 %7s us  errors %s  cpu %s us/req",
            meta["service"],
            meta.get("campaigns") or "",
            meta["rpc"],
            meta["mode"] if meta["mode"] == "closed" else f"{meta['offered_rps']:.0f}/s",
            record["throughput_rps"],
            latency.get("p50_us"),
            latency.get("p99_us"),
            record["error_rate"],
            record["server_cpu_us_per_request"],
        )
        return record

    def _spec(self, service: str, rpc: str, mode: str, rate: float = 0.0) -> LoadSpec:
        p = self.plan
        return LoadSpec(
            target="",
            service=service,
            rpc=rpc,
            mode=mode,
            concurrency=p.concurrency,
            rate=rate / p.load_processes,
            streams=p.streams,
            channels=p.channels,
            warmup=p.warmup,
            duration=p.duration,
        )

    # -- blocks --------------------------------------------------------------------------------------

    def catalog_block(self, clients: LoadClients, campaigns: int) -> None:
        """Over gRPC, closed loops (unary, stream) and the fixed-rate open loop, bidder and gRPC echo
        alternating; over HTTP, a closed loop and the fixed-rate open loop, bidder and HTTP echo
        alternating."""
        clients.prepare(ensure_world(self.worlds, campaigns))
        with (
            self._echo(1, f"for-{campaigns}") as echo,
            self._http_echo(1, f"for-{campaigns}") as http_echo,
            self._bidder(campaigns, 1) as bidder,
        ):
            services = (echo, http_echo, bidder)
            rates: dict[str, float] = {}  # the open loop's offered rate, by rpc ("unary", "http")
            for repeat in range(self.plan.repeats):
                for rpc, mode in CATALOG_LOADS:
                    if mode == "open" and rpc not in rates:
                        # A moderate load for both, well below what this bidder managed in a closed loop:
                        # the latency of a service that keeps up, not of a queue.
                        closed = report.select(
                            self.runs,
                            block="catalog",
                            service="bidder",
                            campaigns=campaigns,
                            rpc=rpc,
                            mode="closed",
                        )
                        capacity = closed[0]["throughput_rps"]
                        rates[rpc] = round(min(self.plan.fixed_rate, FIXED_RATE_SHARE * capacity), 1)
                    if rpc == "http":
                        pair = {HTTP_ECHO: (http_echo, BID_PATH), "bidder": (bidder, BID_PATH)}
                    else:
                        pair = {"echo": (echo, ECHO_SERVICE), "bidder": (bidder, BIDDER_SERVICE)}
                    offered = rates[rpc] if mode == "open" else 0.0
                    for name, (service, target) in pair.items():
                        other = [s for s in services if s is not service]
                        meta = {
                            "block": "catalog",
                            "service": name,
                            "campaigns": campaigns,
                            "workers": 1,
                            "rpc": rpc,
                            "mode": mode,
                            "repeat": repeat,
                            **({"offered_rps": offered} if mode == "open" else {}),
                        }
                        # HTTP/1.1 calls are unary: the spec's rpc; the URL path says HTTP.
                        spec = self._spec(target, "unary" if rpc == "http" else rpc, mode, offered)
                        self.measure(clients, service, other, spec, meta)
            if self.py_spy and campaigns == self.plan.sweep_size:
                self._sample_bidder(clients, bidder, [echo, http_echo], campaigns)

    def _sample_bidder(
        self, clients: LoadClients, bidder: Service, others: list[Service], campaigns: int
    ) -> None:
        """One more unary closed-loop run of the bidder, sampled by py-spy; kept out of the figures (its
        block is "py-spy"): py-spy takes CPU from the same cores."""
        from personabid.bench import pyspy

        raw = self.out / "py_spy_raw.txt"
        seconds = min(PY_SPY_SECONDS, self.plan.duration)
        spec = dataclasses.replace(self._spec(BIDDER_SERVICE, "unary", "closed"), duration=seconds + 1.0)
        recording = pyspy.Recording(bidder.process.pid, seconds, raw, self.out / "logs" / "py-spy.log")
        try:
            meta = {"block": "py-spy", "service": "bidder", "campaigns": campaigns, "workers": 1}
            record = self.measure(clients, bidder, others, spec, {**meta, "rpc": "unary", "mode": "closed"})
        finally:
            written = recording.wait(spec.warmup + spec.duration + 30.0)
        if not written:
            log.warning("py-spy wrote no samples: see %s", self.out / "logs" / "py-spy.log")
            return
        folded = pyspy.fold(raw.read_text(), record["server_cpu_us_per_request"])
        (self.out / "py_spy_top.txt").write_text(pyspy.summary_text(folded))
        self.py_spy_result = {
            "campaigns": campaigns,
            "seconds": seconds,
            "server_cpu_us_per_request": record["server_cpu_us_per_request"],
            **folded,
        }

    def sweep_block(self, clients: LoadClients) -> None:
        """Offered load from low to past saturation, unary, open loop; then an open-loop stream."""
        campaigns = self.plan.sweep_size
        clients.prepare(ensure_world(self.worlds, campaigns))
        with self._echo(1, "sweep") as echo, self._bidder(campaigns, 1, "-sweep") as bidder:
            pair = {"echo": (echo, ECHO_SERVICE), "bidder": (bidder, BIDDER_SERVICE)}
            capacity = {
                name: report.medians(
                    report.select(
                        self.runs,
                        block="catalog",
                        service=name,
                        campaigns=campaigns,
                        rpc="unary",
                        mode="closed",
                    )
                )["throughput_rps"]
                for name in pair
            }
            for fraction in self.plan.sweep_fractions:
                for name, (service, full_name) in pair.items():
                    rate = round(fraction * capacity[name], 1)
                    other = [s for s, _ in pair.values() if s is not service]
                    meta = {
                        "block": "sweep",
                        "service": name,
                        "campaigns": campaigns,
                        "workers": 1,
                        "rpc": "unary",
                        "mode": "open",
                        "offered_rps": rate,
                        "offered_fraction": fraction,
                    }
                    self.measure(clients, service, other, self._spec(full_name, "unary", "open", rate), meta)
            # Both at one rate, half the bidder's own maximum: its tail against the echo's at the same
            # offered load (block 1's open loop is capped at the plan's fixed rate, so it may be lower).
            half = round(FIXED_RATE_SHARE * capacity["bidder"], 1)
            for repeat in range(self.plan.repeats):
                for name, (service, full_name) in pair.items():
                    other = [s for s, _ in pair.values() if s is not service]
                    meta = {
                        "block": "half-load",
                        "service": name,
                        "campaigns": campaigns,
                        "workers": 1,
                        "rpc": "unary",
                        "mode": "open",
                        "offered_rps": half,
                        "offered_fraction": FIXED_RATE_SHARE,
                        "repeat": repeat,
                    }
                    self.measure(clients, service, other, self._spec(full_name, "unary", "open", half), meta)
            for name, (service, full_name) in pair.items():
                rate = round(self.plan.open_stream_fraction * capacity[name], 1)
                other = [s for s, _ in pair.values() if s is not service]
                meta = {
                    "block": "open-stream",
                    "service": name,
                    "campaigns": campaigns,
                    "workers": 1,
                    "rpc": "stream",
                    "mode": "open",
                    "offered_rps": rate,
                    "offered_fraction": self.plan.open_stream_fraction,
                }
                self.measure(clients, service, other, self._spec(full_name, "stream", "open", rate), meta)

    def handler_length_block(self, clients: LoadClients) -> None:
        """Closed-loop unary at the sweep's catalog size: the echo, echoes whose calls first work a share
        of the bidder's own path CPU (WORK_SHARES of what the catalog block's closed loop counted), and
        the bidder, alternating. What the transport costs with a handler as long as the bidder's, and
        what a bidder with a shorter path could reach against the echo."""
        campaigns = self.plan.sweep_size
        counted = report.medians(
            report.select(
                self.runs, block="catalog", service="bidder", campaigns=campaigns, rpc="unary", mode="closed"
            )
        ).get("path_cpu_us_per_request")
        if not counted:
            log.warning("the bidder counted no path CPU at %d campaigns: no handler-length block", campaigns)
            return
        clients.prepare(ensure_world(self.worlds, campaigns))
        with contextlib.ExitStack() as stack:
            # (service, its full name, what its runs' records say of it)
            loads: list[tuple[Service, str, dict[str, Any]]] = [
                (stack.enter_context(self._echo(1, "handler")), ECHO_SERVICE, {"service": "echo"})
            ]
            for share in WORK_SHARES:
                work = round(counted * share, 1)
                command = echo_command(free_port(), 1, work_us=work)
                echo = stack.enter_context(self._start(f"echo-working-{share:g}-w1", command, 1))
                meta = {"service": WORKING_ECHO, "work_us": work, "work_share": share}
                loads.append((echo, ECHO_SERVICE, meta))
            bidder = stack.enter_context(self._bidder(campaigns, 1, "-handler"))
            loads.append((bidder, BIDDER_SERVICE, {"service": "bidder"}))
            for repeat in range(self.plan.repeats):
                for service, full_name, described in loads:
                    other = [s for s, _, _ in loads if s is not service]
                    meta = {
                        "block": "handler-length",
                        "campaigns": campaigns,
                        "workers": 1,
                        "rpc": "unary",
                        "mode": "closed",
                        "repeat": repeat,
                        **described,
                    }
                    self.measure(clients, service, other, self._spec(full_name, "unary", "closed"), meta)

    def workers_block(self, clients: LoadClients) -> None:
        campaigns, workers = self.plan.workers_size, self.plan.workers
        clients.prepare(ensure_world(self.worlds, campaigns))
        with self._echo(workers, "workers") as echo, self._bidder(campaigns, workers) as bidder:
            pair = {"echo": (echo, ECHO_SERVICE), "bidder": (bidder, BIDDER_SERVICE)}
            for repeat in range(self.plan.repeats):
                for rpc in ("unary", "stream"):
                    for name, (service, full_name) in pair.items():
                        other = [s for s, _ in pair.values() if s is not service]
                        meta = {
                            "block": "workers",
                            "service": name,
                            "campaigns": campaigns,
                            "workers": workers,
                            "rpc": rpc,
                            "mode": "closed",
                            "repeat": repeat,
                        }
                        self.measure(clients, service, other, self._spec(full_name, rpc, "closed"), meta)

    def redis_block(self, clients: LoadClients, redis_server: str) -> None:
        """The bidder with its spend state in a real Redis against the bidder with it in process, closed
        loops (unary, stream), alternating; the Redis server's CPU is recorded beside."""
        campaigns = self.plan.sweep_size
        clients.prepare(ensure_world(self.worlds, campaigns))
        directory = self._scratch / "redis"
        directory.mkdir(exist_ok=True)
        redis = RedisProcess(redis_server, directory).start()
        try:
            with (
                self._bidder(campaigns, 1, "-memory") as memory,
                self._bidder(campaigns, 1, "-redis", redis_url=redis.url) as shared,
            ):
                assert redis.process is not None
                pair = {"bidder": memory, REDIS_BIDDER: shared}
                # A fresh worker leases each campaign's slice the first time the campaign is a candidate:
                # at 100,000 campaigns some 50,000 leases in its first seconds of traffic. One
                # window of each first, reported apart ("redis-warmup"): the target reads the windows
                # after it, a worker in its steady state.
                for name, service in pair.items():
                    other = [s for s in pair.values() if s is not service]
                    meta = {
                        "block": WARMUP_BLOCK, "service": name, "campaigns": campaigns, "workers": 1,
                        "rpc": "unary", "mode": "closed", "repeat": 0,
                    }  # fmt: skip
                    spec = self._spec(BIDDER_SERVICE, "unary", "closed")
                    self.measure(clients, service, other, spec, meta, beside=(redis.process.pid,))
                for repeat in range(self.plan.repeats):
                    for rpc in self.plan.redis_rpcs:
                        for name, service in pair.items():
                            other = [s for s in pair.values() if s is not service]
                            meta = {
                                "block": "redis",
                                "service": name,
                                "campaigns": campaigns,
                                "workers": 1,
                                "rpc": rpc,
                                "mode": "closed",
                                "repeat": repeat,
                            }
                            spec = self._spec(BIDDER_SERVICE, rpc, "closed")
                            self.measure(clients, service, other, spec, meta, beside=(redis.process.pid,))
        finally:
            redis.stop()

    # -- the whole suite -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from personabid.bench.plots import write_plots
        from personabid.bench.profile import profile_requests
        from personabid.bench.recall import user_recall

        redis_server = _redis_server()  # before anything runs: a missing one fails at once
        if self.py_spy:
            from personabid.bench.pyspy import py_spy_binary

            py_spy_binary()
        started = time.perf_counter()
        began = dt.datetime.now(dt.UTC)
        machine = {**machine_info(), "loadavg_start": os.getloadavg()}
        for campaigns in sorted({*self.plan.sizes, self.plan.sweep_size, self.plan.workers_size}):
            ensure_world(self.worlds, campaigns)
        with LoadClients(self.plan.load_processes) as clients:
            for campaigns in self.plan.sizes:
                self.catalog_block(clients, campaigns)
            self.sweep_block(clients)
            self.handler_length_block(clients)
            self.workers_block(clients)
            self.redis_block(clients, redis_server)
        log.info("profiling one request at %d campaigns", self.plan.sweep_size)
        profile = profile_requests(
            ensure_world(self.worlds, self.plan.sweep_size), self.plan.profile_requests
        )
        (self.out / "profile.txt").write_text(profile.pop("cprofile"))
        recall = {}
        for campaigns in self.plan.sizes:
            log.info("recall of the match on user-like queries at %d campaigns", campaigns)
            world = ensure_world(self.worlds, campaigns)
            recall[str(campaigns)] = user_recall(world, queries=self.plan.recall_queries)
        machine["loadavg_end"] = os.getloadavg()
        results = {
            "format_version": FORMAT_VERSION,
            "plan": dataclasses.asdict(self.plan),
            "started_utc": began.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 1),
            "machine": machine,
            "services": self.services,
            "summary": summarize(self.runs, self.plan, profile, self.services, recall),
            "profile": profile,
            "recall": recall,
            "py_spy": self.py_spy_result,
            "runs": self.runs,
        }
        results["plots"] = write_plots(results, self.out)
        path = self.out / RESULTS_FILE
        path.write_text(json.dumps(results, indent=1) + "\n")
        log.info("results in %s (%.0f s)", path, results["seconds"])
        return results


def summarize(
    runs: list[dict[str, Any]],
    plan: Plan,
    profile: dict[str, Any],
    services: dict[str, dict[str, Any]],
    recall: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The figures a reader wants: the floors, the bidder against them, workers, the sweep, the bidder
    with Redis, the recall on user-like queries, what a request's server CPU is made of, and the targets
    beside their figures before this version."""
    select, medians = report.select, report.medians
    floor = {
        rpc: medians(select(runs, block="catalog", service=_floor_of(rpc), rpc=rpc, mode="closed"))
        for rpc in ("unary", "stream", "http")
    }
    bidder: dict[str, Any] = {}
    for campaigns in plan.sizes:
        by_rpc = {}
        for rpc, mode in CATALOG_LOADS:
            chosen = {"block": "catalog", "campaigns": campaigns, "rpc": rpc, "mode": mode}
            by_rpc[f"{rpc}_{mode}"] = report.versus_floor(
                medians(select(runs, service="bidder", **chosen)),
                medians(select(runs, service=_floor_of(rpc), **chosen)),
            )
        bidder[str(campaigns)] = by_rpc
    workers: dict[str, Any] = {}
    for count, block in ((1, "catalog"), (plan.workers, "workers")):
        workers[str(count)] = {
            name: {
                rpc: medians(
                    select(
                        runs, block=block, service=name, campaigns=plan.workers_size, rpc=rpc, mode="closed"
                    )
                )
                for rpc in ("unary", "stream")
            }
            for name in ("echo", "bidder")
        }
    speedup = {
        name: {
            rpc: report.ratio(
                workers[str(plan.workers)][name][rpc].get("throughput_rps"),
                workers["1"][name][rpc].get("throughput_rps"),
            )
            for rpc in ("unary", "stream")
        }
        for name in ("echo", "bidder")
    }
    sweep = {name: report.curve(select(runs, block="sweep", service=name)) for name in ("echo", "bidder")}
    open_stream = {
        name: medians(select(runs, block="open-stream", service=name)) for name in ("echo", "bidder")
    }
    at_goal = bidder.get(str(plan.sweep_size), {})
    echo_cpu = floor["unary"].get("server_cpu_us_per_request")
    bidder_cpu = at_goal.get("unary_closed", {}).get("server_cpu_us_per_request")
    # The server's CPU per request is a mean: so are the parts it is accounted with (results from before
    # the means were kept read the medians).
    mean = profile.get("mean_us") or profile["median_us"]
    # The bidder's own work per call beyond what the echo does too: the echo also decodes the request and
    # encodes a response (gRPC does both for it), so those are the echo's part, not the path's.
    own = mean.get("servicer_call_cpu", mean.get("servicer_call", mean["total"]))
    in_process = round(own - mean.get("decode", 0.0) - mean.get("encode", 0.0), 1)
    # What the same calls cost more with the core's private caches emptied before each: an estimate of
    # the cache misses the server pays running the path between gRPC's work (None in older results).
    cold = mean.get("servicer_call_cpu_cold")
    cache = round(max(0.0, cold - own), 1) if cold is not None else None
    # With no load at all the bidder still works (the spend refresh over every campaign, each second):
    # its share per request at the closed loop's rate.
    idle = services.get(f"bidder-{plan.sweep_size}-w1", {}).get("idle_cpu_ms_per_s")
    rate = at_goal.get("unary_closed", {}).get("throughput_rps")
    background = _background(idle, rate)
    # The path as the running server counts its CPU (the Auctioneer's call: conversion to the response
    # and bid log), plus the response's copy into its message, which the servicer makes after it: the
    # path under load, its cache misses included, measured rather than estimated. Results from before
    # the server counted it read the path in process instead.
    to_response = mean.get("to_response", 0.0)
    closed_path = at_goal.get("unary_closed", {}).get("path_cpu_us_per_request")
    closed_in_server = round(closed_path + to_response, 1) if closed_path is not None else None
    residual = _residual(
        bidder_cpu, echo_cpu, closed_in_server if closed_in_server is not None else in_process, background
    )
    # The same over HTTP: the HTTP echo's floor (it decodes and encodes JSON too), and the door's path.
    http = at_goal.get("http_closed", {})
    http_rate = http.get("throughput_rps")
    # The HTTP door's path in CPU time: the gRPC path's, its own parts exchanged for the door's.
    grpc_own = sum(mean.get(part, 0.0) for part in ("decode", "to_auction", "to_response", "encode"))
    http_own = (
        mean["total_cpu"] - grpc_own + mean.get("decode_json", 0.0) + mean.get("encode_json", 0.0)
        if "total_cpu" in mean
        else mean.get("total_http")
    )
    decode_json = mean.get("decode_json", 0.0)
    http_in_process = (
        round(http_own - decode_json - mean.get("encode_json", 0.0), 1) if http_own is not None else None
    )
    # The door decodes the JSON inside the path the server counts (the echo decodes it too) and encodes
    # the response after it.
    http_path = http.get("path_cpu_us_per_request")
    http_in_server = round(http_path - decode_json, 1) if http_path is not None else None
    http_parts = (
        http.get("server_cpu_us_per_request"),
        http.get("floor_server_cpu_us_per_request"),
        http_in_process,
        _background(idle, http_rate),
    )
    http_residual = _residual(
        http_parts[0], http_parts[1], http_in_server if http_in_server is not None else http_in_process,
        http_parts[3],
    )  # fmt: skip
    redis = _redis_summary(runs)
    half = {name: medians(select(runs, block="half-load", service=name)) for name in ("echo", "bidder")}
    half_load = {
        **half,
        "offered_rps": half["bidder"].get("offered_rps"),
        "p99_ratio": report.ratio(half["bidder"].get("p99_us"), half["echo"].get("p99_us")),
    }
    # The floor's CPU per request depends on the rate: at its own maximum the echo's event loop serves many
    # completions per wakeup, at the bidder's lower rate fewer, so each costs more. Accounted at one offered
    # rate for both (the half-load pair), the transport's part is the same regime on both sides.
    keys = ("server_cpu_bidder", "server_cpu_echo", "in_process_path", "background", "residual")
    same_rate = half["bidder"].get("throughput_rps")
    same_parts = (
        half["bidder"].get("server_cpu_us_per_request"),
        half["echo"].get("server_cpu_us_per_request"),
        in_process,
        _background(idle, same_rate),
    )
    in_server = half["bidder"].get("path_cpu_us_per_request")
    in_server_path = round(in_server + to_response, 1) if in_server is not None else None
    # Without the server's own count (older results), the path in process and its estimated cache
    # misses stand for it.
    same_residual = _residual(
        same_parts[0],
        same_parts[1],
        in_server_path if in_server_path is not None else in_process + (cache or 0.0),
        same_parts[3],
    )
    summary: dict[str, Any] = {
        "floor": floor,
        "bidder": bidder,
        "workers": {"by_count": workers, "speedup": speedup},
        "sweep": {"curves": sweep, "knee": {name: report.knee(points) for name, points in sweep.items()}},
        "open_stream": open_stream,
        "half_load": half_load,
        "redis": redis,
        "recall": recall or {},
        "cost_per_request_us": {
            "campaigns": plan.sweep_size,
            "server_cpu_bidder": bidder_cpu,
            "server_cpu_echo": echo_cpu,
            "in_process_path": in_process,
            "in_server_path": closed_in_server,
            "background": background,
            "residual": residual,
            # server CPU - echo CPU at the same offered rate - the path in process - background; the
            # closed loop's residual where the half-load pair is missing
            "unaccounted": same_residual if same_residual is not None else residual,
            "same_rate": {
                **dict(zip(keys, (*same_parts, same_residual), strict=True)),
                "cache_misses": cache,
                "in_server_path": in_server_path,
                "offered_rps": half["bidder"].get("offered_rps"),
            },
            "http": {
                **dict(zip(keys, (*http_parts, http_residual), strict=True)),
                "in_server_path": http_in_server,
            },
        },
        "idle_cpu_ms_per_s": {
            str(c): services.get(f"bidder-{c}-w1", {}).get("idle_cpu_ms_per_s") for c in plan.sizes
        },
    }
    summary["handler_length"] = _handler_length(runs, services, plan, to_response)
    summary["targets"] = targets(summary, plan)
    return summary


def _handler_length(
    runs: list[dict[str, Any]], services: dict[str, dict[str, Any]], plan: Plan, to_response: float
) -> dict[str, Any]:
    """The handler-length block: the echo, the working echoes and the bidder (medians), each against the
    echo's throughput; each working echo's transport CPU a call (its server CPU less its work), and the
    bidder's CPU a request that neither the transport at its handler's length, its path as it counts it,
    nor its background work accounts for. Empty where the block did not run."""
    select, medians = report.select, report.medians
    block = select(runs, block="handler-length")
    if not block:
        return {}
    echo = medians(select(block, service="echo"))
    floor = echo.get("throughput_rps")
    levels = []
    for share in sorted({run["work_share"] for run in select(block, service=WORKING_ECHO)}):
        chosen = select(block, service=WORKING_ECHO, work_share=share)
        figures, work = medians(chosen), chosen[0]["work_us"]
        cpu = figures.get("server_cpu_us_per_request")
        levels.append(
            {
                **figures,
                "work_share": share,
                "work_us": work,
                "throughput_ratio": report.ratio(figures.get("throughput_rps"), floor),
                "transport_us": round(cpu - work, 1) if cpu is not None else None,
            }
        )
    bidder = medians(select(block, service="bidder"))
    idle = services.get(f"bidder-{plan.sweep_size}-w1-handler", {}).get("idle_cpu_ms_per_s")
    rate = bidder.get("throughput_rps")
    background = _background(idle, rate)
    path = bidder.get("path_cpu_us_per_request")
    # The transport at the length of the bidder's path in this block's own windows (the echoes' work was
    # set from the catalog block's): linear between the working echoes on either side, the nearest's
    # beyond them.
    known = [
        (level["work_us"], level["transport_us"]) for level in levels if level["transport_us"] is not None
    ]
    transport = None
    if path is not None and known:
        works, costs = zip(*known, strict=True)
        transport = round(float(np.interp(path, works, costs)), 1)
    residual = _residual(
        bidder.get("server_cpu_us_per_request"),
        transport,
        round(path + to_response, 1) if path is not None else None,
        background,
    )
    return {
        "campaigns": plan.sweep_size,
        "echo": echo,
        "levels": levels,
        "bidder": {**bidder, "throughput_ratio": report.ratio(rate, floor)},
        "to_response": to_response,
        "transport_at_path": transport,
        "background": background,
        "unaccounted": residual,
    }


def _background(idle_ms_per_s: float | None, rate: float | None) -> float | None:
    """A worker's background CPU with no load (ms/s) shared out over `rate` requests a second, in us."""
    if idle_ms_per_s is None or not rate:
        return None
    return round(idle_ms_per_s * 1000 / rate, 1)


def _residual(
    server: float | None, echo: float | None, path: float | None, background: float | None
) -> float | None:
    """A request's server CPU that neither the echo's floor, the path nor the background accounts for."""
    if server is None or echo is None or path is None or background is None:
        return None
    return round(server - echo - path - background, 1)


def _redis_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The bidder with Redis against the bidder in process: medians by rpc, the throughput ratio, and the
    Redis server's CPU per request beside."""
    by_rpc: dict[str, Any] = {}
    for rpc in ("unary", "stream"):
        memory = report.medians(report.select(runs, block="redis", service="bidder", rpc=rpc))
        first = {
            name: report.medians(report.select(runs, block=WARMUP_BLOCK, service=name, rpc=rpc))
            for name in ("bidder", REDIS_BIDDER)
        }
        shared_runs = report.select(runs, block="redis", service=REDIS_BIDDER, rpc=rpc)
        beside = [r["beside_cpu_us_per_request"] for r in shared_runs if r.get("beside_cpu_us_per_request")]
        by_rpc[rpc] = {
            "in_process": memory,
            "redis": report.medians(shared_runs),
            "redis_server_cpu_us_per_request": round(statistics.median(beside), 1) if beside else None,
            "throughput_ratio": report.ratio(
                report.medians(shared_runs).get("throughput_rps"), memory.get("throughput_rps")
            ),
            # Each worker's first window after it started (None where none ran: results from before).
            "first_window": {
                "in_process": first["bidder"].get("throughput_rps"),
                "redis": first[REDIS_BIDDER].get("throughput_rps"),
                "throughput_ratio": report.ratio(
                    first[REDIS_BIDDER].get("throughput_rps"), first["bidder"].get("throughput_rps")
                ),
            },
        }
    return by_rpc


def _redis_server() -> str:
    """The redis-server program the Redis block starts; a clear error before anything runs if missing."""
    found = REDIS_SERVER if Path(REDIS_SERVER).is_file() else shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            f"personabid bench needs redis-server ({REDIS_SERVER} or on PATH) for the bidder with "
            "--redis-url: `make deps` installs it (Debian package redis-server)"
        )
    return found


def _floor_of(rpc: str) -> str:
    """The service whose figures are the floor of the bidder's over `rpc`."""
    return HTTP_ECHO if rpc == "http" else "echo"


class _CpuSampler(threading.Thread):
    """The service's CPU seconds between two monotonic times, in total and per process."""

    def __init__(self, service: Service, start: float, end: float, beside: tuple[int, ...] = ()) -> None:
        super().__init__(daemon=True)
        self.service, self.start_at, self.end_at = service, start, end
        self.beside = beside  # other processes, counted apart (beside_seconds)
        self.cpu_seconds = 0.0
        self.beside_seconds = 0.0
        self.shares: list[float] = []
        # The request path's CPU per request as the running bidder counts it (None: not a bidder).
        self.path_cpu_us_per_request: float | None = None

    def run(self) -> None:
        time.sleep(max(0.0, self.start_at - time.monotonic()))
        # The bidder's own count of its path's CPU is read just outside the window's CPU readings, so
        # that a scrape's cost is not counted in the server's CPU.
        path_before = self.service.path_cpu()
        before = _per_pid(self.service)
        beside_before = sum(process_cpu_seconds(pid) for pid in self.beside)
        time.sleep(max(0.0, self.end_at - time.monotonic()))
        after = _per_pid(self.service)
        self.beside_seconds = sum(process_cpu_seconds(pid) for pid in self.beside) - beside_before
        path_after = self.service.path_cpu()
        if path_before is not None and path_after is not None and path_after[1] > path_before[1]:
            self.path_cpu_us_per_request = round(
                (path_after[0] - path_before[0]) / (path_after[1] - path_before[1]) * 1e6, 1
            )
        spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
        self.cpu_seconds = sum(spent.values())
        # Per worker (the parent of several workers only waits): how evenly SO_REUSEPORT spread the load.
        busy = [v for pid, v in spent.items() if pid != self.service.process.pid or len(spent) == 1]
        total = sum(busy)
        self.shares = [round(v / total, 3) for v in busy] if total else []


def _per_pid(service: Service) -> dict[int, float]:
    return {pid: process_cpu_seconds(pid) for pid in service.pids()}
