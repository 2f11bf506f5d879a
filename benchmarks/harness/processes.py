"""What every harness that runs personabid in a child process needs: a free port, and the ready line.

Shared by the end-to-end benchmark, the probe (personabid.bench.probe) and the test suite, which may
import the harness; the service never does.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

HOST = "127.0.0.1"
# `personabid serve` logs "personabid ready: grpc=ADDR metrics=ADDR admin=ADDR ..." once it serves;
# the echo service logs "personabid echo ready: grpc=ADDR".
_READY = re.compile(r"personabid (?:(echo) )?ready: grpc=(\S+)(?: metrics=(\S+))?")


@dataclass(frozen=True)
class Ready:
    """A ready line: which service, and the addresses it serves on ("" where the line has none)."""

    service: str  # "personabid" or "echo"
    grpc: str
    metrics: str = ""


def parse_ready(line: str) -> Ready | None:
    """The ready line's addresses, or None if `line` is not a ready line."""
    found = _READY.search(line)
    if found is None:
        return None
    return Ready("echo" if found.group(1) else "personabid", found.group(2), found.group(3) or "")


def free_port(host: str = HOST) -> int:
    """A TCP port free on `host` right now (the OS's choice for port 0), for a child process to bind.

    Another process may take it before the child does; on a test machine that is rare enough."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
