"""From load results to figures: one record per run, then medians, ratios to the echo floor, the knee.

A run's record holds what its load processes measured, merged: latency percentiles from the merged HDR
histogram, throughput, error and no-bid rates, and the server's CPU per request (from the server's own
CPU time, which does not depend on how much CPU the load processes took beside it). Figures repeated in
a run are summarised by their median; every bidder figure is given beside, and as a ratio to, the echo
floor measured in the same block of the same run.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from personabid.bench.histogram import cdf, merge, summary
from personabid.bench.load import LoadResult

# The knee of a latency-throughput curve: the highest offered load the service still keeps up with
# (answers at least this share of it, with few errors) before its tail grows past KNEE_TAIL x the p99
# at the lowest load.
KNEE_KEEP_UP = 0.95
KNEE_TAIL = 5.0
KNEE_ERRORS = 0.01


def run_record(results: list[LoadResult], server_cpu: float, meta: dict[str, Any]) -> dict[str, Any]:
    """A run's record; `server_cpu` is the server's CPU seconds in the window, `meta` says what ran."""
    histogram = merge([r.histogram for r in results])
    window = results[0].window_seconds
    started = sum(r.started for r in results)
    completed = sum(r.completed for r in results)
    bids = sum(r.bids for r in results)
    no_bids: dict[str, int] = {}
    errors: dict[str, int] = {}
    for r in results:
        for reason, n in r.no_bids.items():
            no_bids[str(reason)] = no_bids.get(str(reason), 0) + n
        for code, n in r.errors.items():
            errors[code] = errors.get(code, 0) + n
    answered = bids + sum(no_bids.values())
    return {
        **meta,
        "window_seconds": window,
        "started": started,
        "completed": completed,
        "throughput_rps": round(completed / window, 1),
        "latency": summary(histogram),
        "cdf": cdf(histogram),
        # How late the open loop's client sent calls (its own CPU and timer slack): part of the latency.
        "send_lag": summary(merge([r.send_lag for r in results])),
        "bids": bids,
        "no_bids": no_bids,
        "no_bid_rate": round(sum(no_bids.values()) / answered, 4) if answered else None,
        "errors": errors,
        "error_rate": round(sum(errors.values()) / started, 4) if started else None,
        "shed": sum(r.shed for r in results),
        "server_cpu_us_per_request": round(server_cpu / completed * 1e6, 1) if completed else None,
        "server_cpu_cores": round(server_cpu / window, 3),
        "client_cpu_us_per_request": (
            round(sum(r.client_cpu_seconds for r in results) / completed * 1e6, 1) if completed else None
        ),
        "request_bytes_mean": round(sum(r.request_bytes for r in results) / started, 1) if started else None,
        "response_bytes_mean": round(sum(r.response_bytes for r in results) / answered, 1)
        if answered
        else None,
        "histogram": histogram.encode().decode("ascii"),
    }


def select(runs: Iterable[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [run for run in runs if all(run.get(k) == v for k, v in match.items())]


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median figures of repeated runs of one kind."""
    if not runs:
        return {}

    def med(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(float(statistics.median(present)), 4) if present else None

    def latency(name: str) -> float | None:
        return med([run["latency"].get(name) for run in runs])

    return {
        "runs": len(runs),
        "offered_rps": med([run.get("offered_rps") for run in runs]),
        "throughput_rps": med([run["throughput_rps"] for run in runs]),
        "p50_us": latency("p50_us"),
        "p90_us": latency("p90_us"),
        "p99_us": latency("p99_us"),
        "p99_9_us": latency("p99_9_us"),
        "max_us": latency("max_us"),
        "error_rate": med([run["error_rate"] for run in runs]),
        "no_bid_rate": med([run["no_bid_rate"] for run in runs]),
        "server_cpu_us_per_request": med([run["server_cpu_us_per_request"] for run in runs]),
        # The bidder's request path, as the running server counts its CPU (None for an echo).
        "path_cpu_us_per_request": med([run.get("path_cpu_us_per_request") for run in runs]),
        "client_cpu_us_per_request": med([run["client_cpu_us_per_request"] for run in runs]),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def versus_floor(bidder: dict[str, Any], echo: dict[str, Any]) -> dict[str, Any]:
    """The bidder's medians with the floor's beside them, and the ratios of throughput and p99."""
    return {
        **bidder,
        "floor_throughput_rps": echo.get("throughput_rps"),
        "floor_p99_us": echo.get("p99_us"),
        "floor_server_cpu_us_per_request": echo.get("server_cpu_us_per_request"),
        "throughput_ratio": ratio(bidder.get("throughput_rps"), echo.get("throughput_rps")),
        "p99_ratio": ratio(bidder.get("p99_us"), echo.get("p99_us")),
    }


def curve(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latency-throughput curve of an open-loop sweep, by offered load."""
    points = []
    for run in sorted(runs, key=lambda r: r["offered_rps"]):
        points.append(
            {
                "offered_rps": run["offered_rps"],
                "throughput_rps": run["throughput_rps"],
                "p50_us": run["latency"].get("p50_us"),
                "p99_us": run["latency"].get("p99_us"),
                "p99_9_us": run["latency"].get("p99_9_us"),
                "max_us": run["latency"].get("max_us"),
                "error_rate": run["error_rate"],
                "shed": run["shed"],
                # A client sending late is a client out of CPU: the point measures the load processes too.
                "send_lag_p50_us": run["send_lag"].get("p50_us"),
                "send_lag_p99_us": run["send_lag"].get("p99_us"),
            }
        )
    return points


def knee(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest offered load kept up with before the tail grows (see KNEE_*), or None."""
    if not points or points[0]["p99_us"] is None:
        return None
    base = points[0]["p99_us"]
    best = None
    for point in points:
        keeps_up = point["throughput_rps"] >= KNEE_KEEP_UP * point["offered_rps"]
        few_errors = (point["error_rate"] or 0.0) <= KNEE_ERRORS and point["shed"] == 0
        tail_ok = point["p99_us"] is not None and point["p99_us"] <= KNEE_TAIL * base
        if not (keeps_up and few_errors and tail_ok):
            break
        best = point
    return best
