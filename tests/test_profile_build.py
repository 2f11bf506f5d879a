"""The profile build on DuckDB: the formulas against a plain-Python reference, incremental builds,
suppression, retention, the report, the artifact and `personabid profiles build`."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from personabid.cli import main
from personabid.privacy import Pseudonymizer
from personabid.profiles.artifact import ProfileArrays, key_check, load_profiles, user_key
from personabid.profiles.taxonomy import standard
from personabid.training.profiles.build import (
    DAY,
    OBSERVATIONS,
    STATE,
    BuildParams,
    BuildResult,
    Previous,
    ProfileBuildError,
    build,
    read_suppression,
    write,
)

TAXONOMY = standard()
VOCAB = TAXONOMY.vocabulary()
AS_OF = 1_790_000_000.0  # 2026-09-21T14:13:20Z
TODAY = math.floor(AS_OF / DAY)
KEYS = ("cat:IAB17-44", "cat:IAB17", "kw:soccer", "aud:608", "age:25-29", "gender:female",
        "income:50000-74999", "country:USA", "os:ios", "devicetype:5", "appcat:social", "cat:IAB2",
        "kw:travel", "cat:IAB20")  # fmt: skip
CATEGORIES = sorted({key for key, _, _ in TAXONOMY.rule_rows() if key.startswith("cat:")})
KEY_TEXT = "0123456789abcdef0123456789abcdef"

Row = tuple[int, float, int, str, float]  # user, ts, kind, key, weight


def table(rows: Iterable[Row]) -> pa.Table:
    rows = list(rows)
    return pa.table(
        {
            "user": [r[0] for r in rows],
            "day": [math.floor(r[1] / DAY) for r in rows],
            "ts": [r[1] for r in rows],
            "kind": [r[2] for r in rows],
            "key": [r[3] for r in rows],
            "weight": [r[4] for r in rows],
        },
        schema=OBSERVATIONS,
    )


def reference(
    rows: Sequence[Row], params: BuildParams, suppressed: Iterable[int] = ()
) -> dict[int, dict[str, tuple[float, int]]]:
    """Each user's {tag: (weight, kinds)}, straight from the definition: every observation decayed from
    its own time to as_of (no day split), summed, saturated, capped per family, cut to max_tags."""
    as_of = float(params.as_of or 0.0)
    half_life = params.half_life_days * DAY
    cut = math.floor(as_of / DAY) - params.retention_days + 1
    gone = set(suppressed)
    totals: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    kinds: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for user, ts, kind, key, weight in rows:
        if ts > as_of or math.floor(ts / DAY) < cut or user in gone:
            continue
        for tag, rule_weight in TAXONOMY.rules(key):
            totals[user][tag] += float(np.float32(weight)) * rule_weight * 2 ** (-(as_of - ts) / half_life)
            kinds[user][tag] |= 1 << kind
    profiles = {}
    for user, tags in totals.items():
        saturated = {tag: -math.expm1(-s) for tag, s in tags.items() if s > 0}
        norms: dict[str, float] = defaultdict(float)
        for tag, v in saturated.items():
            norms[tag.split(":")[0]] += v * v
        capped = {tag: v / max(1.0, math.sqrt(norms[tag.split(":")[0]])) for tag, v in saturated.items()}
        best = sorted(capped, key=lambda tag: (-capped[tag], VOCAB.position(tag)))[: params.max_tags]
        best = [tag for tag in best if np.float32(capped[tag]) > 0]  # too small for the artifact
        if best:
            profiles[user] = {tag: (capped[tag], kinds[user][tag]) for tag in best}
    return profiles


def as_dict(arrays: ProfileArrays) -> dict[int, dict[str, tuple[float, int]]]:
    profiles = {}
    for i in range(arrays.users):
        tags, weights, kinds = arrays.user(i)
        profiles[int(arrays.keys[i])] = {
            VOCAB.tags[int(t)]: (float(w), int(k)) for t, w, k in zip(tags, weights, kinds, strict=True)
        }
    return profiles


def assert_matches(arrays: ProfileArrays, expected: dict[int, dict[str, tuple[float, int]]]) -> None:
    got = as_dict(arrays)
    assert got.keys() == expected.keys()
    for user, tags in expected.items():
        assert got[user].keys() == tags.keys(), user
        for tag, (weight, kinds) in tags.items():
            assert got[user][tag][0] == pytest.approx(weight, rel=1e-5, abs=1e-7), (user, tag)
            assert got[user][tag][1] == kinds, (user, tag)


def assert_same(a: BuildResult, b: BuildResult) -> None:
    for name in ("keys", "offsets", "tags", "kinds"):
        assert np.array_equal(getattr(a.arrays, name), getattr(b.arrays, name)), name
    np.testing.assert_allclose(a.arrays.weights, b.arrays.weights, rtol=1e-6, atol=1e-7)


def assert_same_state(a: pa.Table, b: pa.Table) -> None:
    order = [("user", "ascending"), ("tag", "ascending"), ("day", "ascending")]
    a, b = a.sort_by(order), b.sort_by(order)
    assert a.drop_columns(["score"]).equals(b.drop_columns(["score"]))
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-12)


users = st.sampled_from([-(2**63), -5, 0, 7, 2**40, 2**63 - 1])
rows_strategy = st.lists(
    st.tuples(
        users,
        st.floats(AS_OF - 40 * DAY, AS_OF),
        st.integers(0, 8),
        st.sampled_from((*KEYS, "kw:no-such-signal")),
        st.floats(0.0, 3.0, width=32),
    ),
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_strategy, half_life=st.floats(0.5, 90.0))
def test_the_build_follows_the_definition(rows: list[Row], half_life: float) -> None:
    params = BuildParams(half_life_days=half_life, as_of=AS_OF)
    assert_matches(build([table(rows)], params).arrays, reference(rows, params))


@settings(max_examples=40, deadline=None)
@given(
    age=st.floats(0.0, 200.0),  # both within the default retention (395 days)
    older_by=st.floats(0.01, 190.0),
    half_life=st.floats(0.5, 90.0),
    weight=st.floats(0.01, 3.0),
)
def test_a_signal_weighs_less_the_older_it_is(
    age: float, older_by: float, half_life: float, weight: float
) -> None:
    assume((age + older_by) / half_life < 120)  # 2 ** -120: still a float32 weight
    rows = [
        (1, AS_OF - age * DAY, 0, "cat:IAB2", weight),
        (2, AS_OF - (age + older_by) * DAY, 0, "cat:IAB2", weight),
    ]
    arrays = build([table(rows)], BuildParams(half_life_days=half_life, as_of=AS_OF)).arrays
    recent, old = (arrays.user(arrays.find(user))[1][0] for user in (1, 2))
    assert old < recent


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 400), weight=st.floats(1e-3, 3.0), age=st.floats(0.0, 100.0))
def test_weights_saturate_within_zero_to_one(count: int, weight: float, age: float) -> None:
    rows = [(1, AS_OF - age * DAY - i, 0, "cat:IAB2", weight) for i in range(count)]
    weights = build([table(rows)], BuildParams(as_of=AS_OF)).arrays.weights
    assert len(weights) == 1 and 0 < weights[0] <= 1


@settings(max_examples=30, deadline=None)
@given(
    categories=st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=40, unique=True),
    repeats=st.integers(1, 50),
    weight=st.sampled_from([1.0, 1e6, 3e38]),
)
def test_no_family_norm_exceeds_one(categories: list[str], repeats: int, weight: float) -> None:
    rows = [(1, AS_OF - i, 0, key, weight) for key in categories for i in range(repeats)]
    rows += [(1, AS_OF, 4, "age:25-29", 1.0)]
    arrays = build([table(rows)], BuildParams(as_of=AS_OF)).arrays
    tags, weights, _ = arrays.user(0)
    assert np.all(np.isfinite(weights)) and np.all(weights > 0)
    families: dict[str, float] = defaultdict(float)
    for tag, w in zip(tags, weights, strict=True):
        families[VOCAB.tags[int(tag)].split(":")[0]] += float(w) ** 2
    assert all(math.sqrt(total) <= 1 + 1e-5 for total in families.values())
    assert math.sqrt(families["age"]) == pytest.approx(1 - math.exp(-1), rel=1e-6)  # not drowned


def test_a_user_keeps_the_max_tags_heaviest() -> None:
    rows = [(1, AS_OF - i * DAY, 0, key, 1.0) for i, key in enumerate(CATEGORIES[:30])]
    params = BuildParams(as_of=AS_OF, max_tags=5)
    arrays = build([table(rows)], params).arrays
    assert arrays.users == 1 and len(arrays.tags) == 5
    assert_matches(arrays, reference(rows, params))


def test_profiles_are_sorted_by_key_then_tag() -> None:
    rows = [(user, AS_OF - i * 3600, i % 9, KEYS[(user + i) % len(KEYS)], 1.0)
            for user in (9, -3, 2**62, 0) for i in range(12)]  # fmt: skip
    arrays = build([table(rows)], BuildParams(as_of=AS_OF)).arrays
    assert list(arrays.keys) == [-3, 0, 9, 2**62]
    for i in range(arrays.users):
        assert np.all(np.diff(arrays.user(i)[0].astype(np.int64)) > 0)


def test_as_of_defaults_to_the_latest_observation() -> None:
    rows = [(1, AS_OF - 5 * DAY, 0, "cat:IAB2", 1.0), (1, AS_OF, 0, "cat:IAB20", 1.0)]
    result = build([table(rows)], BuildParams())
    assert result.params.as_of == AS_OF


def test_observations_after_as_of_are_left_out_and_counted() -> None:
    rows = [
        (1, AS_OF - DAY, 0, "cat:IAB2", 1.0),
        (1, AS_OF + 1, 0, "cat:IAB20", 1.0),
        (2, AS_OF + 9, 0, "cat:IAB2", 1.0),
    ]
    result = build([table(rows)], BuildParams(as_of=AS_OF))
    assert set(as_dict(result.arrays)) == {1} and set(as_dict(result.arrays)[1]) == {"interest:automotive"}
    assert result.report["skipped"]["after_as_of"] == 2


def test_signals_with_no_tag_are_counted() -> None:
    rows = [(1, AS_OF, 0, "kw:no-such-signal", 1.0), (1, AS_OF, 0, "cat:IAB2", 1.0)]
    assert build([table(rows)], BuildParams(as_of=AS_OF)).report["skipped"]["untagged"] == 1


# --- retention ---------------------------------------------------------------------------------------


def test_days_beyond_retention_are_dropped_and_counted() -> None:
    rows = [
        (1, AS_OF - 9 * DAY, 0, "cat:IAB2", 1.0),  # kept
        (1, (TODAY - 9) * DAY, 0, "cat:IAB20", 1.0),  # the oldest day kept: 10 days, today's included
        (1, (TODAY - 10) * DAY + DAY - 1, 0, "cat:IAB19", 1.0),  # one day too old
        (2, AS_OF - 50 * DAY, 0, "cat:IAB2", 1.0),
    ]
    result = build([table(rows)], BuildParams(as_of=AS_OF, retention_days=10))
    assert set(as_dict(result.arrays)) == {1}
    assert set(as_dict(result.arrays)[1]) == {"interest:automotive", "interest:travel"}
    assert result.report["skipped"]["beyond_retention"] == 2


def test_the_state_forgets_days_beyond_retention() -> None:
    rows = [(1, AS_OF - 20 * DAY, 0, "cat:IAB2", 1.0), (1, AS_OF - DAY, 0, "cat:IAB20", 1.0)]
    first = build([table(rows)], BuildParams(as_of=AS_OF - DAY / 2))
    later = build([], BuildParams(as_of=AS_OF + 5 * DAY, retention_days=10), previous=previous_of(first))
    assert set(later.state["tag"].to_pylist()) == {"interest:travel"}
    assert set(as_dict(later.arrays)[1]) == {"interest:travel"}


# --- suppression -------------------------------------------------------------------------------------


def test_suppressed_users_are_left_out_and_counted() -> None:
    rows = [(1, AS_OF, 0, "cat:IAB2", 1.0), (2, AS_OF, 0, "cat:IAB2", 1.0), (2, AS_OF, 0, "cat:IAB20", 1.0)]
    result = build([table(rows)], BuildParams(as_of=AS_OF), suppressed=[2])
    assert list(result.arrays.keys) == [1]
    assert 2 not in result.state["user"].to_pylist()
    assert result.report["skipped"]["suppressed"] == 2


def test_suppressed_users_are_dropped_from_the_previous_state() -> None:
    rows = [(1, AS_OF - DAY, 0, "cat:IAB2", 1.0), (2, AS_OF - DAY, 0, "cat:IAB2", 1.0)]
    first = build([table(rows)], BuildParams(as_of=AS_OF - DAY))
    later = build([table([(1, AS_OF, 0, "cat:IAB20", 1.0)])], BuildParams(as_of=AS_OF),
                  suppressed=[2], previous=previous_of(first))  # fmt: skip
    assert list(later.arrays.keys) == [1]
    assert set(later.state["user"].to_pylist()) == {1}


def test_a_suppression_file_holds_pseudonyms_and_comments(tmp_path: Path) -> None:
    pseudonymize = Pseudonymizer(KEY_TEXT.encode())
    one, two = pseudonymize("alice"), pseudonymize("bob")
    path = tmp_path / "profiles.suppressed"
    path.write_text(f"# forgotten on request\n{one}\n\n{two}  # second request\n{one}\n")
    assert list(read_suppression(path)) == sorted([user_key(one), user_key(two)])


def test_a_suppression_line_that_is_not_a_pseudonym_fails_the_build(tmp_path: Path) -> None:
    path = tmp_path / "profiles.suppressed"
    path.write_text("0123456789abcdef0123456789abcdef\nalice@example.com\n")
    with pytest.raises(ProfileBuildError, match=r"profiles.suppressed:2"):
        read_suppression(path)


# --- incremental builds ------------------------------------------------------------------------------


def previous_of(result: BuildResult, key: str = "") -> Previous:
    return Previous("v1", result.params.half_life_days, float(result.params.as_of or 0.0), key, result.state)


def two_days(rng: np.random.Generator, users: int = 40, per_day: int = 300) -> tuple[list[Row], list[Row]]:
    def day(start: float) -> list[Row]:
        return [
            (int(rng.integers(users)) * 7919 - 100, start + float(rng.uniform(0, DAY)), int(rng.integers(9)),
             KEYS[int(rng.integers(len(KEYS)))], float(rng.uniform(0.1, 3)))
            for _ in range(per_day)
        ]  # fmt: skip

    return day(AS_OF - 2 * DAY), day(AS_OF - DAY)


def test_folding_a_day_into_yesterdays_state_equals_a_rebuild(rng: np.random.Generator) -> None:
    first, second = two_days(rng)
    params = BuildParams(half_life_days=7.0, as_of=AS_OF)
    yesterday = build([table(first)], BuildParams(half_life_days=7.0, as_of=max(r[1] for r in first)))
    folded = build([table(second)], params, previous=previous_of(yesterday))
    rebuilt = build([table(first + second)], params)
    assert_same(folded, rebuilt)
    assert_same_state(folded.state, rebuilt.state)
    assert folded.since == "v1"


def test_a_previous_build_with_another_half_life_is_refused() -> None:
    yesterday = build([table([(1, AS_OF - DAY, 0, "cat:IAB2", 1.0)])], BuildParams(half_life_days=14.0))
    with pytest.raises(ProfileBuildError, match=r"half_life_days 14\b.*has 30\b"):
        build([table([(1, AS_OF, 0, "cat:IAB2", 1.0)])], BuildParams(), previous=previous_of(yesterday))


def test_an_as_of_before_the_previous_builds_is_refused() -> None:
    yesterday = build([table([(1, AS_OF, 0, "cat:IAB2", 1.0)])], BuildParams())
    with pytest.raises(ProfileBuildError, match="before --since"):
        build([], BuildParams(as_of=AS_OF - DAY), previous=previous_of(yesterday))


def test_a_previous_build_under_another_key_is_refused() -> None:
    previous = previous_of(build([table([(1, AS_OF, 0, "cat:IAB2", 1.0)])], BuildParams()), "abc")
    with pytest.raises(ProfileBuildError, match="another pseudonymisation key"):
        previous.check_key("def")


# --- the report and the artifact ---------------------------------------------------------------------


def test_the_report_counts_users_tags_and_family_coverage() -> None:
    rows = [(1, AS_OF, 0, "cat:IAB2", 1.0), (1, AS_OF, 4, "age:25-29", 1.0), (1, AS_OF, 0, "cat:IAB20", 1.0),
            (2, AS_OF, 0, "cat:IAB17-44", 1.0), (3, AS_OF, 6, "os:ios", 1.0),
            (4, AS_OF, 6, "os:ios", 1.0)]  # fmt: skip
    report = build([table(rows)], BuildParams()).report
    assert (report["users"], report["entries"], report["observations"]) == (4, 7, 6)
    assert report["tags_per_user"] == {"mean": 1.75, "p50": 1.5, "p90": 2.7, "max": 3}
    assert report["coverage"]["interest"] == 0.5 and report["coverage"]["device"] == 0.5
    assert report["coverage"]["age"] == 0.25 and report["coverage"]["gender"] == 0.0


def test_the_artifact_loads_with_its_parameters_and_state(tmp_path: Path) -> None:
    rows = [
        (5, AS_OF - 3 * DAY, 0, "cat:IAB2", 1.0),
        (5, AS_OF, 7, "cat:IAB2", 2.0),
        (6, AS_OF, 4, "gender:female", 1.0),
    ]
    result = build([table(rows)], BuildParams(half_life_days=10.0))
    directory = write(tmp_path / "profiles", result, "probe-check")
    loaded = load_profiles(tmp_path / "profiles")
    assert loaded.directory == directory
    assert_same(result, BuildResult(loaded.arrays, result.state, result.params, "", None, {}))
    manifest = loaded.manifest
    assert manifest["half_life_days"] == 10.0 and manifest["as_of_unix"] == AS_OF
    assert manifest["as_of"] == "2026-09-21T14:13:20Z"
    assert (manifest["retention_days"], manifest["max_tags"], manifest["engine"]) == (395, 64, "duckdb")
    assert manifest["key_check"] == "probe-check" and manifest["since"] is None
    assert manifest["report"]["users"] == 2
    assert pq.read_schema(directory / "state.parquet").remove_metadata() == STATE
    automotive = VOCAB.position("interest:automotive")
    tags, _, kinds = loaded.arrays.user(loaded.arrays.find(5))
    assert list(tags) == [automotive] and kinds[0] == (1 << 0) | (1 << 7)


def test_a_written_build_is_a_previous_for_the_next(tmp_path: Path) -> None:
    result = build([table([(5, AS_OF, 0, "cat:IAB2", 1.0)])], BuildParams(half_life_days=10.0))
    previous = Previous.load(write(tmp_path / "profiles", result, "probe-check"))
    assert (previous.half_life_days, previous.as_of, previous.key_check) == (10.0, AS_OF, "probe-check")
    assert previous.state.equals(result.state)


# --- the command -------------------------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("PERSONABID_PSEUDONYM_KEY", raising=False)
    path = tmp_path / "pseudonym.key"
    path.write_text(KEY_TEXT)
    return path


def write_events(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    return path


DAY_ONE: list[dict[str, object]] = [
    {"user": "alice", "ts": "2026-11-28T09:00:00Z", "type": "page_view", "cat": ["IAB17-44"]},
    {"user": "alice", "ts": "2026-11-28T10:00:00Z", "type": "declared", "age_band": "25-29"},
    {"user": "bob", "ts": "2026-11-28T11:00:00Z", "type": "device", "os": "iOS"},
]
DAY_TWO: list[dict[str, object]] = [
    {"user": "alice", "ts": "2026-11-29T09:00:00Z", "type": "search", "query": "soccer boots"},
    {"user": "bob", "ts": "2026-11-29T12:00:00Z", "type": "page_view", "cat": ["IAB20"]},
    {"user": "carol", "ts": "2026-11-29T13:00:00Z", "type": "location", "country": "USA"},
]


def test_the_command_writes_profiles_and_prints_the_report(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_events(tmp_path / "events.jsonl", DAY_ONE + DAY_TWO)
    argv = ["profiles", "build", "--events", str(events), "--out", str(tmp_path / "profiles"),
            "--pseudonym-key-file", str(key_file), "--as-of", "2026-11-30T00:00:00Z"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "users 3, entries" in out and "events read 6" in out
    profiles = load_profiles(tmp_path / "profiles")
    pseudonymize = Pseudonymizer(KEY_TEXT.encode())
    assert profiles.key_check == key_check(pseudonymize)
    assert profiles.manifest["as_of"] == "2026-11-30T00:00:00Z"
    alice = profiles.arrays.find(user_key(pseudonymize("alice")))
    tags = {VOCAB.tags[int(t)] for t in profiles.arrays.user(alice)[0]}
    assert {"interest:sports/soccer", "age:25-29"} <= tags


def test_the_command_folds_new_events_into_a_previous_version(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--pseudonym-key-file", str(key_file), "--half-life-days", "5"]
    one, two = write_events(tmp_path / "one.jsonl", DAY_ONE), write_events(tmp_path / "two.jsonl", DAY_TWO)
    assert main(["profiles", "build", "--events", str(one), "--out", str(tmp_path / "a"), *common]) == 0
    assert main(["profiles", "build", "--events", str(two), "--out", str(tmp_path / "a"),
                 "--since", str(tmp_path / "a"), *common]) == 0  # fmt: skip
    assert (
        main(["profiles", "build", "--events", str(one), str(two), "--out", str(tmp_path / "b"), *common])
        == 0
    )
    folded, rebuilt = load_profiles(tmp_path / "a"), load_profiles(tmp_path / "b")
    assert folded.manifest["since"] is not None and folded.manifest["as_of"] == rebuilt.manifest["as_of"]
    assert np.array_equal(folded.arrays.keys, rebuilt.arrays.keys)
    assert np.array_equal(folded.arrays.tags, rebuilt.arrays.tags)
    np.testing.assert_allclose(folded.arrays.weights, rebuilt.arrays.weights, rtol=1e-6)
    capsys.readouterr()


def test_the_command_honours_the_data_directorys_suppression_list(tmp_path: Path, key_file: Path) -> None:
    (tmp_path / "profiles.suppressed").write_text(Pseudonymizer(KEY_TEXT.encode())("bob") + "\n")
    events = write_events(tmp_path / "events.jsonl", DAY_ONE + DAY_TWO)
    argv = ["profiles", "build", "--events", str(events), "--out", str(tmp_path / "profiles"),
            "--data-dir", str(tmp_path), "--json"]  # fmt: skip
    assert main(argv) == 0
    profiles = load_profiles(tmp_path / "profiles")
    assert profiles.arrays.users == 2 and profiles.manifest["report"]["skipped"]["suppressed"] == 2


def test_the_command_names_a_missing_events_file(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing" / "events.jsonl"
    argv = ["profiles", "build", "--events", str(missing), "--out", str(tmp_path / "p"),
            "--pseudonym-key-file", str(key_file)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"personabid: {missing}") and "\n" not in err


def test_the_command_names_a_missing_suppression_file(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_events(tmp_path / "events.jsonl", DAY_ONE)
    missing = tmp_path / "nowhere.suppressed"
    argv = ["profiles", "build", "--events", str(events), "--out", str(tmp_path / "p"),
            "--pseudonym-key-file", str(key_file), "--suppression", str(missing)]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"personabid: {missing}: No such file or directory"


@pytest.mark.parametrize(("text", "seconds"), [("1790000000", AS_OF), ("2026-09-21T14:13:20Z", AS_OF),
                                                ("2026-09-21T16:13:20+02:00", AS_OF)])  # fmt: skip
def test_as_of_is_iso_8601_or_unix_seconds(text: str, seconds: float) -> None:
    from personabid.training.profiles.commands import _time

    assert _time(text) == seconds
