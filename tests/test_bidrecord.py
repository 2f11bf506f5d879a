"""The record of a bid: the event log's line is the documented format byte for byte, and the spend
store's copy comes back as it went in."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.bidrecord import VERSION, BidRecord, click_line

SERVED = BidRecord(
    ts=1763913600.25,
    request_id="08259a83",
    imp_id="1",
    user="3f1c0e",
    campaign="cmp-003717",
    advertiser="advertiser-00858",
    category="IAB3-1",
    devicetype=4,
    os="ios",
    country="USA",
    w=320,
    h=50,
    match=0.5,  # a float32's value
    tags=("interest:travel", "age:25-34"),
    pctr=0.031,
    price=3.41,
    model="20261123T160622Z-1a2b3c",
    freq_cap=3,
    freq_window=3600.0,
)


def test_log_line_is_the_documented_impression_record() -> None:
    assert SERVED.log_line() == (
        '{"v":1,"ts":1763913600.25,"request_id":"08259a83","imp_id":"1","user":"3f1c0e",'
        '"campaign":"cmp-003717","advertiser":"advertiser-00858","category":"IAB3-1","devicetype":4,'
        '"os":"ios","country":"USA","w":320,"h":50,"match":0.5,'
        '"tags":["interest:travel","age:25-34"],"pctr":0.031,"price":3.41,'
        '"model":"20261123T160622Z-1a2b3c","click":0}'
    )


def test_log_line_leaves_out_what_is_not_known_and_the_frequency_cap() -> None:
    record = json.loads(replace(SERVED, pctr=None, price=None, model=None).log_line())
    assert "pctr" not in record and "price" not in record and "model" not in record
    assert "freq_cap" not in record and "freq_window" not in record
    assert list(record)[-1] == "click"


def test_an_empty_model_version_is_still_written() -> None:
    assert json.loads(replace(SERVED, model="").log_line())["model"] == ""


def test_store_copy_comes_back_equal() -> None:
    assert BidRecord.from_json(SERVED.to_json()) == SERVED
    assert BidRecord.from_json(SERVED.to_json().encode()) == SERVED


def test_store_copy_written_before_the_record_had_a_type_is_read() -> None:
    # A bid reserved by a worker of the previous release (a plain object, no "v") may be won after an
    # upgrade: its win must still reach the log with the same fields.
    old = {k: v for k, v in json.loads(SERVED.to_json()).items() if k not in ("v", "click")}
    old["tags"] = list(SERVED.tags)
    assert BidRecord.from_json(json.dumps(old)) == SERVED


def test_float32_match_survives_the_store_and_the_log_exactly() -> None:
    match = float(np.float32(0.1234567))
    record = BidRecord.from_json(replace(SERVED, match=match).to_json())
    assert np.float32(json.loads(record.log_line())["match"]) == np.float32(match)


def test_click_line_names_its_bid() -> None:
    assert json.loads(click_line(1763913641.0, "08259a83", "1", "1-cmp-003717", "cmp-003717")) == {
        "v": VERSION,
        "event": "click",
        "ts": 1763913641.0,
        "request_id": "08259a83",
        "imp_id": "1",
        "bid_id": "1-cmp-003717",
        "campaign": "cmp-003717",
    }


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=20),
    st.tuples(*(st.text(max_size=12) for _ in range(3))),
    st.lists(st.text(max_size=12), max_size=5).map(tuple),
    st.one_of(st.none(), st.floats(0, 1)),
    st.one_of(st.none(), st.floats(0, 1e4)),
    st.floats(0, 1, width=32),
)
def test_any_record_comes_back_from_the_store_equal(
    user: str,
    names: tuple[str, str, str],
    tags: tuple[str, ...],
    pctr: float | None,
    price: float | None,
    match: float,
) -> None:
    campaign, advertiser, arm = names
    record = replace(
        SERVED, user=user, campaign=campaign, advertiser=advertiser, tags=tags, pctr=pctr, price=price,
        match=match, arms=(arm,) if arm else (), sources=("profile",),
    )  # fmt: skip
    assert BidRecord.from_json(record.to_json()) == record
