"""The profile build on Spark (local mode) gives DuckDB's output: the same SQL on both engines, over the
same observations, and the same incremental fold."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import numpy as np
import pytest

from personabid.training.profiles.build import DAY, BuildParams, BuildResult, build
from personabid.training.profiles.engines import DuckDBEngine, SparkEngine, spark_session
from tests.test_profile_build import AS_OF, assert_same, assert_same_state, previous_of, table, two_days

pyspark = pytest.importorskip("pyspark", reason="pyspark runs the distributed engine (pip install .[spark])")
pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime")


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkEngine]:
    # One session for the module: starting the JVM costs seconds, a build on a warm one much less.
    session = spark_session(
        "local[2]", {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"}
    )
    engine = SparkEngine(session)
    yield engine
    engine.close()
    session.stop()


def test_spark_and_duckdb_build_the_same_profiles(spark: SparkEngine, rng: np.random.Generator) -> None:
    first, second = two_days(rng, users=60, per_day=400)
    rows = [
        *first,
        *second,
        (123, AS_OF + 5, 0, "cat:IAB2", 1.0),
        (124, AS_OF - 30 * DAY, 0, "cat:IAB2", 1.0),
    ]
    params = BuildParams(half_life_days=3.0, as_of=AS_OF, retention_days=20, max_tags=6)
    suppressed = [rows[0][0]]
    on_duckdb = build([table(rows)], params, engine=DuckDBEngine(threads=1), suppressed=suppressed)
    on_spark = build([table(rows)], params, engine=spark, suppressed=suppressed)
    assert on_spark.engine == "spark" and on_duckdb.engine == "duckdb"
    assert_same(on_spark, on_duckdb)
    assert_same_state(on_spark.state, on_duckdb.state)
    assert on_spark.report["skipped"] == on_duckdb.report["skipped"]
    assert on_spark.report["skipped"]["suppressed"] > 0


def test_folding_a_day_on_spark_equals_a_rebuild_on_either_engine(
    spark: SparkEngine, rng: np.random.Generator
) -> None:
    first, second = two_days(rng)
    params = BuildParams(half_life_days=7.0, as_of=AS_OF)
    yesterday: BuildResult = build(
        [table(first)], BuildParams(half_life_days=7.0, as_of=max(r[1] for r in first)), engine=spark
    )
    folded = build([table(second)], params, engine=spark, previous=previous_of(yesterday))
    assert_same(folded, build([table(first + second)], params, engine=spark))
    assert_same(folded, build([table(first + second)], params))
