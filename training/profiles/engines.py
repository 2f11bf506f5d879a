"""The engines a profile build runs its SQL on: DuckDB in this process (the default), or Spark.

An engine is given named tables (as chunks of Arrow data), runs SQL over them and hands back Arrow tables;
the build's SQL (build.py) is the same text for every engine. DuckDB queries the Arrow data in place, no
copy. Spark reads its inputs from Parquet files the engine writes into a working directory, so that the
executors, not the driver, read the data: on a cluster that directory must be one every node sees.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from personabid.errors import PersonabidError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENGINES = ("duckdb", "spark")
SPARK_LOCAL = "local[*]"


class EngineError(PersonabidError):
    """An engine that cannot be started, or that failed to run the build."""


class Engine(Protocol):
    name: str

    def load(self, name: str, chunks: Iterable[pa.Table], schema: pa.Schema) -> None:
        """Make the chunks (all of `schema`) queryable as table `name`, replacing any of that name."""

    def query(self, sql: str) -> pa.Table:
        """The result of `sql`."""

    def keep(self, name: str, sql: str) -> pa.Table:
        """The result of `sql`, also made queryable as table `name` for later queries."""

    def close(self) -> None: ...


class DuckDBEngine:
    """DuckDB in this process, over Arrow tables in memory. `threads` None: one per core."""

    name = "duckdb"

    def __init__(self, threads: int | None = None) -> None:
        import duckdb

        config: dict[str, Any] = {"preserve_insertion_order": False}
        if threads is not None:
            config["threads"] = threads
        self._duckdb = duckdb
        self._connection = duckdb.connect(config=config)
        self._tables: dict[str, pa.Table] = {}  # registered tables must outlive their queries

    def load(self, name: str, chunks: Iterable[pa.Table], schema: pa.Schema) -> None:
        table = pa.concat_tables([schema.empty_table(), *chunks])
        self._register(name, table)

    def _register(self, name: str, table: pa.Table) -> None:
        if name in self._tables:
            self._connection.unregister(name)
        self._tables[name] = table
        self._connection.register(name, table)

    def query(self, sql: str) -> pa.Table:
        try:
            result: pa.Table = self._connection.sql(sql).to_arrow_table()
        except self._duckdb.Error as exc:
            raise EngineError(f"duckdb: {exc}") from exc
        return result

    def keep(self, name: str, sql: str) -> pa.Table:
        table = self.query(sql)
        self._register(name, table)
        return table

    def close(self) -> None:
        self._connection.close()
        self._tables.clear()


# Spark's own start-up chatter (its log4j profile, native-library and hostname warnings) says nothing a
# user of the build needs; errors still show.
LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


def spark_session(master: str = SPARK_LOCAL, config: dict[str, str] | None = None) -> SparkSession:
    """A Spark session for profile builds: UTC, no web UI, quiet logs. Returns the active session when
    there is one (under spark-submit, or made by the caller), unchanged."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise EngineError("--engine spark needs pyspark: pip install 'personabid[spark]'") from exc
    # py4j logs every connection it closes at INFO, which a command's logging shows.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    settings_dir = Path(tempfile.mkdtemp(prefix="personabid-spark-"))
    (settings_dir / "log4j2.properties").write_text(LOG4J2)
    builder = (
        SparkSession.builder.master(master)
        .appName("personabid profiles build")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config(
            "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={settings_dir}/log4j2.properties"
        )
    )
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM's errors come through py4j as several types
        raise EngineError(f"spark: cannot start a session on {master}: {exc}") from exc
    finally:
        shutil.rmtree(settings_dir, ignore_errors=True)  # read once, as the JVM started
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkEngine:
    """Spark SQL through pyspark. `session` None starts one on `master` (stopped on close); one passed in
    is left running. Inputs and kept results go to Parquet under `work_dir` (default: a temporary
    directory, removed on close)."""

    name = "spark"

    def __init__(
        self,
        session: SparkSession | None = None,
        master: str = SPARK_LOCAL,
        work_dir: Path | None = None,
    ) -> None:
        self._own_session = session is None
        self.session = session if session is not None else spark_session(master)
        self._own_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="personabid-build-")) if work_dir is None else work_dir
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.work_dir / name

    def load(self, name: str, chunks: Iterable[pa.Table], schema: pa.Schema) -> None:
        # Written chunk by chunk, so that the observations never need to fit in memory at once.
        path = self._path(name)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        with pq.ParquetWriter(path / "part-0.parquet", schema, compression="zstd") as writer:
            for chunk in chunks:
                writer.write_table(chunk)
        self._view(name, path)

    def _view(self, name: str, path: Path) -> None:
        try:
            self.session.read.parquet(str(path)).createOrReplaceTempView(name)
        except Exception as exc:
            raise EngineError(f"spark: cannot read {path}: {exc}") from exc

    def query(self, sql: str) -> pa.Table:
        try:
            frame = self.session.sql(sql)
            if hasattr(frame, "toArrow"):
                table: pa.Table = frame.toArrow()
                return table
            return pa.Table.from_pandas(frame.toPandas(), preserve_index=False)
        except Exception as exc:
            raise EngineError(f"spark: {exc}") from exc

    def keep(self, name: str, sql: str) -> pa.Table:
        # Written out and read back rather than cached: the executors keep what they computed on disk,
        # and the result for the driver comes from the same files.
        path = self._path(name)
        shutil.rmtree(path, ignore_errors=True)
        try:
            self.session.sql(sql).write.parquet(str(path))
        except Exception as exc:
            raise EngineError(f"spark: {exc}") from exc
        self._view(name, path)
        return pq.read_table(path)

    def close(self) -> None:
        if self._own_session:
            self.session.stop()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def engine(name: str, threads: int | None = None, spark_master: str | None = None) -> Engine:
    """The engine called `name` (ENGINES)."""
    if name == "duckdb":
        return DuckDBEngine(threads)
    if name == "spark":
        return SparkEngine(master=spark_master or SPARK_LOCAL)
    raise EngineError(f"unknown engine {name!r}: one of {', '.join(ENGINES)}")
