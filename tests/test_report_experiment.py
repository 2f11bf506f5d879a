"""`report experiment` (training/reports/experiment.py) on a small seeded log against a slow, plain-Python
reference computed from the same lines (tests/report_reference.py), with scipy's tests on the reference's
per-user values."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import scipy.stats

from personabid.training.reports.experiment import METRICS, ExperimentReportError, run
from tests.experiment_logs import experiment_lines, write_log
from tests.report_reference import Units, column, experiment_units

NAME = "bid-multiplier"


def report(log: Path, out: Path, **options: Any) -> dict[str, Any]:
    """The report of NAME with attribution windows of an hour (click) and ten minutes (view)."""
    return run(log, NAME, out, click_window=3600.0, view_window=600.0, **options)


def reference(lines: list[dict[str, Any]]) -> Units:
    """Per arm, per unit: bids, wins, impressions, clicks and attributed revenue, by plain loops over the
    lines, with the report's attribution windows."""
    return experiment_units(lines, NAME, click_window=3600.0, view_window=600.0)


def _metric(result: dict[str, Any], name: str, arm: str) -> dict[str, Any]:
    return next(m for m in result["metrics"] if m["name"] == name and m["arm"] == arm)


@pytest.fixture(scope="module")
def lines() -> list[dict[str, Any]]:
    return experiment_lines()


@pytest.fixture(scope="module")
def result(lines: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("log")
    write_log(directory / "events-2026-11-30.jsonl", lines)
    return report(directory, directory / "out")


def test_units_per_arm_are_the_users_and_anonymous_auctions_of_each_arm(
    lines: list[dict[str, Any]], result: dict[str, Any]
) -> None:
    expected = {arm: len(units) for arm, units in reference(lines).items()}
    assert {a["name"]: a["units"] for a in result["arms"]} == expected


def test_clicks_per_user_and_its_welch_test_match_scipy_on_the_reference(
    lines: list[dict[str, Any]], result: dict[str, Any]
) -> None:
    ref = reference(lines)
    treatment, control = column(ref["double"], "clicks"), column(ref["control"], "clicks")
    row = _metric(result, "clicks_per_user", "double")
    test = scipy.stats.ttest_ind(treatment, control, equal_var=False)
    assert row["value"] == pytest.approx(treatment.mean(), rel=1e-12)
    assert row["lift_abs"] == pytest.approx(treatment.mean() - control.mean(), rel=1e-12)
    assert row["lift_rel"] == pytest.approx(treatment.mean() / control.mean() - 1, rel=1e-12)
    assert row["p"] == pytest.approx(test.pvalue, rel=1e-9)


def test_ctr_per_arm_and_its_delta_method_p_match_the_reference(
    lines: list[dict[str, Any]], result: dict[str, Any]
) -> None:
    ref = reference(lines)
    ratios = {}
    for arm in ("control", "double"):
        clicks, shown = column(ref[arm], "clicks"), column(ref[arm], "impressions")
        ratio = clicks.sum() / shown.sum()
        linear = (clicks - ratio * shown) / shown.mean()
        ratios[arm] = (ratio, linear.var(ddof=1) / len(linear))
        assert _metric(result, "ctr", arm)["value"] == pytest.approx(ratio, rel=1e-12)
    z = (ratios["double"][0] - ratios["control"][0]) / math.sqrt(ratios["double"][1] + ratios["control"][1])
    assert _metric(result, "ctr", "double")["p"] == pytest.approx(2 * scipy.stats.norm.sf(abs(z)), rel=1e-9)


def test_revenue_per_user_counts_a_repeated_order_once(
    lines: list[dict[str, Any]], result: dict[str, Any]
) -> None:
    ref = reference(lines)
    assert any(line["event"] == "conversion" for line in lines)
    for arm in ("control", "double"):
        expected = column(ref[arm], "revenue").mean()
        assert _metric(result, "revenue_per_user", arm)["value"] == pytest.approx(expected, rel=1e-12)


def test_holm_adjusted_p_values_are_at_least_the_raw_ones(result: dict[str, Any]) -> None:
    treated = [m for m in result["metrics"] if m["arm"] != result["control"] and m["p"] is not None]
    assert treated and all(m["p_holm"] >= m["p"] for m in treated)


def test_writes_json_csv_with_a_row_per_metric_and_arm_and_html(
    lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    report(write_log(tmp_path / "events.jsonl", lines), tmp_path / "out")
    rows = list(csv.DictReader((tmp_path / "out" / "experiment.csv").read_text().splitlines()))
    assert json.loads((tmp_path / "out" / "experiment.json").read_text())["experiment"] == NAME
    assert len(rows) == len(METRICS) * 2
    assert "Sample ratio" in (tmp_path / "out" / "report.html").read_text()


def test_sample_ratio_mismatch_against_the_experiment_files_shares(
    lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    plan = tmp_path / "bid-multiplier.toml"
    plan.write_text(
        f'name = "{NAME}"\nversion = 1\nsalt = "0123456789abcdef"\n'
        '[[arms]]\nname = "control"\nshare = 0.9\n'
        '[[arms]]\nname = "double"\nshare = 0.1\nbid_multiplier = 2.0\n'
    )
    log = write_log(tmp_path / "events.jsonl", lines)
    result = report(log, tmp_path / "out", experiment_file=plan)
    assert result["srm"]["verdict"] == "mismatch"


def test_sampled_bid_lines_count_as_many_bids_as_they_stand_for(tmp_path: Path) -> None:
    lines = experiment_lines(sample=0.25)
    result = report(write_log(tmp_path / "events.jsonl", lines), tmp_path / "out")
    bid_lines = sum(1 for line in lines if line["event"] == "bid")
    assert sum(a["bids"] for a in result["arms"]) == pytest.approx(4 * bid_lines)


def test_sequential_intervals_are_wider_than_the_fixed_sample_ones(
    lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    result = report(write_log(tmp_path / "events.jsonl", lines), tmp_path / "out", sequential=True)
    row = _metric(result, "clicks_per_user", "double")
    assert (
        row["lift_abs_ci_seq"][0] < row["lift_abs_ci"][0]
        and row["lift_abs_ci_seq"][1] > row["lift_abs_ci"][1]
    )


def test_cuped_with_a_pre_period_narrows_the_interval_of_a_correlated_metric(tmp_path: Path) -> None:
    before = experiment_lines(seed=9)
    shift = 10 * 86_400.0
    during = [
        {
            **line,
            "ts": line["ts"] + shift,
            **({"notice_ts": line["notice_ts"] + shift} if "notice_ts" in line else {}),
        }
        for line in before
    ]  # the same users, behaving alike, ten days later
    log = write_log(tmp_path / "events.jsonl", before + during)
    start = min(line["ts"] for line in during)
    plain = report(log, tmp_path / "a", since=start)
    adjusted = report(log, tmp_path / "b", since=start, pre_since=0, pre_until=start)

    def width(r: dict[str, Any]) -> float:
        low, high = _metric(r, "clicks_per_user", "double")["lift_abs_ci"]
        return high - low

    assert adjusted["cuped"] and width(adjusted) < width(plain)


def test_an_experiment_absent_from_the_log_is_an_error_naming_it(
    lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    with pytest.raises(ExperimentReportError, match="no-such-test"):
        run(
            write_log(tmp_path / "events.jsonl", lines),
            "no-such-test",
            tmp_path / "out",
            click_window=60.0,
            view_window=60.0,
        )


def test_an_arm_without_clicks_reports_no_cost_per_click_instead_of_failing(tmp_path: Path) -> None:
    lines = experiment_lines(click_rates=(0.0, 0.1))
    result = report(write_log(tmp_path / "events.jsonl", lines), tmp_path / "out")
    assert _metric(result, "cpc", "control")["value"] is None
    assert json.loads((tmp_path / "out" / "experiment.json").read_text())["metrics"]


def _experiment_file(version: int, arms: tuple[str, ...], control: str = "") -> str:
    lines = [f'name = "{NAME}"', f"version = {version}", 'salt = "0123456789abcdef"']
    if control:
        lines.append(f'control = "{control}"')
    for arm in arms:
        lines += ["[[arms]]", f'name = "{arm}"', f"share = {1 / len(arms)!r}"]
    return "\n".join(lines) + "\n"


def test_the_files_control_key_names_the_control_whatever_the_arms_are_called(
    lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(_experiment_file(1, ("control", "double"), control="double"))
    result = report(write_log(tmp_path / "events.jsonl", lines), tmp_path / "out", experiment_file=plan)
    assert result["control"] == "double"


class _Builder:
    """Puts experiments in force at once, as the Reloader does after building their Deciders."""

    def __init__(self) -> None:
        from personabid.experiments.registry import Traffic

        self.traffic = Traffic()
        self.experiments: tuple[Any, ...] = ()

    async def apply_experiments(self, experiments: tuple[Any, ...], before_swap: Any = None) -> None:
        if before_swap is not None:
            before_swap()
        self.experiments = experiments


def test_an_ended_experiments_archived_file_gives_the_report_its_control(
    lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    import asyncio

    from personabid.experiments.registry import Experiments

    directory = tmp_path / "experiments"
    registry = Experiments(directory, _Builder())

    async def put_then_end() -> None:
        await registry.put(_experiment_file(1, ("control", "double"), control="double"))
        await registry.end(NAME)

    asyncio.run(put_then_end())
    assert not list(directory.glob("*.toml"))  # ended: only the archive holds it
    result = run(
        write_log(tmp_path / "events.jsonl", lines),
        NAME,
        tmp_path / "out",
        click_window=3600.0,
        view_window=600.0,
        experiments=directory,
    )
    assert (result["control"], result["shares_source"]) == (
        "double",
        str(directory / "ended" / f"{NAME}-v1.toml"),
    )


def test_of_several_versions_the_report_reads_the_highest_whose_arms_the_log_shows(
    lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    directory = tmp_path / "experiments"
    (directory / "ended").mkdir(parents=True)
    (directory / "ended" / f"{NAME}-v1.toml").write_text(_experiment_file(1, ("double", "control")))
    (directory / "ended" / f"{NAME}-v2.toml").write_text(_experiment_file(2, ("control", "double")))
    (directory / f"{NAME}.toml").write_text(_experiment_file(3, ("control", "triple")))
    result = report(write_log(tmp_path / "events.jsonl", lines), tmp_path / "out", experiments=directory)
    assert result["version"] == 2 and any("version 2" in note for note in result["notes"])
