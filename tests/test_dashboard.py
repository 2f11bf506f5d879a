"""The Grafana dashboard (server/dashboards/personabid.json): a valid dashboard model whose queries name
metrics the server exports, and that a real Prometheus, scraping a real server that has traded, evaluates:
every query parses, and the panels that trading lights return data."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
import pytest
from msgspec.structs import replace
from prometheus_client.parser import text_string_to_metric_families

from personabid.client import sample_auction
from personabid.openrtb.codec import encode
from personabid.openrtb.request import Regs
from personabid.world import World
from tests.conftest import ROOT, ThreadedServer, server_settings, system_command
from tests.http import call, fetch, post_bid
from tests.prometheus import JOB, Prometheus
from tests.test_http_notices import substituted
from tests.test_metrics import scrape

DASHBOARD = ROOT / "server" / "dashboards" / "personabid.json"
GRID_COLUMNS = 24

# --- The dashboard model -------------------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, and the panels a collapsed row holds."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard) if p.get("type") != "row"]


DASHBOARD_MODEL = load_dashboard()
PANELS = query_panels(DASHBOARD_MODEL)
TITLES = [str(p.get("title", p.get("id"))) for p in PANELS]

# --- PromQL names --------------------------------------------------------------------------------------

# Strings, label matchers {...} and ranges [...] name no metric: a tokenizer that skips them whole needs
# no PromQL grammar to find the names that remain.
_TOKEN = re.compile(
    r"""(?P<skip>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`|\{[^}]*\}|\[[^\]]*\])"""
    r"""|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)"""
    r"""|(?P<number>(?:[0-9]+(?:ms|s|m|h|d|w|y))+|[0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)"""
    r"""|(?P<open>\()|(?P<close>\))|(?P<other>\S)"""
)
# Words followed by a parenthesised list of label names, never of metrics.
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: every identifier that is not a function or aggregation
    (followed by "(" or by "by"/"without"), a keyword, a duration, or a label in a by, without, on, ignoring,
    group_left or group_right list."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr)]
    names: set[str] = set()
    depth_of_label_list: int | None = None
    depth = 0
    for i, (kind, text) in enumerate(tokens):
        following = tokens[i + 1][0] if i + 1 < len(tokens) else None
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
            if depth_of_label_list is not None and depth < depth_of_label_list:
                depth_of_label_list = None
        elif kind == "name":
            lowered = text.lower()
            if depth_of_label_list is not None:
                continue
            if lowered in _LABEL_LISTS:
                if following == "open":
                    depth_of_label_list = depth + 1
                continue
            # A function or an aggregation: "sum(...)", and "sum by (...) (...)" too.
            followed_by_labels = following == "name" and tokens[i + 1][1].lower() in ("by", "without")
            if following == "open" or followed_by_labels or lowered in _KEYWORDS:
                continue
            names.add(text)
    return names


def exported_names(exposition: str) -> set[str]:
    """The sample names a Prometheus text exposition offers, including those of families that have no
    sample yet (a labelled counter before its first increment): a counter's <name>_total, a histogram's
    <name>_bucket, _sum and _count, a summary's quantiles, _sum and _count."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def panel_queries(panel: dict[str, Any]) -> list[str]:
    return [str(t["expr"]) for t in panel.get("targets", []) if "expr" in t]


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    """The PromQL selectors inside the query variables' label_values(SELECTOR, LABEL)."""
    found = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        matched = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", text)
        assert matched, f"variable {variable['name']}: not label_values(SELECTOR, LABEL): {text!r}"
        found.append(matched.group(1))
    return found


QUERIED_NAMES = sorted(
    {name for p in PANELS for q in panel_queries(p) for name in metric_names(q)}
    | {name for q in variable_queries(DASHBOARD_MODEL) for name in metric_names(q)}
)

# --- Grafana's variables, as Grafana would substitute them --------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
BUILT_IN = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}


def substitute(expr: str, values: dict[str, str]) -> str:
    """`expr` with every dashboard variable replaced; a variable neither built in nor in `values` raises
    KeyError."""
    return _VARIABLE.sub(lambda m: values[next(g for g in m.groups() if g)], expr)


# --- The model -----------------------------------------------------------------------------------------


def test_the_dashboard_has_a_current_schema_a_uid_and_a_title() -> None:
    assert DASHBOARD_MODEL["schemaVersion"] >= 36
    assert DASHBOARD_MODEL["uid"] and DASHBOARD_MODEL["title"]


def test_the_datasource_is_a_prometheus_template_variable() -> None:
    variables = {v["name"]: v for v in DASHBOARD_MODEL["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")


def test_panel_ids_are_unique() -> None:
    ids = [p["id"] for p in all_panels(DASHBOARD_MODEL)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("panel", all_panels(DASHBOARD_MODEL), ids=lambda p: str(p.get("title")))
def test_every_panel_fits_inside_the_24_column_grid(panel: dict[str, Any]) -> None:
    grid = panel["gridPos"]
    assert grid["x"] >= 0 and grid["w"] >= 1 and grid["h"] >= 1 and grid["y"] >= 0
    assert grid["x"] + grid["w"] <= GRID_COLUMNS


def test_no_two_panels_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    clashes = []
    for panel in all_panels(DASHBOARD_MODEL):
        grid = panel["gridPos"]
        for y in range(grid["y"], grid["y"] + grid["h"]):
            for x in range(grid["x"], grid["x"] + grid["w"]):
                if (x, y) in cells:
                    clashes.append((cells[(x, y)], panel["title"]))
                cells[(x, y)] = panel["title"]
    assert not clashes


@pytest.mark.parametrize("panel", PANELS, ids=TITLES)
def test_every_panel_has_a_title_the_datasource_and_queries_with_ref_ids(panel: dict[str, Any]) -> None:
    assert panel.get("title")
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    targets = panel["targets"]
    refs = [t["refId"] for t in targets]
    assert targets and all(t["expr"].strip() for t in targets) and len(refs) == len(set(refs))
    assert all(t.get("datasource", panel["datasource"]) == panel["datasource"] for t in targets)


@pytest.mark.parametrize("panel", PANELS, ids=TITLES)
def test_every_query_reads_only_the_chosen_job_and_instance(panel: dict[str, Any]) -> None:
    # Each selector of a metric carries both matchers, so the variables narrow every series drawn.
    for expr in panel_queries(panel):
        for name in metric_names(expr):
            found = re.findall(rf"(?<![\w:]){re.escape(name)}(?![\w:])(\{{[^}}]*\}})?", expr)
            assert all('job=~"$job"' in s and 'instance=~"$instance"' in s for s in found), (name, expr)


def test_every_variable_a_query_uses_is_defined() -> None:
    defined = {v["name"]: v["name"] for v in DASHBOARD_MODEL["templating"]["list"]} | BUILT_IN
    for panel in PANELS:
        for expr in panel_queries(panel):
            substitute(expr, defined)


def test_the_tokenizer_finds_the_metrics_and_nothing_else() -> None:
    expr = (
        'sum by (le, stage) (rate(a_bucket{job=~"$job", x="b_total"}[$__rate_interval])) / on (stage) '
        "group_left (arm) sum without (instance) (c_total offset 1h30m) and bool time() - d"
    )
    assert metric_names(expr) == {"a_bucket", "c_total", "d"}


# --- A real server that traded, and a real Prometheus scraping it -------------------------------------

EXPERIMENT = """\
name = "dashboard-aa"
version = 1
salt = "dashboard-aa-salt"
[[arms]]
name = "control"
share = 0.5
[[arms]]
name = "same"
share = 0.5
"""


def trade(server: ThreadedServer, world: World, seeds: range) -> None:
    """What an exchange and an advertiser's site send: bid requests (one malformed, some under COPPA), a
    win, billing, click and conversion postback for half the bids, a loss for the others."""
    assert post_bid(server.http_addr, b"{not json").status == 400
    decider = server.server.decider
    assert decider is not None
    campaigns = decider.snapshot.bundle.campaigns
    for seed in seeds:
        request = sample_auction(world, np.random.default_rng(seed))
        if seed % 4 == 3:
            request = replace(request, regs=Regs(coppa=1))
        reply = post_bid(server.http_addr, encode(request))
        if reply.status != 200:
            continue
        bid = reply.json()["seatbid"][0]["bid"][0]
        if seed % 2:
            assert fetch(substituted(bid["lurl"])).status == 200
            continue
        assert fetch(substituted(bid["nurl"], price=round(bid["price"] * 0.8, 4))).status == 200
        assert fetch(substituted(bid["burl"], price=round(bid["price"] * 0.8, 4))).status == 200
        click = bid["ext"]["clickurl"]
        assert fetch(click).status in (204, 302)
        # The advertiser's postback names the bid with the click URL's signed identity.
        identity = dict(parse_qsl(urlsplit(click).query))
        row = int(np.flatnonzero(campaigns.campaign_id == bid["cid"])[0])
        postback = {
            "advertiser": str(campaigns.advertiser[row]),
            "order_id": f"order-{seed}",
            "value": "25.00",
            "currency": "USD",
        } | {k: identity[k] for k in ("auction", "imp", "bid", "campaign", "sig")}
        assert call(server.http_addr, "GET", "/conversion?" + urlencode(postback)).status == 200


def counted(server: ThreadedServer) -> float:
    """Requests and notices the server has counted, as its own registry says."""
    return sum(
        sample.value
        for family in server.server.registry.collect()
        for sample in family.samples
        if sample.name in ("personabid_bid_requests_total", "personabid_notifications_total")
    )


@pytest.fixture(scope="module")
def traded(
    demo_dir: Path, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedServer]:
    experiments = tmp_path_factory.mktemp("experiments")
    (experiments / "dashboard-aa.toml").write_text(EXPERIMENT)
    running = ThreadedServer(server_settings(demo_dir, experiments_path=experiments)).start()
    try:
        trade(running, world, range(0, 24))
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def prometheus(
    traded: ThreadedServer, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """Prometheus after two scrapes of `traded` with trading in between, so that every rate has two
    samples to go on."""
    binary = system_command("prometheus", "prometheus")
    target = urlsplit(traded.metrics_url).netloc
    running = Prometheus(binary, tmp_path_factory.mktemp("prometheus"), target).start()
    try:
        trade(traded, world, range(24, 48))
        expected = counted(traded)
        query = 'sum(personabid_bid_requests_total{job="%s"}) + sum(personabid_notifications_total{job="%s"})'

        def scraped_after_trading() -> bool:
            found = running.series(query % (JOB, JOB))
            return bool(found) and float(found[0]["value"][1]) >= expected

        running.wait_for("a scrape after the second round of trading", scraped_after_trading)
        yield running
    finally:
        running.stop()


def variables(traded: ThreadedServer) -> dict[str, str]:
    return {
        "job": JOB,
        "instance": urlsplit(traded.metrics_url).netloc,
        "datasource": "prometheus",
    } | BUILT_IN


@pytest.mark.parametrize("name", QUERIED_NAMES)
def test_every_queried_metric_is_exported_by_the_server(traded: ThreadedServer, name: str) -> None:
    assert name in exported_names(scrape(traded))


@pytest.mark.parametrize("panel", PANELS, ids=TITLES)
def test_every_panel_query_evaluates_in_prometheus(
    prometheus: Prometheus, traded: ThreadedServer, panel: dict[str, Any]
) -> None:
    for expr in panel_queries(panel):
        answer = prometheus.query(substitute(expr, variables(traded)))
        assert answer["status"] == "success", (expr, answer.get("error"))


# Every panel shows data once the server has traded, except these: they count what trading does not
# cause (a spend store failing, a capped store overflowing, a reload).
NOT_LIT_BY_TRADING = ("Spend store errors and capped entries", "Artifact reloads")


def test_the_panels_exempted_from_showing_data_are_on_the_dashboard() -> None:
    assert set(NOT_LIT_BY_TRADING) <= set(TITLES)


@pytest.mark.parametrize(
    "panel", [p for p in PANELS if p["title"] not in NOT_LIT_BY_TRADING], ids=lambda p: str(p["title"])
)
def test_every_panel_shows_data_once_the_server_has_traded(
    prometheus: Prometheus, traded: ThreadedServer, panel: dict[str, Any]
) -> None:
    for expr in panel_queries(panel):
        query = substitute(expr, variables(traded))
        found = prometheus.series(query)
        assert any(math.isfinite(float(s["value"][1])) for s in found), (query, found)
