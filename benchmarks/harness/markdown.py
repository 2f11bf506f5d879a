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


def _busy(run: dict[str, Any]) -> str:
    """How busy a run kept its server's core: a request's CPU costs more at a lower rate (fewer calls per
    wakeup of the event loop, caches emptied between them), so half the maximum rate is not half busy."""
    cpu, rate = run.get("server_cpu_us_per_request"), run.get("throughput_rps")
    if not cpu or not rate:
        return ""
    return (
        f" The bidder's server was then busy {100 * cpu * rate / 1e6:.0f} % of a core: "
        f"{_us(cpu)} us of CPU a request at that rate."
    )


FLOOR_LABELS = {"unary": "gRPC echo, unary", "stream": "gRPC echo, stream", "http": "HTTP echo, POST"}


ENTRY_FRAMES = (
    "process ",
    "<module> ",
    "_run_code ",
    "_run_module_as_main ",
    "main (server/cli.py)",
    "_serve (server/cli.py)",
    "run (asyncio/runners.py)",
    "Runner.run ",
    "BaseEventLoop.run_until_complete ",
    "BaseEventLoop.run_forever ",
)


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    """The targets' table: each beside its figure before the work on it and in this run."""
    lines = ["| target | goal | today | now | |", "|---|---|---:|---:|---|"]
    for t in targets:
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "not met")
        lines.append(_row(t["target"], t["goal"], t["today_text"], t["now_text"], verdict))
    return lines


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
    ]
    if s.get("targets"):
        lines += [
            "### Targets",
            "",
            "Goals to measure, not assertions. Today: the last full run before the work on them; now: this "
            "run. Ratios are to the floor of the same protocol measured in the same run.",
            "",
            *targets_table(s["targets"]),
            "",
        ]
    lines += [
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
    half = s.get("half_load", {})
    if half.get("offered_rps"):
        bidder = half["bidder"]
        lines.append(
            f"- At half the bidder's closed-loop maximum, {_rate(half['offered_rps'])} offered to both: p99 "
            f"bidder {_us(bidder.get('p99_us'))} us, echo {_us(half['echo'].get('p99_us'))} us "
            f"({_x(half.get('p99_ratio'))}).{_busy(bidder)}"
        )
    lines += _redis_lines(s.get("redis", {}), plan)
    lines += _recall_lines(s.get("recall", {}))
    c, profile = s["cost_per_request_us"], results["profile"]
    prof, means = profile["median_us"], profile.get("mean_us", {})
    lines += [
        "",
        f"### Where a request's time goes ({c['campaigns']:,} campaigns)",
        "",
        f"In process, outside gRPC and HTTP ({profile['requests']} requests, {profile['index_type']} index, "
        f"profiles {profile.get('profile_store', 'none')}; `total` is the gRPC door's path, `total_http` the "
        "HTTP door's, with `decode_json` in place of `decode` and `to_auction`, `encode_json` in place of "
        "`to_response` and `encode`; `servicer_call` is the real servicer's call over the same path on an "
        "event loop, `servicer_other` what it adds to `total`):",
        "",
        "| part | median | mean |",
        "|---|---:|---:|",
    ]
    for part, value in prof.items():
        lines.append(_row(part, f"{value:.1f} us", f"{means[part]:.1f} us" if part in means else "-"))
    if "servicer_other" in means and "servicer_other" not in prof:
        lines.append(_row("servicer_other", "-", f"{means['servicer_other']:.1f} us"))
    idle = ", ".join(f"{int(k):,} campaigns {_us(v)} ms/s" for k, v in s["idle_cpu_ms_per_s"].items())
    lines += [
        "",
        "A unary request's server CPU (a mean: CPU time over the window's requests), part by part (means); "
        "the echo's CPU per request grows as its rate falls (fewer completions per event-loop wakeup), so "
        "the accounting that counts is at one offered rate for both, half the bidder's maximum "
        f"({_us(c.get('same_rate', {}).get('offered_rps'))}/s); the closed loop's, each at its own maximum, "
        "is beside:",
        "",
        "| | gRPC, same rate | gRPC, closed loop | HTTP, closed loop |",
        "|---|---:|---:|---:|",
    ]
    h = c.get("http", {})
    same = c.get("same_rate", {})
    rows = (
        ("server CPU per request, bidder", "server_cpu_bidder"),
        (
            "- the floor: its echo's server CPU per request (the transport, asyncio, decode and encode)",
            "server_cpu_echo",
        ),
        (
            "- the bidder's own path, as the running server counts its CPU (under load: its cache misses "
            "included)",
            "in_server_path",
        ),
        ("- background work (spend refresh, pacing) shared out per request", "background"),
    )
    for label, key in rows:
        lines.append(_row(label, *(f"{_us(source.get(key))} us" for source in (same, c, h))))
    lines += [
        _row(
            "**= unaccounted** (server CPU - echo CPU - parts)",
            f"**{_us(same.get('residual', c.get('unaccounted')))} us**",
            f"**{_us(c.get('residual'))} us**",
            f"**{_us(h.get('residual'))} us**",
        ),
        _row(
            "the same path in process, one request at a time (the table above)",
            *(f"{_us(source.get('in_process_path'))} us" for source in (same, c, h)),
        ),
        _row(
            "its cache misses in process (the core's L1 and L2 emptied before each call)",
            f"{_us(same.get('cache_misses'))} us",
            "-",
            "-",
        ),
        "",
        "The bidder counts its request path's CPU itself (`personabid_bid_cpu_seconds_total`: the thread's "
        "CPU time from the request's conversion to its response and bid log), read before and after each "
        "window; the gRPC door adds the response's copy into its message (`to_response`, in process), the "
        "HTTP door's count is less the JSON decoding the echo does too. What the path costs in the running "
        "server beyond the same path in process is the price of sharing the core with gRPC, the event "
        "loop and the load: caches and branch predictors emptied between calls (in process, emptying the "
        "L1 and L2 before each call gives the estimate below it). With no load at all, once started, the "
        f"bidder takes {idle} (each second the spend refresh reads the campaigns whose spend moved, and "
        "each pacing interval the controller steps every budgeted campaign). What stays unaccounted is the "
        "transport's work beyond the echo's at the same rate: gRPC's and asyncio's per call, which a "
        "larger response and a busier heap make dearer, and GIL hand-offs between the event loop and "
        "gRPC's poller thread. Top functions in process: `profile.txt` in the results directory.",
        "",
    ]
    lines += _handler_length_lines(s.get("handler_length", {}))
    spy = results.get("py_spy")
    if spy:
        lines += [
            f"Sampled under load (py-spy, {spy['seconds']:g} s of a unary closed loop at "
            f"{spy['campaigns']:,} campaigns, {spy['samples']:,} samples of running threads, "
            f"{_us(spy['server_cpu_us_per_request'])} us of server CPU per request; `py_spy_top.txt`), the "
            "functions that take most, on the stack (inclusive) and innermost (self):",
            "",
            "| function | inclusive | us/req | self | us/req |",
            "|---|---:|---:|---:|---:|",
        ]
        own = {row["function"]: row for row in spy["top_self"]}
        # The frames every sample of the event loop has (the process, the entry point, the loop's own
        # run methods) say nothing of where the time goes: left out of the table, kept in the file.
        telling = [row for row in spy["top_inclusive"] if not row["function"].startswith(ENTRY_FRAMES)]
        for row in telling[:20]:
            mine = own.get(row["function"], {})
            lines.append(
                _row(
                    f"`{row['function']}`",
                    _pct(row["share"]),
                    _us(row["us_per_request"]),
                    _pct(mine.get("share")),
                    _us(mine.get("us_per_request")),
                )
            )
        lines.append("")
    lines += [
        "Plots: `latency_cdf.png`, `p99_vs_offered_load.png` in the results directory.",
        "",
    ]
    return "\n".join(lines)


def _handler_length_lines(found: dict[str, Any]) -> list[str]:
    """The handler-length block: the transport's cost with a handler as long as the bidder's path."""
    if not found:
        return []
    echo, bidder = found["echo"], found["bidder"]
    lines = [
        f"### The transport with a handler as long as the bidder's ({found['campaigns']:,} campaigns)",
        "",
        "Closed-loop unary, alternating: the echo; echoes whose calls first work a share of the CPU the "
        "bidder's path took in the catalog block's closed loop (Python allocation and dict work on the "
        "event loop, `--work-us`), then answer as the echo does; and the bidder. A working echo's transport "
        "CPU is its server CPU less its work: what gRPC and asyncio cost a call with a handler that long.",
        "",
        "| service | work a call | throughput | x echo | p99 | server CPU/req | transport CPU/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
        _row(
            "echo",
            "0 us",
            _rate(echo.get("throughput_rps")),
            "1.00x",
            f"{_us(echo.get('p99_us'))} us",
            f"{_us(echo.get('server_cpu_us_per_request'))} us",
            f"{_us(echo.get('server_cpu_us_per_request'))} us",
        ),
    ]
    for level in found["levels"]:
        lines.append(
            _row(
                f"echo working {level['work_share']:g} of the bidder's path",
                f"{_us(level['work_us'])} us",
                _rate(level.get("throughput_rps")),
                _x(level.get("throughput_ratio")),
                f"{_us(level.get('p99_us'))} us",
                f"{_us(level.get('server_cpu_us_per_request'))} us",
                f"{_us(level.get('transport_us'))} us",
            )
        )
    path = bidder.get("path_cpu_us_per_request")
    lines += [
        _row(
            "bidder (its path as it counts it)",
            f"{_us(path)} us",
            _rate(bidder.get("throughput_rps")),
            _x(bidder.get("throughput_ratio")),
            f"{_us(bidder.get('p99_us'))} us",
            f"{_us(bidder.get('server_cpu_us_per_request'))} us",
            "-",
        ),
        "",
        f"The bidder's server CPU per request less the transport's at its handler's length "
        f"({_us(found.get('transport_at_path'))} us, between the working echoes on either side), its path "
        f"({_us(path)} us) with the response's copy into its message ({_us(found.get('to_response'))} us) "
        f"and its background work ({_us(found.get('background'))} us): **{_us(found.get('unaccounted'))} us "
        "unaccounted**. Against the echo alone (the table before) the transport's growth with the "
        "handler's length counts as unaccounted; here it does not.",
        "",
    ]
    return lines


def _redis_lines(redis: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    if not redis or not redis.get("unary", {}).get("redis"):
        return []  # results from before the Redis block
    lines = [
        "",
        f"### Spend state in Redis ({plan['sweep_size']:,} campaigns, one worker, closed loop)",
        "",
        "The bidder with `--redis-url` (a redis-server on 127.0.0.1, no persistence) against the bidder "
        "with its spend state in process, alternating; the Redis server's own CPU is beside, not in the "
        "bidder's.",
        "",
        "| rpc | in process | with Redis | ratio | p99, in process | p99, Redis "
        "| server CPU/req, in process | with Redis | redis-server CPU/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rpc, r in redis.items():
        memory, shared = r["in_process"], r["redis"]
        lines.append(
            _row(
                rpc,
                _rate(memory.get("throughput_rps")),
                _rate(shared.get("throughput_rps")),
                _x(r.get("throughput_ratio")),
                f"{_us(memory.get('p99_us'))} us",
                f"{_us(shared.get('p99_us'))} us",
                f"{_us(memory.get('server_cpu_us_per_request'))} us",
                f"{_us(shared.get('server_cpu_us_per_request'))} us",
                f"{_us(r.get('redis_server_cpu_us_per_request'))} us",
            )
        )
    first = redis.get("unary", {}).get("first_window", {})
    if first.get("redis"):
        lines += [
            "",
            "Measured after one unary window of each worker since it started, reported apart: in that "
            f"first window, {_rate(first.get('redis'))} with Redis against "
            f"{_rate(first.get('in_process'))} in process ({_x(first.get('throughput_ratio'))}). A fresh "
            "worker leases each campaign's slice the first "
            "time the campaign is a candidate: its keeper asks for the slices of every campaign new since "
            "its last turn in one round trip, one script call for up to 500 of them (spend/redis_store.py, "
            "LEASE); once its candidates hold leases, the keeper writes bids and tops up the few running "
            "low.",
        ]
    return lines


def _recall_lines(recall: dict[str, Any]) -> list[str]:
    if not recall:
        return []
    lines = [
        "",
        "### Recall of the match on user-like queries",
        "",
        "Queries as an exchange sends them for the world's demo people (their synced id, the page, the "
        "device, the country), made into user vectors by the server's own Decider (profile, segments, "
        "context, blended); searched in the world's index at its serving parameters, against exact search "
        "over the index's vectors. Beside: the load's requests (users with their tags, no profile), and "
        "the build's own measurement on personas plus noise.",
        "",
        "| campaigns | index | parameters | queries | profiles found | recall@k, user-like | load requests "
        "| personas plus noise | target |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for campaigns, r in sorted(recall.items(), key=lambda item: int(item[0])):
        params = ", ".join(f"{k} {v}" for k, v in r["index_params"].items()) or "-"
        lines.append(
            _row(
                f"{int(campaigns):,}",
                r["index_type"],
                params,
                r["queries"],
                _pct(r.get("profiles_found")),
                f"{r['recall']:.4f}" if r.get("recall") is not None else "-",
                f"{r['load_requests_recall']:.4f}" if r.get("load_requests_recall") is not None else "-",
                f"{r['persona_noise_recall']:.4f}",
                f"{r['target']:.2f}",
            )
        )
    return lines


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
