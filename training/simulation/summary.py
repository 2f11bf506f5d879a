"""What a run did, counted as it goes: the one-screen summary, DIR/summary.json and DIR/truth.json.

The summary counts what the server was told and accepted (a win is counted when its win notice was
accepted, an impression with its billing notice, a click, a conversion); truth.json holds what the
world drew, per arm: the true expected clicks, conversions and revenue of the impressions won (the
world's click probability of each, and the conversion model's expectation), beside what was drawn
from them, so that a report's measured lift can be compared with the true one.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from personabid.artifact import write_atomic

ALL = "all"


@dataclass
class Counts:
    requests: int = 0
    bids: int = 0
    wins: int = 0
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    conversions_post_click: int = 0  # the first order after a click, naming the click
    revenue: float = 0.0  # USD
    spend: float = 0.0  # USD


# Truth's sums of float values are kept as integers in units of 1 / FIXED: exact, so that the same draws
# give the same totals whatever order the server's answers come back in (float sums depend on order).
FIXED = 2**40
FIXED_SUMS = ("expected_clicks", "expected_conversions", "expected_revenue", "revenue_drawn")


def fixed(value: float) -> int:
    return round(value * FIXED)


@dataclass
class Truth:
    """Per arm: the world's expectation for the impressions won, and what was drawn."""

    users: set[int] = field(default_factory=set)  # people with an id who came, by number (never written)
    impressions: int = 0
    expected_clicks: int = 0  # FIXED_SUMS: in units of 1 / FIXED
    expected_conversions: int = 0
    expected_revenue: int = 0
    clicks_drawn: int = 0
    conversions_drawn: int = 0
    revenue_drawn: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in asdict(self).items() if k != "users"}
        for name in FIXED_SUMS:
            out[name] /= FIXED
        out["users"] = len(self.users)
        n = max(self.impressions, 1)
        people = max(len(self.users), 1)
        out["expected_ctr"] = out["expected_clicks"] / n
        out["expected_conversions_per_impression"] = out["expected_conversions"] / n
        out["expected_revenue_per_user"] = out["expected_revenue"] / people
        out["expected_clicks_per_user"] = out["expected_clicks"] / people
        return out


@dataclass
class Tally:
    by_arm: dict[str, Counts] = field(default_factory=dict)
    truth: dict[str, Truth] = field(default_factory=dict)
    answers: Counter[str] = field(default_factory=Counter)  # bid, no-bid, http 503, ...
    no_bid_reasons: Counter[int] = field(default_factory=Counter)
    notices: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, outcome)
    dropped: int = 0  # arrivals not sent: the server was behind by more than the concurrency
    unknown_campaigns: int = 0  # bids on campaigns the world has no truth for

    def counts(self, arm: str) -> list[Counts]:
        """The overall counts and the arm's (when there is an experiment)."""
        out = [self.by_arm.setdefault(ALL, Counts())]
        if arm != ALL:
            out.append(self.by_arm.setdefault(arm, Counts()))
        return out

    def truth_of(self, arm: str) -> Truth:
        return self.truth.setdefault(arm, Truth())


@dataclass(frozen=True)
class Window:
    since: float  # server clock, unix seconds
    traffic_end: float  # when the last request could be sent: since + --hours, unless stopped sooner
    until: float  # when the last call was answered
    speed: float
    clock: str  # "server" or "local"
    real_seconds: float
    stopped: str  # why it ended: "window", "max-requests", "max-seconds", "interrupted", or the server


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rate(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _row(c: Counts) -> dict[str, Any]:
    return {
        **asdict(c),
        "bid_rate": rate(c.bids, c.requests),
        "win_rate": rate(c.wins, c.bids),
        "ctr": rate(c.clicks, c.impressions),
        "post_click_conversion_rate": rate(c.conversions_post_click, c.clicks),
        "ecpm": rate(c.spend * 1000.0, c.impressions),
        "roas": rate(c.revenue, c.spend),
    }


EXPERIMENT_FILE = "experiment.toml"


def report_commands(
    events: Path, out: Path, window: Window, experiment: str | None, experiment_file: Path | None = None
) -> list[str]:
    """The report commands over the run's window; the experiment's names the file the run put in force,
    so that the report reads its planned shares and control even after the experiment ends."""
    since = iso(math.floor(window.since))
    until = iso(math.ceil(window.until))
    span = f"--since {since} --until {until}"
    commands = [f"personabid report kpis --events {events} --out {out / 'kpis'} {span}"]
    if experiment:
        plan = f" --experiment-file {experiment_file}" if experiment_file is not None else ""
        commands.append(
            f"personabid report experiment {experiment} --events {events}{plan} {span} "
            f"--out {out / 'experiment'}"
        )
    return commands


def save_experiment(directory: Path, toml: str) -> Path:
    """Keep the experiment file the run put in force as DIR/experiment.toml (atomically); return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / EXPERIMENT_FILE
    write_atomic(path, toml)
    return path


def summary(
    tally: Tally,
    window: Window,
    commands: list[str],
    experiment: str | None,
    control: str | None,
    pending: Counter[str],
) -> dict[str, Any]:
    arms = {arm: _row(c) for arm, c in sorted(tally.by_arm.items())}
    return {
        "window": {
            "since": window.since,
            "until": window.until,
            "since_iso": iso(window.since),
            "until_iso": iso(window.until),
            "traffic_end": window.traffic_end,
            "server_hours": (window.traffic_end - window.since) / 3600.0,
            "clock_speed": window.speed,
            "clock": window.clock,
            "real_seconds": window.real_seconds,
            "stopped": window.stopped,
        },
        "experiment": experiment,
        "control": control,
        "totals": arms.get(ALL, _row(Counts())),
        "arms": {arm: row for arm, row in arms.items() if arm != ALL},
        "answers": dict(tally.answers),
        "no_bid_reasons": {str(k): v for k, v in tally.no_bid_reasons.most_common()},
        "notices": {f"{kind} {outcome}": n for (kind, outcome), n in sorted(tally.notices.items())},
        "pending_at_end": dict(pending),
        "dropped_requests": tally.dropped,
        "unknown_campaigns": tally.unknown_campaigns,
        "report_commands": commands,
    }


def truth(tally: Tally, experiment: str | None, control: str | None) -> dict[str, Any]:
    arms = {arm: t.as_dict() for arm, t in sorted(tally.truth.items())}
    lifts: dict[str, dict[str, float | None]] = {}
    base = arms.get(f"{experiment}:{control}") if experiment else None
    if base is not None:
        for arm, row in arms.items():
            if arm in (ALL, f"{experiment}:{control}"):
                continue
            lifts[arm] = {
                metric: rate(row[metric] - base[metric], base[metric])
                for metric in (
                    "expected_ctr",
                    "expected_conversions_per_impression",
                    "expected_clicks_per_user",
                    "expected_revenue_per_user",
                )
            }
    return {
        "experiment": experiment,
        "control": control,
        "note": "expected values are the world's for every impression won (billing notice accepted), "
        "conversions without the run's end cutting them off; *_drawn are the outcomes drawn for them, "
        "sent or still pending at the end; users are the people with an id who made a request",
        "arms": arms,
        "relative_lift": lifts,
    }


def write(directory: Path, name: str, document: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    write_atomic(path, json.dumps(document, indent=2, sort_keys=False) + "\n")
    return path


def screen(document: dict[str, Any]) -> str:
    """The one-screen summary of summary()'s document."""
    w = document["window"]
    lines = [
        f"simulated {w['server_hours']:.2f} h of server clock ({w['since_iso']} to {w['until_iso']}, "
        f"x{w['clock_speed']:g}, {w['clock']} clock) in {w['real_seconds']:.1f} s; stopped: {w['stopped']}",
        "",
    ]
    rows = [("total", document["totals"]), *document["arms"].items()]
    width = max(len(name) for name, _ in rows)
    header = (
        f"{'':{width}} {'requests':>9} {'bids':>8} {'bid%':>6} {'wins':>7} {'win%':>6} {'impr':>7} "
        f"{'clicks':>6} {'CTR%':>6} {'conv':>5} {'revenue':>9} {'spend':>8}"
    )
    lines.append(header)
    for name, r in rows:
        lines.append(
            f"{name:{width}} {r['requests']:>9} {r['bids']:>8} {_pct(r['bid_rate']):>6} {r['wins']:>7} "
            f"{_pct(r['win_rate']):>6} {r['impressions']:>7} {r['clicks']:>6} {_pct(r['ctr'], 2):>6} "
            f"{r['conversions']:>5} {r['revenue']:>9.2f} {r['spend']:>8.2f}"
        )
    lines.append("")
    answers = ", ".join(f"{k} {v}" for k, v in sorted(document["answers"].items()))
    reasons = ", ".join(f"{k}: {v}" for k, v in list(document["no_bid_reasons"].items())[:5])
    lines.append(f"answers: {answers or '-'}" + (f" (no-bid reasons {reasons})" if reasons else ""))
    problems = {k: v for k, v in document["notices"].items() if not k.endswith((" ok", " duplicate"))}
    if problems:
        lines.append("notices not accepted: " + ", ".join(f"{k} {v}" for k, v in problems.items()))
    if document["pending_at_end"]:
        left = ", ".join(f"{k} {v}" for k, v in document["pending_at_end"].items())
        lines.append(f"not sent, due after the end: {left}")
    if document["dropped_requests"]:
        lines.append(f"requests dropped (the server fell behind): {document['dropped_requests']}")
    lines.append("")
    lines.append("reports of this run's window:")
    lines.extend(f"  {command}" for command in document["report_commands"])
    return "\n".join(lines)


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100.0 * value:.{digits}f}"
