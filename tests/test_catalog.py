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
        "creatives": [{"id": "cr-1", "size": "300x250", "adomain": "acme.example", "category": "IAB2-1"}],
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
    (
        {"creatives": [{"id": "c", "size": "big", "adomain": "a.example", "category": "IAB1"}]},
        "creatives[0].size",
    ),
    (
        {"creatives": [{"id": "c", "size": "1x1", "adomain": "a.example", "category": "News"}]},
        "creatives[0].category",
    ),
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
            campaign(creatives=[{"id": "cr-2", "size": "1x1", "adomain": "a.b", "category": "IAB1"}]),
        ],
    )
    issues = read_catalog(path, VOCAB).issues
    assert [(i.line, i.field, i.message) for i in issues] == [(2, "id", "duplicate of line 1")]


def test_creatives_of_one_campaign_must_share_domain_and_category(tmp_path: Path) -> None:
    creatives = [
        {"id": "c1", "size": "300x250", "adomain": "a.example", "category": "IAB1"},
        {"id": "c2", "size": "728x90", "adomain": "b.example", "category": "IAB1"},
    ]
    assert (
        read_catalog(write_lines(tmp_path, [campaign(creatives=creatives)]), VOCAB).issues[0].field
        == "creatives"
    )


def test_paused_campaign_is_counted_and_not_indexed(tmp_path: Path) -> None:
    creative = {"id": "cr-2", "size": "1x1", "adomain": "a.example", "category": "IAB1"}
    other = campaign(id="b", creatives=[creative])
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
    "id,advertiser,status,start,end,daily_budget,base_bid,max_bid,currency,creatives,"
    "countries,regions,device_types,os,blocked_categories,persona_tags,persona_vector,seed_audience\n"
)


def test_csv_catalog_reads_like_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        CSV_HEADER + "cmp-1,Acme,active,2026-11-01,,500,2,5,USD,"
        "cr-1:300x250:acme.example:IAB2-1;cr-2:728x90:acme.example:IAB2-1,"
        "USA;CAN,,4;5,ios,IAB25,interest:travel=0.8;age:18-24=0.4,,\n"
    )
    catalog = read_catalog(path, VOCAB)
    assert not catalog.issues
    spec = catalog.campaigns[0]
    assert [c.id for c in spec.creatives] == ["cr-1", "cr-2"] and spec.countries == ("USA", "CAN")
    assert spec.device_types == (4, 5)


def test_csv_row_with_wrong_column_count_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(CSV_HEADER + "cmp-1,Acme,active\n")
    issues = read_catalog(path, VOCAB).issues
    assert [(i.line, i.field) for i in issues] == [(2, "(line)")]


def test_written_catalog_reads_back_to_the_same_campaigns(tmp_path: Path) -> None:
    from personabid.world import World

    world = World(3)
    specs, _ = world.campaigns(50)
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
