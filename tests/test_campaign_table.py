"""The campaign table's creative, deal, bundle and language columns: what build_table puts there, and that
they survive save and load; a table from before these columns is refused with what to do."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from personabid.errors import ArtifactError
from personabid.index.campaigns import (
    IURL,
    LANDING,
    MARKUP,
    CampaignSpec,
    CampaignTable,
    Creative,
    bitset_member,
    build_table,
)
from personabid.world import World

VAST = '<VAST version="4.0"><Ad><![CDATA[https://cdn.example/v.mp4]]></Ad></VAST>'


def spec(**changes: object) -> CampaignSpec:
    given: dict[str, object] = {
        "id": "cmp-1",
        "advertiser": "acme",
        "adomain": "acme.example",
        "category": "IAB1",
        "base_bid": 1.0,
        "max_bid": 2.0,
        "personas": np.eye(4, dtype=np.float32)[:1],
        "creatives": (Creative("cr-1", 300, 250, markup="<b>x</b>"),),
        **changes,
    }
    return CampaignSpec(**given)  # type: ignore[arg-type]


NATIVE = Creative("cr-n", type="native", markup='{"assets":[{}],"link":{"url":"https://a.example"}}')
IMAGE = Creative(
    "cr-i",
    728,
    90,
    image="https://cdn.example/i.png",
    landing="http://acme.example/",
    iurl="https://cdn.example/i.png",
    attr=(1, 6),
)
VIDEO = Creative(
    "cr-v", 640, 360, "video", markup=VAST, mime="video/mp4", duration=30, protocol=7, attr=(14,)
)
SPECS = [
    spec(creatives=(NATIVE, IMAGE, VIDEO), deals=("deal-2", "deal-1"), deal_only=True, language="en"),
    spec(id="cmp-2", bundle="com.acme.app"),
]


def test_creative_columns_hold_what_an_openrtb_bid_needs() -> None:
    table, _, _ = build_table(SPECS)
    assert table.creative_mtype.tolist() == [4, 1, 2, 1]
    assert (table.creative_w.tolist(), table.creative_h.tolist()) == ([0, 728, 640, 300], [0, 90, 360, 250])
    assert [str(table.mimes[c]) for c in table.creative_mime] == ["", "", "video/mp4", ""]
    assert table.creative_duration.tolist() == [0, 0, 30, 0]
    assert table.creative_protocol.tolist() == [0, 0, 7, 0]
    assert table.creative_attr_bits.tolist() == [0, (1 << 1) | (1 << 6), 1 << 14, 0]
    assert table.creative_secure.tolist() == [True, False, True, True]  # cr-i lands on http://
    assert [table.creative_text(i, MARKUP) for i in range(4)] == [
        NATIVE.markup,
        IMAGE.image,
        VAST,
        "<b>x</b>",
    ]
    assert table.creative_image.tolist() == [False, True, False, False]
    assert [table.creative_text(i, LANDING) for i in range(4)] == ["", "http://acme.example/", "", ""]
    assert [table.creative_text(i, IURL) for i in range(4)] == ["", "https://cdn.example/i.png", "", ""]


def test_campaign_columns_hold_deals_bundle_and_language() -> None:
    table, _, _ = build_table(SPECS)
    rows = np.arange(2)
    for deal in ("deal-1", "deal-2"):
        assert bitset_member(table.deal_bits, rows, table.code_of("deals", deal)).tolist() == [True, False]
    assert table.deal_only.tolist() == [True, False]
    assert table.bundle.tolist() == ["", "com.acme.app"]
    assert [str(table.bundles[c]) for c in table.bundle_code] == ["", "com.acme.app"]
    assert [str(table.languages[c]) for c in table.language_code] == ["en", ""]


def test_sizes_and_creative_for_see_banners_only() -> None:
    table, _, _ = build_table(SPECS)
    assert table.creative_size.tolist()[:3] == [0, table.code_of("sizes", "728x90"), 0]
    assert table.code_of("sizes", "640x360") == 0
    assert table.creative_for(0, 0) == 1  # the native creative comes first, the banner is picked
    assert table.creative_for(0, table.code_of("sizes", "728x90")) == 1


def test_every_column_survives_save_and_load(tmp_path: Path) -> None:
    world = World(3)
    specs, _ = world.campaigns(200)
    persona = np.eye(world.vocab.dims, dtype=np.float32)[:1]
    table, _, _ = build_table(specs + [replace(s, personas=persona) for s in SPECS])
    table.save(tmp_path / "campaigns.npz")
    back = CampaignTable.load(tmp_path / "campaigns.npz")
    for f in fields(CampaignTable):
        saved, loaded = getattr(table, f.name), getattr(back, f.name)
        assert loaded.dtype == saved.dtype, f.name
        np.testing.assert_array_equal(loaded, saved, err_msg=f.name)


def test_a_table_from_before_the_creative_columns_asks_for_a_rebuild(tmp_path: Path) -> None:
    table, _, _ = build_table(SPECS)
    old = {f.name: getattr(table, f.name) for f in fields(table)}
    del old["creative_mtype"], old["deal_bits"]
    with (tmp_path / "campaigns.npz").open("wb") as handle:
        np.savez(handle, **old)
    with pytest.raises(ArtifactError, match=r"lacks column\(s\) deal_bits, creative_mtype") as refused:
        CampaignTable.load(tmp_path / "campaigns.npz")
    assert "rebuild the index with `personabid index build`" in str(refused.value)


def test_a_kernel_column_of_the_wrong_dtype_is_refused(tmp_path: Path) -> None:
    table, _, _ = build_table(SPECS)
    columns = {f.name: getattr(table, f.name) for f in fields(table)}
    columns["creative_mime"] = columns["creative_mime"].astype(np.int64)
    with (tmp_path / "campaigns.npz").open("wb") as handle:
        np.savez(handle, **columns)
    with pytest.raises(ArtifactError, match="creative_mime is int64, expected int32"):
        CampaignTable.load(tmp_path / "campaigns.npz")
