"""Probe 4: SIGTERM under a steady unary load: calls in flight must finish, new ones be refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
import signal
import threading
import time
from collections import Counter
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from personabid.bench.probe.load import LoadThreads, TimedCall
from personabid.bench.probe.results import ProbeResult, plain
from personabid.bench.probe.server import Context, ServerProcess
from personabid.v1 import bidder_pb2 as pb


def probe_sigterm(
    ctx: Context, repeats: int, threads: int, load_seconds: float, max_calls: int, grace: float | None
) -> ProbeResult:
    result = ProbeResult("4. SIGTERM under load")
    # Requests with several impressions take longer to decide: more calls are in flight at the signal.
    requests = ctx.requests(64, ctx.seed + 7)
    for request in requests[::2]:
        for i in range(2, 9):
            request.imp.add().CopyFrom(request.imp[0])
            request.imp[-1].id = str(i)
    table: Counter[str] = Counter()
    runs = []
    for r in range(repeats):
        extra = ["--grace-seconds", str(grace)] if grace is not None else []
        server = ctx.server(f"sigterm-{r}", extra).start()
        try:
            run = _sigterm_once(server, requests, threads, load_seconds, max_calls)
        finally:
            server.stop()
        runs.append(run)
        for key, n in run["counts"].items():
            table[key] += n
        for problem in run["problems"]:
            result.defects.append(f"run {r + 1}: {problem}")
        result.findings.extend(f"run {r + 1}: {finding}" for finding in run["findings"])
        result.notes.extend(f"run {r + 1}: {note}" for note in run["notes"])
    result.put("runs", repeats)
    result.put("load threads", threads)
    result.put("calls by when they started and their status (all runs)", dict(table))
    for r, run in enumerate(runs):
        result.put(f"run {r + 1}: calls", run["counts"])
        result.put(f"run {r + 1}: in flight at SIGTERM (start < 0 < end)", run["in_flight"])
        result.put(f"run {r + 1}: last OK call started at (s after SIGTERM)", run["last_ok_start"])
        result.put(f"run {r + 1}: first UNAVAILABLE at (s after SIGTERM)", run["first_unavailable"])
        result.put(f"run {r + 1}: health not SERVING from (s after SIGTERM)", run["health_not_serving"])
        result.put(f"run {r + 1}: health answers after SIGTERM", run["health_statuses_after"])
        result.put(f"run {r + 1}: SIGTERM sent at (local time)", run["signalled_at"])
        result.put(f"run {r + 1}: exit code / seconds to exit", f"{run['exit_code']} / {run['exit_seconds']}")
        result.put(f"run {r + 1}: server's last log lines", run["last_lines"])
    result.data["runs_detail"] = plain(runs)
    return result


class HealthWatch:
    """A thread asking the health service for the Bidder's status every few milliseconds."""

    def __init__(self, addr: str, origin: float) -> None:
        self.addr = addr
        self.origin = origin
        self.stop = threading.Event()
        self.answers: list[tuple[float, str]] = []  # (seconds since origin, status or error code)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> HealthWatch:
        self.thread.start()
        return self

    def join(self) -> list[tuple[float, str]]:
        self.stop.set()
        self.thread.join(10)
        return self.answers

    def _run(self) -> None:
        request = health_pb2.HealthCheckRequest(service="personabid.v1.Bidder")
        with grpc.insecure_channel(self.addr) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not self.stop.is_set():
                try:
                    answer = stub.Check(request, timeout=1)
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
                except grpc.RpcError as exc:
                    status = exc.code().name
                self.answers.append((time.monotonic() - self.origin, status))
                time.sleep(0.01)


# The signal handler needs a moment to run; a server still taking new calls after this long keeps
# taking them on purpose or by mistake.
ACCEPTING_AFTER_SIGNAL = 0.1


def _sigterm_once(
    server: ServerProcess, requests: list[pb.BidRequest], threads: int, load_seconds: float, max_calls: int
) -> dict[str, Any]:
    load = LoadThreads(server.addr, requests, threads, max_calls, timeout=10).start()
    health = HealthWatch(server.addr, load.origin).start()
    time.sleep(load_seconds)
    signalled = load.since_origin()
    signalled_at = dt.datetime.now().isoformat(sep=" ", timespec="milliseconds")  # as the log writes time
    server.signal(signal.SIGTERM)
    exit_code = server.wait(60)
    exit_seconds = load.since_origin() - signalled
    time.sleep(0.5)  # calls after the exit, to see what a client gets then
    calls = [dataclasses.replace(c, start=c.start - signalled, end=c.end - signalled) for c in load.join()]
    statuses = [(t - signalled, status) for t, status in health.join()]
    not_serving = [t for t, status in statuses if t >= 0 and status != "SERVING"]
    counts: Counter[str] = Counter()
    for call in calls:
        when = "before, ended before" if call.end < 0 else "before, in flight" if call.start < 0 else "after"
        counts[f"{when}: {call.code}"] += 1
    problems: list[str] = []
    findings: list[str] = []
    notes: list[str] = []
    failed_before = [c for c in calls if c.start < 0 and c.code != "OK"]
    if failed_before:
        problems.append(
            f"{len(failed_before)} call(s) started before SIGTERM did not end OK: {_spans(failed_before)}"
        )
    odd_after = [c for c in calls if c.start >= 0 and c.code not in ("OK", "UNAVAILABLE")]
    if odd_after:
        findings.append(
            f"{len(odd_after)} call(s) started after SIGTERM ended neither OK nor UNAVAILABLE: "
            f"{_spans(odd_after)}"
        )
    ok_after = [c for c in calls if c.start >= 0 and c.code == "OK"]
    if ok_after:
        latest = max(c.start for c in ok_after)
        what = (
            f"{len(ok_after)} call(s) started after SIGTERM were answered OK, the last {latest:+.3f}s "
            "after it: new calls still taken (expected UNAVAILABLE)"
        )
        (findings if latest > ACCEPTING_AFTER_SIGNAL else notes).append(what)
    if exit_code is None:
        problems.append("the server did not exit within 60s of SIGTERM")
    elif exit_code != 0:
        problems.append(f"the server exited with code {exit_code}")
    unavailable = [c.start for c in calls if c.start >= 0 and c.code == "UNAVAILABLE"]
    oks = [c.start for c in calls if c.code == "OK"]
    return {
        "counts": dict(counts),
        "in_flight": sum(1 for c in calls if c.start < 0 <= c.end),
        "last_ok_start": round(max(oks), 4) if oks else None,
        "first_unavailable": round(min(unavailable), 4) if unavailable else None,
        "health_not_serving": round(min(not_serving), 4) if not_serving else None,
        "health_statuses_after": dict(Counter(status for t, status in statuses if t >= 0)),
        "signalled_at": signalled_at,
        "exit_code": exit_code,
        "exit_seconds": round(exit_seconds, 3),
        "last_lines": server.tail(5),
        "problems": problems,
        "findings": findings,
        "notes": notes,
    }


def _spans(calls: list[TimedCall], shown: int = 4) -> str:
    """A few calls as 'CODE start..end' (seconds relative to the signal)."""
    text = ", ".join(f"{c.code} {c.start:+.3f}..{c.end:+.3f}s" for c in calls[:shown])
    return text + (", ..." if len(calls) > shown else "")
