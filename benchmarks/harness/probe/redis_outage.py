"""Probe 5: a Redis outage (stopped, restarted, frozen) under load; needs redis-server on PATH."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable

from personabid.bench.probe.load import LoadThreads, TimedCall
from personabid.bench.probe.results import ProbeResult, percentile
from personabid.bench.probe.server import Context, good_request_answer
from personabid.bench.processes import RedisProcess

STATE_UNAVAILABLE_NBR = 506


def probe_redis(ctx: Context, threads: int, phase_seconds: float) -> ProbeResult:
    result = ProbeResult("5. Redis outage")
    binary = shutil.which("redis-server")
    if binary is None:
        result.notes.append("skipped: redis-server is not on PATH")
        return result
    redis = RedisProcess(binary, ctx.out_dir)
    redis.start()
    events: dict[str, float] = {}
    try:
        with ctx.server("redis", ["--redis-url", redis.url]) as server:
            mark = server.mark()
            load = LoadThreads(server.addr, ctx.requests(64, ctx.seed + 8), threads, 1_000_000, timeout=2)
            load.start()
            # Phases: up, stopped, restarted, frozen (connections open, no answer), thawed.
            time.sleep(phase_seconds)
            events["stopped"] = load.since_origin()
            redis.stop()
            time.sleep(phase_seconds)
            events["restarting"] = load.since_origin()
            redis.start()
            events["restarted"] = load.since_origin()  # answering PING again
            time.sleep(phase_seconds * 2)
            events["frozen"] = load.since_origin()
            redis.pause()
            time.sleep(phase_seconds)
            events["thawed"] = load.since_origin()
            redis.resume()
            time.sleep(phase_seconds * 2)
            events["end"] = load.since_origin()
            calls = load.join()
            span = server.since(mark)
            after = good_request_answer(server.addr, ctx.requests(1, ctx.seed + 9)[0])
    finally:
        redis.stop()
    phases = ("up", "stopped", "restarted", "frozen", "thawed")
    bounds = [0.0, events["stopped"], events["restarting"], events["frozen"], events["thawed"], events["end"]]
    result.put("load threads / seconds per phase", f"{threads} / {phase_seconds}")
    for name, lo, hi in zip(phases, bounds, bounds[1:], strict=False):
        inside = [c for c in calls if lo <= c.start < hi]
        outcome = Counter(_outcome(c) for c in inside)
        latency = [c.end - c.start for c in inside]
        result.put(f"{name}: calls", dict(outcome))
        result.put(f"{name}: latency p50 / max ms", [percentile(latency, q) * 1000 for q in (50, 100)])
    restart = events["restarted"]
    recovered = _first(calls, restart, _is_bid)
    thawed = _first(calls, events["thawed"], _is_bid)
    result.put("first 506 after stop (s)", _first(calls, events["stopped"], _is_506))
    result.put("Redis answering again after (s from restart command)", restart - events["restarting"])
    result.put("first bid after Redis answers again (s)", recovered)
    # A call started just before the next phase may be answered in it: windows stop a little short.
    margin = 0.1
    result.put(
        "last 506 after Redis answers again (s)", _last(calls, restart, events["frozen"] - margin, _is_506)
    )
    result.put("first 506 after freeze (s)", _first(calls, events["frozen"], _is_506))
    result.put("first bid after thaw (s)", thawed)
    result.put("last 506 after thaw (s)", _last(calls, events["thawed"], events["end"], _is_506))
    windows = (("restart", restart, events["frozen"] - margin), ("thaw", events["thawed"], events["end"]))
    for name, start, end in windows:
        first = _first(calls, start, _is_bid)
        late = [c for c in calls if first is not None and start + first < c.start < end and _is_506(c)]
        result.put(f"506 answers after the first bid since the {name}", len(late))
    result.data["timeline (start s, outcome counts per 0.25 s)"] = _timeline(calls, 0.25)
    result.data["events (s)"] = events
    result.put("server log lines during probe", len(span.lines))
    result.put("server log lines about the outage", span.matching("spend", "redis", "Redis", "WARNING")[:12])
    result.put("server log ERROR/Traceback lines", len(span.matching("ERROR", "Traceback")))
    result.put("good request after probe", after)
    odd = Counter(c.code for c in calls if c.code not in ("OK",))
    if odd:
        result.notes.append(f"calls that failed outright (not a no-bid): {dict(odd)}")
    if thawed is None:
        result.defects.append("no bid answered after Redis came back from the freeze")
    if span.matching("Traceback"):
        result.defects.append(f"server logged tracebacks during the outage: {span.matching('Traceback')[:2]}")
    return result


def _outcome(call: TimedCall) -> str:
    return call.code if call.code != "OK" else "bid" if call.nbr == 0 else f"nbr {call.nbr}"


def _is_506(call: TimedCall) -> bool:
    return call.code == "OK" and call.nbr == STATE_UNAVAILABLE_NBR


def _is_bid(call: TimedCall) -> bool:
    return call.code == "OK" and call.nbr == 0


def _timeline(calls: list[TimedCall], step: float) -> list[tuple[float, dict[str, int]]]:
    buckets: dict[int, Counter[str]] = {}
    for call in calls:
        buckets.setdefault(int(call.start // step), Counter())[_outcome(call)] += 1
    return [(round(b * step, 2), dict(counts)) for b, counts in sorted(buckets.items())]


def _first(calls: list[TimedCall], after: float, test: Callable[[TimedCall], bool]) -> float | None:
    times = [c.start - after for c in calls if c.start >= after and test(c)]
    return round(min(times), 3) if times else None


def _last(
    calls: list[TimedCall], after: float, before: float, test: Callable[[TimedCall], bool]
) -> float | None:
    times = [c.start - after for c in calls if after <= c.start < before and test(c)]
    return round(max(times), 3) if times else None
