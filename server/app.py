"""The serving process: gRPC (Bidder, health, reflection), the OpenRTB HTTP door, and Prometheus metrics.

The server listens at once and reports NOT_SERVING while it loads the index and model and compiles the
kernels; then it swaps in a Decider and reports SERVING. On SIGTERM or SIGINT it reports NOT_SERVING,
stops taking new calls and lets the calls in flight finish (up to grace_seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.simple_server import WSGIServer

import faiss
import grpc
import uvicorn
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from prometheus_client import CollectorRegistry, start_http_server

from personabid import heap
from personabid.admin import AdminServicer
from personabid.auction import Auctioneer
from personabid.bidrecord import BidRecord
from personabid.clock import Clock
from personabid.config import Settings
from personabid.conversions import Conversion
from personabid.decision.currency import Currencies
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decoding import OnUndecodable, add_tolerant_servicer
from personabid.errors import ConfigError
from personabid.eventlog import EventLog
from personabid.experiments.registry import Experiments
from personabid.httpdoor import HttpDoor
from personabid.index.campaigns import CampaignTable
from personabid.lograte import RateLimitFilter
from personabid.notifications import Notifier
from personabid.privacy import Pseudonymizer
from personabid.profiles.source import ProfileSource
from personabid.profiles.suppression import Suppression
from personabid.reload import Reloader
from personabid.respond import Responder
from personabid.servicer import BidderServicer
from personabid.spend.control import Notification, SpendControl, SpendSettings
from personabid.spend.flusher import Keeper
from personabid.spend.pacing import planned_fraction
from personabid.spend.redis_store import RedisStore
from personabid.spend.store import MemoryStore, StateUnavailable, StoreLimits
from personabid.telemetry import Metrics
from personabid.v1 import admin_pb2, admin_pb2_grpc, bidder_pb2, bidder_pb2_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = "personabid.v1.Bidder"
# A drain ends early once no call has arrived for this long: longer than a call waits in grpc's queue
# on a loaded worker, short enough that an idle server stops at once.
DRAIN_QUIET = 0.05
DRAIN_POLL = 0.005


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    """gRPC server options, shared by the Bidder and the benchmark's echo service (same setup, same floor).

    Several workers (server/workers.py) each bind the same port: SO_REUSEPORT lets the kernel spread
    connections over them. With one worker it stays off, so that a second server on a taken port fails.
    """
    return [("grpc.so_reuseport", 1 if settings.workers > 1 else 0)]


def add_reflection(names: tuple[str, ...], server: grpc.aio.Server, refuse: OnUndecodable) -> None:
    """Server reflection for `names`, its request parser tolerant like every other service's."""
    add_tolerant_servicer(
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
        reflection.aio.ReflectionServicer(names),
        server,
        refuse,
    )


def split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"address {addr!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def decision_settings(settings: Settings) -> DecisionSettings:
    """The decision settings a server's settings give (the bench's in-process profile builds them so too)."""
    return DecisionSettings(
        top_k=settings.top_k,
        min_tmax_ms=settings.min_tmax_ms,
        currencies=Currencies(settings.currencies),
        seat=settings.seat,
        profile_weight=settings.blend_profile,
        segments_weight=settings.blend_segments,
        context_weight=settings.blend_context,
        context_match_scale=settings.context_match_scale,
        profile_ids=settings.profile_id_order,
    )


class BidServer:
    """One serving process. `start` binds and serves; `load` makes it ready; `stop` drains."""

    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry | None = None,
        admin: bool = True,
        clock: Clock | None = None,
    ) -> None:
        # One query at a time per process: OpenMP threads only add hand-off cost to a single-vector
        # search (measured: 10k flat search 0.36 ms with 2 threads, 0.17 ms with 1). Scale by processes.
        faiss.omp_set_num_threads(1)
        self.settings = settings
        self.serves_admin = admin  # of several workers only one serves Admin (server/workers.py)
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.decision_settings = decision_settings(settings)
        # The keyed hash of user ids: requests' ids are looked up, logged and counted only as pseudonyms.
        self.pseudonym = Pseudonymizer.from_environment(settings.key_file)
        # The market's time (personabid.clock), for everything that asks it: decisions, spend control and
        # pacing, notices' arrival and the event log's days. Faster than real time in a simulation.
        # Workers are given the clock their parent started before forking, so that on a clock run faster
        # they agree on the market's time (each starting its own would put them apart by their start-up
        # gaps times the speed).
        self.clock = clock or Clock(settings.clock_speed)
        self.metrics.clock_speed.set(self.clock.speed)
        limits = StoreLimits(
            max_pending=settings.max_pending_bids,
            max_frequency_keys=settings.max_frequency_keys,
            max_events=settings.max_dedupe_events,
        )
        store = (
            RedisStore(settings.redis_url)
            if settings.redis_url
            else MemoryStore(limits, on_capped=self.metrics.observe_capped)
        )
        self.spend = SpendControl(
            store,
            SpendSettings(
                # What waits on the network (a bid's notices, the store's recovery) waits real seconds:
                # on a clock run faster (a simulation) those are that many more of the clock's seconds.
                inflight_seconds=settings.inflight_seconds * self.clock.speed,
                retry_seconds=SpendSettings.retry_seconds * self.clock.speed,
                # Workers that keep spend in their own memory split each budget, so that together they
                # cannot spend more than it; with Redis they share one ledger.
                budget_share=1.0 if settings.redis_url else 1.0 / settings.workers,
                leases=bool(settings.redis_url) and settings.spend_leases,
                lease_share=0.25 / settings.workers,
                lease_timeout_seconds=SpendSettings.lease_timeout_seconds * self.clock.speed,
            ),
            clock=self.clock.now,
            on_error=self.metrics.state_errors.inc,
        )
        # Writes the bids reserved out of leases and tops the leases up, off the event loop.
        self.keeper = Keeper(self.spend) if self.spend.settings.leases else None
        self.reloader = Reloader(
            settings.index,
            settings.model,
            self.decision_settings,
            self.metrics.observe_snapshot,
            self.metrics.observe_reload,
            spend=self.spend,
            clock=self.clock.now,
            profiles=ProfileSource(
                settings.profile_store,
                settings.profiles,
                Suppression(settings.suppression),
                self.pseudonym,
                redis_url=settings.profiles_redis,
                timeout_seconds=settings.profile_timeout_ms / 1000.0,
            ),
        )
        # The A/B experiments in force (settings.experiments), watched with the artifact roots.
        self.experiments = Experiments(
            settings.experiments,
            self.reloader,
            lambda ok: self.metrics.observe_reload("experiments", ok),
        )
        self.reloader.also_watch.append(self.experiments.refresh)
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.admin: grpc.aio.Server | None = None
        self.grpc_port = 0
        self.http_port = 0
        self.metrics_port = 0
        self.admin_port = 0
        self._metrics_httpd: WSGIServer | None = None
        self._stopping = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None
        self.event_log: EventLog | None = None
        self.bidder: BidderServicer | None = None
        self.auctioneer: Auctioneer | None = None
        self.serving = False  # loaded and not stopping: what health checks report
        self.http: uvicorn.Server | None = None
        self._http_socket: socket.socket | None = None
        self._http_ticks: asyncio.Task[None] | None = None
        self._decisions = (
            ThreadPoolExecutor(settings.decision_threads, thread_name_prefix="decide")
            if settings.decision_threads > 0
            else None
        )

    @property
    def decider(self) -> Decider | None:
        return self.reloader.decider

    @decider.setter
    def decider(self, decider: Decider | None) -> None:
        self.reloader.decider = decider

    async def start(self) -> None:
        pseudonym = self.pseudonym
        self.event_log = EventLog(self.settings.events, self.clock.now, self.settings.bid_log_sample)
        server = grpc.aio.server(options=server_options(self.settings))
        self._http_socket = listen(self.settings.http_addr, reuse_port=self.settings.workers > 1)
        self.http_port = int(self._http_socket.getsockname()[1])
        host, _ = split_addr(self.settings.http_addr)
        notice_key = pseudonym.signing_key()
        responder = Responder(
            self.settings.seat,
            self.settings.notice_base_url or f"http://{_url_host(host)}:{self.http_port}",
            notice_key,
        )
        auctioneer = Auctioneer(
            self.reloader.serving,
            self.metrics,
            pseudonym,
            responder,
            executor=self._decisions,
            on_decision=self.event_log.bids,
        )
        notifier = Notifier(
            self.spend,
            self._record_event,
            self.metrics.observe_notification,
            self.decision_settings.currencies,
            clock=self.clock.now,
            pseudonymize=pseudonym,
            on_conversion=self._record_conversion,
            # Read when a conversion arrives: the experiments in force then.
            arms_for_user=lambda pseudonym: self.experiments.arms_for_user(pseudonym),
        )
        bidder = BidderServicer(auctioneer, self.metrics, notifier)
        self.bidder, self.auctioneer = bidder, auctioneer
        refuse = bidder.refuse_undecodable
        add_tolerant_servicer(
            bidder_pb2_grpc.add_BidderServicer_to_server, bidder, server, refuse, streams_answer=True
        )
        add_tolerant_servicer(health_pb2_grpc.add_HealthServicer_to_server, self.health, server, refuse)
        names = (
            bidder_pb2.DESCRIPTOR.services_by_name["Bidder"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        add_reflection(names, server, refuse)
        for service in (SERVICE_NAME, ""):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.grpc_port = server.add_insecure_port(self.settings.grpc_addr)
        if self.grpc_port == 0:
            raise ConfigError(f"cannot listen on grpc_addr={self.settings.grpc_addr}")
        host, port = split_addr(self.settings.metrics_addr)
        self._metrics_httpd, _ = start_http_server(port, addr=host, registry=self.registry)
        self.metrics_port = self._metrics_httpd.server_port
        admin = None
        if self.serves_admin:
            admin = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
            add_tolerant_servicer(
                admin_pb2_grpc.add_AdminServicer_to_server,
                AdminServicer(self.reloader, self.experiments, self.clock),
                admin,
                refuse,
            )
            add_reflection(
                (admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name, reflection.SERVICE_NAME),
                admin,
                refuse,
            )
            self.admin_port = admin.add_insecure_port(self.settings.admin_addr)
            if self.admin_port == 0:
                raise ConfigError(f"cannot listen on admin_addr={self.settings.admin_addr}")
        await server.start()
        if admin is not None:
            await admin.start()
        self.server, self.admin = server, admin
        door = HttpDoor(
            auctioneer,
            notifier,
            notice_key,
            self.metrics,
            lambda: self.serving,
            clock=self.clock.now,
            campaigns=self._campaigns,
        )
        await self._start_http(door)
        log.info(
            "listening: grpc port %d, http port %d, metrics port %d; loading",
            self.grpc_port,
            self.http_port,
            self.metrics_port,
        )

    async def _start_http(self, door: HttpDoor) -> None:
        """uvicorn on the socket bound in start(), on this event loop. Its startup and shutdown are called
        directly: its serve() would install signal handlers of its own, and this process stops in three
        steps of its own (stop())."""
        config = uvicorn.Config(
            door,
            http="httptools",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # Exchanges keep connections open between auctions; a minute outlasts their idle pools.
            timeout_keep_alive=60,
            timeout_graceful_shutdown=math.ceil(self.settings.grace_seconds),
        )
        config.load()
        # uvicorn logs each malformed HTTP request it turns away (400): lines any client can cause.
        for name in ("uvicorn", "uvicorn.error"):
            logger = logging.getLogger(name)
            if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
                logger.addFilter(RateLimitFilter())
        http = uvicorn.Server(config)
        http.lifespan = config.lifespan_class(config)
        assert self._http_socket is not None
        await http.startup(sockets=[self._http_socket])
        self.http = http
        self._http_ticks = asyncio.create_task(http.main_loop())  # the Date header, once a second

    async def load(self) -> None:
        """Load the index and model, compile the kernels, then serve; then watch for new versions."""
        started = time.perf_counter()
        decider = await self.reloader.load()
        await self.experiments.refresh()  # in force before the first request is served
        heap.settle(collect=True)
        for service in (SERVICE_NAME, ""):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.metrics.ready.set(1)
        self.serving = True
        manifest = decider.snapshot.bundle.manifest
        log.info(
            "personabid ready: grpc=%s metrics=%s http=%s admin=%s campaigns=%d index=%s (%s) model=%s "
            "profiles=%s, loaded in %.1fs",
            _with_port(self.settings.grpc_addr, self.grpc_port),
            _with_port(self.settings.metrics_addr, self.metrics_port),
            _with_port(self.settings.http_addr, self.http_port),
            _with_port(self.settings.admin_addr, self.admin_port) if self.serves_admin else "-",
            manifest.campaigns,
            decider.snapshot.bundle.version,
            manifest.index_type,
            decider.snapshot.model.version,
            _profiles_in_force(self.reloader),
            time.perf_counter() - started,
        )
        if self.settings.watch_seconds > 0:
            self._watch = asyncio.create_task(
                self.reloader.watch(self.settings.watch_seconds, self._stopping)
            )
        self._refresh = asyncio.create_task(self._refresh_spend())
        if self.keeper is not None:
            self.keeper.start()

    async def _refresh_spend(self) -> None:
        """Keep the spend cache fresh and the pacing controller stepping; probe the store while it is down."""
        while not self._stopping.is_set():
            decider = self.reloader.decider
            if decider is not None:
                up = self.spend.available or await asyncio.to_thread(self.spend.probe)
                if up:
                    try:
                        await asyncio.to_thread(self.spend.refresh, decider.snapshot.bundle.campaigns)
                    except StateUnavailable:
                        up = False  # SpendControl logs the outage's start and end
                self.metrics.observe_spend_summary(
                    self.spend.summary(), up, planned_fraction(self.clock.now())
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.spend.settings.refresh_seconds)

    def _record_event(self, note: Notification, record: BidRecord | None, status: str) -> None:
        self.metrics.observe_notice(note, record, status)
        if self.event_log is not None:
            self.event_log.record(note, record, status)

    def _record_conversion(self, conversion: Conversion, arms: tuple[str, ...]) -> None:
        self.metrics.observe_conversion(arms, conversion.value_usd)
        if self.event_log is not None:
            self.event_log.conversion(conversion, arms)

    def _campaigns(self) -> CampaignTable | None:
        decider = self.reloader.decider
        return decider.snapshot.bundle.campaigns if decider is not None else None

    async def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        """Stop in three steps, so that no call that reached the server is lost:

        1. Report NOT_SERVING, so that balancers and exchanges that watch health stop sending.
        2. Drain: go on answering normally until nothing is in flight and no call has arrived for
           DRAIN_QUIET seconds, for at most `drain` seconds (settings.drain_seconds). grpc cancels the
           calls its transport has received but not yet handed to the service when the server stops, so
           stopping at once would cancel calls sent just before the signal.
        3. Stop the transport: new calls are refused (UNAVAILABLE), calls in flight get `grace` seconds,
           and streams end after the message in hand.
        """
        await self.health.enter_graceful_shutdown()
        self.metrics.ready.set(0)
        self.serving = False
        if self.auctioneer is not None and self.bidder is not None:
            await self._drain(
                self.auctioneer, self.bidder, self.settings.drain_seconds if drain is None else drain
            )
            # What still arrives is refused at once, which keeps grpc's queue of calls not yet handed to
            # the service short when the transport stops (those it cancels: README, Stopping).
            self.auctioneer.closing = True
            await self._drain(self.auctioneer, self.bidder, DRAIN_QUIET * 2)
        self._stopping.set()
        for task in (self._watch, self._refresh):
            if task is not None:
                await task
        if self.http is not None:
            self.http.should_exit = True
            if self._http_ticks is not None:
                await self._http_ticks
            # Closes the listener and idle connections; requests in flight get the grace period.
            await self.http.shutdown()
        if self._http_socket is not None:
            self._http_socket.close()
        if self.server is not None:
            await self.server.stop(self.settings.grace_seconds if grace is None else grace)
        if self.admin is not None:
            await self.admin.stop(0)
        if self._decisions is not None:
            self._decisions.shutdown(wait=True)
        if self.keeper is not None:
            # After the last decision: every bid reserved is written and the leases are given back.
            await asyncio.to_thread(self.keeper.stop)
        if self.event_log is not None:
            self.event_log.close()
        if self._metrics_httpd is not None:
            self._metrics_httpd.shutdown()
            self._metrics_httpd.server_close()
        log.info("stopped")

    @staticmethod
    async def _drain(auctioneer: Auctioneer, bidder: BidderServicer, limit: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            quiet = time.monotonic() - auctioneer.last_arrival >= DRAIN_QUIET
            if auctioneer.in_flight == 0 and bidder.in_flight == 0 and quiet:
                return
            await asyncio.sleep(DRAIN_POLL)


def listen(addr: str, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to `addr` (HOST:PORT; port 0 picks a free one). Several workers (workers.py)
    each bind the same port with SO_REUSEPORT; with one it stays off, so a taken port is an error."""
    host, port = split_addr(addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP given, not left to default: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # sockets made so, and accepted connections inherit it. Without it every answer on a kept-alive
    # connection waits for the client's delayed ACK, 40 ms (uvicorn writes a head and a body).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on http_addr={addr}: {exc.strerror}") from None
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _with_port(addr: str, port: int) -> str:
    host, _ = split_addr(addr)
    return f"{host}:{port}"


async def serve(settings: Settings, admin: bool = True, clock: Clock | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then drain."""
    server = BidServer(settings, admin=admin, clock=clock)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await server.start()
    try:
        loading = asyncio.create_task(server.load())
        done, _ = await asyncio.wait(
            {loading, asyncio.create_task(stopping.wait())}, return_when="FIRST_COMPLETED"
        )
        if loading in done:
            loading.result()  # a load failure ends the process with its error
            await stopping.wait()
        else:
            loading.cancel()
        log.info("signal received: draining calls in flight")
    finally:
        await server.stop()


def _profiles_in_force(reloader: Reloader) -> str:
    """The ready line's account of the profiles: the version and its users, Redis, or none."""
    source = reloader.profile_source
    if source is None or source.kind == "none":
        return "none"
    if source.kind == "redis":
        return "redis"
    if reloader.profiles is None:
        return "none"
    return f"{reloader.profiles.version} ({reloader.profiles.arrays.users} users)"
