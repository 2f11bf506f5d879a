"""The services under test, each in its own process (tree, with --workers): the bidder and the echoes.

A service is started as the operator would start it (`personabid serve`, or an echo module), on
127.0.0.1 only, and is ready when every worker has logged its ready line, which gives its gRPC address
and, for the bidder and the HTTP echo, its HTTP one. Its CPU time is read from
/proc for the whole process tree: what the server spent, whatever the load processes beside it spent.
While another service is measured it is paused (SIGSTOP), so that its background work (the bidder's
spend refresh, its artifact watch) does not load the machine under the other's figures.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from personabid.bench.processes import parse_ready

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The bidder's metrics (server/telemetry.py) that give its request path's CPU per request.
PATH_CPU = "personabid_bid_cpu_seconds_total"
REQUESTS = "personabid_bid_requests_total"


def bidder_command(
    world_dir: Path, port: int, workers: int, scratch: Path, http_port: int = 0, redis_url: str = ""
) -> list[str]:
    """`personabid serve` with its gRPC port and its HTTP door's (0: the OS's choice, one worker only:
    workers share one port, which must be given); spend state in Redis at `redis_url` if given."""
    return [
        sys.executable, "-m", "personabid", "serve",
        "--data-dir", str(world_dir),
        "--grpc-addr", f"127.0.0.1:{port}",
        "--http-addr", f"127.0.0.1:{http_port}",
        "--metrics-addr", "127.0.0.1:0",
        "--admin-addr", "127.0.0.1:0",
        "--event-log", str(scratch / "events.jsonl"),
        "--workers", str(workers),
        *(("--redis-url", redis_url) if redis_url else ()),
    ]  # fmt: skip


def echo_command(port: int, workers: int, work_us: float = 0.0) -> list[str]:
    """The gRPC echo; each call works `work_us` of CPU before it answers (echo.py)."""
    return [
        sys.executable, "-m", "personabid.bench.echo",
        "--grpc-addr", f"127.0.0.1:{port}",
        "--workers", str(workers),
        *(("--work-us", f"{work_us:g}") if work_us else ()),
    ]  # fmt: skip


def http_echo_command(http_port: int, workers: int, grpc_port: int = 0) -> list[str]:
    """The HTTP echo (and the gRPC echo on its loop, as the bidder serves both). `http_port` 0 is the
    OS's choice, read from the ready line (Service.http_addr); several workers share one given port."""
    if http_port == 0 and workers > 1:
        raise ValueError(f"http_port=0 with {workers} workers: they share one port, which must be given")
    return [
        sys.executable, "-m", "personabid.bench.http_echo",
        "--http-addr", f"127.0.0.1:{http_port}",
        "--grpc-addr", f"127.0.0.1:{grpc_port}",
        "--workers", str(workers),
    ]  # fmt: skip


class Service:
    """One service process (and its workers); its log goes to `log_path`."""

    def __init__(self, name: str, command: list[str], workers: int, log_path: Path) -> None:
        self.name = name
        self.workers = workers
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env={**os.environ, "PERSONABID_LOG_LEVEL": "INFO"},  # the ready line is logged at INFO
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()
        self.addr = ""  # gRPC, HOST:PORT
        self.http_addr = ""  # HOST:PORT; "" for a service without HTTP (the gRPC echo)
        self.metrics_addrs: list[str] = []  # each worker's Prometheus endpoint (the bidder's only)
        self.paused = False

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._log.write(line)
            self._log.flush()
            self._lines.put(line)

    def wait_ready(self, timeout: float) -> str:
        """Block until every worker logged its ready line; returns the gRPC address (and keeps the HTTP
        one in `http_addr`)."""
        deadline = time.monotonic() + timeout
        ready = 0
        while ready < self.workers:
            try:
                line = self._lines.get(timeout=max(0.01, min(0.5, deadline - time.monotonic())))
            except queue.Empty:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} did not become ready in {timeout:.0f}s; log: {self.log_path}"
                    ) from None
                continue
            found = parse_ready(line)
            if found:
                ready += 1
                self.addr, self.http_addr = found.grpc, found.http
                if found.metrics:
                    self.metrics_addrs.append(found.metrics)
        return self.addr

    def path_cpu(self) -> tuple[float, float] | None:
        """The bidder's own count of its request path's CPU seconds and of the requests it answered,
        summed over its workers' metrics (None for a service without them): read before and after a
        window, their differences give the path's CPU per request in the running server."""
        if not self.metrics_addrs:
            return None
        cpu = requests = 0.0
        for addr in self.metrics_addrs:
            with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as reply:
                exposition = reply.read().decode()
            for family in text_string_to_metric_families(exposition):
                for sample in family.samples:
                    if sample.name == PATH_CPU:
                        cpu += sample.value
                    elif sample.name == REQUESTS:
                        requests += sample.value
        return cpu, requests

    def pids(self) -> list[int]:
        """The process and its children (the workers)."""
        root = self.process.pid
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rpartition(")")[2].split()
                except OSError:
                    continue
                if int(fields[1]) == root:
                    children.append(int(entry.name))
        return [root, *children]

    def cpu_seconds(self) -> float:
        """User and system CPU time of the process and its workers so far."""
        return sum(process_cpu_seconds(pid) for pid in self.pids())

    def pause(self) -> None:
        if not self.paused:
            self._signal_all(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.paused:
            self._signal_all(signal.SIGCONT)
            self.paused = False

    def _signal_all(self, sig: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the service drains), then SIGKILL if it does not end in time; returns its exit code."""
        self.resume()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._pump.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (proc(5)), here offsets 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
