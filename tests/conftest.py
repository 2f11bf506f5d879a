"""Shared fixtures: real servers on 127.0.0.1 port 0, and real Redis. The session's demo world
(`demo_dir`, `world`) is in the root conftest.py, shared with the benchmarks."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import pytest

from personabid.app import BidServer
from personabid.bench.processes import RedisProcess
from personabid.config import Settings
from personabid.v1 import bidder_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
T = TypeVar("T")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


class ThreadedServer:
    """A real BidServer on its own event loop thread, bound to 127.0.0.1 port 0."""

    def __init__(self, settings: Settings) -> None:
        self.server = BidServer(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self, load: bool = True) -> ThreadedServer:
        self._thread.start()
        self.run(self.server.start())
        if load:
            self.run(self.server.load())
        return self

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"

    @property
    def http_addr(self) -> str:
        return f"127.0.0.1:{self.server.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.server.metrics_port}/metrics"

    def stop(self) -> None:
        try:
            self.run(self.server.stop(grace=0))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                # Closed here, not left to the collector, whose "unclosed event loop" warning would
                # surface in whichever later test happens to trigger a collection.
                self._loop.close()


def server_settings(data_dir: Path, **overrides: object) -> Settings:
    return Settings(
        grpc_addr="127.0.0.1:0",
        http_addr="127.0.0.1:0",
        metrics_addr="127.0.0.1:0",
        admin_addr="127.0.0.1:0",
        data_dir=data_dir,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def server(demo_dir: Path) -> Iterator[ThreadedServer]:
    running = ThreadedServer(server_settings(demo_dir)).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def channel(server: ThreadedServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.addr) as open_channel:
        yield open_channel


@pytest.fixture(scope="session")
def stub(channel: grpc.Channel) -> pb_grpc.BidderStub:
    return pb_grpc.BidderStub(channel)


def system_command(command: str, package: str) -> str:
    """The path of a program the suite needs from outside Python. Missing, it fails the test, never skips
    it: a suite that passes without touching the real part proves nothing about it."""
    path = shutil.which(command)
    if path is None:
        pytest.fail(f"{command} is missing: `make deps` installs it (Debian package {package})")
    return path


class RedisServer(RedisProcess):
    """A real redis-server on 127.0.0.1 for a test, which fails (never skips) when it is not installed."""

    def __init__(self, directory: Path) -> None:
        super().__init__(system_command("redis-server", "redis-server"), directory)

    def start(self, timeout: float = 10.0) -> RedisServer:
        super().start(timeout)
        return self


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()
