"""What the simulator asks of the server's Admin service: its clock, and putting an experiment in force."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import grpc

from personabid.errors import PersonabidError
from personabid.training.simulation.summary import Window
from personabid.v1 import admin_pb2 as pb
from personabid.v1 import admin_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class AdminError(PersonabidError):
    """The Admin service refused or could not be reached for something the run needs."""


@dataclass
class ServerClock:
    """The server's clock as read once: `unix` at the local monotonic time `read_at`, running `speed`
    times real time. now() extrapolates it; the few milliseconds of the call's latency are ignored."""

    unix: float
    speed: float = 1.0
    read_at: float = field(default_factory=time.monotonic)
    source: str = "server"  # "server", or "local" when the server does not tell its clock

    def now(self) -> float:
        return self.unix + (time.monotonic() - self.read_at) * self.speed

    def real_seconds(self, server_seconds: float) -> float:
        return server_seconds / self.speed


def read_clock(addr: str, timeout: float = 5.0) -> ServerClock:
    """The server's clock from Admin GetStatus (clock_unix, clock_speed). A server that does not report
    one, or cannot be reached, runs on real time: then the local clock stands in (and says so)."""
    with grpc.insecure_channel(addr) as channel:
        try:
            status = pb_grpc.AdminStub(channel).GetStatus(pb.StatusRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            log.warning("Admin at %s: %s; assuming the server runs on real time", addr, exc.code().name)
            return ServerClock(time.time(), 1.0, source="local")
    unix = float(getattr(status, "clock_unix", 0.0) or 0.0)
    speed = float(getattr(status, "clock_speed", 0.0) or 0.0)
    if unix <= 0 or speed <= 0:
        log.warning("the server at %s does not report its clock; assuming real time", addr)
        return ServerClock(time.time(), 1.0, source="local")
    return ServerClock(unix, speed)


def close_window(window: Window, addr: str, timeout: float = 5.0) -> Window:
    """The window closed at the server's clock as read once every call was answered, if that is later.

    The clock read at the start is extrapolated without the read's latency: it runs behind the server's
    by that latency times the clock's speed (at 3600 times real time, 2 ms of latency are 7 s), and the
    server stamps an event when it answers the call. Read again now, the server's clock is past every
    line it logged for the run, so the report commands' window holds all of them."""
    if window.clock != "server":
        return window
    clock = read_clock(addr, timeout)
    if clock.source != "server" or clock.unix <= window.until:
        return window
    return replace(window, until=clock.unix)


def put_experiment(addr: str, toml: str, timeout: float = 30.0) -> None:
    """Put an experiment file in force through Admin PutExperiment."""
    if not hasattr(pb, "PutExperimentRequest"):
        raise AdminError("this personabid's Admin API has no PutExperiment: experiments cannot be put")
    with grpc.insecure_channel(addr) as channel:
        stub = pb_grpc.AdminStub(channel)
        try:
            stub.PutExperiment(pb.PutExperimentRequest(toml=toml), timeout=timeout)
        except grpc.RpcError as exc:
            reason = f"{exc.code().name}: {exc.details()}"
            raise AdminError(f"Admin at {addr} refused the experiment: {reason}") from None
