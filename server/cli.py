"""The `personabid` command line: the serving commands (serve, demo, call, health, admin) and the offline
tools (index, train, evaluate, bench, profiles, report), each tool registering its own subcommands."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
import numpy as np

from personabid import __version__
from personabid.config import Settings, load_settings
from personabid.errors import PersonabidError

DEFAULT_ADDR = Settings.grpc_addr
HTTP_ADDR_ENV = "PERSONABID_HTTP_ADDR"
HTTP_BID_PATH = "/openrtb2/bid"  # the door's (httpdoor.BID_PATH), not imported: the CLI loads lazily
ADDR_ENV = "PERSONABID_GRPC_ADDR"
# The offline tools, by subcommand: each module registers its subcommands beside the code they drive. A
# command line imports only the tool it names, so that `personabid serve` loads no index build or training
# code (and starts sooner); one that names no tool (--help, a mistyped command) registers all, to list them.
TOOLS = {
    "index": "personabid.index.commands",
    "train": "personabid.training.commands",
    "evaluate": "personabid.training.commands",
    "bench": "personabid.bench.commands",
    "profiles": "personabid.training.profiles.commands",
    "report": "personabid.training.reports.commands",
    "simulate": "personabid.training.simulation.commands",
}


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = _parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("PERSONABID_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        return int(args.run(args) or 0)
    except PersonabidError as exc:
        print(f"personabid: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A missing or unreadable input (or an output that cannot be written): one line naming the file,
        # not a traceback. Every command reads its inputs through the OS, so this one place covers all.
        print(f"personabid: {_describe(exc)}", file=sys.stderr)
        return 2


def _describe(error: OSError) -> str:
    if error.filename is None:
        return str(error)
    reason = error.strerror or type(error).__name__
    if error.filename2 is not None:
        return f"{error.filename} -> {error.filename2}: {reason}"
    return f"{error.filename}: {reason}"


def _parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser of every serving command, and of the offline tools `argv` needs (see TOOLS)."""
    parser = argparse.ArgumentParser(prog="personabid", description="Ad-audience matching and bid decisions.")
    parser.add_argument("--version", action="version", version=f"personabid {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve gRPC bids and Prometheus metrics",
        description="Serve the Bidder gRPC service and /metrics. Settings: flags, then PERSONABID_* "
        "environment variables, then the TOML file of --config (or PERSONABID_CONFIG), then defaults.",
    )
    serve.add_argument("--config", type=Path, help="TOML file of settings (same names as the flags, with _)")
    serve.add_argument(
        "--grpc-addr", help=f"gRPC listen address (env PERSONABID_GRPC_ADDR; default {DEFAULT_ADDR})"
    )
    serve.add_argument(
        "--http-addr",
        help=f"OpenRTB HTTP door's listen address (env {HTTP_ADDR_ENV}; default {Settings.http_addr})",
    )
    serve.add_argument(
        "--metrics-addr",
        help=f"metrics listen address (env PERSONABID_METRICS_ADDR; default {Settings.metrics_addr})",
    )
    serve.add_argument(
        "--admin-addr",
        help=f"Admin service address (env PERSONABID_ADMIN_ADDR; default {Settings.admin_addr})",
    )
    serve.add_argument(
        "--watch-seconds", type=float, help="check the artifact roots for new versions this often (0: never)"
    )
    serve.add_argument(
        "--redis-url",
        help="shared spend state for several workers or machines (default: in this process), and the "
        "profiles with --profile-store redis",
    )
    serve.add_argument(
        "--event-log",
        type=Path,
        help="the event log's name: bids, wins, notices, clicks and conversions go to one file per UTC day "
        "of the server's clock beside it, NAME-YYYY-MM-DD.jsonl (default DATA_DIR/events.jsonl)",
    )
    serve.add_argument("--data-dir", type=Path, help=f"demo world directory (default {Settings.data_dir})")
    serve.add_argument(
        "--index-path", type=Path, help="index artifact root or version (default DATA_DIR/index)"
    )
    serve.add_argument(
        "--model-path", type=Path, help="model artifact root or version (default DATA_DIR/model)"
    )
    serve.add_argument(
        "--profiles-path", type=Path, help="user profile artifact root or version (default DATA_DIR/profiles)"
    )
    serve.add_argument(
        "--profile-store",
        choices=("embedded", "redis", "none"),
        help="where profiles are looked up: the artifact (default), Redis (--profile-redis-url, else "
        "--redis-url), or nowhere",
    )
    serve.add_argument("--profile-redis-url", help="the Redis holding the profiles (default: --redis-url)")
    serve.add_argument("--top-k", type=int, help=f"personas matched per request (default {Settings.top_k})")
    serve.add_argument(
        "--min-tmax-ms", type=int, help=f"shortest tmax worth deciding (default {Settings.min_tmax_ms})"
    )
    serve.add_argument("--grace-seconds", type=float, help="time calls in flight get to finish on SIGTERM")
    serve.add_argument(
        "--workers",
        type=int,
        help="serving processes sharing the gRPC port, one per core (env PERSONABID_WORKERS; default 1); "
        "with more than one, give --grpc-addr a port: worker i serves metrics on the metrics port + i, "
        "worker 0 serves Admin",
    )
    serve.add_argument(
        "--clock-speed",
        type=float,
        help="run the server's clock this many times faster than real time, from its start (budgets, "
        "pacing, schedules and the event log's days follow it; for market simulations; default 1)",
    )
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo",
        help="build the demo world",
        description="Generate the seeded demo world: index and CTR model.",
    )
    demo.add_argument("--out", type=Path, default=Settings.data_dir, help="directory (default %(default)s)")
    demo.add_argument(
        "--campaigns", type=int, default=10_000, help="number of campaigns (default %(default)s)"
    )
    demo.add_argument("--impressions", type=int, default=400_000, help="simulated training impressions")
    demo.add_argument(
        "--people",
        type=int,
        default=20_000,
        help="people with ids, behaviour and profiles (default %(default)s)",
    )
    demo.add_argument("--seed", type=int, default=7, help="world seed (default %(default)s)")
    demo.add_argument("--if-missing", action="store_true", help="do nothing if the directory holds a world")
    demo.set_defaults(run=_demo)

    call = commands.add_parser(
        "call",
        help="send one bid request and print the response",
        description="Send a BidRequest given as OpenRTB 2.5/2.6 JSON (a file, or - for standard input), or "
        "with --sample one for a random user of the demo world, over gRPC or (--http) to the HTTP door, and "
        "print the BidResponse as JSON.",
    )
    call.add_argument("request", nargs="?", help="JSON request file, or - for standard input")
    call.add_argument(
        "--sample",
        action="store_true",
        help="what an exchange sends for a random person of the demo world: an id and the context",
    )
    call.add_argument(
        "--tags",
        action="store_true",
        help="with --sample: send the person's tags (user.tags) instead of their id",
    )
    call.add_argument("--dense", action="store_true", help="with --sample: send user.tag_vector, no id")
    call.add_argument("--seed", type=int, help="with --sample: random seed")
    call.add_argument(
        "--data-dir", type=Path, default=Settings.data_dir, help="demo world (default %(default)s)"
    )
    call.add_argument(
        "--dry-run", action="store_true", help="print the request as JSON instead of sending it"
    )
    call.add_argument(
        "--http",
        action="store_true",
        help=f"POST the JSON to the HTTP door ({HTTP_BID_PATH}) instead of calling gRPC",
    )
    call.add_argument(
        "--addr",
        help=f"server address (else ${ADDR_ENV}, else {DEFAULT_ADDR}; with --http: else "
        f"${HTTP_ADDR_ENV}, else {Settings.http_addr})",
    )
    call.add_argument("--timeout", type=float, default=2.0, help="seconds (default %(default)s)")
    call.set_defaults(run=_call)

    check = commands.add_parser(
        "health", help="check the server's health", description="Exit 0 when the Bidder service is SERVING."
    )
    check.add_argument("--addr", help=f"server address (else ${ADDR_ENV}, else {DEFAULT_ADDR})")
    check.add_argument("--timeout", type=float, default=2.0, help="seconds (default %(default)s)")
    check.set_defaults(run=_health)

    admin = commands.add_parser(
        "admin",
        help="operate a running server: status, live reloads, experiments",
        description="Talk to a running server's Admin service, at --addr, else $PERSONABID_ADMIN_ADDR, "
        "else the default. `experiments` lists the A/B experiments in force with their traffic; "
        "`put-experiment FILE` puts an experiment file in force (a changed one must raise its version); "
        "`end-experiment NAME` ends one.",
    )
    admin.add_argument(
        "action",
        choices=(
            "status",
            "reload-index",
            "reload-model",
            "reload-profiles",
            "experiments",
            "put-experiment",
            "end-experiment",
        ),
    )
    admin.add_argument(
        "target", nargs="?", help="put-experiment: the experiment's TOML file; end-experiment: its name"
    )
    admin.add_argument("--version", default="", help="reload this version instead of the root's CURRENT")
    admin.add_argument(
        "--addr", help=f"Admin address (else $PERSONABID_ADMIN_ADDR, else {Settings.admin_addr})"
    )
    admin.add_argument("--timeout", type=float, default=60.0, help="seconds (default %(default)s)")
    admin.set_defaults(run=_admin)

    for module in _tools(argv, serving=commands.choices):
        importlib.import_module(module).register(commands)
    return parser


def _tools(argv: Sequence[str], serving: Mapping[str, object]) -> list[str]:
    """The modules of TOOLS to register for `argv`: none for a serving command, the named tool's, or
    all of them when the command line names neither."""
    # The top level takes no option with a value, so a command, if any, comes first; an option there
    # (--help, --version) or a mistyped command needs the whole list.
    command = argv[0] if argv else ""
    if command in serving:
        return []
    if command in TOOLS:
        return [TOOLS[command]]
    return list(dict.fromkeys(TOOLS.values()))


def _serve(args: argparse.Namespace) -> int:
    flags = {
        "grpc_addr": args.grpc_addr,
        "http_addr": args.http_addr,
        "metrics_addr": args.metrics_addr,
        "admin_addr": args.admin_addr,
        "watch_seconds": args.watch_seconds,
        "redis_url": args.redis_url,
        "event_log": args.event_log,
        "data_dir": args.data_dir,
        "index_path": args.index_path,
        "model_path": args.model_path,
        "profiles_path": args.profiles_path,
        "profile_store": args.profile_store,
        "profile_redis_url": args.profile_redis_url,
        "top_k": args.top_k,
        "min_tmax_ms": args.min_tmax_ms,
        "grace_seconds": args.grace_seconds,
        "workers": args.workers,
        "clock_speed": args.clock_speed,
    }
    settings = load_settings(flags, config_file=args.config)
    logging.getLogger().setLevel(settings.log_level)
    if settings.workers > 1:
        from personabid.workers import serve_workers

        return serve_workers(settings)
    from personabid.app import serve

    asyncio.run(serve(settings))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from personabid.demo import DemoSpec, build_demo, is_built

    if args.if_missing and is_built(args.out):
        logging.getLogger(__name__).info("demo world already in %s", args.out)
        return 0
    result = build_demo(
        args.out,
        DemoSpec(seed=args.seed, campaigns=args.campaigns, impressions=args.impressions, people=args.people),
    )
    print(json.dumps(result, indent=2))
    return 0


def _addr(args: argparse.Namespace) -> str:
    return args.addr or os.environ.get(ADDR_ENV) or DEFAULT_ADDR


def _call(args: argparse.Namespace) -> int:
    from personabid import client
    from personabid.errors import InvalidRequest
    from personabid.openrtb.codec import encode

    if args.sample == bool(args.request):
        print("personabid call: give a JSON request (FILE or -) or --sample, not both", file=sys.stderr)
        return 2
    if args.sample:
        from personabid.demo import read_people, read_world

        world, rng = read_world(args.data_dir), np.random.default_rng(args.seed)
        if args.tags or args.dense:
            auction = client.sample_auction(world, rng, args.dense)
        else:
            auction = client.exchange_auction(world, read_people(args.data_dir, world), rng)
        body = encode(auction)
    else:
        body = (sys.stdin.read() if args.request == "-" else Path(args.request).read_text()).encode()
    if args.http:
        return _call_http(args, body)
    try:
        request = client.parse_request(body.decode())
    except InvalidRequest as exc:
        print(f"personabid call: not a BidRequest: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(client.to_json(request))
        return 0
    try:
        response = client.bid(_addr(args), request, args.timeout)
    except grpc.RpcError as exc:
        print(f"personabid call: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(client.to_json(response))
    return 0


def _call_http(args: argparse.Namespace, body: bytes) -> int:
    """The request as it stands to the HTTP door: the door reads it, exactly as an exchange's."""
    from personabid import client

    if args.dry_run:
        print(json.dumps(json.loads(body), indent=2))
        return 0
    addr = args.addr or os.environ.get(HTTP_ADDR_ENV) or Settings.http_addr
    status, headers, payload = client.post_http(addr, body, args.timeout)
    if status == 204:
        print(json.dumps({"nbr": int(headers.get("x-nbr", "0"))}, indent=2))
        return 0
    text = payload.decode("utf-8", "replace")
    if status != 200:
        print(f"personabid call: HTTP {status}: {text}", file=sys.stderr)
        return 1
    print(json.dumps(json.loads(text), indent=2))
    return 0


def _health(args: argparse.Namespace) -> int:
    from personabid import client
    from personabid.app import SERVICE_NAME

    try:
        status = client.health_status(_addr(args), SERVICE_NAME, args.timeout)
    except grpc.RpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(status)
    return 0 if status == "SERVING" else 1


def _admin(args: argparse.Namespace) -> int:
    from google.protobuf import json_format
    from google.protobuf.message import Message

    from personabid.v1 import admin_pb2, admin_pb2_grpc

    addr = args.addr or os.environ.get("PERSONABID_ADMIN_ADDR") or Settings.admin_addr
    needs_target = args.action in ("put-experiment", "end-experiment")
    if needs_target != bool(args.target):
        wanted = {"put-experiment": "a TOML FILE", "end-experiment": "an experiment NAME"}.get(args.action)
        print(
            f"personabid admin {args.action}: " + (f"give {wanted}" if wanted else "takes no argument"),
            file=sys.stderr,
        )
        return 2
    answer: Message
    with grpc.insecure_channel(addr) as channel:
        stub = admin_pb2_grpc.AdminStub(channel)
        try:
            if args.action == "status":
                answer = stub.GetStatus(admin_pb2.StatusRequest(), timeout=args.timeout)
            elif args.action == "experiments":
                answer = stub.ListExperiments(admin_pb2.ListExperimentsRequest(), timeout=args.timeout)
            elif args.action == "put-experiment":
                text = Path(args.target).read_text(encoding="utf-8")
                answer = stub.PutExperiment(admin_pb2.PutExperimentRequest(toml=text), timeout=args.timeout)
            elif args.action == "end-experiment":
                answer = stub.EndExperiment(
                    admin_pb2.EndExperimentRequest(name=args.target), timeout=args.timeout
                )
            else:
                reload = {
                    "reload-index": stub.ReloadIndex,
                    "reload-model": stub.ReloadModel,
                    "reload-profiles": stub.ReloadProfiles,
                }[args.action]
                answer = reload(admin_pb2.ReloadRequest(version=args.version), timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"personabid admin: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    print(json_format.MessageToJson(answer, preserving_proto_field_name=True, indent=2))
    return 0
