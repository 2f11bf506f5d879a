"""The filter rows hold each campaign's filter columns, every value at its place (decision/filter_rows.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from personabid.decision.filter_rows import (
    ADOMAIN_CODE,
    BUNDLE_CODE,
    CATEGORY_CODE,
    DEVICE_BITS,
    END,
    LANGUAGE_CODE,
    MIN_MATCH,
    PARENT_CODE,
    START,
    filter_rows,
)
from personabid.index.campaigns import CampaignSpec, build_table
from tests.test_eligibility import WIDE, campaigns


@settings(max_examples=60, deadline=None)
@given(campaigns())
def test_each_row_holds_its_campaigns_filter_columns(specs: list[CampaignSpec]) -> None:
    table = build_table(specs)[0]
    rows = filter_rows(table)
    held = {
        "start": rows.ints[:, START],
        "end": rows.ints[:, END],
        "min_match": rows.floats[:, MIN_MATCH].astype(np.float32),
        "category_code": rows.codes[:, CATEGORY_CODE],
        "category_parent_code": rows.codes[:, PARENT_CODE],
        "adomain_code": rows.codes[:, ADOMAIN_CODE],
        "bundle_code": rows.codes[:, BUNDLE_CODE],
        "language_code": rows.codes[:, LANGUAGE_CODE],
        "device_bits": rows.codes[:, DEVICE_BITS],
    }
    for name, at in (
        ("country_bits", rows.country),
        ("region_bits", rows.region),
        ("blocked_site_bits", rows.site),
        ("os_bits", rows.os),
    ):
        held[name] = rows.words[:, at : at + getattr(table, name).shape[1]]
    assert {name: values.tolist() for name, values in held.items()} == {
        name: getattr(table, name).tolist() for name in held
    }


def test_the_rows_are_built_once_a_table() -> None:
    table = build_table([WIDE])[0]
    assert filter_rows(table) is filter_rows(table)
