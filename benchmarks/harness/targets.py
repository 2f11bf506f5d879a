"""The speed targets of the bidder, each beside its figure before the work on them and its figure now.

A target is a goal to measure and report, never an assertion: a run that misses one is a complete run.
"Today" is the figure the last full run before that work measured (100,000 campaigns unless said; the
redis, HTTP door and user-recall figures were not measured then). "Now" comes from the run's summary
(runner.summarize), at the plan's sweep size; a figure the plan does not measure (the 1,000,000-campaign
catalog in the smoke plan) is None, with `in_plan` false.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

MILLION = 1_000_000


class PlanSizes(Protocol):
    @property
    def sizes(self) -> tuple[int, ...]: ...
    @property
    def sweep_size(self) -> int: ...
    @property
    def redis_rpcs(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Target:
    target: str
    bound: float
    at_least: bool  # the figure must be at least `bound` (else at most)
    unit: str  # "x" (a ratio), "recall" (a share) or "us" (microseconds)
    today: float | None  # before the work, None: not measured then
    today_note: str = ""  # where today's figure was measured, when not where the target is
    absolute: bool = False  # the bound is on the figure's size, either sign (an account that must close)

    def goal(self) -> str:
        if self.absolute:  # (no "|x|": it would split a markdown table's cell)
            return f"within ±{format_value(self.bound, self.unit)}"
        return f"{'>=' if self.at_least else '<='} {format_value(self.bound, self.unit)}"

    def row(self, now: float | None, in_plan: bool = True) -> dict[str, Any]:
        met = None if now is None else meets(now, self.bound, self.at_least, self.absolute)
        today = "not measured" if self.today is None else format_value(self.today, self.unit)
        return {
            "target": self.target,
            "goal": self.goal(),
            "bound": self.bound,
            "at_least": self.at_least,
            "unit": self.unit,
            "today": self.today,
            "today_text": f"{today} {self.today_note}".strip(),
            "now": now,
            "now_text": format_value(now, self.unit) if now is not None else "not in this plan",
            "met": met,
            "in_plan": in_plan,
            "absolute": self.absolute,
        }


def meets(now: float, bound: float, at_least: bool, absolute: bool = False) -> bool:
    figure = abs(now) if absolute else now
    return figure >= bound if at_least else figure <= bound


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "us":
        return f"{value:,.0f} us"
    return f"{value:.3f}"


def targets(summary: dict[str, Any], plan: PlanSizes) -> list[dict[str, Any]]:
    """The targets' rows (Target.row) from a run's summary."""
    size = plan.sweep_size
    at_size = summary.get("bidder", {}).get(str(size), {})
    million = summary.get("bidder", {}).get(str(MILLION), {})
    redis = summary.get("redis", {})
    half = summary.get("half_load", {})

    def ratio(figures: dict[str, Any], load: str) -> float | None:
        value = figures.get(load, {}).get("throughput_ratio")
        return float(value) if value is not None else None

    where = f"({size:,} campaigns)"
    noted = "(at 100,000)" if size != 100_000 else ""
    rows = [
        Target(f"gRPC unary throughput / echo floor {where}", 0.5, True, "x", 0.17, noted).row(
            ratio(at_size, "unary_closed")
        ),
        Target(f"gRPC stream throughput / streaming echo floor {where}", 0.5, True, "x", 0.17, noted).row(
            ratio(at_size, "stream_closed")
        ),
        Target(f"gRPC unary throughput / echo floor ({MILLION:,} campaigns)", 0.35, True, "x", 0.14).row(
            ratio(million, "unary_closed"), in_plan=MILLION in plan.sizes
        ),
        Target(f"unary throughput with --redis-url / in process {where}", 0.8, True, "x", None).row(
            redis.get("unary", {}).get("throughput_ratio")
        ),
        Target(f"stream throughput with --redis-url / in process {where}", 0.8, True, "x", None).row(
            redis.get("stream", {}).get("throughput_ratio"), in_plan="stream" in plan.redis_rpcs
        ),
        Target(
            f"open-loop p99 at half the bidder's maximum / echo p99 at the same rate {where}",
            3.0,
            False,
            "x",
            6.15,
            noted,
        ).row(half.get("p99_ratio")),
        Target(f"OpenRTB HTTP door throughput / HTTP echo floor {where}", 0.5, True, "x", None).row(
            ratio(at_size, "http_closed")
        ),
    ]
    for campaigns, found in sorted(summary.get("recall", {}).items(), key=lambda item: int(item[0])):
        target = found.get("target", 0.95)
        label = f"recall@{found.get('k', 100)} of the match, user-like queries ({int(campaigns):,} campaigns)"
        rows.append(
            Target(
                label,
                target,
                True,
                "recall",
                None,
            ).row(found.get("recall"))
        )
    unaccounted = summary.get("cost_per_request_us", {}).get("unaccounted")
    rows.append(
        Target(
            f"server CPU per request not accounted for {where}",
            50.0,
            False,
            "us",
            284.0,
            noted,
            absolute=True,
        ).row(unaccounted)
    )
    return rows
