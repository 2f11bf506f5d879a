"""What every harness that runs personabid in a child process needs: a free port, the ready line, and a
real Redis server to share state through.

Shared by the end-to-end benchmark, the probe (personabid.bench.probe) and the test suite, which may
import the harness; the service never does.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

HOST = "127.0.0.1"
# `personabid serve` logs "personabid ready: grpc=ADDR metrics=ADDR http=ADDR admin=ADDR ..." once it
# serves; the echo services log "personabid echo ready: grpc=ADDR" (and " http=ADDR" for the HTTP echo).
_READY = re.compile(r"personabid (?:(echo) )?ready: grpc=(\S+)(?: metrics=(\S+))?(?: http=(\S+))?")


@dataclass(frozen=True)
class Ready:
    """A ready line: which service, and the addresses it serves on ("" where the line has none)."""

    service: str  # "personabid" or "echo"
    grpc: str
    metrics: str = ""
    http: str = ""


def parse_ready(line: str) -> Ready | None:
    """The ready line's addresses, or None if `line` is not a ready line."""
    found = _READY.search(line)
    if found is None:
        return None
    return Ready(
        "echo" if found.group(1) else "personabid", found.group(2), found.group(3) or "", found.group(4) or ""
    )


def free_port(host: str = HOST) -> int:
    """A TCP port free on `host` right now (the OS's choice for port 0), for a child process to bind.

    Another process may take it before the child does; on a test machine that is rare enough."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class RedisProcess:
    """A real redis-server on HOST, without persistence, that can be stopped, started again on the same
    port, and frozen (SIGSTOP: connections stay open and nothing is answered, as in a Redis that hangs)."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(host=HOST, port=self.port, socket_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    client.ping()
                    return self
                except redis.RedisError:
                    time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def pause(self) -> None:
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused process leaves SIGTERM pending
            self.process.terminate()
            self.process.wait(10)
