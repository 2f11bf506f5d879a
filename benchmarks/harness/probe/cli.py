"""The command line: which probes run, with which counts (--quick: about a minute in all), and the report."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from personabid.bench.probe.extreme import probe_extreme
from personabid.bench.probe.redis_outage import probe_redis
from personabid.bench.probe.report import print_report
from personabid.bench.probe.results import ProbeResult
from personabid.bench.probe.server import Context
from personabid.bench.probe.sigterm import probe_sigterm
from personabid.bench.probe.streams import probe_streams
from personabid.bench.probe.undecodable import probe_undecodable
from personabid.demo import read_world


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    return out.stdout.strip()


PROBES = ("undecodable", "extreme", "streams", "sigterm", "redis")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m personabid.bench.probe",
        description="Probe a personabid server (started here, on 127.0.0.1) as an exchange and an attacker "
        "would, and report what it does.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var/demo"), help="demo world (%(default)s)")
    parser.add_argument("--out-dir", type=Path, help="server logs and defect examples (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--probes", default=",".join(PROBES), help="comma-separated subset of %(default)s")
    parser.add_argument("--quick", action="store_true", help="small counts: about a minute in all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per probe (%(default)s)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight (%(default)s)")
    parser.add_argument("--undecodable", type=int, default=20_000, help="bodies sent (%(default)s)")
    parser.add_argument("--extreme", type=int, default=20_000, help="requests sent (%(default)s)")
    parser.add_argument("--streams", type=int, default=200, help="concurrent BidStreams (%(default)s)")
    parser.add_argument("--stream-requests", type=int, default=50, help="requests per stream (%(default)s)")
    parser.add_argument("--cancel-share", type=float, default=0.3, help="streams cancelled (%(default)s)")
    parser.add_argument("--sigterm-repeats", type=int, default=3, help="(%(default)s)")
    parser.add_argument("--sigterm-threads", type=int, default=8, help="load threads (%(default)s)")
    parser.add_argument("--sigterm-load", type=float, default=3.0, help="seconds of load before the signal")
    parser.add_argument("--sigterm-max-calls", type=int, default=20_000, help="per thread (%(default)s)")
    parser.add_argument("--grace-seconds", type=float, help="the server's --grace-seconds (its default)")
    parser.add_argument("--redis-threads", type=int, default=4, help="(%(default)s)")
    parser.add_argument("--redis-phase", type=float, default=5.0, help="seconds per outage phase")
    args = parser.parse_args(argv)
    if args.quick:
        args.undecodable = min(args.undecodable, 2_000)
        args.extreme = min(args.extreme, 2_000)
        args.streams = min(args.streams, 40)
        args.stream_requests = min(args.stream_requests, 10)
        args.sigterm_repeats = min(args.sigterm_repeats, 1)
        args.sigterm_load = min(args.sigterm_load, 1.5)
        args.redis_phase = min(args.redis_phase, 2.0)
        args.time_limit = min(args.time_limit, 30.0)
    unknown = set(args.probes.split(",")) - set(PROBES)
    if unknown:
        parser.error(f"unknown probes {sorted(unknown)}; choose from {PROBES}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="personabid-probe-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = args.data_dir.resolve()
    world = read_world(data_dir)
    ctx = Context(sys.executable, data_dir, out_dir.resolve(), args.seed, world, args.concurrency)
    started = dt.datetime.now(dt.UTC)
    changed = len(_git("status", "--porcelain").splitlines())
    header = [
        ("started (UTC)", started.isoformat(timespec="seconds")),
        ("git HEAD", f"{_git('rev-parse', '--short', 'HEAD')} ({changed} paths changed or untracked)"),
        ("data dir", str(data_dir)),
        ("logs and defect examples", str(ctx.out_dir)),
        ("mode", "quick" if args.quick else "full"),
    ]
    chosen = args.probes.split(",")
    runs: dict[str, Callable[[], ProbeResult]] = {
        "undecodable": lambda: probe_undecodable(ctx, args.undecodable, args.time_limit),
        "extreme": lambda: probe_extreme(ctx, args.extreme, args.time_limit),
        "streams": lambda: probe_streams(
            ctx, args.streams, args.stream_requests, args.cancel_share, args.time_limit
        ),
        "sigterm": lambda: probe_sigterm(
            ctx,
            args.sigterm_repeats,
            args.sigterm_threads,
            args.sigterm_load,
            args.sigterm_max_calls,
            args.grace_seconds,
        ),
        "redis": lambda: probe_redis(ctx, args.redis_threads, args.redis_phase),
    }
    results = []
    for name in PROBES:
        if name not in chosen:
            continue
        began = time.monotonic()
        print(f"running {name}...", file=sys.stderr, flush=True)
        try:
            result = runs[name]()
        except Exception as exc:  # one probe's failure to run is reported; the others still run
            result = ProbeResult(name)
            result.defects.append(f"probe failed to run: {type(exc).__name__}: {exc}")
        if not result.seconds:
            result.seconds = time.monotonic() - began
        results.append(result)
    print_report(results, header)
    if args.json:
        document = {
            "header": dict(header),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "probes": [
                {"name": r.name, "seconds": r.seconds, "results": r.data, "defects": r.defects}
                | {"findings": r.findings, "notes": r.notes}
                for r in results
            ],
        }
        args.json.write_text(json.dumps(document, indent=2, default=str))
    return 1 if any(r.defects for r in results) else 0
