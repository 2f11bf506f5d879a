"""The serving process: gRPC (Bidder, health, reflection) and Prometheus metrics over HTTP.

The server listens at once and reports NOT_SERVING while it loads the index and model and compiles the
kernels; then it swaps in a Decider and reports SERVING. On SIGTERM or SIGINT it reports NOT_SERVING,
stops taking new calls and lets the calls in flight finish (up to grace_seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

import faiss
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from personabid.admin import AdminServicer
from personabid.config import Settings
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.errors import ConfigError
from personabid.eventlog import EventLog
from personabid.notifications import Notifier
from personabid.privacy import Pseudonymizer
from personabid.reload import Reloader
from personabid.servicer import BidderServicer
from personabid.spend.control import Notification, SpendControl, SpendSettings
from personabid.spend.redis_store import RedisStore
from personabid.spend.store import MemoryStore, StateUnavailable
from personabid.telemetry import Metrics
from personabid.v1 import admin_pb2, admin_pb2_grpc, bidder_pb2, bidder_pb2_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = "personabid.v1.Bidder"


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    """gRPC server options, shared by the Bidder and the benchmark's echo service (same setup, same floor).

    Several workers (server/workers.py) each bind the same port: SO_REUSEPORT lets the kernel spread
    connections over them. With one worker it stays off, so that a second server on a taken port fails.
    """
    return [("grpc.so_reuseport", 1 if settings.workers > 1 else 0)]


def split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"address {addr!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


class BidServer:
    """One serving process. `start` binds and serves; `load` makes it ready; `stop` drains."""

    def __init__(
        self, settings: Settings, registry: CollectorRegistry | None = None, admin: bool = True
    ) -> None:
        # One query at a time per process: OpenMP threads only add hand-off cost to a single-vector
        # search (measured: 10k flat search 0.36 ms with 2 threads, 0.17 ms with 1). Scale by processes.
        faiss.omp_set_num_threads(1)
        self.settings = settings
        self.serves_admin = admin  # of several workers only one serves Admin (server/workers.py)
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.decision_settings = DecisionSettings(
            top_k=settings.top_k, min_tmax_ms=settings.min_tmax_ms, seat=settings.seat
        )
        store = RedisStore(settings.redis_url) if settings.redis_url else MemoryStore()
        self.spend = SpendControl(
            store,
            SpendSettings(
                inflight_seconds=settings.inflight_seconds,
                # Workers that keep spend in their own memory split each budget, so that together they
                # cannot spend more than it; with Redis they share one ledger.
                budget_share=1.0 if settings.redis_url else 1.0 / settings.workers,
            ),
            on_error=self.metrics.state_errors.inc,
        )
        self.reloader = Reloader(
            settings.index,
            settings.model,
            self.decision_settings,
            self.metrics.observe_snapshot,
            self.metrics.observe_reload,
            spend=self.spend,
        )
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.admin: grpc.aio.Server | None = None
        self.grpc_port = 0
        self.metrics_port = 0
        self.admin_port = 0
        self._metrics_httpd = None
        self._stopping = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None
        self.event_log: EventLog | None = None

    @property
    def decider(self) -> Decider | None:
        return self.reloader.decider

    @decider.setter
    def decider(self, decider: Decider | None) -> None:
        self.reloader.decider = decider

    async def start(self) -> None:
        pseudonym = Pseudonymizer.from_environment(self.settings.key_file)
        self.event_log = EventLog(self.settings.events)
        server = grpc.aio.server(options=server_options(self.settings))
        bidder_pb2_grpc.add_BidderServicer_to_server(
            BidderServicer(
                lambda: self.reloader.decider,
                self.metrics,
                pseudonym,
                self.settings.seat,
                Notifier(self.spend, self._record_event, self.metrics.observe_notification),
            ),
            server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = (
            bidder_pb2.DESCRIPTOR.services_by_name["Bidder"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
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
            admin_pb2_grpc.add_AdminServicer_to_server(AdminServicer(self.reloader), admin)
            reflection.enable_server_reflection(
                (admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name, reflection.SERVICE_NAME), admin
            )
            self.admin_port = admin.add_insecure_port(self.settings.admin_addr)
            if self.admin_port == 0:
                raise ConfigError(f"cannot listen on admin_addr={self.settings.admin_addr}")
        await server.start()
        if admin is not None:
            await admin.start()
        self.server, self.admin = server, admin
        log.info("listening: grpc port %d, metrics port %d; loading", self.grpc_port, self.metrics_port)

    async def load(self) -> None:
        """Load the index and model, compile the kernels, then serve; then watch for new versions."""
        started = time.perf_counter()
        decider = await self.reloader.load()
        for service in (SERVICE_NAME, ""):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.metrics.ready.set(1)
        manifest = decider.snapshot.index.manifest
        log.info(
            "personabid ready: grpc=%s metrics=%s admin=%s campaigns=%d index=%s (%s) model=%s, "
            "loaded in %.1fs",
            _with_port(self.settings.grpc_addr, self.grpc_port),
            _with_port(self.settings.metrics_addr, self.metrics_port),
            _with_port(self.settings.admin_addr, self.admin_port) if self.serves_admin else "-",
            manifest["campaigns"],
            decider.snapshot.index.version,
            manifest["index_type"],
            decider.snapshot.model.version,
            time.perf_counter() - started,
        )
        if self.settings.watch_seconds > 0:
            self._watch = asyncio.create_task(
                self.reloader.watch(self.settings.watch_seconds, self._stopping)
            )
        self._refresh = asyncio.create_task(self._refresh_spend())

    async def _refresh_spend(self) -> None:
        """Keep the spend cache fresh and the pacing controller stepping; probe the store while it is down."""
        while not self._stopping.is_set():
            decider = self.reloader.decider
            if decider is not None:
                up = self.spend.available or await asyncio.to_thread(self.spend.probe)
                if up:
                    try:
                        await asyncio.to_thread(self.spend.refresh, decider.snapshot.index.campaigns)
                    except StateUnavailable as exc:
                        log.warning("spend store unavailable: %s", exc)
                        up = False
                self.metrics.observe_spend_summary(self.spend.summary(), up)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.spend.settings.refresh_seconds)

    def _record_event(self, note: Notification, pending: dict[str, Any] | None) -> None:
        if note.type in ("win", "impression"):
            price = note.price or float((pending or {}).get("price", 0.0))
            self.metrics.spend.inc(price / 1000.0)
        if self.event_log is not None:
            self.event_log.record(note, pending)

    async def stop(self, grace: float | None = None) -> None:
        self._stopping.set()
        for task in (self._watch, self._refresh):
            if task is not None:
                await task
        await self.health.enter_graceful_shutdown()
        self.metrics.ready.set(0)
        if self.server is not None:
            await self.server.stop(self.settings.grace_seconds if grace is None else grace)
        if self.admin is not None:
            await self.admin.stop(0)
        if self.event_log is not None:
            self.event_log.close()
        if self._metrics_httpd is not None:
            self._metrics_httpd.shutdown()
            self._metrics_httpd.server_close()
        log.info("stopped")


def _with_port(addr: str, port: int) -> str:
    host, _ = split_addr(addr)
    return f"{host}:{port}"


async def serve(settings: Settings, admin: bool = True) -> None:
    """Serve until SIGTERM or SIGINT, then drain."""
    server = BidServer(settings, admin=admin)
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
