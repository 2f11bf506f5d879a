"""Log readers: iPinYou FM, Criteo (TSV and CSV), Avazu; readable rows in chunks, bad rows by line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from personabid.ctr.features import SCHEMAS, token
from personabid.training.avazu import read_avazu
from personabid.training.criteo import count_bucket, read_criteo
from personabid.training.ipinyou import FeatIndex, read_ipinyou
from personabid.training.logs import BadRows, Chunk, LogError
from personabid.training.source import LogFile
from tests.conftest import SHARED

IPINYOU_FIELDS = SCHEMAS["ipinyou"]
CRITEO_HEADER = (
    "label," + ",".join(f"I{i}" for i in range(1, 14)) + "," + ",".join(f"C{i}" for i in range(1, 27))
)
AVAZU_HEADER = (
    "id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,app_category,"
    "device_id,device_ip,device_model,device_type,device_conn_type,C14,C15,C16,C17,C18,C19,C20,C21"
)


def read_all(chunks: object) -> Chunk:
    parts = list(chunks)  # type: ignore[call-overload]
    return Chunk(
        tokens={k: np.concatenate([p.tokens[k] for p in parts]) for k in parts[0].tokens},
        labels=np.concatenate([p.labels for p in parts]),
        lines=np.concatenate([p.lines for p in parts]),
        time=None if parts[0].time is None else np.concatenate([p.time for p in parts]),
    )


# iPinYou: two values per field, index 2 * field + value; weekday values 2 and 3, hours 10 and 11.
def ipinyou_featindex(tmp_path: Path) -> Path:
    lines = []
    for f, field in enumerate(IPINYOU_FIELDS):
        values = {"weekday": ("2", "3"), "hour": ("10", "11")}.get(field, ("a", "b"))
        lines += [f"{field}:{value}\t{2 * f + v}" for v, value in enumerate(values)]
    path = tmp_path / "featindex.fm.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def ipinyou_line(label: str, values: list[int]) -> str:
    return label + " " + " ".join(f"{2 * f + v}:1" for f, v in enumerate(values))


def ipinyou_log(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "train.fm.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ipinyou_rows_become_tokens_of_their_indices_per_field(tmp_path: Path) -> None:
    path = ipinyou_log(tmp_path, [ipinyou_line("1", [0] * 16), ipinyou_line("0", [1] * 16)])
    chunk = read_all(read_ipinyou(path, BadRows(), featindex=FeatIndex.load(ipinyou_featindex(tmp_path))))
    assert chunk.labels.tolist() == [1.0, 0.0]
    assert chunk.tokens["hour"].tolist() == [token("2"), token("3")]
    assert chunk.tokens["slotprice"].tolist() == [token("30"), token("31")]


def test_ipinyou_time_key_is_weekday_and_hour(tmp_path: Path) -> None:
    path = ipinyou_log(tmp_path, [ipinyou_line("0", [1, 0] + [0] * 14), ipinyou_line("0", [0, 1] + [0] * 14)])
    chunk = read_all(read_ipinyou(path, BadRows(), featindex=FeatIndex.load(ipinyou_featindex(tmp_path))))
    assert chunk.time is not None and chunk.time.tolist() == [3 * 24 + 10, 2 * 24 + 11]


def test_ipinyou_without_featindex_reads_the_same_tokens_without_time(tmp_path: Path) -> None:
    path = ipinyou_log(tmp_path, [ipinyou_line("1", [0, 1] * 8)])
    with_index = read_all(
        read_ipinyou(path, BadRows(), featindex=FeatIndex.load(ipinyou_featindex(tmp_path)))
    )
    without = read_all(read_ipinyou(path, BadRows()))
    assert without.time is None
    assert all(np.array_equal(with_index.tokens[f], without.tokens[f]) for f in IPINYOU_FIELDS)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (ipinyou_line("0", [0] * 15), "15 features, expected 16"),
        (ipinyou_line("2", [0] * 16), "label '2' is not 0 or 1"),
        (ipinyou_line("0", [0] * 16).replace("0:1", "0:x", 1), "is not '<index>:1'"),
        (ipinyou_line("0", [0] * 16).replace(" 30:1", " 99:1"), "index not in the featindex"),
        (ipinyou_line("0", [0] * 16).replace(" 30:1", " 28:1"), "a field appears twice"),
    ],
    ids=["feature count", "label", "unparseable", "unknown index", "field twice"],
)
def test_ipinyou_malformed_rows_are_counted_with_their_line(tmp_path: Path, line: str, reason: str) -> None:
    path = ipinyou_log(tmp_path, [ipinyou_line("0", [0] * 16), line, ipinyou_line("1", [1] * 16)])
    bad = BadRows()
    chunk = read_all(read_ipinyou(path, bad, featindex=FeatIndex.load(ipinyou_featindex(tmp_path))))
    assert chunk.lines.tolist() == [1, 3]
    assert bad.count == 1 and bad.examples[0][0] == 2 and reason in bad.examples[0][1]


def test_ipinyou_featindex_with_an_unknown_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "featindex.fm.txt"
    path.write_text("weekday:2\t0\nusertag:10006\t1\n")
    with pytest.raises(LogError, match="line 2"):
        FeatIndex.load(path)


def criteo_row(label: str = "0", integer: str = "5", category: str = "68fd1e64", sep: str = "\t") -> str:
    return sep.join([label, *[integer] * 13, *[category] * 26])


def test_criteo_tsv_without_header_and_csv_with_header_read_alike(tmp_path: Path) -> None:
    tsv, csv = tmp_path / "day_0.tsv", tmp_path / "sample.csv"
    tsv.write_text(criteo_row("1", "7", "a") + "\n" + criteo_row("0", "", "b") + "\n")
    csv.write_text(
        CRITEO_HEADER + "\n" + criteo_row("1", "7.0", "a", ",") + "\n" + criteo_row("0", "", "b", ",") + "\n"
    )
    a, b = read_all(read_criteo(tsv, BadRows())), read_all(read_criteo(csv, BadRows()))
    assert a.labels.tolist() == b.labels.tolist() == [1.0, 0.0]
    assert all(np.array_equal(a.tokens[f], b.tokens[f]) for f in SCHEMAS["criteo"])
    assert b.lines.tolist() == [2, 3]


def test_criteo_counts_share_a_bucket_on_a_log_scale() -> None:
    assert count_bucket("") == ""
    assert count_bucket("1") == "1" and count_bucket("-1") == "-1"
    assert count_bucket("100") == count_bucket("105") != count_bucket("1000")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (criteo_row()[: criteo_row().rindex("\t")], "39 columns, expected 40"),
        (criteo_row(label="yes"), "label 'yes' is not 0 or 1"),
        (criteo_row(integer="abc"), "I1='abc'"),
        (criteo_row(integer="inf"), "not a finite number"),
    ],
    ids=["column count", "label", "unparseable count", "infinite count"],
)
def test_criteo_malformed_rows_are_counted_with_their_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "day_0"
    path.write_text("\n".join([criteo_row(), criteo_row(), line, criteo_row("1")]) + "\n")
    bad = BadRows()
    chunk = read_all(read_criteo(path, bad))
    assert chunk.lines.tolist() == [1, 2, 4]
    assert bad.count == 1 and bad.examples[0][0] == 3 and reason in bad.examples[0][1]


def test_criteo_csv_header_without_a_needed_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sample.csv"
    path.write_text(CRITEO_HEADER.replace(",C26", "") + "\n")
    with pytest.raises(LogError, match=r"lacks columns \['C26'\]"):
        list(read_criteo(path, BadRows()))


def avazu_row(click: str = "0", hour: str = "14102100", site: str = "1fbe01fe") -> str:
    values = AVAZU_HEADER.split(",")
    row = [f"{v}-value" for v in values]
    row[0], row[1], row[2], row[5] = "1000009418151094273", click, hour, site
    return ",".join(row)


def test_avazu_hour_gives_time_hour_of_day_and_weekday(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("\n".join([AVAZU_HEADER, avazu_row("1", "14102100"), avazu_row("0", "14102523")]) + "\n")
    chunk = read_all(read_avazu(path, BadRows()))
    assert chunk.labels.tolist() == [1.0, 0.0]
    assert chunk.time is not None and chunk.time.tolist() == [1413849600, 1414278000]
    assert chunk.tokens["hour"].tolist() == [token("00"), token("23")]
    assert chunk.tokens["weekday"].tolist() == [token("1"), token("5")]  # a Tuesday, a Saturday
    assert chunk.tokens["site_id"].tolist() == [token("1fbe01fe")] * 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (avazu_row() + ",extra", "25 columns, expected 24"),
        (avazu_row(click="-1"), "label '-1' is not 0 or 1"),
        (avazu_row(hour="141021"), "hour='141021': not YYMMDDHH"),
        (avazu_row(hour="14133100"), "hour='14133100'"),
    ],
    ids=["column count", "label", "short hour", "impossible date"],
)
def test_avazu_malformed_rows_are_counted_with_their_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "train.csv"
    path.write_text("\n".join([AVAZU_HEADER, avazu_row(), line, avazu_row("1")]) + "\n")
    bad = BadRows()
    chunk = read_all(read_avazu(path, bad))
    assert chunk.lines.tolist() == [2, 4]
    assert bad.count == 1 and bad.examples[0][0] == 3 and reason in bad.examples[0][1]


def test_avazu_test_file_without_clicks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "test.csv"
    path.write_text(AVAZU_HEADER.replace("click,", "") + "\n")
    with pytest.raises(LogError, match="click"):
        list(read_avazu(path, BadRows()))


def test_a_log_is_read_in_chunks_of_the_asked_size(tmp_path: Path) -> None:
    path = tmp_path / "day_0"
    path.write_text("\n".join(criteo_row(str(i % 2)) for i in range(7)) + "\n")
    sizes = [len(chunk) for chunk in read_criteo(path, BadRows(), chunk_rows=3)]
    assert sizes == [3, 3, 1]


def test_a_log_over_the_bad_row_limit_fails_naming_the_lines(tmp_path: Path) -> None:
    bad = BadRows()
    for line in (4, 9):
        bad.add(line, "label '2' is not 0 or 1")
    with pytest.raises(LogError, match=r"2 of 100 rows are unreadable \(2.00%.*line 4: label '2'"):
        bad.check(tmp_path / "log", 98, max_fraction=0.01)
    bad.check(tmp_path / "log", 98, max_fraction=0.05)


def test_a_log_with_no_readable_row_fails(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="no readable rows"):
        BadRows().check(tmp_path / "log", 0, max_fraction=0.5)


@pytest.mark.skipif(
    not SHARED.is_dir(), reason="../shared (real iPinYou, Criteo and Avazu samples) is absent"
)
@pytest.mark.parametrize(
    ("path", "fmt", "rows", "clicks"),
    [
        ("data/ipinyou-2997/train.fm.txt", "ipinyou", 26_773, 255),
        ("data/ctr-samples/criteo_sample.txt", "criteo", 200, 49),
        ("data/ctr-samples/avazu_sample.txt", "avazu", 100, 20),
    ],
)
def test_the_real_samples_read_without_a_bad_row(path: str, fmt: str, rows: int, clicks: int) -> None:
    bad = BadRows()
    chunk = read_all(LogFile(SHARED / path, fmt).chunks(bad))
    assert bad.count == 0
    assert len(chunk) == rows and chunk.labels.sum() == clicks
