"""`personabid profiles ...`: the commands over user profiles, one group.

Every subcommand is added to the group by an adder listed in SUBCOMMANDS: a function of the group's
subparsers that adds its parser and sets `run`. An adder imports what its command needs only when the
command runs, so that `personabid profiles --help` stays quick and one subcommand never loads another's
engine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import math
from pathlib import Path
from typing import Any

from personabid.config import Settings
from personabid.training.logs import DEFAULT_MAX_BAD_FRACTION

# (module, adder) of every `profiles` subcommand, in the order --help lists them.
SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("personabid.training.profiles.commands", "add_build"),
    ("personabid.profiles.rights", "add_rights"),  # show, forget, push: no training code
)
SUPPRESSION_FILE = "profiles.suppressed"  # in the data directory, unless --suppression names another


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "profiles",
        help="user profiles: build them from behaviour events, show, forget, push to Redis",
        description="Build user tag profiles from behaviour events, and answer for what they hold.",
    )
    subcommands = group.add_subparsers(dest="profiles_command", required=True, metavar="SUBCOMMAND")
    for module, adder in SUBCOMMANDS:
        getattr(importlib.import_module(module), adder)(subcommands)


def add_build(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "build",
        help="build every user's profile from behaviour events",
        description="Turn behaviour events (JSON Lines or Parquet) into a tag profile per user: each event's "
        "signals map onto the vocabulary's tags through the shipped taxonomy, weighted by recency "
        "(halving every --half-life-days), saturating with frequency, capped per tag family. Writes a new "
        "version of the profile artifact under --out (made CURRENT) and prints its report. Users on the "
        "suppression list are left out; events older than --retention-days are dropped.",
    )
    parser.add_argument(
        "--events", type=Path, nargs="+", required=True, metavar="PATH", help="event files or directories"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="profile artifact root (versions + CURRENT)"
    )
    parser.add_argument(
        "--half-life-days",
        type=float,
        default=30.0,
        metavar="D",
        help="a signal's weight halves every D days (default %(default)s)",
    )
    parser.add_argument(
        "--as-of",
        type=_time,
        metavar="T",
        help="the time the profiles describe: ISO-8601 (2026-11-29T00:00:00Z) or unix seconds; events "
        "after it are left out (default: the latest event's time)",
    )
    parser.add_argument(
        "--since",
        type=Path,
        metavar="DIR",
        help="fold these events into a previous build (a version, or a root's CURRENT) instead of "
        "starting afresh; give only events it has not seen. Same result as a rebuild from all events",
    )
    parser.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb", help="default %(default)s")
    parser.add_argument(
        "--threads", type=int, metavar="N", help="duckdb: threads to use (default: one per core)"
    )
    parser.add_argument(
        "--spark-master", metavar="URL", help="spark: the master to run on (default local[*])"
    )
    parser.add_argument(
        "--retention-days",
        type=int,
        default=395,
        metavar="N",
        help="drop events of days more than N days before as_of (default %(default)s)",
    )
    parser.add_argument(
        "--max-tags", type=int, default=64, metavar="N", help="tags kept per user (default %(default)s)"
    )
    parser.add_argument(
        "--suppression",
        type=Path,
        metavar="FILE",
        help=f"pseudonyms of users never to profile, one a line (default DATA_DIR/{SUPPRESSION_FILE}, "
        "if there is one)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Settings.data_dir,
        help="where the server keeps its key and suppression list (default %(default)s)",
    )
    parser.add_argument(
        "--pseudonym-key-file",
        type=Path,
        metavar="FILE",
        help="the server's pseudonymisation key (default DATA_DIR/pseudonym.key; "
        "PERSONABID_PSEUDONYM_KEY wins, as for the server)",
    )
    parser.add_argument(
        "--max-bad-fraction",
        type=float,
        default=DEFAULT_MAX_BAD_FRACTION,
        help="refuse an event file with more than this share of bad rows (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    parser.set_defaults(run=_build)


def _time(text: str) -> float:
    """Unix seconds from ISO-8601 (a time without a zone is UTC) or from a number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: neither ISO-8601 nor unix seconds") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.timestamp()
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"{text!r}: not a time")
    return seconds


def _build(args: argparse.Namespace) -> int:
    from personabid.privacy import Pseudonymizer
    from personabid.profiles.artifact import key_check
    from personabid.training.profiles import build as profile_build
    from personabid.training.profiles.engines import engine
    from personabid.training.profiles.events import read_observations

    params = profile_build.BuildParams(
        half_life_days=args.half_life_days,
        as_of=args.as_of,
        retention_days=args.retention_days,
        max_tags=args.max_tags,
    )
    pseudonymize = Pseudonymizer.from_environment(args.pseudonym_key_file or args.data_dir / "pseudonym.key")
    check = key_check(pseudonymize)
    suppression = args.suppression
    if suppression is None and (args.data_dir / SUPPRESSION_FILE).is_file():
        suppression = args.data_dir / SUPPRESSION_FILE
    suppressed = profile_build.read_suppression(suppression) if suppression is not None else ()
    previous = None
    if args.since is not None:
        previous = profile_build.Previous.load(args.since)
        previous.check_key(check)
    chunks, report = read_observations(args.events, pseudonymize, max_bad_fraction=args.max_bad_fraction)
    runner = engine(args.engine, threads=args.threads, spark_master=args.spark_master)
    try:
        result = profile_build.build(
            chunks, params, engine=runner, suppressed=suppressed, previous=previous, events=report
        )
    finally:
        runner.close()
    directory = profile_build.write(args.out, result, check)
    if args.json:
        print(json.dumps({"profiles": str(directory), **result.report}, indent=2))
    else:
        print(brief(directory, result.report, profile_build.manifest_fields(result, check), suppression))
    return 0


def brief(directory: Path, report: dict[str, Any], fields: dict[str, Any], suppression: Path | None) -> str:
    """The report in a few lines, for a person at a terminal."""
    per_user = report["tags_per_user"]
    events = report.get("events", {})
    skipped = report["skipped"]
    coverage = ", ".join(f"{name} {share:.0%}" for name, share in report["coverage"].items())
    return "\n".join(
        [
            f"profiles {directory} ({fields['engine']}, {report['seconds']:.1f} s)",
            f"  as of {fields['as_of']}, half-life {fields['half_life_days']:g} days, retention "
            f"{fields['retention_days']} days, at most {fields['max_tags']} tags, since "
            f"{fields['since'] or '-'}",
            f"  users {report['users']:,}, entries {report['entries']:,}; tags per user mean "
            f"{per_user['mean']:.1f}, p50 {per_user['p50']:g}, p90 {per_user['p90']:g}, "
            f"max {per_user['max']}",
            f"  events read {events.get('events', 0):,}, observations {report['observations']:,}",
            f"  skipped: {skipped['bad_rows']:,} bad rows, {skipped['after_as_of']:,} observations after "
            f"as_of, {skipped['beyond_retention']:,} beyond retention, {skipped['suppressed']:,} of "
            f"suppressed users ({suppression or 'no list'}), {skipped['untagged']:,} signals with no tag",
            f"  coverage: {coverage}",
        ]
    )
