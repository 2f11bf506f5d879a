"""The service's event log: what the writer writes, what the reader reads back, what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from personabid.bidrecord import BidRecord
from personabid.ctr.features import (
    LOGGED_TAGS,
    NO_TAG,
    match_tokens,
    request_tokens,
    slot_token,
    tag_token,
    time_tokens,
    token,
)
from personabid.privacy import Pseudonymizer
from personabid.training.events import EventFiles, EventWriter, day_files, read_events
from personabid.training.logs import BadRows, LogError

PSEUDONYMIZE = Pseudonymizer(b"k" * 32)


def impression(**changes: object) -> BidRecord:
    fields: dict[str, object] = {
        "ts": 1_763_900_000.25,
        "user": "user-42@example.com",
        "campaign": "cmp-000017",
        "advertiser": "advertiser-00003",
        "category": "IAB3-1",
        "devicetype": 4,
        "os": "iOS",
        "country": "usa",
        "w": 320,
        "h": 50,
        "match": float(np.float32(0.8123)),
        "click": 1,
    }
    return BidRecord(**{**fields, **changes})  # type: ignore[arg-type]


def write(path: Path, *impressions: BidRecord) -> None:
    with EventWriter(path, PSEUDONYMIZE) as writer:
        writer.write(impressions)


def test_writer_appends_one_json_object_per_impression(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write(path, impression(), impression(click=0))
    write(path, impression(imp_id="2"))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 3
    assert records[0]["v"] == 1 and records[0]["campaign"] == "cmp-000017" and records[0]["click"] == 1
    assert records[2]["imp_id"] == "2"


def test_writer_never_writes_the_raw_user_id(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write(path, impression())
    assert "user-42" not in path.read_text()
    assert json.loads(path.read_text())["user"] == PSEUDONYMIZE("user-42@example.com")


def test_reader_gives_the_tokens_the_server_computes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write(path, impression())
    (chunk,) = read_events(path, BadRows())
    context = request_tokens(4, "iOS", "usa")
    assert chunk.tokens["campaign"].tolist() == [token("cmp-000017")]
    assert chunk.tokens["advertiser"].tolist() == [token("advertiser-00003")]
    assert chunk.tokens["category"].tolist() == [token("IAB3-1")]
    assert {k: int(chunk.tokens[k][0]) for k in context} == context
    assert chunk.tokens["slot"].tolist() == [slot_token(320, 50)]
    assert {k: int(chunk.tokens[k][0]) for k in ("hour", "weekday")} == time_tokens(1763900000.25)
    assert chunk.match is not None
    assert (
        match_tokens(chunk.match, 100).tolist()
        == match_tokens(np.array([0.8123], dtype=np.float32), 100).tolist()
    )
    assert (
        chunk.labels.tolist() == [1.0] and chunk.time is not None and chunk.time.tolist() == [1763900000250]
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"v": 3}', "v=3: schema version 1 or 2 expected"),
        (
            '{"v": 2, "event": "view"}',
            "event='view': one of ('bid', 'win', 'billing', 'loss', 'click', 'conversion') expected",
        ),
        ("drop:campaign", "campaign=None: a string expected"),
        ("set:devicetype=9", "devicetype=9: an integer 0..8 expected"),
        ("set:w=-1", "w=-1: a non-negative integer expected"),
        ("set:match=1.5", "match=1.5: a number in [-1, 1] expected"),
        ("set:ts=-3", "ts=-3: unix seconds expected"),
        ("set:click=2", "click=2: 0 or 1 expected"),
        ("set:click=true", "click=True: 0 or 1 expected"),
        ('set:tags="interest:golf"', "tags='interest:golf': a list of at most 16 strings expected"),
        ("set:tags=[1]", "tags=[1]: a list of at most 16 strings expected"),
    ],
)
def test_malformed_events_are_counted_with_their_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "events.jsonl"
    write(path, impression())
    good = path.read_text().strip()
    if line.startswith(("drop:", "set:")):
        record = json.loads(good)
        action, _, change = line.partition(":")
        if action == "drop":
            del record[change]
        else:
            name, _, value = change.partition("=")
            record[name] = json.loads(value)
        line = json.dumps(record)
    path.write_text("\n".join([good, line, good]) + "\n")
    bad = BadRows()
    chunks = list(read_events(path, bad))
    assert [int(n) for c in chunks for n in c.lines] == [1, 3]
    assert bad.count == 1 and bad.examples[0] == (2, reason)


def test_reader_gives_the_users_tags_in_order_padded(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write(path, impression(tags=("interest:golf", "age:18-24")))
    (chunk,) = read_events(path, BadRows())
    assert chunk.tokens["tags"].tolist() == [
        [tag_token("interest:golf"), tag_token("age:18-24")] + [NO_TAG] * (LOGGED_TAGS - 2)
    ]


def test_a_record_without_tags_reads_as_a_user_with_none(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write(path, impression())
    record = json.loads(path.read_text())
    del record["tags"]
    path.write_text(json.dumps(record) + "\n")
    (chunk,) = read_events(path, BadRows())
    assert chunk.tokens["tags"].tolist() == [[NO_TAG] * LOGGED_TAGS]


def click_record(**changes: object) -> str:
    fields = {"v": 1, "event": "click", "ts": 1_763_900_100.0, "request_id": "r1", "imp_id": "1"}
    return json.dumps({**fields, "campaign": "cmp-000017", **changes})


def test_click_records_are_joined_onto_their_impressions(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write(
        path,
        impression(request_id="r1", imp_id="1", click=0),
        impression(request_id="r2", imp_id="1", click=0),
        impression(request_id="r3", imp_id="1", click=0),
    )
    with path.open("a") as handle:
        handle.write(click_record() + "\n")  # r1's click
        handle.write(click_record(request_id="r3", event="conversion") + "\n")  # not a click
        handle.write(click_record(request_id="r9") + "\n")  # its impression is not in the log
    bad = BadRows()
    (chunk,) = read_events(path, bad)
    assert chunk.labels.tolist() == [1.0, 0.0, 0.0]
    assert bad.count == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (click_record(event="view"), "event='view': one of ('click', 'conversion') expected"),
        (click_record(imp_id=""), "imp_id='': the click's impression is not named"),
    ],
)
def test_malformed_click_records_are_counted_with_their_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "events.jsonl"
    write(path, impression(request_id="r1", imp_id="1", click=0))
    with path.open("a") as handle:
        handle.write(line + "\n")
    bad = BadRows()
    (chunk,) = read_events(path, bad)
    assert chunk.labels.tolist() == [0.0]
    assert bad.examples == [(2, reason)]


def test_a_click_in_the_next_days_file_is_joined_onto_its_impression(tmp_path: Path) -> None:
    write(tmp_path / "events-2025-11-23.jsonl", impression(request_id="r1", imp_id="1", click=0))
    (tmp_path / "events-2025-11-24.jsonl").write_text(click_record(ts=1_763_942_400.5) + "\n")
    chunks = list(EventFiles.of(tmp_path).chunks(BadRows()))
    assert [label for c in chunks for label in c.labels.tolist()] == [1.0]


def test_day_files_are_read_in_time_order_whatever_their_names(tmp_path: Path) -> None:
    # The single log of before day files holds the older events, though its name sorts last.
    write(tmp_path / "events.jsonl", impression(ts=1_763_800_000.0))
    write(tmp_path / "events-2025-11-23.jsonl", impression(ts=1_763_900_000.0))
    assert day_files(tmp_path) == [tmp_path / "events.jsonl", tmp_path / "events-2025-11-23.jsonl"]


def test_a_glob_names_the_day_files_it_matches(tmp_path: Path) -> None:
    for day in ("2025-11-23", "2025-11-24"):
        write(tmp_path / f"events-{day}.jsonl", impression())
    (tmp_path / "other.jsonl").write_text("not an event log\n")
    assert day_files(str(tmp_path / "events-*.jsonl")) == [
        tmp_path / "events-2025-11-23.jsonl",
        tmp_path / "events-2025-11-24.jsonl",
    ]


def test_a_directory_without_day_files_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LogError, match=f"--data {tmp_path}: the directory holds no event files"):
        day_files(tmp_path)


def test_a_bad_line_of_a_day_file_is_named_with_its_file(tmp_path: Path) -> None:
    write(tmp_path / "events-2025-11-23.jsonl", impression())
    (tmp_path / "events-2025-11-24.jsonl").write_text("{not json\n")
    bad = BadRows()
    list(EventFiles.of(tmp_path).chunks(bad))
    assert bad.examples[0][1].startswith("events-2025-11-24.jsonl: ")
