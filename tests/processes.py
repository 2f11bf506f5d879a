"""Helpers for tests that run personabid as a real process."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from personabid.bench.processes import parse_ready


class ServerProcess:
    """`personabid serve` (or any command that ends in it) in a child process, its log read line by line."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stdin: bool = False,
    ) -> None:
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # The HTTP door on a free port unless the test says otherwise: tests run side by side.
            env={**os.environ, "PERSONABID_HTTP_ADDR": "127.0.0.1:0", **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.http_addr = ""  # from the ready line
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_ready(self, timeout: float) -> tuple[str, str]:
        """Block until the ready line; return its gRPC and metrics addresses."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.log.append(line)
            found = parse_ready(line)
            if found and found.service == "personabid":
                self.http_addr = found.http
                return found.grpc, found.metrics
        raise AssertionError("server never became ready:\n" + "".join(self.log))

    def release(self) -> None:
        """Open the decision gate of tests/gated_serve.py (idempotent; harmless once the process ended)."""
        stdin = self.process.stdin
        if stdin is None or stdin.closed:
            return
        try:
            stdin.write("release\n")
            stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the process has already exited

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._pump_thread.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        return self.process.returncode


def personabid(*args: str) -> list[str]:
    return [sys.executable, "-m", "personabid", *args]
