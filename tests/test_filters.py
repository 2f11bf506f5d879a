"""Eligibility filters against per-campaign reference checks written from the campaign specs."""

from __future__ import annotations

import numpy as np
import pytest

from personabid.decision import filters
from personabid.index.campaigns import CampaignSpec, Creative, build_table

DIMS = 4


def spec(i: int, **fields: object) -> CampaignSpec:
    defaults: dict[str, object] = {
        "id": f"c{i}",
        "advertiser": f"a{i % 3}",
        "adomain": f"brand{i % 3}.example",
        "category": ["IAB1-1", "IAB2", "IAB1-2", "IAB7-39"][i % 4],
        "base_bid": 1.0 + i,
        "max_bid": 2.0 + i,
        "personas": np.eye(DIMS, dtype=np.float32)[[i % DIMS]],
        "creatives": (Creative(f"cr{i}", *[(300, 250), (728, 90)][i % 2]),),
    }
    defaults.update(fields)
    return CampaignSpec(**defaults)  # type: ignore[arg-type]


SPECS = [
    spec(0, countries=("USA",)),
    spec(1, countries=("DEU", "FRA"), device_types=(4, 5)),
    spec(2, os=("ios",)),
    spec(3, start=1000, end=2000, min_match=0.5),
    spec(4, device_types=(2,), countries=("USA",)),
    spec(5, regions=("USA-CA",), blocked_categories=("IAB25",)),
    spec(6, blocked_categories=("IAB7-39", "IAB9")),
]
TABLE, _, _ = build_table(SPECS)
ROWS = np.arange(len(SPECS), dtype=np.int32)


@pytest.mark.parametrize(("devicetype", "os"), [(4, "ios"), (2, "windows"), (5, "android"), (0, "")])
def test_device_keeps_campaigns_targeting_the_device_type_and_os(devicetype: int, os: str) -> None:
    keep = filters.device(TABLE, ROWS, devicetype, TABLE.code_of("os_names", os))
    expected = [
        (not s.device_types or devicetype in s.device_types) and (not s.os or os in s.os) for s in SPECS
    ]
    assert keep.tolist() == expected


@pytest.mark.parametrize("blocked", [("IAB1",), ("IAB1-1",), ("IAB2", "IAB7-39"), ("IAB99",), ()])
def test_bcat_removes_blocked_categories_and_their_children(blocked: tuple[str, ...]) -> None:
    context = filters.context_for(TABLE, 0, 0, "", "", blocked, ())
    keep = filters.blocked_category(TABLE, ROWS, context.blocked_categories)
    expected = [not any(s.category == b or s.category.startswith(b + "-") for b in blocked) for s in SPECS]
    assert keep.tolist() == expected


@pytest.mark.parametrize(
    "blocked", [("brand1.example",), ("brand0.example", "brand2.example"), ("x.example",)]
)
def test_badv_removes_blocked_advertiser_domains(blocked: tuple[str, ...]) -> None:
    context = filters.context_for(TABLE, 0, 0, "", "", (), blocked)
    keep = filters.blocked_advertiser(TABLE, ROWS, context.blocked_domains)
    assert keep.tolist() == [s.adomain not in blocked for s in SPECS]


@pytest.mark.parametrize("now", [0, 999, 1000, 1999, 2000])
def test_schedule_keeps_campaigns_running_now(now: int) -> None:
    keep = filters.schedule(TABLE, ROWS, now)
    assert keep.tolist() == [s.start <= now and (s.end == 0 or now < s.end) for s in SPECS]


def test_similarity_floor_is_per_campaign() -> None:
    scores = np.full(len(SPECS), 0.4, dtype=np.float32)
    assert filters.similarity_floor(TABLE, ROWS, scores).tolist() == [s.min_match <= 0.4 for s in SPECS]


@pytest.mark.parametrize("floor", [0.0, 3.0, 4.5, 100.0])
def test_floor_reachable_keeps_campaigns_whose_cap_reaches_it(floor: float) -> None:
    assert filters.floor_reachable(TABLE, ROWS, floor).tolist() == [s.max_bid >= floor for s in SPECS]


@pytest.mark.parametrize("size", ["300x250", "728x90", "160x600"])
def test_size_keeps_campaigns_with_a_creative_of_that_size(size: str) -> None:
    keep = filters.creative_size(TABLE, ROWS, TABLE.code_of("sizes", size))
    assert keep.tolist() == [any(f"{c.w}x{c.h}" == size for c in s.creatives) for s in SPECS]


def test_slot_of_any_size_keeps_every_campaign() -> None:
    assert filters.creative_size(TABLE, ROWS, None).all()


def test_filters_of_no_candidates_are_empty() -> None:
    empty = np.array([], dtype=np.int32)
    assert filters.geo(TABLE, empty, 1).shape == (0,)
    assert filters.blocked_category(TABLE, empty, np.array([1], dtype=np.int32)).shape == (0,)


@pytest.mark.parametrize(
    ("country", "region"),
    [("USA", "CA"), ("USA", "NY"), ("USA", ""), ("DEU", "BY"), ("FRA", ""), ("GBR", ""), ("", "")],
)
def test_geo_keeps_campaigns_targeting_the_region_or_every_region(country: str, region: str) -> None:
    context = filters.context_for(TABLE, 0, 0, country, "", (), (), region=region)
    keep = filters.geo(TABLE, ROWS, context.country_code, context.region_code)
    expected = [
        (not s.countries or country in s.countries) and (not s.regions or f"{country}-{region}" in s.regions)
        for s in SPECS
    ]
    assert keep.tolist() == expected


@pytest.mark.parametrize("page", [("IAB25-3",), ("IAB7-39",), ("IAB7-1",), ("IAB9", "IAB1"), ()])
def test_site_category_removes_campaigns_that_block_the_page(page: tuple[str, ...]) -> None:
    context = filters.context_for(TABLE, 0, 0, "", "", (), (), site_categories=page)
    keep = filters.site_category(TABLE, ROWS, context.site_categories)
    expected = [
        not any(c == b or c.split("-", 1)[0] == b for c in page for b in s.blocked_categories) for s in SPECS
    ]
    assert keep.tolist() == expected
