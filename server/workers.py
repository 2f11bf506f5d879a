"""Serving on every core: N worker processes forked before any gRPC server exists, sharing one port.

One Python process decides on one core at a time (the GIL), so a machine's cores are used by processes.
The parent forks the workers and does nothing else: gRPC is not fork-safe once a server or channel has
started, so no gRPC object may exist in the parent when it forks. Each worker then runs the ordinary
server (`personabid.app.serve`) with SO_REUSEPORT on the Bidder port (`app.server_options`): the kernel
spreads incoming connections over the workers, one connection staying with one worker.

What the workers share and what they do not:

- the gRPC port: shared. It must be given (`--grpc-addr HOST:PORT`, not port 0: each worker would get a
  port of its own);
- metrics: worker i serves /metrics on the metrics port + i (port 0: each picks a free port and logs it
  in its ready line), since a Prometheus registry is per process;
- Admin: worker 0 only, on the admin address. A reload through Admin reaches worker 0; every worker
  watches the artifact roots, so a new version made current (CURRENT) reaches them all;
- spend state: per process unless `--redis-url` shares it; without Redis each worker keeps its own
  ledger over its share of every budget (1/N, app.BidServer), so that together they cannot overspend,
  but a campaign's budget left in one worker cannot be spent by another (logged as a warning).

SIGTERM or SIGINT to the parent is forwarded to every worker, which drains as a single server does; the
parent exits 0 when every worker did. A worker that dies takes the others down with it (the parent exits
1): a supervisor restarting the whole service is simpler to reason about than a partly serving one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable

from personabid.clock import Clock
from personabid.config import Settings
from personabid.errors import ConfigError

log = logging.getLogger(__name__)


def serve_workers(settings: Settings) -> int:
    """Serve `settings` from `settings.workers` processes; returns the exit code."""
    check_ports(settings)
    if not settings.redis_url:
        log.warning(
            "%d workers keep their spend state each in its own process, each with 1/%d of every budget "
            "(give --redis-url to share one ledger)",
            settings.workers,
            settings.workers,
        )

    # One clock for all: its origin is on CLOCK_MONOTONIC, which every process of the machine shares, so
    # the forked workers read the same market time.
    clock = Clock(settings.clock_speed)

    def work(worker: int) -> None:
        from personabid.app import serve

        asyncio.run(serve(worker_settings(settings, worker), admin=worker == 0, clock=clock))

    return run_workers(settings.workers, work)


def check_ports(settings: Settings) -> None:
    for name in ("grpc_addr", "http_addr"):
        addr = getattr(settings, name)
        _, _, port = addr.rpartition(":")
        if settings.workers > 1 and int(port) == 0:
            raise ConfigError(
                f"setting {name}={addr!r}: {settings.workers} workers share one port, "
                "which must be given (port 0 would give each worker a port of its own)"
            )


def worker_settings(settings: Settings, worker: int) -> Settings:
    """Worker `worker`'s settings: its own metrics port (the base port + worker, or a free one for 0)."""
    host, _, port = settings.metrics_addr.rpartition(":")
    metrics_port = int(port) + worker if int(port) else 0
    return dataclasses.replace(settings, metrics_addr=f"{host}:{metrics_port}")


def run_workers(count: int, work: Callable[[int], None]) -> int:
    """Fork `count` processes, each running `work(i)`; forward SIGTERM and SIGINT to them; wait for all.

    Returns 0 when every worker exited 0, else 1. Call it before any gRPC server or channel exists.
    """
    children: dict[int, int] = {}  # pid -> worker number
    for worker in range(count):
        pid = os.fork()
        if pid == 0:
            _run_child(worker, count, work)  # never returns
        children[pid] = worker
    log.info("started %d workers: pids %s", count, " ".join(map(str, children)))

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            _signal(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while children:
        pid, status = os.wait()
        if pid not in children:
            continue
        worker = children.pop(pid)
        exit_code = os.waitstatus_to_exitcode(status)
        if exit_code != 0:
            log.error("worker %d (pid %d) ended with %d: stopping the others", worker, pid, exit_code)
            if code == 0:
                for other in children:
                    _signal(other, signal.SIGTERM)
            code = 1
    log.info("all workers stopped")
    return code


def _run_child(worker: int, count: int, work: Callable[[int], None]) -> None:
    # The parent's handlers forward signals; a worker handles its own (serve installs them) and must not
    # run the parent's cleanup on the way out, hence os._exit.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    for handler in logging.getLogger().handlers:
        if handler.formatter is not None and handler.formatter._fmt:
            fmt = handler.formatter._fmt.replace("%(message)s", f"[worker {worker}/{count}] %(message)s")
            handler.setFormatter(logging.Formatter(fmt))
    code = 0
    try:
        work(worker)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
    os._exit(code)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone: the wait loop collects it
        os.kill(pid, signum)
