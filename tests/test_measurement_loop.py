"""The measurement loop end to end, as a user runs it: a real server on the test world, `personabid simulate`
driving it through a compressed market day with the shipped bid-multiplier experiment in force, then the
report commands the simulator printed, over the event log the server wrote. The reports' numbers are held
to the slow references (tests/report_reference.py) computed here from the same log lines, and their pages
are opened in a real browser (tests/browser.py).

Everything runs once for the module: a server whose clock runs 3600 times real time, a simulation bounded
in requests, two reports and two page loads.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from personabid.training.reports import kpis
from personabid.training.reports.logfiles import event_files
from tests import browser
from tests.conftest import ROOT, system_command
from tests.report_reference import (
    DAY,
    EXPERIMENT_METRICS,
    Line,
    check_against_reference,
    check_groups,
    experiment_reference,
    experiment_units,
    kpi_reference,
    read_back,
)
from tests.test_simulate import MARKET, served

EXPERIMENT_FILE = ROOT / "server" / "experiments" / "examples" / "bid-multiplier.toml"
EXPERIMENT = "bid-multiplier"
SHARES = {arm["name"]: arm["share"] for arm in tomllib.loads(EXPERIMENT_FILE.read_text())["arms"]}
# Given to both reports, so that the references use the same (the settings' defaults: a week, a day).
CLICK_WINDOW, VIEW_WINDOW = 7 * DAY, DAY
# Eight server hours at 300 requests a second of a clock 3600 times real time: about 2,400 requests, in the
# steady market of the simulator's own tests (MARKET: the server wins most auctions, buyers buy more often),
# enough for every kind of event and for the planted effect on the win rate to show.
SIMULATION = [
    *("--hours", "8", "--rate", "300", "--seed", "7"),
    *("--max-requests", "3000", "--max-seconds", "120"),
]
KPI_FIELDS = (
    "bids",
    "wins",
    "win_rate",
    "impressions",
    "clicks",
    "ctr",
    "conversions",
    "conversions_post_click",
    "conversions_post_view",
    "spend",
    "revenue_usd",
)
REPORTS = ("kpis", "experiment")


def personabid(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The command line, as a user runs it, in a child process."""
    done = subprocess.run(
        [sys.executable, "-m", "personabid", *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, f"personabid {' '.join(arguments)}:\n{done.stdout}\n{done.stderr}"
    return done


@dataclass(frozen=True)
class Loop:
    events: Path  # the directory of the server's event log
    out: Path  # the simulator's --out: summary.json, and the reports in kpis/ and experiment/
    summary: dict[str, Any]
    commands: dict[str, list[str]]  # by report: the command the simulator printed, after "personabid"
    window: tuple[float, float]  # [since, until) of those commands

    def report(self, name: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.out / name / f"{name}.json").read_text())
        return document

    def lines(self) -> list[Line]:
        return read_back(event_files(self.events))


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def loop(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Loop:
    directory = tmp_path_factory.mktemp("measurement-loop")
    out = directory / "out"
    server = served(demo_dir, directory)
    try:
        personabid(
            "simulate", *SIMULATION, *MARKET, "--experiment", str(EXPERIMENT_FILE),
            "--data-dir", str(demo_dir),
            "--target", server.http_addr, "--admin", f"127.0.0.1:{server.server.admin_port}",
            "--events", str(directory), "--out", str(out),
        )  # fmt: skip
    finally:
        server.stop()  # the log is complete once the server has stopped
    summary = json.loads((out / "summary.json").read_text())
    printed = [shlex.split(command) for command in summary["report_commands"]]
    commands = {command[2]: command[1:] for command in printed if command[0] == "personabid"}
    extra = ["--click-window", str(CLICK_WINDOW), "--view-window", str(VIEW_WINDOW)]
    personabid(*commands["kpis"], *extra, "--index", str(demo_dir / "index"))
    personabid(*commands["experiment"], *extra)
    window = (_unix(_option(commands["kpis"], "--since")), _unix(_option(commands["kpis"], "--until")))
    return Loop(directory, out, summary, commands, window)


@pytest.fixture(scope="module")
def lines(loop: Loop) -> list[Line]:
    return loop.lines()


@pytest.fixture(scope="module")
def pages(loop: Loop, tmp_path_factory: pytest.TempPathFactory) -> dict[str, browser.Rendered]:
    system_command(str(browser.CHROMIUM), "chromium")  # fails, never skips, where it is missing
    shots = tmp_path_factory.mktemp("screenshots")
    return {name: browser.render(loop.out / name / "report.html", shots / f"{name}.png") for name in REPORTS}


# ---- the loop ran ---------------------------------------------------------------------------------------


def test_the_simulator_printed_both_report_commands_over_the_servers_log(loop: Loop) -> None:
    assert {name: _option(command, "--events") for name, command in loop.commands.items()} == {
        "kpis": str(loop.events),
        "experiment": str(loop.events),
    }


def test_the_experiment_report_plans_the_arms_by_the_file_the_run_put_in_force(loop: Loop) -> None:
    planned = Path(_option(loop.commands["experiment"], "--experiment-file"))
    assert (planned.read_text(), loop.report("experiment")["shares_source"]) == (
        EXPERIMENT_FILE.read_text(),
        str(planned),
    )


def test_the_event_log_holds_every_kind_of_line_a_report_reads(lines: list[Line]) -> None:
    kinds = Counter(line["event"] for line in lines)
    assert {"bid", "win", "billing", "click", "conversion"} - set(kinds) == set(), kinds


def test_the_window_printed_holds_every_line_the_server_logged(loop: Loop, lines: list[Line]) -> None:
    since, until = loop.window
    outside = [line for line in lines if not since <= line["ts"] < until]
    assert outside == []


# ---- the KPI report against the reference ----------------------------------------------------------------


@pytest.fixture(scope="module")
def kpi_expected(loop: Loop, lines: list[Line]) -> dict[tuple[str, str], dict[str, Any]]:
    return kpi_reference(lines, CLICK_WINDOW, VIEW_WINDOW, kpis.Budgets(), *loop.window)


def test_the_kpi_totals_equal_the_reference(loop: Loop, kpi_expected: dict[tuple[str, str], Any]) -> None:
    check_groups(loop.report("kpis"), {("all", "all"): kpi_expected[("all", "all")]}, KPI_FIELDS)


def test_the_kpis_of_each_arm_equal_the_reference(
    loop: Loop, kpi_expected: dict[tuple[str, str], Any]
) -> None:
    result = loop.report("kpis")
    arms = {key: v for key, v in kpi_expected.items() if key[0] == "arm"}
    listed = {r["group"] for r in result["groups"]["arm"]}
    assert listed == {key[1] for key in arms} == {f"{EXPERIMENT}:{arm}" for arm in SHARES}
    check_groups(result, arms, KPI_FIELDS)


def test_the_kpis_of_every_group_equal_the_reference(
    loop: Loop, kpi_expected: dict[tuple[str, str], Any]
) -> None:
    check_against_reference(loop.report("kpis"), kpi_expected, KPI_FIELDS)


def test_the_simulators_counts_agree_with_the_kpi_report(loop: Loop) -> None:
    totals, told = loop.report("kpis")["totals"], loop.summary["totals"]
    names = ("bids", "wins", "impressions", "clicks")
    assert {name: totals[name] for name in names} == {name: told[name] for name in names}


def test_the_spend_the_simulator_counted_is_the_kpi_reports(loop: Loop) -> None:
    totals = loop.report("kpis")["totals"]
    # A win notice carries its clearing price (CPM) to six decimals: half a millionth each, at most, off.
    within = totals["wins"] * 0.5e-6 / 1000.0
    assert totals["spend"] == pytest.approx(loop.summary["totals"]["spend"], rel=0, abs=within)


# ---- the experiment report against the reference ---------------------------------------------------------


@pytest.fixture(scope="module")
def experiment_expected(loop: Loop, lines: list[Line]) -> dict[str, Any]:
    units = experiment_units(lines, EXPERIMENT, CLICK_WINDOW, VIEW_WINDOW, *loop.window)
    return experiment_reference(units, "control", SHARES)


def metric(result: dict[str, Any], name: str, arm: str) -> dict[str, Any]:
    found = [m for m in result["metrics"] if m["name"] == name and m["arm"] == arm]
    assert len(found) == 1, (name, arm)
    return found[0]


def flat(value: Any) -> list[Any]:
    """A number, None, or an interval's ends, as a list of numbers (None for what is not finite)."""
    values = value if isinstance(value, list) else [value]
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


def test_the_units_of_each_arm_are_the_references(loop: Loop, experiment_expected: dict[str, Any]) -> None:
    assert {a["name"]: a["units"] for a in loop.report("experiment")["arms"]} == experiment_expected["units"]


def test_every_metric_of_every_arm_is_the_references(loop: Loop, experiment_expected: dict[str, Any]) -> None:
    result = loop.report("experiment")
    got = {key: flat(metric(result, *key)["value"])[0] for key in experiment_expected["metrics"]}
    expected = {key: flat(m["value"])[0] for key, m in experiment_expected["metrics"].items()}
    assert set(got) == {(name, arm) for name in EXPERIMENT_METRICS for arm in SHARES}
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("field", ["lift_abs", "lift_rel", "lift_abs_ci", "p", "p_holm"])
def test_the_lifts_and_their_tests_are_the_references(
    loop: Loop, experiment_expected: dict[str, Any], field: str
) -> None:
    result = loop.report("experiment")
    treated = {key: m for key, m in experiment_expected["metrics"].items() if key[1] != "control"}
    got = {(*key, i): v for key in treated for i, v in enumerate(flat(metric(result, *key)[field]))}
    expected = {(*key, i): v for key, m in treated.items() for i, v in enumerate(flat(m.get(field)))}
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-12)


def test_what_is_significant_after_holms_correction_is_the_references(
    loop: Loop, experiment_expected: dict[str, Any]
) -> None:
    result = loop.report("experiment")
    treated = {key: m for key, m in experiment_expected["metrics"].items() if key[1] != "control"}
    assert {key: metric(result, *key)["significant"] for key in treated} == {
        key: m.get("significant") for key, m in treated.items()
    }


def test_the_planted_effect_is_found_doubled_bids_win_significantly_more(loop: Loop) -> None:
    win_rate = metric(loop.report("experiment"), "win_rate", "double")
    assert (win_rate["lift_rel"] > 0, win_rate["significant"]) == (True, True), win_rate


def test_the_sample_ratio_is_as_planned(loop: Loop) -> None:
    srm = loop.report("experiment")["srm"]
    assert srm["verdict"] == "ok", srm


def test_the_sample_ratio_test_is_scipys_chi_square(loop: Loop, experiment_expected: dict[str, Any]) -> None:
    srm = loop.report("experiment")["srm"]
    reference = experiment_expected["srm"]
    assert (srm["chi2"], srm["p"]) == pytest.approx((reference["chi2"], reference["p"]), rel=1e-9, abs=1e-12)


# ---- the pages in a real browser -------------------------------------------------------------------------


@pytest.mark.parametrize("report", REPORTS)
def test_the_report_page_draws_its_charts(pages: dict[str, browser.Rendered], report: str) -> None:
    charts = pages[report].charts
    assert charts and all(chart.marks > 0 for chart in charts), charts


@pytest.mark.parametrize("report", REPORTS)
def test_the_report_page_lays_out_its_tables_with_rows(
    pages: dict[str, browser.Rendered], report: str
) -> None:
    tables = pages[report].tables
    assert tables and all(table.rows > 0 and table.box.height > 0 for table in tables), tables


@pytest.mark.parametrize("report", REPORTS)
def test_the_report_page_fetches_nothing(pages: dict[str, browser.Rendered], report: str) -> None:
    assert pages[report].requests == []


@pytest.mark.parametrize("report", REPORTS)
def test_the_report_page_is_screenshot(pages: dict[str, browser.Rendered], report: str) -> None:
    assert pages[report].screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_experiment_page_gives_the_sample_ratio_verdict_first(pages: dict[str, browser.Rendered]) -> None:
    callouts = pages["experiment"].callouts
    assert [c.level for c in callouts[:1]] == ["ok"], callouts
