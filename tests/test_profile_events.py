"""Behaviour events into observations: keys per event type, weights, pseudonymisation, bad rows, and the
JSON Lines and Parquet readers agreeing with each other."""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

from personabid.privacy import Pseudonymizer
from personabid.profiles.artifact import EVENT_KINDS, user_key
from personabid.profiles.taxonomy import standard
from personabid.training.logs import LogError
from personabid.training.profiles import events as ev
from personabid.training.profiles.events import (
    EVENT_TYPES,
    OBSERVATION_SCHEMA,
    EventReport,
    read_observations,
    write_events_jsonl,
    write_events_parquet,
)

PSEUDONYMIZE = Pseudonymizer(b"test-key-0123456789abcdef")
TS = 1_764_410_400.0  # 2025-11-29T10:00:00Z
HYPOTHESIS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def read(paths: Sequence[Path], **options: Any) -> tuple[pa.Table, EventReport]:
    tables, report = read_observations(paths, PSEUDONYMIZE, **options)
    found = list(tables)
    table = pa.concat_tables(found) if found else OBSERVATION_SCHEMA.empty_table()
    return table, report


def observe(tmp_path: Path, events: list[dict[str, Any]], **options: Any) -> tuple[pa.Table, EventReport]:
    path = tmp_path / "events.jsonl"
    write_events_jsonl(path, events)
    return read([path], **options)


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """The observations as sorted tuples, for comparing tables whose order may differ."""
    return sorted(zip(*(table.column(n).to_pylist() for n in table.schema.names), strict=True))


def keys(table: pa.Table) -> set[str]:
    return set(table.column("key").to_pylist())


def event(kind: str, user: str | None = "alice", ts: Any = TS, **fields: Any) -> dict[str, Any]:
    return {"user": user, "ts": ts, "type": kind, **fields}


@pytest.mark.parametrize(
    ("given_event", "expected"),
    [
        (
            event("page_view", url="https://example.com/sports/soccer?x=books#movies", cat=["IAB17", "IAB9"]),
            {"cat:IAB17", "cat:IAB9", "kw:sports", "kw:soccer"},
        ),
        (
            event("page_view", keywords=["Soccer", "air travel"]),
            {"kw:soccer", "product:air travel"},
        ),
        (event("app_use", cat=["IAB9"], app_category="Social", minutes=20), {"cat:IAB9", "appcat:social"}),
        (event("search", query="Cheap AIR TRAVEL deals"), {"product:air travel"}),
        (event("purchase", category=608), {"aud:608"}),
        (event("purchase", category="608"), {"aud:608"}),
        (event("purchase", category="Air Travel"), {"product:air travel"}),
        (event("purchase", category="holiday air travel tickets"), {"product:air travel"}),
        (
            event("declared", age_band="25-29", gender="F", income=60_000),
            {"age:25-29", "gender:female", "income:50000-74999"},
        ),
        (event("declared", yob=1990, gender="male"), {"age:35-39", "gender:male"}),
        (event("location", country="USA", region="CA"), {"country:USA"}),
        (event("device", os="iOS", devicetype=5), {"os:ios", "devicetype:5"}),
        (event("click", campaign="cmp-1", cat=["IAB2"]), {"cat:IAB2"}),
        (event("conversion", campaign="cmp-1", cat=["IAB2"], value=9.5), {"cat:IAB2"}),
    ],
)
def test_each_event_type_maps_to_its_signal_keys(
    tmp_path: Path, given_event: dict[str, Any], expected: set[str]
) -> None:
    table, _ = observe(tmp_path, [given_event])
    assert keys(table) == expected
    assert set(table.column("kind").to_pylist()) == {EVENT_TYPES.index(given_event["type"])}


def test_the_keys_are_known_to_the_taxonomy() -> None:
    tax = standard()
    for key in ("product:air travel", "aud:608", "kw:soccer", "appcat:social", "os:ios"):
        assert tax.rules(key), key


@pytest.mark.parametrize(
    ("kind", "weight"),
    [("page_view", 1), ("search", 1), ("purchase", 2), ("declared", 1), ("location", 1), ("device", 1),
     ("click", 2), ("conversion", 3)],
)  # fmt: skip
def test_each_event_type_has_its_weight(tmp_path: Path, kind: str, weight: float) -> None:
    by_kind: dict[str, dict[str, Any]] = {
        "page_view": {"cat": ["IAB2"]},
        "search": {"query": "soccer"},
        "purchase": {"category": 608},
        "declared": {"gender": "f"},
        "location": {"country": "USA"},
        "device": {"os": "android"},
        "click": {"cat": ["IAB2"]},
        "conversion": {"cat": ["IAB2"]},
    }
    table, _ = observe(tmp_path, [event(kind, **by_kind[kind])])
    assert table.column("weight").to_pylist() == [weight]


@pytest.mark.parametrize(("minutes", "weight"), [(None, 1.0), (5, 0.5), (15, 1.5), (45, 3.0), (600, 3.0)])
def test_app_use_weight_grows_with_minutes_up_to_three(
    tmp_path: Path, minutes: float | None, weight: float
) -> None:
    table, _ = observe(tmp_path, [event("app_use", cat=["IAB9"], minutes=minutes)])
    assert table.column("weight").to_pylist() == [pytest.approx(weight)]


def test_an_app_used_for_no_time_gives_no_observation(tmp_path: Path) -> None:
    table, report = observe(tmp_path, [event("app_use", cat=["IAB9"], minutes=0)])
    assert table.num_rows == 0
    assert report.events == 1


def test_observations_have_the_documented_schema_and_columns(tmp_path: Path) -> None:
    table, _ = observe(tmp_path, [event("location", country="USA", ts=86_400.0 * 20_421 + 5)])
    assert table.schema == OBSERVATION_SCHEMA
    assert table.to_pylist() == [
        {
            "user": user_key(PSEUDONYMIZE("alice")),
            "day": 20_421,
            "ts": 86_400.0 * 20_421 + 5,
            "kind": EVENT_KINDS.index("location"),
            "key": "country:USA",
            "weight": 1.0,
        }
    ]


def test_event_types_are_the_artifacts_kinds() -> None:
    assert EVENT_TYPES == EVENT_KINDS


def test_keys_no_rule_knows_are_dropped_and_counted(tmp_path: Path) -> None:
    table, report = observe(
        tmp_path, [event("page_view", cat=["IAB2", "IAB99-99"]), event("device", os="plan9")]
    )
    assert keys(table) == {"cat:IAB2"}
    assert report.untagged == 2
    assert report.summary()["signals_with_no_tag"] == 2


def test_a_key_an_event_gives_twice_counts_once(tmp_path: Path) -> None:
    table, _ = observe(
        tmp_path, [event("page_view", url="/soccer", keywords=["soccer"], cat=["IAB2", "IAB2"])]
    )
    assert sorted(table.column("key").to_pylist()) == ["cat:IAB2", "kw:soccer"]


def test_age_from_year_of_birth_is_the_age_in_the_events_year(tmp_path: Path) -> None:
    table, _ = observe(
        tmp_path,
        [
            event("declared", yob=2000, ts="2025-06-01T00:00:00Z"),
            event("declared", user="bob", yob=2010, ts=TS),
        ],
    )
    assert keys(table) == {"age:25-29"}  # the second is 15: children are not profiled


def test_an_age_band_wins_over_a_year_of_birth(tmp_path: Path) -> None:
    table, _ = observe(tmp_path, [event("declared", age_band="40-44", yob=2000)])
    assert keys(table) == {"age:40-44"}


def test_raw_user_ids_never_leave_the_reader(tmp_path: Path) -> None:
    raw = ["raw-id-4242@example.com", "x" * 300]  # the second is too long: a bad row about the user
    table, report = observe(
        tmp_path,
        [event("location", user=raw[0], country="USA"), event("location", user=raw[1], country="USA")],
        max_bad_fraction=1.0,
    )
    assert table.column("user").to_pylist() == [user_key(PSEUDONYMIZE(raw[0]))]
    dumped = json.dumps(report.summary()) + repr(table.to_pylist())
    assert all(r not in dumped for r in raw)
    assert report.files[0].bad.examples[0][1].startswith("user")


def test_a_user_key_is_the_artifacts_key_of_the_pseudonym(tmp_path: Path) -> None:
    users = [f"user-{i}" for i in range(50)]
    table, _ = observe(tmp_path, [event("location", user=u, country="USA") for u in users])
    assert sorted(table.column("user").to_pylist()) == sorted(user_key(PSEUDONYMIZE(u)) for u in users)


def test_iso_time_and_unix_seconds_give_the_same_observations(tmp_path: Path) -> None:
    as_iso = [event("location", country="USA", ts="2025-11-29T11:00:00+01:00")]
    as_unix = [event("location", country="USA", ts=TS)]
    as_int = [event("location", country="USA", ts=int(TS))]
    tables = [observe(tmp_path, e)[0] for e in (as_iso, as_unix, as_int)]
    assert rows(tables[0]) == rows(tables[1]) == rows(tables[2])


def test_bad_rows_are_reported_with_their_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        json.dumps(event("location", country="USA")),
        "not json",
        json.dumps(event("app_use", minutes=-3)),
        "",
        json.dumps(event("device", devicetype=12)),
        json.dumps(event("location", country="usa")),
        json.dumps(event("page_view", cat=["Sports"])),
        json.dumps(event("teleport")),
        json.dumps(event("location", ts="2025-11-29T10:00:00")),
        json.dumps(event("location", ts=12.0)),
        json.dumps({"ts": TS, "type": "search"}),
        json.dumps(event("purchase", amount=-1)),
        json.dumps(event("page_view", keywords=["k"] * 65)),
        json.dumps(event("search", query="q" * 1025)),
    ]
    path.write_text("\n".join(lines) + "\n")
    _, report = read([path], max_bad_fraction=1.0)
    bad = dict(report.files[0].bad.examples)
    expected = {2: "not JSON", 3: "minutes", 5: "devicetype", 6: "country", 7: "cat", 8: "type", 9: "ts",
                10: "ts", 11: "user", 12: "amount", 13: "keywords", 14: "query"}  # fmt: skip
    assert sorted(bad) == sorted(expected)
    for line, field in expected.items():
        assert bad[line].startswith(field), (line, bad[line])
    assert report.files[0].bad.count == len(expected)
    assert (report.rows, report.events) == (len(lines) - 1, 1)


def test_bad_parquet_rows_are_reported_with_their_row_and_field(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    write_events_parquet(
        path,
        [
            event("location", country="USA"),
            event("app_use", minutes=-3),
            event("device", devicetype=12),
            event("location", country="usa"),
            event("page_view", cat=["Sports"]),
            event("teleport"),
            event("location", ts=12.0),
            event("location", user=""),
            event("location", user=None),
            event("app_use", minutes=math.nan),
        ],
    )
    _, report = read([path], max_bad_fraction=1.0)
    bad = dict(report.files[0].bad.examples)
    expected = {2: "minutes", 3: "devicetype", 4: "country", 5: "cat", 6: "type", 7: "ts", 8: "user",
                9: "user", 10: "minutes"}  # fmt: skip
    assert sorted(bad) == sorted(expected)
    for row, field in expected.items():
        assert bad[row].startswith(field), (row, bad[row])


def test_fields_of_another_type_are_ignored(tmp_path: Path) -> None:
    table, report = observe(tmp_path, [event("location", country="USA", minutes=-5, cat=["nonsense"])])
    assert keys(table) == {"country:USA"}
    assert report.bad_rows == 0


def test_blank_lines_do_not_shift_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = json.dumps(event("device", devicetype=1))
    path.write_text("\n\n" + json.dumps(event("device", devicetype=99)) + "\n\n" + good + "\n")
    _, report = read([path], max_bad_fraction=1.0)
    assert [line for line, _ in report.files[0].bad.examples] == [3]


def test_a_file_past_the_bad_row_limit_is_refused(tmp_path: Path) -> None:
    good = [json.dumps(event("location", country="USA"))] * 97
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([*good, "{", "{", "{"]) + "\n")
    with pytest.raises(LogError, match=r"events.jsonl: 3 of 100 rows are unreadable.*line 98"):
        read([path], max_bad_fraction=0.02)
    _, report = read([path], max_bad_fraction=0.05)
    assert report.bad_rows == 3


def test_a_file_past_the_bad_row_count_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(["{"] * 3 + [json.dumps(event("location", country="USA"))] * 1000) + "\n")
    with pytest.raises(LogError, match="more than 2 unreadable rows"):
        read([path], max_bad_fraction=1.0, max_bad_rows=2)


def test_a_file_with_no_readable_row_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(LogError, match="no readable rows"):
        read([path], max_bad_fraction=1.0)


def test_an_empty_file_gives_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("")
    table, report = read([path])
    assert table.num_rows == 0
    assert report.rows == 0


def test_a_missing_file_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="no such file"):
        read_observations([tmp_path / "nope.jsonl"], PSEUDONYMIZE)


def test_a_parquet_column_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"user": ["a"], "ts": [TS], "type": ["device"], "devicetype": ["five"]}), path)
    with pytest.raises(LogError, match="column `devicetype`"):
        read([path])


def test_a_parquet_file_without_a_user_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"ts": [TS], "type": ["device"]}), path)
    with pytest.raises(LogError, match="no `user` column"):
        read([path])


def test_parquet_timestamps_with_a_zone_are_read(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    when = pa.array([int(TS * 1000)], pa.timestamp("ms", tz="UTC"))
    pq.write_table(pa.table({"user": ["alice"], "ts": when, "type": ["location"], "country": ["USA"]}), path)
    table, _ = read([path])
    assert table.column("ts").to_pylist() == [TS]


def test_gzip_json_lines_are_read(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(json.dumps(event("location", country="USA")) + "\n")
    table, _ = read([path])
    assert keys(table) == {"country:USA"}


def test_a_directory_stands_for_its_event_files(tmp_path: Path) -> None:
    write_events_jsonl(tmp_path / "a.jsonl", [event("location", country="USA")])
    write_events_parquet(tmp_path / "b.parquet", [event("device", os="ios")])
    (tmp_path / "notes.txt").write_text("not events")
    table, report = read([tmp_path])
    assert keys(table) == {"country:USA", "os:ios"}
    assert [f.format for f in report.files] == ["jsonl", "parquet"]


def test_tables_come_in_chunks_of_about_chunk_rows(tmp_path: Path) -> None:
    events = [event("page_view", user=f"u{i}", cat=["IAB2", "IAB9"]) for i in range(50)]
    path = tmp_path / "events.jsonl"
    write_events_jsonl(path, events)
    tables, _ = read_observations([path], PSEUDONYMIZE, chunk_rows=10)
    assert sum(t.num_rows for t in tables) == 100


MIXED = [
    event("page_view", url="https://a.example/news/soccer-results/123?q=1", cat=["IAB17", "IAB17-44"],
          keywords=["American football", "Überraschung", "KELVIN"]),
    event("app_use", user="bob", ts="2025-11-29T10:00:00Z", cat=["IAB9-30"],
          app_category="Health and Fitness", minutes=25.0, bundle="com.x"),
    event("search", user="carol", query="best air travel deals to soccer games"),
    event("purchase", user="carol", category="612", amount=10.0, currency="EUR", order_id=77),
    event("purchase", user="carol", category="Antiques", amount=1.0),
    event("declared", user="dave", yob=1970, gender="M", income=250_000),
    event("location", user="dave", country="DEU"),
    event("device", user="erin", os="Android", devicetype=4),
    event("click", user="erin", campaign="cmp-9", cat=["IAB3"]),
    event("conversion", user="erin", campaign="cmp-9", cat=["IAB3"], value=-2.0, order_id="o-1"),
    event("location", user="frank", ts=12.0, country="USA"),
]  # fmt: skip


def test_json_lines_and_parquet_of_the_same_events_agree(tmp_path: Path) -> None:
    write_events_jsonl(tmp_path / "e.jsonl", MIXED)
    write_events_parquet(tmp_path / "e.parquet", MIXED)
    from_json, json_report = read([tmp_path / "e.jsonl"], max_bad_fraction=0.5)
    from_parquet, parquet_report = read([tmp_path / "e.parquet"], max_bad_fraction=0.5)
    assert from_json.num_rows > 10
    assert rows(from_json) == rows(from_parquet)
    assert json_report.untagged == parquet_report.untagged
    assert [line for line, _ in json_report.files[0].bad.examples] == [11]
    assert [line for line, _ in parquet_report.files[0].bad.examples] == [11]


# -- properties -------------------------------------------------------------------------------------------

WORDS = st.sampled_from(["soccer", "air", "travel", "american", "football", "news", "x1", "antiques", "Air"])
TEXTS = st.one_of(
    st.text(max_size=40),
    st.lists(WORDS, max_size=8).map(" ".join),
    st.lists(st.one_of(WORDS, st.sampled_from(["/", "-", "?", "K", "İ", " ", "3"])), max_size=10).map(
        "".join
    ),
)


@HYPOTHESIS
@given(st.lists(TEXTS, min_size=1, max_size=8))
def test_text_keys_are_the_taxonomys(texts: list[str]) -> None:
    tax = standard()
    mapper = ev._Mapper(tax, PSEUDONYMIZE, 2e9)
    owner, found = mapper._texts(pa.array(texts, pa.string()), np.arange(len(texts)))
    got: list[list[str]] = [[] for _ in texts]
    for i, key in zip(owner.tolist(), found.to_pylist(), strict=True):
        got[i].append(key)
    assert got == [tax.text_keys(t) for t in texts]


URL_PARTS = [
    "https://h.example",
    "http://h",
    "/",
    "?",
    "#",
    "x:",
    "soccer",
    "news",
    "Air",
    "travel",
    "//",
    "-",
]


@HYPOTHESIS
@given(st.lists(st.sampled_from(URL_PARTS), max_size=10).map("".join))
def test_url_keys_are_those_of_the_path(url: str) -> None:
    tax = standard()
    mapper = ev._Mapper(tax, PSEUDONYMIZE, 2e9)
    _, found = mapper._url_words(pa.array([url]))
    path = url.split("#", 1)[0].split("?", 1)[0]
    head = path.split("/")
    if len(head) >= 3 and head[1] == "" and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*:", head[0]):
        path = "/".join(head[3:])
    assert found.to_pylist() == tax.text_keys(path)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELD_NAMES = st.sampled_from(["user", "ts", "type", *ev.EVENT_COLUMNS[3:]])


@HYPOTHESIS
@given(
    st.lists(
        st.one_of(
            st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6).map(json.dumps),
            st.fixed_dictionaries(
                {"user": st.text(max_size=5), "type": st.sampled_from(EVENT_TYPES),
                 "ts": st.one_of(st.floats(), st.text(max_size=25), st.integers())},
                optional={name: JSON_VALUES for name in ev.EVENT_COLUMNS[3:]},
            ).map(lambda d: json.dumps(d)),
            st.text(max_size=30),
            st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
        ),
        max_size=12,
    )
)  # fmt: skip
def test_arbitrary_lines_raise_nothing_but_log_error(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    try:
        table, report = read([path], max_bad_fraction=0.5)
    except LogError:
        return
    assert table.schema == OBSERVATION_SCHEMA
    assert report.events + report.bad_rows == report.rows


def _maybe_bad_event() -> st.SearchStrategy[dict[str, Any]]:
    """Events of every type whose fields are sometimes out of range (in types Parquet can hold)."""
    text = st.text(max_size=12)
    cats = st.lists(st.sampled_from(["IAB2", "IAB17-44", "IAB9-30", "IAB99", "Sports", "iab2"]), max_size=3)
    numbers = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
    fields = {
        "url": st.sampled_from(["https://x.example/soccer/news", "/air/travel?x", "b:ad"]),
        "cat": cats,
        "keywords": st.lists(st.one_of(text, WORDS), max_size=3),
        "app_category": st.sampled_from(["Social", "Music", "nothing"]),
        "minutes": numbers,
        "query": st.lists(WORDS, max_size=4).map(" ".join),
        "category": st.one_of(st.integers(0, 2000), st.sampled_from(["608", "Antiques", "air travel", "?"])),
        "amount": numbers,
        "age_band": st.sampled_from(["25-29", "75+", "kid"]),
        "yob": st.integers(1850, 2150),
        "gender": st.sampled_from(["f", "M", "Female", "other"]),
        "income": numbers,
        "country": st.sampled_from(["USA", "DEU", "usa", "US"]),
        "os": st.sampled_from(["iOS", "android", "plan9"]),
        "devicetype": st.integers(-2, 10),
        "campaign": text,
        "value": numbers,
    }
    return st.builds(
        lambda kind, user, ts, chosen: {"user": user, "ts": ts, "type": kind, **chosen},
        st.sampled_from(EVENT_TYPES),
        st.sampled_from(["alice", "bob", "x" * 257]),
        st.one_of(st.floats(0, 2e9), st.just(TS)),
        st.fixed_dictionaries({}, optional=fields),
    )


@HYPOTHESIS
@given(st.lists(_maybe_bad_event(), min_size=1, max_size=20))
def test_both_formats_find_the_same_bad_rows_and_observations(
    tmp_path: Path, events: list[dict[str, Any]]
) -> None:
    write_events_jsonl(tmp_path / "e.jsonl", events)
    write_events_parquet(tmp_path / "e.parquet", events)
    results: list[tuple[Any, ...]] = []
    for name in ("e.jsonl", "e.parquet"):
        try:
            table, report = read([tmp_path / name], max_bad_fraction=1.0)
        except LogError as exc:  # no readable row
            results.append(("refused", str(exc).split("line ")[1].split(":")[0]))
            continue
        results.append(
            (rows(table), sorted(line for line, _ in report.files[0].bad.examples), report.untagged)
        )
    assert results[0] == results[1]


def test_the_writers_ts_is_unix_seconds_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    write_events_parquet(
        path,
        [event("location", ts=datetime.fromtimestamp(TS, UTC)), event("location", ts="2025-11-29T10:00:00Z")],
    )
    assert pq.read_table(path).column("ts").to_pylist() == [TS, TS]


def test_line_numbers_and_observations_hold_across_blocks_and_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [event("page_view", user=f"u{i % 7}", cat=["IAB2"], keywords=["soccer"]) for i in range(300)]
    path = tmp_path / "events.jsonl"
    write_events_jsonl(path, events)
    with path.open("a") as handle:
        handle.write("{\n" + json.dumps(event("device", devicetype=5)) + "\n")
    whole, _ = read([path], max_bad_fraction=0.5)
    monkeypatch.setattr(ev, "BLOCK_BYTES", 256)
    monkeypatch.setattr(ev, "CHUNK_EVENTS", 40)
    pieces, report = read([path], max_bad_fraction=0.5)
    assert rows(pieces) == rows(whole)
    assert whole.num_rows == 601
    assert [line for line, _ in report.files[0].bad.examples] == [301]


@pytest.mark.parametrize("name", ["e.jsonl", "e.parquet"])
def test_every_bad_row_is_counted_and_the_first_are_shown(tmp_path: Path, name: str) -> None:
    events = [event("location", country="USA")] * 100 + [event("location", ts=5.0)] * 25
    events += [event("device", devicetype=11)] * 25
    path = tmp_path / name
    (write_events_jsonl if name.endswith("jsonl") else write_events_parquet)(path, events)
    _, report = read([path], max_bad_fraction=0.5)
    bad = report.files[0].bad
    assert bad.count == 50
    assert len(bad.examples) == bad.keep


def test_events_made_with_numpy_values_can_be_written(tmp_path: Path) -> None:
    made = [event("app_use", ts=np.float64(TS), cat=["IAB9"], minutes=np.float32(20.0))]
    made.append(event("device", ts=np.int64(TS), devicetype=np.int64(5)))
    table, _ = observe(tmp_path, made)
    assert keys(table) == {"cat:IAB9", "devicetype:5"}
    write_events_parquet(tmp_path / "e.parquet", made)
    assert rows(read([tmp_path / "e.parquet"])[0]) == rows(table)
