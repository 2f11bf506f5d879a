"""`personabid simulate`: its arguments, and the run from them."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from personabid.config import Settings, load_settings
from personabid.errors import ConfigError

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "simulate",
        help="drive a running server through a simulated market day",
        description="Send a running server demo-world traffic on its (compressed) clock: the world's people "
        "with their ids, arriving with a daily and hourly pattern; other bidders drawn from a clearing-price "
        "model per slot size and country (first- or second-price, with a floor); win, billing and loss "
        "notices, clicks and conversions (with an order value) drawn from the world's ground truth and sent "
        "back through the server's own notice paths. Ends with a summary and the report commands for the "
        "run's window; writes OUT/summary.json and OUT/truth.json.",
    )
    parser.add_argument(
        "--hours", type=float, default=24.0, help="hours of the SERVER's clock (default %(default)s)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=50.0,
        help="bid requests per real second, on average (the time of day shapes it; default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw (default %(default)s)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the summaries go")
    parser.add_argument(
        "--experiment",
        type=Path,
        metavar="FILE",
        help="an experiment (TOML) to put in force (Admin PutExperiment) before the traffic",
    )
    parser.add_argument("--door", choices=("http", "grpc"), default="http", help="default %(default)s")
    parser.add_argument(
        "--target",
        metavar="HOST:PORT",
        help=f"the server's door (http: $PERSONABID_HTTP_ADDR, else {Settings.http_addr}; grpc: "
        f"$PERSONABID_GRPC_ADDR, else {Settings.grpc_addr})",
    )
    parser.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help="the server's Admin service, for its clock and experiments ($PERSONABID_ADMIN_ADDR, else "
        f"{Settings.admin_addr})",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="real seconds at most (default %(default)s)"
    )
    parser.add_argument("--max-requests", type=int, help="bid requests at most")
    parser.add_argument(
        "--data-dir", type=Path, default=Settings.data_dir, help="the demo world (default %(default)s)"
    )
    parser.add_argument(
        "--events",
        type=Path,
        metavar="PATH",
        help="the server's event log, for the report commands printed (default: the directory of the "
        "event_log setting for --data-dir)",
    )
    market = parser.add_argument_group("market")
    market.add_argument(
        "--auction",
        choices=("first", "second", "mixed"),
        default="mixed",
        help="the exchanges' auctions (mixed: half of them each; default %(default)s)",
    )
    market.add_argument(
        "--market-cpm",
        type=float,
        default=5.0,
        help="median competing CPM (USD) of a 300x250 in the richest countries (default %(default)s)",
    )
    market.add_argument(
        "--floor-share",
        type=float,
        default=0.25,
        help="the floor, as a share of the bucket's median competing CPM (default %(default)s)",
    )
    market.add_argument(
        "--min-to-win-share",
        type=float,
        default=0.5,
        help="share of exchanges that tell a loser the price to win (default %(default)s)",
    )
    market.add_argument(
        "--anonymous-share",
        type=float,
        default=0.1,
        help="share of requests without a user id (default %(default)s)",
    )
    parser.add_argument(
        "--flat",
        action="store_true",
        help="no daily or hourly pattern: the same rate at every hour (a load test, a steady comparison)",
    )
    parser.add_argument(
        "--conversion-scale",
        type=float,
        default=1.0,
        help="every conversion probability times this (capped at 1), for more conversions from a short run "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="calls in flight at most (default %(default)s)"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per call (default %(default)s)")
    parser.set_defaults(run=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from personabid.demo import WORLD_FILE, read_people, read_world
    from personabid.training.simulation import admin, arms, doors, market, summary
    from personabid.training.simulation.driver import Plan, Simulation
    from personabid.training.simulation.outcomes import Behaviour, GroundTruth
    from personabid.training.simulation.traffic import Audience, Diurnal

    try:
        diurnal = Diurnal.flat() if args.flat else Diurnal()
        plan = Plan(
            args.hours, args.rate, args.seed, args.max_seconds, args.max_requests, args.concurrency, diurnal
        )
        behaviour = Behaviour(conversion_scale=args.conversion_scale)
        exchanges = market.exchanges(args.auction, args.min_to_win_share)
        prices = market.Market(args.seed, args.market_cpm, args.floor_share)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not (args.data_dir / WORLD_FILE).is_file():
        raise ConfigError(
            f"--data-dir {args.data_dir}: no demo world ({WORLD_FILE}); build one with `personabid demo` "
            "(make run does)"
        )
    settings = load_settings({"data_dir": args.data_dir})
    world = read_world(args.data_dir)
    people = read_people(args.data_dir, world)
    campaigns = int(json.loads((args.data_dir / WORLD_FILE).read_text())["campaigns"])
    truth = GroundTruth(world, campaigns, args.seed, behaviour)
    try:
        audience = Audience(world, people, args.seed, args.anonymous_share)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    split, toml = (None, "")
    if args.experiment is not None:
        split, toml = arms.read_split(args.experiment)
    pseudonymize = arms.read_pseudonymizer(settings.key_file)
    if split is not None and pseudonymize is None:
        log.warning("no pseudonymisation key at %s: users' arms cannot be told here", settings.key_file)
    admin_addr = args.admin or os.environ.get("PERSONABID_ADMIN_ADDR") or settings.admin_addr
    if args.door == "http":
        target = args.target or os.environ.get("PERSONABID_HTTP_ADDR") or settings.http_addr
        door: doors.Door = doors.HttpDoor(target, args.timeout)
    else:
        target = args.target or os.environ.get("PERSONABID_GRPC_ADDR") or settings.grpc_addr
        door = doors.GrpcDoor(target, args.timeout)
    experiment_file = None
    if split is not None:
        admin.put_experiment(admin_addr, toml)
        experiment_file = summary.save_experiment(args.out, toml)
        log.info(
            "experiment %s put in force through %s (kept as %s)", split.name, admin_addr, experiment_file
        )
    clock = admin.read_clock(admin_addr, args.timeout)
    log.info(
        "simulating %.1f h of server clock (x%g) at %.0f requests/s through %s %s",
        args.hours, clock.speed, args.rate, args.door, target,
    )  # fmt: skip
    simulation = Simulation(door, clock, plan, audience, prices, exchanges, truth, split, pseudonymize)
    try:
        window = simulation.run()
    finally:
        door.close()
    window = admin.close_window(window, admin_addr, args.timeout)
    events = args.events or settings.events.parent
    name = split.name if split is not None else None
    control = split.control if split is not None else None
    commands = summary.report_commands(events, args.out, window, name, experiment_file)
    document = summary.summary(simulation.tally, window, commands, name, control, simulation.pending())
    summary.write(args.out, "summary.json", document)
    summary.write(args.out, "truth.json", summary.truth(simulation.tally, name, control))
    print(summary.screen(document), file=sys.stdout)
    if window.stopped == "the server does not answer":
        answers = ", ".join(f"{k} {v}" for k, v in simulation.tally.answers.items())
        message = f"the {args.door} door at {target} does not answer ({answers})"
        print(f"personabid simulate: {message}", file=sys.stderr)
        return 1
    return 130 if window.stopped == "interrupted" else 0
