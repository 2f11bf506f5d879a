"""Check that a `personabid bench` results file is complete and sane; never judge a time.

Run: python benchmarks/check_results.py benchmarks/results/smoke/results.json

Complete: every block of the plan ran (each catalog size over gRPC and HTTP, the sweep, the half-load
pair, the echoes working as long as the bidder's path, the workers, the bidder with Redis, the profile,
the recall at each catalog size), every summary figure is there (the floors of both protocols, the
bidder's ratios to them, the working echoes' ratios and the accounting against them), every target has
its row, and the plots exist as PNG files. Sane: every run answered calls, latency
percentiles are positive and in order (p50 <= p90 <= p99 <= p99.9 <= max), rates are shares in [0, 1],
errors are rare, CPU per request is positive, ratios are positive, recalls are in [0, 1]. How fast
anything was is not checked, and a target not met is not a problem (targets are goals): on a shared
machine that would fail for reasons that are not bugs. Exits 1 listing every problem.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PERCENTILES = ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us")
MAX_ERROR_RATE = 0.05  # closed loops and moderate open loops: failures there are bugs, not load
PROFILE_PARTS = (
    "decode",
    "to_auction",
    "pseudonymise",
    "match",
    "filter",
    "score",
    "price",
    "respond",
    "bid_log",
    "encode",
    "decode_json",
    "encode_json",
    "total",
    "total_http",
    "servicer_call",
)
TARGET_FIELDS = (
    "target",
    "goal",
    "bound",
    "at_least",
    "unit",
    "today",
    "today_text",
    "now",
    "met",
    "in_plan",
)
RECALL_FIELDS = ("k", "queries", "recall", "index_type", "index_params", "persona_noise_recall")


def problems(results: dict[str, Any], directory: Path) -> list[str]:
    found: list[str] = []

    def need(condition: bool, message: str) -> None:
        if not condition:
            found.append(message)

    plan, runs, summary = results.get("plan"), results.get("runs"), results.get("summary")
    if not plan or not runs or not summary:
        return ["plan, runs or summary missing"]
    for i, run in enumerate(runs):
        where = f"runs[{i}] ({run.get('service')} {run.get('campaigns')} {run.get('rpc')} {run.get('mode')})"
        latency = run.get("latency", {})
        need(run.get("completed", 0) > 0 and latency.get("count", 0) > 0, f"{where}: no answers")
        values = [latency.get(p) for p in PERCENTILES]
        need(
            all(isinstance(v, int | float) and v > 0 for v in values)
            and all(a <= b for a, b in itertools.pairwise(values)),
            f"{where}: latency percentiles missing or out of order: {values}",
        )
        for rate in ("error_rate", "no_bid_rate"):
            value = run.get(rate)
            need(value is None or 0.0 <= value <= 1.0, f"{where}: {rate}={value} is not a share")
        # Past half its closed-loop throughput an open loop may overload the service, or its own client
        # (two cores for both): failures there are what the sweep is for, not bugs.
        overloaded = run.get("offered_fraction", 0.0) > 0.5
        if not overloaded:
            need(
                (run.get("error_rate") or 0.0) <= MAX_ERROR_RATE,
                f"{where}: error rate {run.get('error_rate')}",
            )
        need((run.get("server_cpu_us_per_request") or 0) > 0, f"{where}: no server CPU per request")
        need(run.get("request_bytes_mean", 0) > 0, f"{where}: no request bytes")
    expected = {
        ("catalog", service, campaigns, rpc, mode)
        for campaigns in plan["sizes"]
        for service in ("echo", "bidder")
        for rpc, mode in (("unary", "closed"), ("stream", "closed"), ("unary", "open"))
    }
    expected |= {
        ("catalog", service, campaigns, "http", mode)
        for campaigns in plan["sizes"]
        for service in ("http-echo", "bidder")
        for mode in ("closed", "open")
    }
    expected |= {
        ("workers", s, plan["workers_size"], r, "closed")
        for s in ("echo", "bidder")
        for r in ("unary", "stream")
    }
    expected |= {("open-stream", s, plan["sweep_size"], "stream", "open") for s in ("echo", "bidder")}
    expected |= {("half-load", s, plan["sweep_size"], "unary", "open") for s in ("echo", "bidder")}
    expected |= {
        ("handler-length", s, plan["sweep_size"], "unary", "closed")
        for s in ("echo", "echo-working", "bidder")
    }
    expected |= {
        ("redis", s, plan["sweep_size"], r, "closed")
        for s in ("bidder", "bidder-redis")
        for r in plan.get("redis_rpcs", ("unary", "stream"))
    }
    seen = {(r["block"], r["service"], r["campaigns"], r["rpc"], r["mode"]) for r in runs}
    need(expected <= seen, f"runs missing: {sorted(expected - seen)}")
    for service in ("echo", "bidder"):
        sweep = [r for r in runs if r["block"] == "sweep" and r["service"] == service]
        need(len(sweep) == len(plan["sweep_fractions"]), f"sweep of {service}: {len(sweep)} points")
    for rpc in ("unary", "stream", "http"):
        floor = summary.get("floor", {}).get(rpc, {})
        need((floor.get("throughput_rps") or 0) > 0, f"summary.floor.{rpc}: no throughput")
    for campaigns in plan["sizes"]:
        loads = summary.get("bidder", {}).get(str(campaigns), {})
        for load, figures in loads.items():
            for key in ("throughput_ratio", "p99_ratio"):
                value = figures.get(key)
                need(value is not None and value > 0, f"summary.bidder.{campaigns}.{load}.{key}={value}")
        need(str(campaigns) in summary.get("bidder", {}), f"summary.bidder lacks {campaigns}")
        need({"http_closed", "http_open"} <= set(loads), f"summary.bidder.{campaigns} lacks the HTTP loads")
    speedup = summary.get("workers", {}).get("speedup", {})
    need(
        all((speedup.get(s, {}).get(r) or 0) > 0 for s in ("echo", "bidder") for r in ("unary", "stream")),
        f"summary.workers.speedup incomplete: {speedup}",
    )
    need(set(summary.get("sweep", {}).get("knee", {})) == {"echo", "bidder"}, "summary.sweep.knee missing")
    for rpc in plan.get("redis_rpcs", ("unary", "stream")):
        value = summary.get("redis", {}).get(rpc, {}).get("throughput_ratio")
        need(value is not None and value > 0, f"summary.redis.{rpc}.throughput_ratio={value}")
    value = summary.get("half_load", {}).get("p99_ratio")
    need(value is not None and value > 0, f"summary.half_load.p99_ratio={value}")
    handler = summary.get("handler_length", {})
    levels = handler.get("levels", [])
    need(
        bool(levels) and all((level.get("throughput_ratio") or 0) > 0 for level in levels),
        f"summary.handler_length.levels incomplete: {levels}",
    )
    need(handler.get("unaccounted") is not None, "summary.handler_length.unaccounted missing")
    recall = summary.get("recall", {})
    for campaigns in plan["sizes"]:
        measured = recall.get(str(campaigns), {})
        need(
            all(f in measured for f in RECALL_FIELDS),
            f"summary.recall.{campaigns} incomplete: {sorted(measured)}",
        )
        for key in ("recall", "persona_noise_recall"):
            value = measured.get(key)
            need(value is not None and 0.0 <= value <= 1.0, f"summary.recall.{campaigns}.{key}={value}")
    found.extend(target_problems(summary.get("targets")))
    profile = results.get("profile", {}).get("median_us", {})
    need(all((profile.get(p) or 0) > 0 for p in PROFILE_PARTS), f"profile incomplete: {profile}")
    for name in results.get("plots", []):
        path = directory / name
        need(path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE, f"plot {name} is not a PNG")
    need(len(results.get("plots", [])) >= 2, "plots missing")
    return found


def target_problems(targets: Any) -> list[str]:
    """Each target's row complete, and its figure sane for its unit; whether it is met is not judged."""
    if not isinstance(targets, list) or not targets:
        return ["summary.targets missing"]
    found = []
    for i, target in enumerate(targets):
        where = f"summary.targets[{i}] ({target.get('target')})"
        missing = [f for f in TARGET_FIELDS if f not in target]
        if missing:
            found.append(f"{where}: missing {missing}")
            continue
        now, unit = target["now"], target["unit"]
        if now is None:
            if target["in_plan"]:
                found.append(f"{where}: not measured, though the plan measures it")
            continue
        if unit == "x" and not now > 0:
            found.append(f"{where}: ratio {now} is not positive")
        if unit == "recall" and not 0.0 <= now <= 1.0:
            found.append(f"{where}: recall {now} is not in [0, 1]")
        if not isinstance(target["met"], bool):
            found.append(f"{where}: met={target['met']} is not a yes or no")
        elif target["met"] != _meets(now, target["bound"], target["at_least"], target.get("absolute", False)):
            found.append(f"{where}: met={target['met']} disagrees with {now} against {target['goal']}")
    return found


def _meets(now: float, bound: float, at_least: bool, absolute: bool) -> bool:
    figure = abs(now) if absolute else now
    return figure >= bound if at_least else figure <= bound


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    path = Path(argv[0])
    found = problems(json.loads(path.read_text()), path.parent)
    for problem in found:
        print(f"{path}: {problem}", file=sys.stderr)
    if not found:
        print(f"{path}: complete and sane ({len(json.loads(path.read_text())['runs'])} runs)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
