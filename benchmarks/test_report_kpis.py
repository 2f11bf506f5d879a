"""KPI report throughput: `personabid report kpis`'s computation (kpis.compute: read, attribute, group by
every dimension) over a day's event log of 10 million lines.

Run (timed: Parquet at 10,000,000 lines, JSON Lines at 1,000,000; JSON Lines at 10,000,000 too with
PERSONABID_BENCH_SLOW=1, as `make bench` sets it):

    .venv/bin/python -m pytest benchmarks/test_report_kpis.py --benchmark-only \
        --benchmark-json=benchmarks/results/report_kpis.json

Untimed (`make test`, --benchmark-disable) the same code runs once on 20,000 lines.

The log (tests/kpi_logs.columns) is a day of auctions of one bid each over 1,000 campaigns, 100
advertisers, 200,000 users and two experiment arms: bid lines kept at sample 0.5, half the bids won (a win
and a billing line each), 2 % of wins clicked, 0.5 % converting an hour later; written once per session (a
JSON Lines file through Polars, or Parquet). Before timing, each benchmark checks the report's totals
against what was written. Each benchmark's extra_info holds lines and lines_per_second (from the median).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from personabid.training.reports import kpis
from tests.kpi_logs import columns, write_columns

UNTIMED_LINES = 20_000
PARAMS = kpis.KpiParams(click_window=7 * 86_400.0, view_window=86_400.0)


def _lines(request: pytest.FixtureRequest, timed: int) -> int:
    return UNTIMED_LINES if request.config.getoption("benchmark_disable") else timed


def _log(tmp_path_factory: pytest.TempPathFactory, lines: int, suffix: str) -> tuple[Path, pa.Table]:
    table = columns(lines)
    path = tmp_path_factory.mktemp("kpi-log") / f"events-2024-10-04{suffix}"
    write_columns(path, table)
    return path, table


@pytest.fixture(scope="module")
def parquet_log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, pa.Table]:
    return _log(tmp_path_factory, _lines(request, 10_000_000), ".parquet")


@pytest.fixture(scope="module")
def json_log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, pa.Table]:
    return _log(tmp_path_factory, _lines(request, 1_000_000), ".jsonl")


def check_totals(report: dict, table: pa.Table) -> None:
    """The report's totals are the written log's counts."""
    events = table["event"]

    def count(kind: str) -> int:
        return int(pc.sum(pc.equal(events, kind)).as_py() or 0)

    totals = report["totals"]
    assert totals["bids"] == pytest.approx(count("bid") / 0.5)
    assert (totals["wins"], totals["impressions"], totals["clicks"]) == (
        count("win"),
        count("billing"),
        count("click"),
    )
    # A conversion an hour after a win of its user on the advertiser's campaigns: attributed, post-view
    # unless clicked.
    assert totals["conversions"] == count("conversion")
    price = table.filter(pc.equal(events, "win"))["price"].to_numpy()
    assert totals["spend"] == pytest.approx(float(np.sum(price)) / 1000.0)
    assert {r["group"] for r in report["groups"]["arm"]} == {"bidmult:control", "bidmult:double"}


def _run(benchmark: BenchmarkFixture, path: Path, table: pa.Table, rounds: int) -> None:
    report = kpis.compute([path], PARAMS)
    check_totals(report, table)
    benchmark.pedantic(kpis.compute, args=([path], PARAMS), rounds=rounds, iterations=1)
    benchmark.extra_info["lines"] = table.num_rows
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["lines_per_second"] = round(table.num_rows / stats.stats.median)


def test_kpis_over_parquet(benchmark: BenchmarkFixture, parquet_log: tuple[Path, pa.Table]) -> None:
    _run(benchmark, *parquet_log, rounds=3)


def test_kpis_over_json_lines(benchmark: BenchmarkFixture, json_log: tuple[Path, pa.Table]) -> None:
    _run(benchmark, *json_log, rounds=3)


@pytest.mark.slow  # skipped unless PERSONABID_BENCH_SLOW=1 (benchmarks/conftest.py)
def test_kpis_over_ten_million_json_lines(
    benchmark: BenchmarkFixture, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path, table = _log(tmp_path_factory, _lines(request, 10_000_000), ".jsonl")
    _run(benchmark, path, table, rounds=1)
