"""A real Prometheus for the tests: the Debian `prometheus` binary on a free 127.0.0.1 port, scraping one
metrics endpoint every second into a temporary store, queried through its HTTP API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from personabid.bench.processes import HOST, free_port

JOB = "personabid"
SCRAPE_SECONDS = 1
TIMEOUT = 5.0

CONFIG = """\
global:
  scrape_interval: {interval}s
  scrape_timeout: {interval}s
  evaluation_interval: {interval}s
scrape_configs:
  - job_name: {job}
    static_configs:
      - targets: ["{target}"]
"""


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    """`prometheus` scraping HOST:PORT `target` (a /metrics endpoint) as job JOB, in `directory`."""

    def __init__(self, binary: str, directory: Path, target: str) -> None:
        self.binary = binary
        self.directory = directory
        self.target = target
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log = directory / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> Prometheus:
        config = self.directory / "prometheus.yml"
        config.write_text(CONFIG.format(interval=SCRAPE_SECONDS, job=JOB, target=self.target))
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address={HOST}:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait("ready", self._ready, timeout)
            self._wait(f"a successful scrape of {self.target}", self._target_up, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer to instant query `expr` at the current time: {"status", "data" | "error"}.
        A query Prometheus refuses (status 400 or 422) is returned, not raised: the caller asserts on it."""
        body = urllib.parse.urlencode({"query": expr, "time": f"{time.time():.3f}"}).encode()
        try:
            return self._call("/api/v1/query", body)
        except urllib.error.HTTPError as refused:
            return dict(json.loads(refused.read()))

    def series(self, expr: str) -> list[dict[str, Any]]:
        """The result of instant query `expr`, which must succeed."""
        answer = self.query(expr)
        if answer.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {answer.get('error')}")
        return list(answer["data"]["result"])

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
        """Poll `check()` until it is true, failing after `timeout` seconds."""
        self._wait(what, check, timeout)

    def _call(self, path: str, body: bytes | None = None) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + path, data=body, timeout=TIMEOUT) as answer:
            return dict(json.loads(answer.read()))

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=TIMEOUT) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    def _target_up(self) -> bool:
        targets = self._call("/api/v1/targets")["data"]["activeTargets"]
        return any(t["labels"].get("instance") == self.target and t["health"] == "up" for t in targets)

    def _wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.process.returncode}: {self._tail()}")
            if check():
                return
            time.sleep(0.05)
        raise PrometheusError(f"no {what} within {timeout} s: {self._tail()}")

    def _tail(self) -> str:
        return self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""
