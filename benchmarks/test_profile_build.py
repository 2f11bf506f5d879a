"""Profile build throughput: behaviour events per second per core, on DuckDB, and on Polars for comparison.

Run (timed: 100,000 users, 20 events each, 2,000,000 events):

    .venv/bin/python -m pytest benchmarks/test_profile_build.py --benchmark-only \
        --benchmark-json=benchmarks/results/profile_build.json

Untimed (`make test`, --benchmark-disable) the same code runs once on 2,000 users.

The events follow realistic cardinalities: each user has a few favourite content categories (drawn with a
skewed, Zipf-like popularity over the taxonomy's 559 categories) that most of their page views, app uses
and searches are about, with noise; declared attributes, location and device appear now and then, and
purchases name Audience purchase-intent ids. They span 30 days. They are written once as Parquet and read
by the real reader (personabid.training.profiles.events), which makes about 1.6 observations an event.

Measured:
- the build over observations already in memory (the SQL on DuckDB at 1 and 2 threads: events per
  second per core is events / (seconds x threads)); the same aggregation written with Polars (one thread);
- read plus build, from the Parquet file (DuckDB, 1 thread): what `personabid profiles build` costs.
Each figure is in the benchmark's extra_info (events_per_second_per_core). Before timing, each checks its
answer: Polars gives DuckDB's profiles.
"""

from __future__ import annotations

import os

# Polars sizes its thread pool when first imported: one thread, for a per-core figure beside DuckDB's.
os.environ.setdefault("POLARS_MAX_THREADS", "1")

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from personabid.privacy import Pseudonymizer
from personabid.profiles.taxonomy import standard
from personabid.training.profiles.build import (
    DAY,
    BuildParams,
    BuildResult,
    build,
    prepare,
    rule_keys,
    rule_table,
    tag_table,
)
from personabid.training.profiles.engines import DuckDBEngine
from personabid.training.profiles.events import read_observations, write_events_parquet

TIMED_USERS = 100_000
UNTIMED_USERS = 2_000
EVENTS_PER_USER = 20
END = 1_790_000_000.0  # the last event's time: a fixed past day, so that the reader accepts it
SPAN_DAYS = 30
PARAMS = BuildParams(half_life_days=30.0, as_of=END)
KEY = b"benchmark-pseudonym-key-0123456789"
TYPES = ("page_view", "app_use", "search", "purchase", "declared", "location", "device", "click")
TYPE_SHARES = (0.5, 0.15, 0.12, 0.05, 0.04, 0.04, 0.04, 0.06)


def synthetic_events(users: int, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    """`users` x EVENTS_PER_USER raw events, in time order per user."""
    taxonomy = standard()
    keys = [key for key, _, _ in taxonomy.rule_rows()]
    categories = sorted({k[4:] for k in keys if k.startswith("cat:")})
    words = sorted({k[3:] for k in keys if k.startswith("kw:")})
    apps = sorted({k[7:] for k in keys if k.startswith("appcat:")})
    audiences = sorted({k[4:] for k in keys if k.startswith("aud:")})
    countries = sorted({k[8:] for k in keys if k.startswith("country:")})
    popularity = 1.0 / np.arange(1, len(categories) + 1) ** 1.1
    popularity /= popularity.sum()
    for user in range(users):
        favourites = rng.choice(len(categories), size=3, replace=False, p=popularity)
        times = np.sort(END - rng.random(EVENTS_PER_USER) * SPAN_DAYS * DAY)
        kinds = rng.choice(len(TYPES), size=EVENTS_PER_USER, p=TYPE_SHARES)
        for ts, kind in zip(times, kinds, strict=True):
            kind_name = TYPES[kind]
            on_topic = rng.random() < 0.8
            cat = (
                categories[favourites[rng.integers(3)]]
                if on_topic
                else categories[rng.integers(len(categories))]
            )
            event: dict[str, Any] = {"user": f"user-{user}", "ts": float(ts), "type": kind_name}
            if kind_name in ("page_view", "click"):
                event["cat"] = [cat, cat.split("-")[0]] if "-" in cat else [cat]
                if kind_name == "page_view" and rng.random() < 0.5:
                    event["keywords"] = [words[rng.integers(len(words))]]
            elif kind_name == "app_use":
                event.update(
                    cat=[cat], app_category=apps[rng.integers(len(apps))], minutes=float(rng.integers(1, 40))
                )
            elif kind_name == "search":
                event["query"] = f"best {words[rng.integers(len(words))]} near me"
            elif kind_name == "purchase":
                event.update(category=audiences[rng.integers(len(audiences))], amount=20.0, currency="USD")
            elif kind_name == "declared":
                event.update(
                    age_band="25-29" if user % 2 else "35-39", gender="female" if user % 3 else "male"
                )
            elif kind_name == "location":
                event["country"] = countries[user % len(countries)]
            else:
                event.update(os="ios" if user % 2 else "android", devicetype=4)
            yield event


@pytest.fixture(scope="module")
def users(request: pytest.FixtureRequest) -> int:
    return UNTIMED_USERS if request.config.getoption("benchmark_disable") else TIMED_USERS


@pytest.fixture(scope="module")
def events_file(users: int, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profile-events") / "events.parquet"
    write_events_parquet(path, synthetic_events(users, np.random.default_rng(14)))
    return path


@pytest.fixture(scope="module")
def observations(events_file: Path) -> tuple[pa.Table, int]:
    """The observations of every event, in memory, and how many events they came from."""
    chunks, report = read_observations([events_file], Pseudonymizer(KEY))
    table = pa.concat_tables(list(chunks))
    return table, report.events


def _per_core(benchmark: BenchmarkFixture, events: int, threads: int) -> None:
    benchmark.extra_info.update(events=events, threads=threads)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["events_per_second_per_core"] = round(events / (stats.stats.median * threads))


def _duckdb_build(table: pa.Table, threads: int) -> Callable[[], BuildResult]:
    return lambda: build([table], PARAMS, engine=DuckDBEngine(threads=threads))


@pytest.mark.parametrize("threads", [1, 2])
def test_duckdb_build_from_memory(
    benchmark: BenchmarkFixture, observations: tuple[pa.Table, int], threads: int
) -> None:
    table, events = observations
    result = _duckdb_build(table, threads)()
    assert result.arrays.users > 0.95 * (events / EVENTS_PER_USER)
    benchmark.pedantic(_duckdb_build(table, threads), rounds=3, iterations=1)
    _per_core(benchmark, events, threads)


def test_duckdb_read_and_build(benchmark: BenchmarkFixture, events_file: Path) -> None:
    counted: dict[str, int] = {}

    def read_and_build() -> BuildResult:
        chunks, report = read_observations([events_file], Pseudonymizer(KEY))
        result = build(chunks, PARAMS, engine=DuckDBEngine(threads=1), events=report)
        counted["events"] = report.events
        return result

    result = read_and_build()
    assert result.report["events"]["events"] == counted["events"] and result.arrays.users > 0
    benchmark.pedantic(read_and_build, rounds=1, iterations=1)
    _per_core(benchmark, counted["events"], 1)


def polars_profiles(table: pa.Table, params: BuildParams) -> Any:
    """The build's aggregation (no previous state, no suppression) in Polars: (user, pos, weight, kinds)."""
    try:
        import polars as pl
    except ImportError:
        pytest.fail("polars is missing: `pip install -e .[dev]` installs it")
    taxonomy = standard()
    vocab = taxonomy.vocabulary()
    as_of = float(params.as_of or 0.0)
    half_life = params.half_life_days * DAY
    cut = int(np.floor(as_of / DAY)) - params.retention_days + 1

    def frame(arrow: pa.Table) -> Any:
        found = pl.from_arrow(arrow)
        assert isinstance(found, pl.DataFrame)  # a table gives a frame (a column would give a series)
        return found

    rules = frame(rule_table(taxonomy, vocab))
    tags = frame(tag_table(vocab)).select("pos", "family")
    state = (
        frame(prepare(table, rule_keys(taxonomy)))
        .lazy()
        .filter((pl.col("ts") <= as_of) & (pl.col("day") >= cut))
        .join(rules.lazy(), on="key_id")
        .with_columns(
            score=pl.col("weight").cast(pl.Float64)
            * pl.col("rule_weight")
            * (2.0 ** ((pl.col("ts") - pl.col("day").cast(pl.Float64) * DAY) / half_life)),
            kinds=pl.col("kind_bit"),
        )
        .group_by("user", "pos", "day")
        .agg(pl.col("score").sum(), pl.col("kinds").bitwise_or())
    )
    totals = (
        state.with_columns(
            decayed=pl.col("score") * (2.0 ** (-(as_of - pl.col("day").cast(pl.Float64) * DAY) / half_life))
        )
        .group_by("user", "pos")
        .agg(total=pl.col("decayed").sum(), kinds=pl.col("kinds").bitwise_or())
        .filter(pl.col("total") > 0)
        .join(tags.lazy(), on="pos")
        .with_columns(v=-((-pl.col("total")).exp() - 1.0))
        .with_columns(
            weight=pl.col("v")
            / pl.max_horizontal(1.0, (pl.col("v") ** 2).sum().over("user", "family").sqrt())
        )
        .filter(
            pl.struct(w=-pl.col("weight"), p=pl.col("pos")).rank("ordinal").over("user") <= params.max_tags
        )
        .select("user", "pos", "weight", "kinds")
        .sort("user", "pos")
    )
    return totals.collect()


def test_polars_aggregation_from_memory(
    benchmark: BenchmarkFixture, observations: tuple[pa.Table, int]
) -> None:
    table, events = observations
    expected = _duckdb_build(table, 1)().arrays
    got = polars_profiles(table, PARAMS)
    assert np.array_equal(got["user"].to_numpy(), np.repeat(expected.keys, np.diff(expected.offsets)))
    assert np.array_equal(got["pos"].to_numpy(), expected.tags.astype(np.int64))
    np.testing.assert_allclose(got["weight"].to_numpy(), expected.weights, rtol=1e-5)
    benchmark.pedantic(polars_profiles, args=(table, PARAMS), rounds=3, iterations=1)
    _per_core(benchmark, events, 1)
