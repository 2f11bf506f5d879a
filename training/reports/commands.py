"""`personabid report ...`: reports over the event log, one group (kpis, experiment).

Each subcommand imports its report's code only when it runs, so that `personabid report --help` stays
quick and neither loads the other's engine.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from personabid.training.reports.logfiles import EventLogError, check_window, event_files, parse_time

DIMENSIONS = ("campaign", "advertiser", "day", "hour", "arm", "country", "device", "source")


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "report",
        help="reports over the event log: KPIs per group, experiments per arm",
        description="Read the server's event log (one file per UTC day) and write JSON, CSV and an HTML "
        "page.",
    )
    subcommands = group.add_subparsers(dest="report_command", required=True, metavar="SUBCOMMAND")
    add_kpis(subcommands)
    add_experiment(subcommands)


def _time(text: str) -> float:
    try:
        return parse_time(text)
    except EventLogError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number of seconds") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of seconds")
    return value


def _dimensions(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        if name not in DIMENSIONS:
            raise argparse.ArgumentTypeError(
                f"{name!r} is not a dimension; choose from {','.join(DIMENSIONS)}"
            )
    if not names:
        raise argparse.ArgumentTypeError("no dimension given")
    return names


def _window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events",
        required=True,
        metavar="PATH",
        help="the event log: a file, a directory (every events*.jsonl and *.parquet in it) or a glob",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the report is written")
    parser.add_argument(
        "--since",
        type=_time,
        metavar="TIME",
        help="from this time on: ISO-8601 (UTC unless given) or unix seconds",
    )
    parser.add_argument("--until", type=_time, metavar="TIME", help="before this time (same forms)")
    parser.add_argument(
        "--click-window",
        type=_seconds,
        metavar="S",
        help="post-click attribution window in seconds (default: the setting attribution_click_seconds)",
    )
    parser.add_argument(
        "--view-window",
        type=_seconds,
        metavar="S",
        help="post-view attribution window in seconds (default: the setting attribution_view_seconds)",
    )


def add_kpis(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "kpis",
        help="the funnel, its cost and its pace per campaign, advertiser, day, hour, arm, ...",
        description="Compute per group: bids, wins, win rate, impressions, clicks, CTR, conversions "
        "(deduplicated, attributed last touch), conversion rates, purchase and repurchase rates, average "
        "order value, spend, eCPM, eCPC, eCPA, ROAS, budget used and pacing error; rates with 95%% Wilson "
        "intervals. Writes DIR/kpis.json, DIR/kpis.csv and DIR/report.html.",
    )
    _window(parser)
    parser.add_argument(
        "--by",
        type=_dimensions,
        default=DIMENSIONS,
        metavar="DIMS",
        help=f"dimensions to group by, comma-separated (default: {','.join(DIMENSIONS)})",
    )
    parser.add_argument(
        "--index",
        type=Path,
        metavar="PATH",
        help="index artifact root or version, for the campaigns' daily budgets (default: the setting index)",
    )
    parser.add_argument("--threads", type=int, metavar="N", help="DuckDB threads (default: one per core)")
    parser.set_defaults(run=_kpis)


def add_experiment(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "experiment",
        help="an experiment's arms against its control: lifts, intervals, p-values, sample ratio",
        description="Compare an experiment's arms with its control over the event log. Writes "
        "DIR/experiment.json, DIR/experiment.csv and DIR/report.html.",
    )
    parser.add_argument("name", metavar="NAME", help="the experiment's name")
    _window(parser)
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default %(default)s)")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="always-valid intervals, for reading an experiment while it runs",
    )
    parser.add_argument(
        "--pre-since", type=_time, metavar="TIME", help="CUPED: the pre-period's start, in the same log"
    )
    parser.add_argument("--pre-until", type=_time, metavar="TIME", help="CUPED: the pre-period's end")
    parser.add_argument(
        "--experiment-file",
        type=Path,
        metavar="FILE",
        help="the experiment's TOML file, for its arms' planned shares and its control (default: the "
        "highest version of that name in the setting experiments_path or its archive of ended experiments, "
        "experiments_path/ended/NAME-vVERSION.toml)",
    )
    parser.set_defaults(run=_experiment)


def _settings() -> Any:
    from personabid.config import load_settings

    return load_settings({})


def _kpis(args: argparse.Namespace) -> int:
    from personabid.training.reports import kpis

    check_window(args.since, args.until)
    files = event_files(args.events)
    settings = _settings()
    params = kpis.KpiParams(
        click_window=args.click_window or settings.attribution_click_seconds,
        view_window=args.view_window or settings.attribution_view_seconds,
        since=args.since,
        until=args.until,
        by=args.by,
    )
    index = args.index if args.index is not None else settings.index
    budgets = kpis.Budgets()
    if args.index is not None or index.exists():
        budgets = kpis.Budgets.load(index)
    report = kpis.compute(files, params, budgets, threads=args.threads)
    paths = kpis.write(args.out, report, source=str(args.events))
    print(kpis.brief(report, paths))
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from personabid.training.reports import experiment

    check_window(args.since, args.until)
    check_window(args.pre_since, args.pre_until)
    # Windows not given stay None: the report takes the settings' then.
    experiment.run(
        args.events,
        args.name,
        args.out,
        since=args.since,
        until=args.until,
        alpha=args.alpha,
        sequential=args.sequential,
        pre_since=args.pre_since,
        pre_until=args.pre_until,
        click_window=args.click_window,
        view_window=args.view_window,
        experiment_file=args.experiment_file,
    )
    for name in ("experiment.json", "experiment.csv", "report.html"):
        print(f"wrote {args.out / name}")
    return 0
