"""Catalog validation: every error class, with its line, campaign and field, reported all at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from personabid.ctr.features import token
from personabid.index.catalog import read_catalog, write_catalog
from personabid.index.vocab import Vocabulary

VOCAB = Vocabulary(("age:18-24", "interest:travel", "interest:golf", "intent:auto"))
IMAGE = {"image": "https://cdn.acme.example/a.png", "landing": "https://acme.example/"}


def banner(creative_id: str = "c", size: str = "300x250", **changes: Any) -> dict[str, Any]:
    return {"id": creative_id, "size": size, **IMAGE, "adomain": "a.example", "category": "IAB1", **changes}


def campaign(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "cmp-1",
        "advertiser": "Acme",
        "status": "active",
        "schedule": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-31T00:00:00Z"},
        "daily_budget": 500,
        "base_bid": 2.0,
        "max_bid": 5.0,
        "currency": "USD",
        "creatives": [
            {"id": "cr-1", "size": "300x250", **IMAGE, "adomain": "acme.example", "category": "IAB2-1"}
        ],
        "targeting": {"countries": ["USA"], "regions": ["USA-CA"], "device_types": [4, 5], "os": ["ios"]},
        "blocked_categories": ["IAB25"],
        "persona": {"tags": {"interest:travel": 0.8, "age:18-24": 0.4}},
    }
    record.update(changes)
    return record


def write_lines(tmp_path: Path, records: list[Any]) -> Path:
    path = tmp_path / "catalog.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_valid_campaign_reads_with_every_field(tmp_path: Path) -> None:
    catalog = read_catalog(write_lines(tmp_path, [campaign()]), VOCAB)
    assert not catalog.issues
    spec = catalog.campaigns[0]
    assert (spec.id, spec.adomain, spec.category, spec.countries, spec.regions) == (
        "cmp-1", "acme.example", "IAB2-1", ("USA",), ("USA-CA",),
    )  # fmt: skip
    assert spec.device_types == (4, 5) and spec.os == ("ios",) and spec.blocked_categories == ("IAB25",)
    np.testing.assert_allclose(spec.personas, [[0.4, 0.8, 0, 0]] / np.hypot(0.4, 0.8), rtol=1e-6)


ERRORS = [
    ({"id": ""}, "id"),
    ({"advertiser": None}, "advertiser"),
    ({"status": "running"}, "status"),
    ({"base_bid": "two"}, "base_bid"),
    ({"base_bid": -1}, "base_bid"),
    ({"max_bid": 1.0}, "max_bid"),
    ({"daily_budget": -5}, "daily_budget"),
    ({"currency": "EUR"}, "currency"),
    ({"schedule": {"start": "2026-12-01", "end": "2026-11-01"}}, "schedule.end"),
    ({"schedule": {"start": "yesterday"}}, "schedule.start"),
    ({"creatives": []}, "creatives"),
    ({"creatives": [banner(size="big")]}, "creatives[0].size"),
    ({"creatives": [banner(category="News")]}, "creatives[0].category"),
    ({"targeting": {"countries": ["US"]}}, "targeting.countries"),
    ({"targeting": {"device_types": [12]}}, "targeting.device_types"),
    ({"blocked_categories": "IAB25"}, "blocked_categories"),
    ({"persona": {"tags": {"interest:chess": 1.0}}}, "persona.tags.interest:chess"),
    ({"persona": {"vector": [1.0, 0.0]}}, "persona.vector"),
    ({"persona": {"vector": [1.0, "NaN", 0.0, 0.0]}}, "persona.vector[1]"),
    ({"persona": {"tags": {"interest:golf": 1.0}, "vector": [1, 0, 0, 0]}}, "persona"),
    ({"persona": {"seed_audience": "missing.jsonl"}}, "persona.seed_audience"),
    ({"persona": {"tags": {"interest:golf": 0.0}}}, "persona"),
]


@pytest.mark.parametrize(
    ("changes", "field"), ERRORS, ids=[e[1] + "-" + str(i) for i, e in enumerate(ERRORS)]
)
def test_each_error_names_line_campaign_and_field(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    path = write_lines(tmp_path, [campaign(id="ok-1"), campaign(**{"id": "bad-1", **changes})])
    catalog = read_catalog(path, VOCAB)
    assert [(i.line, i.field) for i in catalog.issues] == [(2, field)]
    assert catalog.issues[0].campaign_id == changes.get("id", "bad-1")
    assert [c.id for c in catalog.campaigns] == ["ok-1"]


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        [campaign(id="a", base_bid=-1), campaign(id="b"), "{not json", campaign(id="c", currency="GBP")],
    )
    assert [i.line for i in read_catalog(path, VOCAB).issues] == [1, 3, 4]


def test_duplicate_campaign_id_points_at_the_first(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        [
            campaign(),
            campaign(creatives=[banner("cr-2", "1x1")]),
        ],
    )
    issues = read_catalog(path, VOCAB).issues
    assert [(i.line, i.field, i.message) for i in issues] == [(2, "id", "duplicate of line 1")]


def test_creatives_of_one_campaign_must_share_domain_and_category(tmp_path: Path) -> None:
    creatives = [banner("c1"), banner("c2", "728x90", adomain="b.example")]
    assert (
        read_catalog(write_lines(tmp_path, [campaign(creatives=creatives)]), VOCAB).issues[0].field
        == "creatives"
    )


def test_paused_campaign_is_counted_and_not_indexed(tmp_path: Path) -> None:
    other = campaign(id="b", creatives=[banner("cr-2", "1x1")])
    catalog = read_catalog(write_lines(tmp_path, [campaign(status="paused"), other]), VOCAB)
    assert [c.id for c in catalog.campaigns] == ["b"] and catalog.inactive == 1


def test_unknown_tag_can_be_hashed_onto_a_stable_axis(tmp_path: Path) -> None:
    path = write_lines(tmp_path, [campaign(persona={"tags": {"interest:chess": 1.0}})])
    catalog = read_catalog(path, VOCAB, hash_unknown_tags=True)
    assert not catalog.issues
    assert np.flatnonzero(catalog.campaigns[0].personas[0]).tolist() == [token("interest:chess") % VOCAB.dims]
    assert catalog.unknown_tags == {"interest:chess": 1}


def test_several_personas_give_several_vectors(tmp_path: Path) -> None:
    personas = [{"tags": {"interest:golf": 1.0}}, {"vector": [0, 0, 0, 2]}]
    spec = read_catalog(write_lines(tmp_path, [campaign(persona=personas)]), VOCAB).campaigns[0]
    np.testing.assert_allclose(spec.personas, [[0, 0, 1, 0], [0, 0, 0, 1]])


CSV_HEADER = (
    "id,advertiser,status,start,end,daily_budget,base_bid,max_bid,currency,creatives,countries,regions,"
    "device_types,os,blocked_categories,persona_tags,persona_vector,seed_audience,deals,deal_only,bundle,"
    "language\n"
)


def csv_line(creatives: str, extra: str = ",,,") -> str:
    """A CSV row of campaign cmp-1 with these creatives, and deals,deal_only,bundle,language."""
    quoted = '"' + creatives.replace('"', '""') + '"'
    return (
        f"cmp-1,Acme,active,2026-11-01,,500,2,5,USD,{quoted},"
        f"USA;CAN,,4;5,ios,IAB25,interest:travel=0.8;age:18-24=0.4,,,{extra}\n"
    )


def test_csv_catalog_reads_like_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    creatives = [banner("cr-1", category="IAB2-1"), banner("cr-2", "728x90", category="IAB2-1")]
    path.write_text(CSV_HEADER + csv_line(json.dumps(creatives), "deal-1;deal-2,true,com.acme.app,en"))
    catalog = read_catalog(path, VOCAB)
    assert not catalog.issues
    spec = catalog.campaigns[0]
    assert [c.id for c in spec.creatives] == ["cr-1", "cr-2"] and spec.countries == ("USA", "CAN")
    assert spec.device_types == (4, 5)
    assert (spec.deals, spec.deal_only, spec.bundle, spec.language) == (
        ("deal-1", "deal-2"), True, "com.acme.app", "en",
    )  # fmt: skip


def test_csv_short_creatives_lack_markup(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(CSV_HEADER + csv_line("cr-1:300x250:acme.example:IAB2-1"))
    assert [i.field for i in read_catalog(path, VOCAB).issues] == ["creatives[0].markup"]


def test_csv_row_with_wrong_column_count_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(CSV_HEADER + "cmp-1,Acme,active\n")
    issues = read_catalog(path, VOCAB).issues
    assert [(i.line, i.field) for i in issues] == [(2, "(line)")]


def test_written_catalog_reads_back_to_the_same_campaigns(tmp_path: Path) -> None:
    from personabid.world import World

    world = World(3)
    specs, _ = world.campaigns(200)  # enough for a creative of every type
    write_catalog(specs, world.vocab, tmp_path / "c.jsonl")
    back = read_catalog(tmp_path / "c.jsonl", world.vocab).campaigns
    assert [s.id for s in back] == [s.id for s in specs]
    for a, b in zip(specs, back, strict=True):
        np.testing.assert_allclose(a.personas, b.personas, atol=1e-5)
        assert (a.creatives, a.countries, a.device_types, a.max_bid) == (
            b.creatives,
            b.countries,
            b.device_types,
            b.max_bid,
        )
        assert (a.deals, a.deal_only, a.bundle, a.language) == (b.deals, b.deal_only, b.bundle, b.language)
    assert {c.type for s in specs for c in s.creatives} == {"banner", "video", "audio", "native"}


# -- creatives of every type, deals, bundles, languages -----------------------------------------------------

VAST = '<VAST version="3.0"><Ad id="1"><InLine><AdSystem>x</AdSystem></InLine></Ad></VAST>'
NATIVE = {
    "assets": [{"id": 1, "title": {"text": "Acme"}}],
    "link": {"url": "https://acme.example/"},
    "imptrackers": ["https://acme.example/imp"],
}


def video(**changes: Any) -> dict[str, Any]:
    creative = {"id": "v", "type": "video", "mime": "video/mp4", "duration": 30, "protocol": 3, "vast": VAST}
    return {**creative, "adomain": "a.example", "category": "IAB1", **changes}


def native(**changes: Any) -> dict[str, Any]:
    return {
        "id": "n",
        "type": "native",
        "native": NATIVE,
        "adomain": "a.example",
        "category": "IAB1",
        **changes,
    }


def read_creatives(tmp_path: Path, *creatives: dict[str, Any], **changes: Any) -> Any:
    """The creatives of a one-campaign catalog, or its issues when it has any."""
    catalog = read_catalog(write_lines(tmp_path, [campaign(creatives=list(creatives), **changes)]), VOCAB)
    return catalog.issues or catalog.campaigns[0].creatives


def read_campaign(tmp_path: Path, **changes: Any) -> Any:
    catalog = read_catalog(write_lines(tmp_path, [campaign(**changes)]), VOCAB)
    return catalog.issues or catalog.campaigns[0]


CREATIVE_ERRORS = [
    (banner(type="popup"), "creatives[0].type"),
    (banner(markup="<b>hi</b>"), "creatives[0].markup"),
    ({**banner(), "image": None}, "creatives[0].markup"),
    ({**banner(), "landing": None}, "creatives[0].landing"),
    (banner(image="cdn.example/a.png"), "creatives[0].image"),
    (banner(landing="ftp://acme.example/"), "creatives[0].landing"),
    (banner(vast=VAST), "creatives[0].vast"),
    (video(mime=None), "creatives[0].mime"),
    (video(mime="mp4"), "creatives[0].mime"),
    (video(duration=0), "creatives[0].duration"),
    (video(duration=7.5), "creatives[0].duration"),
    (video(duration="thirty"), "creatives[0].duration"),
    (video(duration=True), "creatives[0].duration"),
    (video(protocol=None), "creatives[0].protocol"),
    (video(protocol=13), "creatives[0].protocol"),
    (video(vast=None), "creatives[0].vast"),
    (video(vast="<VAST><Ad></VAST>"), "creatives[0].vast"),
    (video(vast="<html></html>"), "creatives[0].vast"),
    (video(size="wide"), "creatives[0].size"),
    (video(type="audio", size="640x360"), "creatives[0].size"),
    (video(markup="<b>hi</b>"), "creatives[0].markup"),
    (native(native=None), "creatives[0].native"),
    (native(native={**NATIVE, "assets": []}), "creatives[0].native.assets"),
    (native(native={**NATIVE, "link": {}}), "creatives[0].native.link.url"),
    (native(ver="2.0"), "creatives[0].ver"),
    (native(size="300x250"), "creatives[0].size"),
    (banner(attr=[18]), "creatives[0].attr"),
    (banner(attr=["autoplay"]), "creatives[0].attr"),
    (banner(attr=3), "creatives[0].attr"),
    (banner(iurl="a picture"), "creatives[0].iurl"),
]


@pytest.mark.parametrize(
    ("creative", "field"), CREATIVE_ERRORS, ids=[f"{e[1]}-{i}" for i, e in enumerate(CREATIVE_ERRORS)]
)
def test_each_creative_error_names_its_field(tmp_path: Path, creative: dict[str, Any], field: str) -> None:
    assert [i.field for i in read_creatives(tmp_path, creative)] == [field]


def test_creative_error_names_the_creative_by_position(tmp_path: Path) -> None:
    issues = read_creatives(tmp_path, banner("b"), video(vast=""))
    assert [i.field for i in issues] == ["creatives[1].vast"]


def test_creative_without_type_is_a_banner(tmp_path: Path) -> None:
    (creative,) = read_creatives(tmp_path, banner())
    assert (creative.type, creative.mtype, creative.w, creative.h) == ("banner", 1, 300, 250)


def test_image_banner_keeps_image_and_landing(tmp_path: Path) -> None:
    (creative,) = read_creatives(tmp_path, banner())
    assert (creative.image, creative.landing, creative.markup) == (IMAGE["image"], IMAGE["landing"], "")


def test_html_banner_needs_no_landing(tmp_path: Path) -> None:
    html = '<a href="https://acme.example/"><img src="https://cdn.acme.example/a.png"></a>'
    (creative,) = read_creatives(tmp_path, {**banner(image=None, landing=None), "markup": html})
    assert (creative.markup, creative.image, creative.landing) == (html, "", "")


def test_video_creative_reads_mime_duration_protocol_and_vast(tmp_path: Path) -> None:
    (creative,) = read_creatives(tmp_path, video(mime="Video/MP4", size="640x360", protocol="7"))
    assert (creative.type, creative.mtype, creative.mime, creative.duration, creative.protocol) == (
        "video", 2, "video/mp4", 30, 7,
    )  # fmt: skip
    assert (creative.w, creative.h, creative.markup) == (640, 360, VAST)


def test_video_size_is_optional(tmp_path: Path) -> None:
    (creative,) = read_creatives(tmp_path, video())
    assert (creative.w, creative.h) == (0, 0)


def test_audio_creative_takes_a_daast_document(tmp_path: Path) -> None:
    daast = '<DAAST version="1.0"><Ad id="1"/></DAAST>'
    (creative,) = read_creatives(tmp_path, video(type="audio", mime="audio/mpeg", vast=daast))
    assert (creative.type, creative.mtype, creative.mime, creative.markup) == (
        "audio",
        3,
        "audio/mpeg",
        daast,
    )


def test_vast_4_with_a_namespace_reads(tmp_path: Path) -> None:
    vast = '<VAST xmlns="http://www.iab.com/VAST" version="4.0"><Ad id="1"/></VAST>'
    (creative,) = read_creatives(tmp_path, video(vast=vast, protocol=7))
    assert creative.markup == vast


def test_native_creative_keeps_its_response_object_as_compact_json(tmp_path: Path) -> None:
    (creative,) = read_creatives(tmp_path, native())
    assert (creative.type, creative.mtype, creative.ver) == ("native", 4, "1.2")
    assert json.loads(creative.markup) == NATIVE and " " not in creative.markup


def test_attributes_are_kept_sorted_without_repeats(tmp_path: Path) -> None:
    (creative,) = read_creatives(tmp_path, banner(attr=[6, 1, 6]))
    assert creative.attr == (1, 6)


@pytest.mark.parametrize(
    ("changes", "secure"),
    [
        ({}, True),
        ({"image": "http://cdn.acme.example/a.png"}, False),
        ({"image": "//cdn.acme.example/a.png"}, True),
        ({"landing": "HTTP://acme.example/"}, False),
        ({"iurl": "http://cdn.acme.example/sample.png"}, False),
    ],
    ids=["https", "http-image", "protocol-relative", "http-landing", "http-iurl"],
)
def test_a_creative_is_secure_when_no_url_is_plain_http(
    tmp_path: Path, changes: dict[str, Any], secure: bool
) -> None:
    (creative,) = read_creatives(tmp_path, banner(**changes))
    assert creative.secure is secure


def test_an_xml_namespace_does_not_make_vast_insecure(tmp_path: Path) -> None:
    vast = '<VAST xmlns="http://www.iab.com/VAST" version="4.0"><Ad id="1"/></VAST>'
    insecure = vast.replace('<Ad id="1"/>', "<Ad><![CDATA[http://cdn.example/v.mp4]]></Ad>")
    (safe,) = read_creatives(tmp_path, video(vast=vast))
    (unsafe,) = read_creatives(tmp_path, video(vast=insecure))
    assert (safe.secure, unsafe.secure) == (True, False)


def test_deals_bundle_and_language_read(tmp_path: Path) -> None:
    spec = read_campaign(
        tmp_path, deals=["deal-1", " deal-2 "], deal_only=True, bundle="com.acme.app", language="EN"
    )
    assert (spec.deals, spec.deal_only, spec.bundle, spec.language) == (
        ("deal-1", "deal-2"), True, "com.acme.app", "en",
    )  # fmt: skip


def test_campaign_without_deals_bids_in_the_open_auction(tmp_path: Path) -> None:
    spec = read_campaign(tmp_path)
    assert (spec.deals, spec.deal_only, spec.bundle, spec.language) == ((), False, "", "")


CAMPAIGN_ERRORS = [
    ({"deals": "deal-1"}, "deals"),
    ({"deals": ["deal-1", ""]}, "deals[1]"),
    ({"deals": [7]}, "deals[0]"),
    ({"deals": ["deal-1"], "deal_only": "yes"}, "deal_only"),
    ({"deal_only": True}, "deal_only"),
    ({"bundle": "com acme"}, "bundle"),
    ({"bundle": 12}, "bundle"),
    ({"language": "eng"}, "language"),
    ({"language": "e1"}, "language"),
]


@pytest.mark.parametrize(
    ("changes", "field"), CAMPAIGN_ERRORS, ids=[f"{e[1]}-{i}" for i, e in enumerate(CAMPAIGN_ERRORS)]
)
def test_each_deal_bundle_and_language_error_names_its_field(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    assert [i.field for i in read_campaign(tmp_path, **changes)] == [field]


def test_written_catalog_reads_back_every_creative_type(tmp_path: Path) -> None:
    daast = '<DAAST version="1.0"><Ad id="1"/></DAAST>'
    html = {**banner("h", "728x90", image=None, landing=None), "markup": "<b>x</b>", "attr": [3]}
    creatives = [
        banner(iurl=IMAGE["image"]),
        html,
        video(size="640x360"),
        video(id="a", type="audio", vast=daast),
    ]
    record = campaign(
        creatives=[*creatives, native()], deals=["deal-1"], deal_only=True, bundle="b", language="de"
    )
    specs = read_catalog(write_lines(tmp_path, [record]), VOCAB).campaigns
    write_catalog(specs, VOCAB, tmp_path / "again.jsonl")
    (back,) = read_catalog(tmp_path / "again.jsonl", VOCAB).campaigns
    assert back.creatives == specs[0].creatives
    assert (back.deals, back.deal_only, back.bundle, back.language) == (("deal-1",), True, "b", "de")
