"""The HTML reports: the primitives well-formed, escaped and self-contained, and the pages (one with
every primitive, the KPI report and the experiment report, as the commands write them) rendered by a
real browser.

The browser tests open the pages in Debian's headless chromium (tests/browser.py), which CI installs
through `make deps` (.ci/system-deps); where it is absent they fail, the other tests still run.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.training.reports import charts, html, kpi_page, kpis, svg
from tests import browser
from tests.experiment_logs import experiment_lines, write_log
from tests.kpi_logs import demo_campaigns, random_log, write_days

NAN, INF = float("nan"), float("inf")
HOSTILE = "<script>alert(1)</script>"
HOURS = list(range(24))
CHART_TITLES = [
    "Bids, wins and clicks by hour",
    "Spend against budget",
    "From bid to conversion",
    "Best campaigns by ROAS",
    "Relative lift against control",
]


def every_primitive() -> str:
    """A page with each primitive, from fixed data that includes n/a values and a hostile campaign id."""
    bids = [1000 + 800 * math.sin((hour - 6) / 24 * 2 * math.pi) for hour in HOURS]
    clicks: list[float] = [b * 0.004 for b in bids]
    clicks[5] = NAN
    sections = [
        html.verdict(
            False, "Sample ratio mismatch (p = 2.1e-05)", "5,210 users against 4,790 planned 50/50."
        ),
        html.tiles([("bids", 1_234_567), ("win rate", 0.2231, ".1%"), ("spend", 12_345.678, "usd")]),
        html.section(
            "A day",
            charts.line_chart(
                CHART_TITLES[0],
                HOURS,
                {"bids": bids, "wins": [b * 0.22 for b in bids], "clicks": clicks},
                x_label="hour (UTC)",
                y_label="events",
            ),
            charts.line_chart(
                CHART_TITLES[1],
                HOURS,
                {"spend": [h * 40.0 for h in HOURS], "planned": [h * 42.0 for h in HOURS]},
                y_format="usd",
                dashed=["planned"],
                references={"daily budget": 1000.0},
            ),
        ),
        html.section(
            "Funnel",
            charts.funnel(
                CHART_TITLES[2],
                [
                    ("bids", 1_234_567),
                    ("wins", 271_000),
                    ("impressions", 265_000),
                    ("clicks", 530),
                    ("conversions", 21),
                ],
            ),
        ),
        html.section(
            "Campaigns",
            charts.bar_chart(CHART_TITLES[3], [(HOSTILE, 3.2), ("c2", 2.1), ("c3", -0.5), ("c4", INF)]),
            html.table(
                [
                    {"campaign": HOSTILE, "bids": 12_345, "ctr": 0.01234, "roas": NAN},
                    {"campaign": "c2", "bids": 3, "ctr": 0.5, "roas": 2.0},
                    {"campaign": "c3", "bids": 10**12, "ctr": INF, "roas": -1.5},
                ],
                formats={"ctr": ".2%"},
                title="Campaigns",
                csv_name="campaigns.csv",
            ),
        ),
        html.section(
            "Experiment",
            charts.interval_bars(
                CHART_TITLES[4],
                [
                    {
                        "metric": "CTR",
                        "arm": "double",
                        "estimate": 0.05,
                        "low": 0.01,
                        "high": 0.09,
                        "significant": True,
                    },
                    {"metric": "CTR", "arm": "half", "estimate": -0.02, "low": -0.07, "high": 0.03},
                    {
                        "metric": "revenue per user",
                        "arm": "double",
                        "estimate": 0.12,
                        "low": -0.04,
                        "high": INF,
                    },
                ],
                value_format="+.1%",
            ),
        ),
    ]
    return html.page("KPI report", sections, source="var/demo/events-2026-11-30.jsonl")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> browser.Rendered:
    directory = tmp_path_factory.mktemp("report")
    path = directory / "report.html"
    html.write_page(path, every_primitive())
    return browser.render(path, directory / "report.png")


def svgs(document: str) -> list[ET.Element]:
    """Every <svg> of `document` parsed as XML (raises on a malformed one)."""
    return [ET.fromstring(match) for match in re.findall(r"<svg\b.*?</svg>", document, flags=re.DOTALL)]


# ---- in the browser -----------------------------------------------------------------------------------


def test_every_chart_is_laid_out_with_its_marks(rendered: browser.Rendered) -> None:
    assert [c.title for c in rendered.charts] == CHART_TITLES
    for chart in rendered.charts:
        assert chart.box.width > 100 and chart.box.height > 100, chart
        assert chart.marks > 0, chart


def test_charts_fit_the_page_width(rendered: browser.Rendered) -> None:
    for chart in rendered.charts:
        assert chart.box.x >= 0 and chart.box.x + chart.box.width <= 1200, chart


def test_line_chart_draws_every_finite_point(rendered: browser.Rendered) -> None:
    day = rendered.charts[0]
    # 3 series x 24 points, one n/a, as points; the lines: bids, wins, and clicks split in two by the gap.
    assert day.marks == 3 * 24 - 1 + 4


def test_table_has_its_rows(rendered: browser.Rendered) -> None:
    (table,) = rendered.tables
    assert table.headers == ["campaign", "bids", "ctr", "roas"]
    assert table.rows == 3
    assert table.box.height > 3 * 20


def test_page_attempts_no_network_request(rendered: browser.Rendered) -> None:
    assert rendered.requests == []


def test_screenshot_is_not_blank(rendered: browser.Rendered) -> None:
    from PIL import Image, ImageStat

    with Image.open(rendered.screenshot) as image:
        assert image.width == 1200 and image.height > 1500
        grey = image.convert("L")
        assert ImageStat.Stat(grey).stddev[0] > 10
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


def test_headings_name_the_sections(rendered: browser.Rendered) -> None:
    assert rendered.headings == ["KPI report", "A day", "Funnel", "Campaigns", "Experiment"]


def test_hostile_campaign_id_is_text_not_markup(rendered: browser.Rendered) -> None:
    assert "script" not in rendered.elements
    assert rendered.tables[0].cells[0][0] == HOSTILE
    assert HOSTILE in rendered.text


def test_non_finite_numbers_read_na(rendered: browser.Rendered) -> None:
    cells = rendered.tables[0].cells
    assert cells[0][3] == "n/a"  # NaN
    assert cells[2][2] == "n/a"  # inf


def test_verdict_is_shown_above_the_charts(rendered: browser.Rendered) -> None:
    assert "Sample ratio mismatch" in rendered.text.split(CHART_TITLES[0])[0]


def test_browser_records_what_a_page_tries_to_fetch(tmp_path: Path) -> None:
    # The check that reports fetch nothing is only as good as the recording: a page that does fetch.
    page = tmp_path / "fetching.html"
    page.write_text(
        '<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
        '<link rel="stylesheet" href="https://fonts.example.invalid/font.css">'
        '<img src="http://cdn.example.invalid/logo.png"><h1>t</h1>'
    )
    rendered = browser.render(page, tmp_path / "fetching.png")
    assert sorted(rendered.requests) == [
        "http://cdn.example.invalid/logo.png",
        "https://fonts.example.invalid/font.css",
    ]


def test_page_logs_no_error_or_warning(rendered: browser.Rendered) -> None:
    assert rendered.console == []


# ---- the markup ---------------------------------------------------------------------------------------


def test_every_svg_of_the_page_is_well_formed() -> None:
    assert len(svgs(every_primitive())) == len(CHART_TITLES)


def test_page_names_no_url() -> None:
    document = every_primitive()
    assert not re.search(r"https?:|//[a-z]|\bsrc=|url\(|<script|<link|@import", document, flags=re.IGNORECASE)


def test_page_forbids_fetches_in_its_policy() -> None:
    assert "default-src 'none'" in every_primitive()


def test_page_declares_its_charset_and_source() -> None:
    document = html.page(
        "t", [], source="logs/<x>", generated_at=dt.datetime(2026, 11, 30, 22, 0, tzinfo=dt.UTC)
    )
    assert '<meta charset="utf-8">' in document
    assert "Generated 2026-11-30 22:00 UTC · source: logs/&lt;x&gt;" in document


def test_hostile_text_is_escaped_everywhere() -> None:
    fragments = [
        charts.bar_chart(HOSTILE, [(HOSTILE, 1.0)]),
        charts.line_chart(HOSTILE, [HOSTILE], {HOSTILE: [1.0]}),
        charts.funnel(HOSTILE, [(HOSTILE, 10), (HOSTILE, 1)]),
        charts.interval_bars(
            HOSTILE, [{"metric": HOSTILE, "arm": HOSTILE, "estimate": 1, "low": 0, "high": 2}]
        ),
        html.table([{HOSTILE: HOSTILE}], csv_name=HOSTILE),
        html.callout(HOSTILE, HOSTILE),
        html.section(HOSTILE, note=HOSTILE),
        html.page(HOSTILE, [], source=HOSTILE),
    ]
    for fragment in fragments:
        assert "<script" not in fragment, fragment


def test_control_characters_do_not_break_the_svg() -> None:
    (svg,) = svgs(charts.bar_chart("t", [("camp\x00\x1b\ufffe", 1.0)]))
    assert svg.find("title") is not None


def test_non_finite_values_read_na_in_a_table() -> None:
    document = html.table([{"a": NAN, "b": INF, "c": -INF, "d": 1.5}])
    assert re.findall(r'<td class="num[^"]*">([^<]*)</td>', document) == ["n/a", "n/a", "n/a", "1.5"]


def test_non_finite_bar_reads_na_and_draws_no_bar() -> None:
    document = charts.bar_chart("t", [("a", NAN), ("b", 2.0)])
    assert document.count('class="mark"') == 1
    assert ">n/a</text>" in document


def test_line_chart_counts_non_finite_values_in_its_caption() -> None:
    document = charts.line_chart("t", [0, 1, 2], {"s": [1.0, INF, NAN]})
    assert "2 values n/a" in document


def test_empty_chart_says_no_data() -> None:
    for document in (
        charts.line_chart("t", [], {}),
        charts.bar_chart("t", []),
        charts.funnel("t", []),
        charts.interval_bars("t", []),
    ):
        assert "no data" in document
        assert 'class="mark"' not in document
        svgs(document)


def test_single_point_is_drawn_as_a_point() -> None:
    document = charts.line_chart("t", [3], {"s": [42.0]})
    assert document.count("<circle") == 1


def test_huge_and_negative_values_stay_inside_the_chart() -> None:
    (svg,) = svgs(charts.bar_chart("t", [("a", 1e308), ("b", -1e308), ("c", 5.0)]))
    for rect in svg.iter("rect"):
        assert (
            float(rect.get("x", "0")) >= 0
            and float(rect.get("x", "0")) + float(rect.get("width", "0")) <= 880
        )


def test_reference_line_is_drawn_and_labelled() -> None:
    document = charts.line_chart(
        "t", [0, 1], {"spend": [1.0, 2.0]}, references={"daily budget": 10.0}, y_format="usd"
    )
    (svg,) = svgs(document)
    (budget,) = [line for line in svg.iter("line") if line.get("class") == "mark"]
    assert budget.get("y1") == budget.get("y2")
    assert "daily budget: $10.00" in document


def test_reference_line_widens_the_axis_to_show_it() -> None:
    (svg,) = svgs(charts.line_chart("t", [0, 1], {"spend": [1.0, 2.0]}, references={"budget": 50.0}))
    assert "50" in [t.text for t in svg.iter("text")]


def test_dashed_series_is_drawn_dashed() -> None:
    (svg,) = svgs(charts.line_chart("t", [0, 1], {"spend": [1, 2], "planned": [1, 3]}, dashed=["planned"]))
    paths = {p.findtext("title"): p.get("stroke-dasharray") for p in svg.iter("path")}
    assert paths["planned"] and not paths["spend"]


def test_a_break_starts_each_line_afresh() -> None:
    # A cumulative share restarts at midnight: the day's last point and the next day's first are not joined.
    chart = charts.line_chart("t", ["a", "b", "c", "d"], {"share": [0.5, 1.0, 0.5, 1.0]}, breaks=[2])
    (drawing,) = svgs(chart)
    assert [p.findtext("title") for p in drawing.iter("path")] == ["share", "share"]


def test_kpi_funnel_ends_at_post_click_conversions(tmp_path: Path) -> None:
    # Post-view conversions follow no click: counted in the funnel's last step they would exceed clicks.
    files = write_days(tmp_path / "log", random_log(5, 400, days=1.0))
    report = kpis.compute(files, kpis.KpiParams(click_window=7 * 86400, view_window=86400), threads=1)
    (funnel,) = [d for d in svgs(kpi_page.render(report)) if d.get("aria-label", "").startswith("From bid")]
    totals = report["totals"]
    assert totals["conversions_post_view"] > 0
    last_step = [t.text for t in funnel.iter("text")][-3:-1]
    assert last_step == ["post-click conversions", f"{totals['conversions_post_click']:,}"]


def test_unbounded_interval_end_reads_infinity() -> None:
    rows = [{"metric": "m", "arm": "b", "estimate": 0.1, "low": -INF, "high": INF}]
    assert "0.1 [-∞, ∞]" in charts.interval_bars("t", rows)


def test_funnel_writes_counts_and_step_rates() -> None:
    document = charts.funnel("t", [("bids", 1000), ("wins", 250), ("clicks", 5)])
    assert "1,000" in document and "25.00% of bids" in document and "2.00% of wins" in document


def test_funnel_switches_to_a_log_scale_for_rare_steps() -> None:
    assert "log scale" in charts.funnel("t", [("bids", 1_000_000), ("clicks", 100)])
    assert "log scale" not in charts.funnel("t", [("bids", 100), ("wins", 40)])


def test_significant_interval_is_starred() -> None:
    rows = [
        {"metric": "CTR", "arm": "b", "estimate": 0.1, "low": 0.05, "high": 0.15, "significant": True},
        {"metric": "CTR", "arm": "c", "estimate": 0.0, "low": -0.05, "high": 0.05, "significant": False},
    ]
    document = charts.interval_bars("t", rows)
    assert "CTR · b *" in document and "CTR · c *" not in document


def test_table_csv_link_carries_the_rows() -> None:
    document = html.table([{"campaign": "a,b", "bids": 3}], csv_name="kpis.csv")
    assert 'href="data:text/csv;charset=utf-8,campaign%2Cbids%0A%22a%2Cb%22%2C3%0A"' in document


def test_table_shows_only_max_rows() -> None:
    document = html.table([{"n": i} for i in range(10)], max_rows=3)
    assert document.count("<tr>") == 1 + 3 and "First 3 of 10 rows" in document


def test_unknown_callout_level_is_refused() -> None:
    with pytest.raises(ValueError, match="level: 'red'"):
        html.callout("t", level="red")


def test_write_page_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.html"
    html.write_page(path, "old")
    html.write_page(path, "new é")
    assert path.read_bytes() == "new é".encode()
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_format_value() -> None:
    assert [html.format_value(v) for v in (NAN, INF, None, 1234567, 0.5, 12.345, 1e20)] == [
        "n/a",
        "n/a",
        "n/a",
        "1,234,567",
        "0.5",
        "12.35",
        "1e+20",
    ]


def test_small_numbers_never_read_as_zero() -> None:
    assert [
        html.format_value(v, f) for v, f in ((0.004, "usd"), (1e-5, ".1%"), (0.0, ".2%"), (1e-30, ".2f"))
    ] == [
        "$0.004",
        "0.001%",
        "0.00%",
        "1.00e-30",
    ]


def test_tick_labels_have_the_decimals_that_tell_them_apart() -> None:
    assert svg.tick_labels([0, 1e-5, 2e-5], ".1%") == ["0", "0.001%", "0.002%"]
    assert svg.tick_labels([-0.05, 0.0, 0.05], "+.1%") == ["-5%", "0", "+5%"]
    assert svg.tick_labels([0.0, 0.015, 0.03], ".0%") == ["0", "1.5%", "3.0%"]


def test_tick_labels_use_one_unit_for_the_axis() -> None:
    assert svg.tick_labels([0, 5e5, 1e6, 1.5e6], None) == ["0", "0.5M", "1.0M", "1.5M"]
    assert svg.tick_labels([0, 2500, 5000], "usd") == ["$0", "$2,500", "$5,000"]


def test_missing_number_in_a_numeric_column_reads_na() -> None:
    document = html.table([{"campaign": "a", "ecpc": 0.5}, {"campaign": "b", "ecpc": None}])
    assert re.findall(r'<td class="num[^"]*">([^<]*)</td>', document) == ["0.5", "n/a"]


# ---- arbitrary data -----------------------------------------------------------------------------------

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.none(),
)
series = st.lists(values, max_size=200)
# Text as a browser shows it: no control characters (XML forbids most, and reads "\r" as "\n").
printable = st.characters(blacklist_categories=("Cs", "Cc"))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=20), series, max_size=4), st.booleans())
def test_line_chart_is_well_formed_for_any_series(data: dict[str, list[object]], categorical: bool) -> None:
    length = max((len(v) for v in data.values()), default=0)
    x = [f"h{i}" for i in range(length)] if categorical else list(range(length))
    (svg,) = svgs(charts.line_chart("t", x, data))
    assert svg.tag == "svg"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=30), values), max_size=200))
def test_bar_chart_is_well_formed_for_any_values(bars: list[tuple[str, object]]) -> None:
    svgs(charts.bar_chart("t", bars))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=15), values), max_size=8))
def test_funnel_is_well_formed_for_any_counts(steps: list[tuple[str, object]]) -> None:
    svgs(charts.funnel("t", steps))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=10), values, values, values, st.booleans()), max_size=40))
def test_interval_bars_are_well_formed_for_any_intervals(
    rows: list[tuple[str, object, object, object, bool]],
) -> None:
    intervals = [
        {"metric": m, "arm": "b", "estimate": e, "low": lo, "high": hi, "significant": s}
        for m, e, lo, hi, s in rows
    ]
    svgs(charts.interval_bars("t", intervals))


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False))
def test_ticks_cover_the_range_in_order(a: float, b: float) -> None:
    ticks = svg.nice_ticks(a, b)
    low, high = (max(-svg.LARGEST, min(v, svg.LARGEST)) for v in sorted((a, b)))
    assert 2 <= len(ticks) <= 12
    assert ticks == sorted(ticks) and all(math.isfinite(t) for t in ticks)
    # Floating point's error at the range's scale; magnitudes below 1e-200 are drawn as zero.
    slack = max((high - low) * 1e-9, 1e-200)
    assert ticks[0] <= low + slack and ticks[-1] >= high - slack


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["campaign", "<b>", "a&b"]), st.text(alphabet=printable), max_size=3)
    )
)
def test_table_shows_any_text_as_itself(rows: list[dict[str, str]]) -> None:
    parsed = ET.fromstring(html.table(rows))  # the fragment is well-formed XML, text and all
    keys = list(dict.fromkeys(k for r in rows for k in r))
    assert [th.text or "" for th in parsed.iter("th")] == keys
    cells = [[td.text or "" for td in tr.iter("td")] for tr in parsed.find("table/tbody") or []]
    assert cells == [[r.get(k, "") for k in keys] for r in rows]


# ---- the reports, as the commands write them ----------------------------------------------------------

COMMAND = Path(sys.executable).with_name("personabid")
KPI_PLOTS = ["The day's curves", "Funnel", "Spend against budget", "Best and worst campaigns"]


def report(*args: str, out: Path) -> browser.Rendered:
    """Run `personabid report ARGS --out OUT` and open the report.html it wrote in the browser."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONABID_")}
    done = subprocess.run(
        [str(COMMAND), "report", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return browser.render(out / "report.html", out / "report.png")


@pytest.fixture(scope="module")
def kpi_report(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path) -> browser.Rendered:
    directory = tmp_path_factory.mktemp("kpis")
    # Two days of auctions on the demo index's campaigns, so that budgets and the pacing plan are known.
    write_days(directory / "log", demo_campaigns(random_log(5, 400, days=2.0), demo_dir / "index"))
    index = str(demo_dir / "index")
    return report("kpis", "--events", str(directory / "log"), "--index", index, out=directory / "out")


@pytest.fixture(scope="module")
def experiment_report(tmp_path_factory: pytest.TempPathFactory) -> browser.Rendered:
    directory = tmp_path_factory.mktemp("experiment")
    log = write_log(directory / "log" / "events.jsonl", experiment_lines())
    return report("experiment", "bid-multiplier", "--events", str(log), out=directory / "out")


@pytest.mark.parametrize("heading", KPI_PLOTS)
def test_kpi_report_plots_each_view(kpi_report: browser.Rendered, heading: str) -> None:
    charts = [c for c in kpi_report.charts if c.section == heading]
    assert charts, f"no chart under {heading!r}: {kpi_report.headings}"
    for chart in charts:
        assert chart.marks > 0 and chart.box.width > 100 and chart.box.height > 50, chart


def test_kpi_report_ranks_the_best_and_worst_campaigns(kpi_report: browser.Rendered) -> None:
    ranked = [t for t in kpi_report.tables if t.section == "Best and worst campaigns"]
    captions = [t.caption for t in ranked]
    assert any(c.startswith("Best") for c in captions) and any(c.startswith("Worst") for c in captions)
    assert all(t.rows > 0 for t in ranked)


def test_kpi_report_tables_have_their_rows(kpi_report: browser.Rendered) -> None:
    assert kpi_report.tables
    for table in kpi_report.tables:
        assert table.rows > 0 and table.box.height > 0, table


def test_kpi_report_fetches_nothing_and_logs_no_error(kpi_report: browser.Rendered) -> None:
    assert (kpi_report.requests, kpi_report.console) == ([], [])


def test_kpi_report_screenshot_is_not_blank(kpi_report: browser.Rendered) -> None:
    from PIL import Image, ImageStat

    with Image.open(kpi_report.screenshot) as image:
        assert ImageStat.Stat(image.convert("L")).stddev[0] > 10


def test_experiment_report_puts_the_sample_ratio_verdict_on_top(experiment_report: browser.Rendered) -> None:
    verdict = experiment_report.callouts[0]
    assert "sample ratio" in verdict.text.lower() and verdict.level == "ok"
    assert all(verdict.box.y < c.box.y for c in experiment_report.charts)
    assert all(verdict.box.y < t.box.y for t in experiment_report.tables)


def test_experiment_report_draws_an_interval_per_metric(experiment_report: browser.Rendered) -> None:
    (chart,) = experiment_report.charts
    # Per metric and treatment arm: the interval and its point.
    treated = [r for t in experiment_report.tables for r in t.cells if len(r) > 1 and r[1] == "double"]
    assert chart.marks >= 2 * len(treated) > 0
    assert chart.box.height > 100


def test_experiment_report_tables_have_their_rows(experiment_report: browser.Rendered) -> None:
    assert experiment_report.tables
    for table in experiment_report.tables:
        assert table.rows > 0, table


def test_experiment_report_fetches_nothing_and_logs_no_error(experiment_report: browser.Rendered) -> None:
    assert (experiment_report.requests, experiment_report.console) == ([], [])


def test_experiment_report_shows_a_sample_ratio_mismatch_in_red(tmp_path: Path) -> None:
    # Users split 75/25 where the arms are planned equal: the sample-ratio check must fail, visibly.
    log = write_log(tmp_path / "log" / "events.jsonl", experiment_lines(users=400, shares=(0.75, 0.25)))
    rendered = report("experiment", "bid-multiplier", "--events", str(log), out=tmp_path / "out")
    verdict = rendered.callouts[0]
    assert verdict.level == "bad" and "sample ratio" in verdict.text.lower()
