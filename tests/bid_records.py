"""Bid records for tests of spend control and the stores, which carry them without reading them."""

from __future__ import annotations

from personabid.bidrecord import BidRecord


def bid_record(key: str = "a:1", user: str = "") -> BidRecord:
    """The record of bid `key` ("auction:imp"), to tell one bid's record from another's."""
    auction, _, imp = key.partition(":")
    return BidRecord(
        ts=1_800_000_000.0,
        request_id=auction,
        imp_id=imp,
        user=user,
        campaign="c1",
        advertiser="a",
        category="IAB1",
        devicetype=4,
        os="ios",
        country="USA",
        w=300,
        h=250,
        match=0.5,
        pctr=0.01,
        price=2.0,
        model="test",
    )
