"""The request's filter chain in one kernel pass (decision/eligibility.py) against the plain filters of
decision/filters.py applied one after another, as the chain declares them, over random campaign tables and
random requests."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.decision import filters
from personabid.decision.eligibility import BUDGET, CHAIN, KERNEL_STEPS, NAMES, eligible, first_failures
from personabid.decision.reasons import NoBid
from personabid.index.campaigns import CampaignSpec, CampaignTable, Creative, build_table

COUNTRIES = ("USA", "GBR", "DEU", "FRA")
REGIONS = ("CA", "NY", "TX")
OS_NAMES = ("ios", "android", "windows")
CATEGORIES = ("IAB1", "IAB1-2", "IAB3", "IAB3-1", "IAB9")
DOMAINS = ("a.example", "b.example", "c.example")
BUNDLES = ("", "com.app.one", "com.app.two")
LANGUAGES = ("", "en", "de", "fr")
NOW = 1_750_000_000


def subset(values: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), unique=True, max_size=len(values)).map(tuple)


# A campaign that widens the country, region, OS and blocked site category bitsets to two words, listed
# first so that the others' codes fall in the second word: the filter rows hold each bitset at its own
# offset (decision/filter_rows.py).
WIDE = CampaignSpec(
    id="wide",
    advertiser="adv-wide",
    adomain="w.example",
    category="IAB1",
    base_bid=1.0,
    max_bid=2.0,
    personas=np.eye(4, dtype=np.float32)[:1],
    creatives=(Creative("cr", 300, 250),),
    countries=tuple(f"X{n:02d}" for n in range(70)),
    regions=tuple(f"X00-R{n}" for n in range(70)),
    os=tuple(f"os{n}" for n in range(70)),
    blocked_categories=tuple(f"IAB{n}" for n in range(30, 100)),
)


@st.composite
def campaigns(draw: st.DrawFn) -> list[CampaignSpec]:
    count = draw(st.integers(1, 12))
    specs = [WIDE] if draw(st.booleans()) else []
    for i in range(count):
        countries = draw(subset(COUNTRIES))
        regions = tuple(f"{c}-{r}" for c in countries[:1] for r in draw(subset(REGIONS)))
        start = draw(st.sampled_from([0, NOW - 10, NOW, NOW + 10]))
        end = draw(st.sampled_from([0, NOW, NOW + 1, NOW - 5]))
        specs.append(
            CampaignSpec(
                id=f"c{i}",
                advertiser=f"adv{i % 3}",
                adomain=draw(st.sampled_from(DOMAINS)),
                category=draw(st.sampled_from(CATEGORIES)),
                base_bid=1.0,
                max_bid=2.0,
                personas=np.eye(4, dtype=np.float32)[:1],
                creatives=(Creative("cr", 300, 250),),
                countries=countries,
                regions=regions,
                device_types=tuple(sorted(draw(st.sets(st.integers(1, 8), max_size=3)))),
                os=draw(subset(OS_NAMES)),
                min_match=draw(st.sampled_from([0.0, 0.2, 0.3, 0.5, 0.9])),
                start=start,
                end=end,
                blocked_categories=draw(subset(CATEGORIES)),
                bundle=draw(st.sampled_from(BUNDLES)),
                language=draw(st.sampled_from(LANGUAGES)),
            )
        )
    return specs


@st.composite
def requests(draw: st.DrawFn, table: CampaignTable) -> tuple[filters.RequestContext, float]:
    country = draw(st.sampled_from((*COUNTRIES, "ITA", "")))
    context = filters.context_for(
        table,
        draw(st.sampled_from([NOW - 10, NOW, NOW + 5])),
        draw(st.integers(1, 8)),
        country,
        draw(st.sampled_from((*OS_NAMES, "linux", ""))),
        draw(subset((*CATEGORIES, "IAB20"))),
        draw(subset((*DOMAINS, "z.example"))),
        region=draw(st.sampled_from((*REGIONS, ""))),
        site_categories=draw(subset((*CATEGORIES, "IAB22-1"))),
        bapp=draw(subset((*BUNDLES[1:], "com.other"))),
        wlang=draw(st.one_of(st.just(()), subset((*LANGUAGES[1:], "es")))),
    )
    return context, draw(st.sampled_from([1.0, 0.75]))


def reference(
    table: CampaignTable,
    rows: np.ndarray,
    scores: np.ndarray,
    context: filters.RequestContext,
    scale: float,
    budget_left: np.ndarray | None,
) -> np.ndarray:
    """The step number each candidate is removed at, by the plain filters narrowing in the chain's order."""
    predicates = filters.request_predicates(table, context, scale)
    out = np.zeros(len(rows), dtype=np.int8)
    alive = np.arange(len(rows))
    for number, step in enumerate(CHAIN[:KERNEL_STEPS], start=1):
        if step.name == "budget":
            if budget_left is None:
                continue
            keep = budget_left[alive] > 0
        else:
            keep = predicates[step.name](rows[alive], scores[alive])
        out[alive[~keep]] = number
        alive = alive[keep]
    return out


@st.composite
def cases(
    draw: st.DrawFn,
) -> tuple[CampaignTable, np.ndarray, np.ndarray, filters.RequestContext, float, np.ndarray | None]:
    table = build_table(draw(campaigns()))[0]
    rows = np.array(
        draw(st.lists(st.integers(0, len(table) - 1), unique=True, min_size=1, max_size=len(table))),
        dtype=np.int32,
    )
    scores = np.array(
        draw(st.lists(st.floats(0.0, 1.0, width=32), min_size=len(rows), max_size=len(rows))),
        dtype=np.float32,
    )
    context, scale = draw(requests(table))
    budget = draw(
        st.one_of(
            st.none(),
            st.lists(st.integers(-5, 5), min_size=len(rows), max_size=len(rows)).map(
                lambda b: np.array(b, dtype=np.int64)
            ),
        )
    )
    return table, rows, scores, context, scale, budget


@settings(max_examples=300, deadline=None)
@given(cases())
def test_the_kernel_removes_each_candidate_where_the_plain_filters_in_turn_do(
    case: tuple[CampaignTable, np.ndarray, np.ndarray, filters.RequestContext, float, np.ndarray | None],
) -> None:
    table, rows, scores, context, scale, budget = case
    expected = reference(table, rows, scores, context, scale, budget)
    got = first_failures(table, rows, scores, context, scale, budget)
    assert got.tolist() == expected.tolist()


def test_the_chain_names_every_filter_the_metrics_count_once() -> None:
    assert len(set(NAMES)) == len(NAMES)
    assert NAMES[:KERNEL_STEPS][-1] == "budget"
    assert all(not step.in_kernel for step in CHAIN[KERNEL_STEPS:])


def test_a_spend_step_leaving_nothing_says_why_in_its_own_reason() -> None:
    reasons = {step.name: step.reason for step in CHAIN}
    assert (reasons["budget"], reasons["frequency"], reasons["pacing"]) == (
        NoBid.BUDGET_EXHAUSTED,
        NoBid.FREQUENCY_CAPPED,
        NoBid.PACED,
    )


def _budgeted() -> tuple[CampaignTable, filters.RequestContext, np.ndarray, np.ndarray]:
    spec = CampaignSpec(
        id="c", advertiser="a", adomain="a.example", category="IAB1", base_bid=1.0, max_bid=2.0,
        personas=np.eye(4, dtype=np.float32)[:1], creatives=(Creative("cr", 300, 250),), daily_budget=1.0,
    )  # fmt: skip
    table = build_table([spec])[0]
    context = filters.context_for(table, NOW, 2, "USA", "ios", (), ())
    return table, context, np.array([0], dtype=np.int32), np.array([0.9], dtype=np.float32)


def test_without_spend_control_no_candidate_is_removed_for_its_budget() -> None:
    table, context, rows, scores = _budgeted()
    assert first_failures(table, rows, scores, context, 1.0, None).tolist() == [0]


def test_a_campaign_with_nothing_left_to_commit_fails_the_budget_step() -> None:
    table, context, rows, scores = _budgeted()
    nothing_left = np.array([0], dtype=np.int64)
    assert first_failures(table, rows, scores, context, 1.0, nothing_left).tolist() == [BUDGET]


@settings(max_examples=200, deadline=None)
@given(cases())
def test_the_survivors_and_the_counts_are_what_the_step_numbers_say(
    case: tuple[CampaignTable, np.ndarray, np.ndarray, filters.RequestContext, float, np.ndarray | None],
) -> None:
    table, rows, scores, context, scale, budget = case
    failures = first_failures(table, rows, scores, context, scale, budget)
    passed = eligible(table, rows, scores, context, scale, budget)
    expected_removed = tuple(int((failures == n).sum()) for n in range(1, KERNEL_STEPS + 1))
    emptied = CHAIN[int(failures.max()) - 1] if not (failures == 0).any() else None
    assert (passed.rows.tolist(), passed.scores.tolist(), passed.removed, passed.emptied) == (
        rows[failures == 0].tolist(),
        scores[failures == 0].tolist(),
        expected_removed,
        emptied,
    )
