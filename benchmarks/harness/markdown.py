"""The figures as markdown, and benchmarks/RESULTS.md's sections brought up to date.

RESULTS.md has sections by several suites ("## Index builds" is another's); only the sections named here
are replaced, each from its heading to the next "## " heading, and a missing one is appended.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

E2E_TITLE = "## End to end"
MICRO_TITLE = "## Micro"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


FLOOR_LABELS = {"unary": "gRPC echo, unary", "stream": "gRPC echo, stream", "http": "HTTP echo, POST"}


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def e2e_section(results: dict[str, Any]) -> str:
    s, m, plan = results["summary"], results["machine"], results["plan"]
    lines = [
        E2E_TITLE,
        "",
        f"`personabid bench --plan {plan['name']}`, {results['started_utc']}, {results['seconds']:.0f} s. "
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}, grpcio {m['grpcio']}, faiss {m['faiss']}; load average "
        f"{m['loadavg_start'][0]:.1f} at the start, {m['loadavg_end'][0]:.1f} at the end (the machine is "
        "shared: read every figure against the floor beside it). Server and load processes share the "
        f"cores: {plan['load_processes']} load processes, closed loop {plan['concurrency']} calls in "
        f"flight each; windows of {plan['duration']:g} s after {plan['warmup']:g} s of warm-up; medians of "
        f"{plan['repeats']} runs, bidder and echo alternating.",
        "",
        "### The floors: Python gRPC and HTTP echoes, same requests, same server setup",
        "",
        "gRPC: a grpc.aio server answering a fixed typical BidResponse (`personabid.bench.echo`). HTTP: "
        "uvicorn with httptools and a raw ASGI callable on the event loop of a grpc.aio server, as the "
        "bidder's OpenRTB door is served, reading and decoding each JSON body and answering a fixed typical "
        "BidResponse as JSON (`personabid.bench.http_echo`); the load POSTs the same users as OpenRTB JSON "
        "over keep-alive connections (aiohttp, no gzip).",
        "",
        "| floor | throughput | p50 | p99 | p99.9 | max | server CPU per request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for rpc, f in s["floor"].items():
        if not f:
            continue  # results from before the HTTP door
        lines.append(
            _row(
                FLOOR_LABELS.get(rpc, rpc),
                _rate(f.get("throughput_rps")),
                *(f"{_us(f.get(k))} us" for k in ("p50_us", "p99_us", "p99_9_us", "max_us")),
                f"{_us(f.get('server_cpu_us_per_request'))} us",
            )
        )
    lines += [
        "",
        "### The bidder against the floor (one worker)",
        "",
        "gRPC loads against the gRPC echo, HTTP loads (POST /openrtb2/bid) against the HTTP echo.",
        "",
        "| campaigns | load | throughput | x floor | p50 | p99 | x floor p99 | p99.9 | max | no-bid | errors "
        "| server CPU/req (floor) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "unary_closed": "gRPC unary, closed",
        "stream_closed": "gRPC stream, closed",
        "unary_open": "gRPC unary, open at {}/s",
        "http_closed": "HTTP, closed",
        "http_open": "HTTP, open at {}/s",
    }
    for campaigns, by_load in s["bidder"].items():
        for key, template in labels.items():
            b = by_load.get(key, {})
            if not b.get("runs"):
                continue  # results from before the HTTP door
            label = template.format(f"{b.get('offered_rps') or 0:,.0f}")
            lines.append(
                _row(
                    f"{int(campaigns):,}",
                    label,
                    _rate(b.get("throughput_rps")),
                    _x(b.get("throughput_ratio")),
                    f"{_us(b.get('p50_us'))} us",
                    f"{_us(b.get('p99_us'))} us",
                    _x(b.get("p99_ratio")),
                    f"{_us(b.get('p99_9_us'))} us",
                    f"{_us(b.get('max_us'))} us",
                    _pct(b.get("no_bid_rate")),
                    _pct(b.get("error_rate")),
                    f"{_us(b.get('server_cpu_us_per_request'))} "
                    f"({_us(b.get('floor_server_cpu_us_per_request'))}) us",
                )
            )
    w, n = s["workers"], plan["workers"]
    lines += [
        "",
        f"### Workers: 1 against {plan['workers']} ({plan['workers_size']:,} campaigns, closed loop)",
        "",
        _row("service", "rpc", "1 worker", f"{n} workers", "speedup", "p99, 1", f"p99, {n}"),
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("echo", "bidder"):
        for rpc in ("unary", "stream"):
            one, many = w["by_count"]["1"][name][rpc], w["by_count"][str(plan["workers"])][name][rpc]
            lines.append(
                _row(
                    name,
                    rpc,
                    _rate(one.get("throughput_rps")),
                    _rate(many.get("throughput_rps")),
                    _x(w["speedup"][name][rpc]),
                    f"{_us(one.get('p99_us'))} us",
                    f"{_us(many.get('p99_us'))} us",
                )
            )
    lines += [
        "",
        f"### Open loop: offered load against latency ({plan['sweep_size']:,} campaigns, unary, Poisson)",
        "",
        "| service | offered | answered | p50 | p99 | p99.9 | errors | sent late by, p50 / p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, points in s["sweep"]["curves"].items():
        for p in points:
            lines.append(
                _row(
                    name,
                    _rate(p["offered_rps"]),
                    _rate(p["throughput_rps"]),
                    *(f"{_us(p[k])} us" for k in ("p50_us", "p99_us", "p99_9_us")),
                    _pct(p["error_rate"]),
                    f"{_us(p['send_lag_p50_us'])} / {_us(p['send_lag_p99_us'])} us",
                )
            )
    lines.append("")
    for name, k in s["sweep"]["knee"].items():
        lines.append(
            f"- Knee, {name}: "
            + (f"{_rate(k['offered_rps'])} offered, p99 {_us(k['p99_us'])} us." if k else "not reached.")
        )
    for name, o in s["open_stream"].items():
        lines.append(
            f"- Open-loop stream, {name}: {_rate(o.get('throughput_rps'))}, p99 {_us(o.get('p99_us'))} us "
            f"(at {plan['open_stream_fraction']:.0%} of its closed-loop unary throughput)."
        )
    c, g, prof = s["cost_per_request_us"], s["goals"], results["profile"]["median_us"]
    lines += [
        "",
        f"### Where a request's time goes ({c['campaigns']:,} campaigns)",
        "",
        f"Server CPU per unary request: bidder {_us(c['server_cpu_bidder'])} us, "
        f"echo {_us(c['server_cpu_echo'])} us. "
        f"In process, outside gRPC and HTTP (medians of {results['profile']['requests']} requests, "
        f"{results['profile']['index_type']} index; `total` is the gRPC door's path, `total_http` the HTTP "
        "door's, with `decode_json` in place of `decode` and `to_auction`, `encode_json` in place of "
        "`to_response` and `encode`):",
        "",
        "| part | median |",
        "|---|---:|",
    ]
    lines += [f"| {part} | {value:.1f} us |" for part, value in prof.items()]
    idle = ", ".join(f"{int(k):,} campaigns {_us(v)} ms/s" for k, v in s["idle_cpu_ms_per_s"].items())
    lines += [
        "",
        f"So a request's {_us(c['server_cpu_bidder'])} us of server CPU is: gRPC and asyncio as the echo "
        f"pays them, {_us(c['server_cpu_echo'])} us; the path above, {_us(c['in_process_path'])} us; the "
        f"bidder's background work shared out per request, {_us(c['background'])} us (with no load at all, "
        f"once started, it takes {idle}: each second the spend refresh reads the campaigns whose spend "
        "moved, and each pacing interval the controller steps every budgeted campaign); and "
        f"{_us(c['residual'])} us not accounted for in isolation (the server's caches and cores shared with "
        "the load processes, and GIL hand-offs between the event loop and the background threads). "
        "Top functions: `profile.txt` in the results directory.",
        "",
    ]
    h = c.get("http", {})
    if h.get("server_cpu_bidder") is not None:
        lines += [
            f"Over HTTP, a request's {_us(h['server_cpu_bidder'])} us is: HTTP (uvicorn) and asyncio as the "
            f"HTTP echo pays them, {_us(h['server_cpu_echo'])} us; the path above with the door's JSON "
            f"decoding and encoding in place of the gRPC copies and protobuf (`total_http`), "
            f"{_us(h['in_process_path'])} us; background work, {_us(h['background'])} us; and "
            f"{_us(h['residual'])} us not accounted for in isolation.",
            "",
        ]
    lines += [
        f"Goals at {g['campaigns']:,} campaigns: unary throughput {_x(g['unary_throughput_ratio'])} the echo "
        f"floor (goal 0.80x: {'met' if g['unary_goal_met'] else 'not met'}); streaming throughput "
        f"{_x(g['stream_throughput_over_unary_floor'])} the unary echo floor (goal above 1x: "
        f"{'met' if g['stream_goal_met'] else 'not met'}).",
        "",
        "Plots: `latency_cdf.png`, `p99_vs_offered_load.png` in the results directory.",
        "",
    ]
    return "\n".join(lines)


def micro_section(micro: dict[str, Any]) -> str:
    info = micro.get("machine_info", {})
    lines = [
        MICRO_TITLE,
        "",
        f"pytest-benchmark ({micro.get('datetime', '')[:19]}), {info.get('cpu', {}).get('brand_raw', '')}, "
        "one FAISS thread; medians (IQR) in microseconds. Each benchmark checks its answer before it is "
        "timed.",
        "",
        "| benchmark | median | IQR | rounds | checked |",
        "|---|---:|---:|---:|---|",
    ]
    for bench in sorted(micro.get("benchmarks", []), key=lambda b: b["fullname"]):
        stats = bench["stats"]
        checked = ", ".join(f"{k} {v}" for k, v in bench.get("extra_info", {}).items())
        median, iqr = f"{stats['median'] * 1e6:,.1f}", f"{stats['iqr'] * 1e6:,.1f}"
        lines.append(_row(f"`{bench['name']}`", median, iqr, stats["rounds"], checked))
    lines.append("")
    return "\n".join(lines)


def update_sections(path: Path, sections: list[str]) -> None:
    """Replace (or append) each section, by its first line (its "## " heading), in the file at `path`."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    for section in sections:
        title = section.splitlines()[0]
        pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
        body = section.rstrip("\n") + "\n\n"
        if pattern.search(text):
            # A function, so that the body is taken as it is (no group references, no escapes).
            def replacement(_match: re.Match[str], body: str = body) -> str:
                return body

            text = pattern.sub(replacement, text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text.rstrip("\n") + "\n")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
