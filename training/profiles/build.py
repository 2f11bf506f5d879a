"""The profile build: observations (a user's signal keys over time) to every user's tag profile.

Each observation (user, day, ts, kind, key, weight) maps through the taxonomy's rules onto tags. A tag's
strength decays with the age of what gave it, halving every `half_life_days`:

    day score (user, tag, day) = sum of weight * rule weight * 2 ** ((ts - day start) / half-life)
    S (user, tag)              = sum over kept days of day score * 2 ** (-(as_of - day start) / half-life)
    v                          = 1 - exp(-S)               (saturates: frequency helps, then stops helping)

then, per user and tag family (`interest`, `age`, ...), a family whose v has an L2 norm above 1 is divided
by it, so that one busy family cannot drown the others; a user keeps the `max_tags` heaviest tags.

The day scores are the *state*. Each is measured from the start of its own day, so the decay to any
as_of is one factor per day applied at the end: folding new events into a previous build's state and
finishing at a later as_of gives exactly what a rebuild from every event would (`previous` below).

The work is one group-by over the observations, written once in SQL (STATE_SQL, FINISH_SQL, COUNTS_SQL)
that DuckDB and Spark SQL both run unchanged (engines.py): Spark has no `<<`, so the kind bit is a
prepared column; identifiers are never quoted (the engines quote differently); every literal is a
DOUBLE or an integer, never a decimal (the engines type `1.5` differently). Small prepared tables carry
the taxonomy (`rules`, `tags`), the suppressed users and the previous state.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from personabid.artifact import read_manifest, resolve
from personabid.errors import PersonabidError
from personabid.index.vocab import Vocabulary
from personabid.profiles.artifact import FORMAT_VERSION, KIND, ProfileArrays, write_profiles
from personabid.profiles.suppression import entries
from personabid.profiles.taxonomy import Taxonomy, standard
from personabid.training.profiles.engines import DuckDBEngine, Engine
from personabid.training.profiles.events import OBSERVATION_SCHEMA

DAY = 86_400.0
DEFAULT_HALF_LIFE_DAYS = 30.0
DEFAULT_RETENTION_DAYS = 395  # 13 months: a year of seasonality and a month of slack
DEFAULT_MAX_TAGS = 64

# The reader's observations, one signal of one event each (training/profiles/events.py).
OBSERVATIONS = OBSERVATION_SCHEMA
# What the engines see: the observations with the kind's bit (1 << kind) beside the kind.
# Prepared for the engines: the kind as a bit of the kinds mask (Spark has no `<<`), and the signal key
# by number in the rules' keys (null for a key no rule knows): joining on an integer is several times
# cheaper than on text.
PREPARED = OBSERVATIONS.append(pa.field("kind_bit", pa.int32())).append(pa.field("key_id", pa.int32()))
STATE = pa.schema(
    [
        ("user", pa.int64()),
        ("tag", pa.string()),
        ("day", pa.int32()),
        ("score", pa.float64()),
        ("kinds", pa.int32()),
    ]
)
RULES = pa.schema([("key_id", pa.int32()), ("pos", pa.int32()), ("rule_weight", pa.float64())])
# The state as the engines hold it: tags by position in the vocabulary.
KEPT_STATE = pa.schema(
    [
        ("user", pa.int64()),
        ("pos", pa.int32()),
        ("day", pa.int32()),
        ("score", pa.float64()),
        ("kinds", pa.int32()),
    ]
)
# family: the tag's family (the name's prefix before ':') by number: grouping on it is cheaper than on text.
TAGS = pa.schema([("tag", pa.string()), ("family", pa.int32()), ("pos", pa.int32())])
SUPPRESSED = pa.schema([("user", pa.int64())])
SERIES_BELOW = 1e-4  # S - S^2 / 2 is 1 - exp(-S) to 2e-9 (relative) below this
MAX_KIND = 15  # kinds are stored as a uint16 bit mask

# Observations kept: at or before as_of, on a day within retention, of a user not suppressed. Each maps
# through the rules onto tags (by position: grouping on an integer is several times faster than on the
# tag's name). The previous state (less suppressed users, expired days and tags the vocabulary no longer
# has) joins the same aggregation as more contributions, so a build without one aggregates once.
STATE_SQL = """
WITH kept AS (
    SELECT o.user, o.day, o.ts, o.kind_bit, o.key_id, o.weight
    FROM observations o
    WHERE o.ts <= {as_of} AND o.day >= {cut_day}
      AND NOT EXISTS (SELECT 1 FROM suppressed s WHERE s.user = o.user)
),
contributions AS (
    SELECT k.user AS user, r.pos AS pos, k.day AS day,
           k.weight * r.rule_weight
               * power({two}, (k.ts - CAST(k.day AS DOUBLE) * {day_seconds}) / {half_life_seconds}) AS score,
           k.kind_bit AS kinds
    FROM kept k JOIN rules r ON k.key_id = r.key_id
    UNION ALL
    SELECT p.user AS user, g.pos AS pos, p.day AS day, p.score AS score, p.kinds AS kinds
    FROM prior p JOIN tags g ON p.tag = g.tag
    WHERE p.day >= {cut_day}
      AND NOT EXISTS (SELECT 1 FROM suppressed s WHERE s.user = p.user)
)
SELECT CAST(user AS BIGINT) AS user, CAST(pos AS INTEGER) AS pos, CAST(day AS INTEGER) AS day,
       CAST(sum(score) AS DOUBLE) AS score, CAST(bit_or(kinds) AS INTEGER) AS kinds
FROM contributions
GROUP BY user, pos, day
"""

# The state decayed to as_of, saturated (1 - exp(-S); for a small S, its series: 1 - exp(-S) rounds a
# signal of 1e-17 to nothing, and neither engine has expm1), capped per family, cut to the max_tags
# heaviest per user. The family norms are a group-by joined back (half the time of a window partitioned
# by user and family); only users with more than max_tags tags are ranked (most have fewer, and the sort
# is the dear part).
FINISH_SQL = """
WITH totals AS (
    SELECT s.user AS user, s.pos AS pos,
           sum(s.score * power({two}, -({as_of} - CAST(s.day AS DOUBLE) * {day_seconds})
                                      / {half_life_seconds})) AS total,
           bit_or(s.kinds) AS kinds
    FROM state s
    GROUP BY s.user, s.pos
),
saturated AS (
    SELECT t.user AS user, t.pos AS pos, g.family AS family,
           CASE WHEN t.total < {series_below} THEN t.total * ({one} - t.total / {two})
                ELSE {one} - exp(-t.total) END AS v,
           t.kinds AS kinds
    FROM totals t JOIN tags g ON t.pos = g.pos
    WHERE t.total > {zero}
),
families AS (
    SELECT user, family, greatest({one}, sqrt(sum(v * v))) AS norm, count(*) AS tags
    FROM saturated
    GROUP BY user, family
),
sizes AS (
    SELECT user, sum(tags) AS tags FROM families GROUP BY user
),
capped AS (
    SELECT a.user AS user, a.pos AS pos, a.v / f.norm AS weight, a.kinds AS kinds
    FROM saturated a
    JOIN families f ON a.user = f.user AND a.family = f.family
),
crowded AS (
    SELECT user FROM sizes WHERE tags > {max_tags}
),
kept AS (
    SELECT c.user AS user, c.pos AS pos, c.weight AS weight, c.kinds AS kinds
    FROM capped c
    WHERE NOT EXISTS (SELECT 1 FROM crowded x WHERE x.user = c.user)
    UNION ALL
    SELECT user, pos, weight, kinds FROM (
        SELECT c.user AS user, c.pos AS pos, c.weight AS weight, c.kinds AS kinds,
               ROW_NUMBER() OVER (PARTITION BY c.user ORDER BY c.weight DESC, c.pos) AS place
        FROM capped c
        WHERE EXISTS (SELECT 1 FROM crowded x WHERE x.user = c.user)
    ) ranked
    WHERE place <= {max_tags}
)
SELECT CAST(user AS BIGINT) AS user, CAST(pos AS INTEGER) AS pos, CAST(weight AS DOUBLE) AS weight,
       CAST(kinds AS INTEGER) AS kinds
FROM kept
WHERE weight > {zero}
"""

# Why observations were not used, each counted once, in this order of precedence.
COUNTS_SQL = """
SELECT
    count(*) AS observations,
    sum(CASE WHEN o.ts > {as_of} THEN 1 ELSE 0 END) AS after_as_of,
    sum(CASE WHEN o.ts <= {as_of} AND o.day < {cut_day} THEN 1 ELSE 0 END) AS beyond_retention,
    sum(CASE WHEN o.ts <= {as_of} AND o.day >= {cut_day} AND s.user IS NOT NULL THEN 1 ELSE 0 END)
        AS suppressed,
    sum(CASE WHEN o.ts <= {as_of} AND o.day >= {cut_day} AND s.user IS NULL AND o.key_id IS NULL
        THEN 1 ELSE 0 END) AS untagged,
    sum(CASE WHEN o.ts <= {previous_as_of} THEN 1 ELSE 0 END) AS not_after_previous
FROM observations o
LEFT JOIN suppressed s ON o.user = s.user
"""
SKIPS = ("after_as_of", "beyond_retention", "suppressed", "untagged")


class EventSummary(Protocol):
    def summary(self) -> Mapping[str, Any]: ...


class ProfileBuildError(PersonabidError):
    """A profile build that cannot run as asked: bad parameters, inputs or previous version."""


@dataclass(frozen=True)
class BuildParams:
    """A build's parameters. `as_of` (unix seconds) None means the latest observation's time."""

    half_life_days: float = DEFAULT_HALF_LIFE_DAYS
    as_of: float | None = None
    retention_days: int = DEFAULT_RETENTION_DAYS
    max_tags: int = DEFAULT_MAX_TAGS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.half_life_days) and self.half_life_days > 0):
            raise ProfileBuildError(f"half_life_days must be a positive number, not {self.half_life_days}")
        if self.retention_days < 1:
            raise ProfileBuildError(f"retention_days must be at least 1, not {self.retention_days}")
        if not 1 <= self.max_tags <= 65_535:
            raise ProfileBuildError(f"max_tags must be in 1..65535, not {self.max_tags}")
        if self.as_of is not None and not math.isfinite(self.as_of):
            raise ProfileBuildError(f"as_of must be a finite time, not {self.as_of}")

    def cut_day(self, as_of: float) -> int:
        """The oldest day kept: the last `retention_days` days, as_of's own included."""
        return math.floor(as_of / DAY) - self.retention_days + 1


@dataclass(frozen=True)
class Previous:
    """A previous build, for --since: its state and the parameters that state depends on."""

    version: str
    half_life_days: float
    as_of: float
    key_check: str
    state: pa.Table

    @classmethod
    def load(cls, path: Path) -> Previous:
        """The version `path` names (a version directory, or a root's CURRENT), checksums verified."""
        directory = resolve(path)
        manifest = read_manifest(directory, KIND, (FORMAT_VERSION,))
        if "state.parquet" not in manifest.get("files", {}):
            raise ProfileBuildError(f"{directory}: no state.parquet to build on")
        try:
            state = pq.read_table(directory / "state.parquet").select(STATE.names).cast(STATE)
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise ProfileBuildError(f"{directory / 'state.parquet'}: unreadable state: {exc}") from exc
        try:
            return cls(
                version=str(manifest["version"]),
                half_life_days=float(manifest["half_life_days"]),
                as_of=float(manifest["as_of_unix"]),
                key_check=str(manifest.get("key_check", "")),
                state=state,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileBuildError(f"{directory}: the manifest lacks the build's parameters: {exc}") from exc

    def check_key(self, key_check: str) -> None:
        """Refuse a previous build made under another pseudonymisation key: its users would never meet
        this build's, and the merged profiles would hold everyone twice."""
        if self.key_check != key_check:
            raise ProfileBuildError(
                f"--since {self.version} was built with another pseudonymisation key "
                f"(key_check {self.key_check!r}, this key's is {key_check!r})"
            )


@dataclass(frozen=True)
class BuildResult:
    arrays: ProfileArrays
    state: pa.Table  # STATE schema: what the next incremental build folds into
    params: BuildParams  # as given, with as_of resolved
    engine: str
    since: str | None  # the previous version folded in
    report: dict[str, Any]


def read_suppression(path: Path) -> np.ndarray:
    """The user keys of a suppression list: one pseudonym per line, `#` starts a comment. A line that is
    not a pseudonym fails the build: a list that is half read would profile people who asked not to be."""
    keys = []
    for number, key, _ in entries(path.read_bytes()):
        if key is None:
            # The line is not echoed: what is not a pseudonym may be a raw id.
            raise ProfileBuildError(f"{path}:{number}: not a pseudonym (16 to 64 hexadecimal digits)")
        keys.append(key)
    return np.unique(np.asarray(keys, dtype=np.int64))


def rule_keys(taxonomy: Taxonomy) -> pa.Array:
    """Every signal key a rule knows, sorted: a key's number (key_id) is its place here."""
    return pa.array(sorted({key for key, _, _ in taxonomy.rule_rows()}), pa.string())


def rule_table(taxonomy: Taxonomy, vocab: Vocabulary) -> pa.Table:
    rows = taxonomy.rule_rows()
    keys = pc.index_in(pa.array([key for key, _, _ in rows], pa.string()), value_set=rule_keys(taxonomy))
    return pa.table(
        [
            keys.cast(pa.int32()),
            pa.array([vocab.position(tag) for _, tag, _ in rows], pa.int32()),
            pa.array([weight for _, _, weight in rows], pa.float64()),
        ],
        schema=RULES,
    )


def tag_table(vocab: Vocabulary) -> pa.Table:
    names = sorted({tag.split(":", 1)[0] for tag in vocab.tags})
    families = [names.index(tag.split(":", 1)[0]) for tag in vocab.tags]
    return pa.table([pa.array(vocab.tags, pa.string()), pa.array(families, pa.int32()),
                     pa.array(np.arange(vocab.dims, dtype=np.int32))], schema=TAGS)  # fmt: skip


def sql_double(value: float) -> str:
    """A DOUBLE literal both engines read as one (a plain `2.5` is a DECIMAL to each)."""
    return format(float(value), ".17e")


def queries(params: BuildParams, as_of: float, previous_as_of: float) -> dict[str, str]:
    """The build's SQL with its parameters in place: the same text for every engine."""
    values = {
        "as_of": sql_double(as_of),
        "previous_as_of": sql_double(previous_as_of),
        "cut_day": str(params.cut_day(as_of)),
        "half_life_seconds": sql_double(params.half_life_days * DAY),
        "day_seconds": sql_double(DAY),
        "max_tags": str(params.max_tags),
        "two": sql_double(2.0),
        "one": sql_double(1.0),
        "zero": sql_double(0.0),
        "series_below": sql_double(SERIES_BELOW),
    }
    return {name: text.format(**values) for name, text in
            (("counts", COUNTS_SQL), ("state", STATE_SQL), ("finish", FINISH_SQL))}  # fmt: skip


class _Prepared:
    """Observations on their way into an engine: checked, given their kind bit, counted, and the latest
    time noted (the default as_of), in one pass over chunks the engine may stream to disk."""

    def __init__(self, chunks: Iterable[pa.Table], keys: pa.Array) -> None:
        self._chunks = chunks
        self._keys = keys
        self.rows = 0
        self.latest: float | None = None

    def __iter__(self) -> Iterator[pa.Table]:
        for chunk in self._chunks:
            table = prepare(chunk, self._keys)
            if table.num_rows == 0:
                continue
            self.rows += table.num_rows
            latest = pc.max(table["ts"]).as_py()
            if latest is not None and (self.latest is None or latest > self.latest):
                self.latest = latest
            yield table


def prepare(chunk: pa.Table, keys: pa.Array) -> pa.Table:
    """A chunk of observations in the PREPARED schema; refuses one that is not observations."""
    missing = [name for name in OBSERVATIONS.names if name not in chunk.column_names]
    if missing:
        raise ProfileBuildError(f"observations lack the columns {missing}")
    try:
        table = chunk.select(OBSERVATIONS.names).cast(OBSERVATIONS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ProfileBuildError(f"observations of the wrong types: {exc}") from exc
    if table.num_rows:
        kinds = pc.min_max(table["kind"]).as_py()
        if kinds["min"] is None or kinds["min"] < 0 or kinds["max"] > MAX_KIND:
            raise ProfileBuildError(f"observation kinds must be in 0..{MAX_KIND}, found {kinds}")
    bits = pc.shift_left(pa.scalar(1, pa.int32()), pc.cast(table["kind"], pa.int32()))
    key_ids = pc.index_in(table["key"], value_set=keys).cast(pa.int32())
    return table.append_column("kind_bit", bits).append_column("key_id", key_ids)


def build(
    observations: Iterable[pa.Table],
    params: BuildParams = BuildParams(),
    *,
    engine: Engine | None = None,
    taxonomy: Taxonomy | None = None,
    suppressed: np.ndarray | Sequence[int] = (),
    previous: Previous | None = None,
    events: EventSummary | None = None,
) -> BuildResult:
    """Build every user's profile from `observations` (chunks in the OBSERVATIONS schema), folded into
    `previous`'s state when given. `engine` defaults to an in-process DuckDB (closed after); an engine
    passed in is left open. `events` is the reader's report (personabid.training.profiles.events), read
    once the observations are consumed and carried into this build's report."""
    started = time.perf_counter()
    taxonomy = taxonomy or standard()
    vocab = taxonomy.vocabulary()
    if previous is not None and previous.half_life_days != params.half_life_days:
        raise ProfileBuildError(
            f"--since {previous.version} was built with half_life_days {previous.half_life_days:g}; this "
            f"build has {params.half_life_days:g}: its state decays differently, rebuild from the events"
        )
    own = engine is None
    engine = engine or DuckDBEngine()
    try:
        prepared = _Prepared(observations, rule_keys(taxonomy))
        engine.load("observations", prepared, PREPARED)
        as_of = _as_of(params, prepared.latest, previous)
        params = dataclasses.replace(params, as_of=as_of)
        users = np.unique(np.asarray(suppressed, dtype=np.int64))
        rules = rule_table(taxonomy, vocab)
        engine.load("rules", [rules], RULES)
        engine.load("tags", [tag_table(vocab)], TAGS)
        engine.load("suppressed", [pa.table({"user": users}, schema=SUPPRESSED)], SUPPRESSED)
        engine.load("prior", [previous.state if previous else STATE.empty_table()], STATE)
        # Without a previous build no observation is "already counted": a time before any event.
        sql = queries(params, as_of, previous.as_of if previous else -1e300)
        counts = engine.query(sql["counts"]).to_pylist()[0]
        kept = engine.keep("state", sql["state"])
        final = engine.query(sql["finish"])
    finally:
        if own:
            engine.close()
    arrays = to_arrays(final)
    state = named_state(kept, vocab)
    read = dict(events.summary()) if events is not None else {}
    report = summary(arrays, vocab, counts, prepared.rows, state.num_rows, read, previous)
    seconds = time.perf_counter() - started
    report["seconds"] = round(seconds, 3)
    report["observations_per_second"] = round(prepared.rows / seconds) if seconds > 0 else 0
    if "events" in read and seconds > 0:
        report["events_per_second"] = round(int(read["events"]) / seconds)
    return BuildResult(arrays, state, params, engine.name, previous.version if previous else None, report)


def _as_of(params: BuildParams, latest: float | None, previous: Previous | None) -> float:
    if params.as_of is not None:
        as_of = float(params.as_of)
    elif latest is not None:
        as_of = latest
    elif previous is not None:
        as_of = previous.as_of
    else:
        raise ProfileBuildError("no observations, so no as_of: give one, or events")
    if previous is not None and as_of < previous.as_of:
        raise ProfileBuildError(
            f"as_of {iso(as_of)} is before --since {previous.version}'s as_of {iso(previous.as_of)}: its "
            "state holds events up to then, which a build at an earlier time cannot take back"
        )
    return as_of


def named_state(kept: pa.Table, vocab: Vocabulary) -> pa.Table:
    """The engine's state (tags by position) as the artifact keeps it: tags by name, so that a later
    build over another vocabulary still reads it."""
    names = pa.array(vocab.tags, pa.string())
    columns = kept.select(KEPT_STATE.names).cast(KEPT_STATE)
    return pa.table(
        [columns["user"], pc.take(names, columns["pos"]), columns["day"], columns["score"], columns["kinds"]],
        schema=STATE,
    )


def to_arrays(final: pa.Table) -> ProfileArrays:
    """The finished rows (user, pos, weight, kinds) as compressed sparse rows, users ascending."""
    # A weight too small for float32 says nothing, and the artifact's weights are in (0, 1].
    final = final.filter(pc.greater(pc.cast(final["weight"], pa.float32()), 0))
    users = final["user"].to_numpy().astype(np.int64, copy=False)
    tags = final["pos"].to_numpy().astype(np.int64, copy=False)
    weights = final["weight"].to_numpy().astype(np.float32)
    kinds = final["kinds"].to_numpy().astype(np.uint16)
    # Engines return the rows in any order (sorting here is cheaper than an ORDER BY in the SQL).
    if len(users) > 1 and not _ordered(users, tags):
        # One int64 sort key, (user's rank, tag), unique per row: a third of the time of a lexsort.
        _, rank = np.unique(users, return_inverse=True)
        order = np.argsort(rank.astype(np.int64) << 16 | tags)
        users, tags, weights, kinds = users[order], tags[order], weights[order], kinds[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.zeros(0, np.int64)
    return ProfileArrays(
        keys=users[starts].astype(np.int64),
        offsets=np.r_[starts, len(users)].astype(np.int64),
        tags=tags.astype(np.uint16),
        weights=weights,
        kinds=kinds,
    )


def _ordered(users: np.ndarray, tags: np.ndarray) -> bool:
    same = users[1:] == users[:-1]
    return bool(np.all(users[1:] >= users[:-1]) and np.all(tags[1:][same] > tags[:-1][same]))


def summary(
    arrays: ProfileArrays,
    vocab: Vocabulary,
    counts: Mapping[str, Any],
    observations: int,
    state_rows: int,
    events: Mapping[str, Any],
    previous: Previous | None,
) -> dict[str, Any]:
    per_user = np.diff(arrays.offsets)
    family_names = sorted(vocab.families())
    family_of_tag = np.zeros(vocab.dims, dtype=np.int64)
    for i, name in enumerate(family_names):
        family_of_tag[vocab.families()[name]] = i
    held = np.zeros((arrays.users, len(family_names)), dtype=bool)
    held[np.repeat(np.arange(arrays.users), per_user), family_of_tag[arrays.tags]] = True
    coverage = held.mean(axis=0) if arrays.users else np.zeros(len(family_names))
    skipped: dict[str, int] = {"bad_rows": int(events.get("bad_rows", 0))}
    skipped.update({name: int(counts.get(name) or 0) for name in SKIPS})
    # The reader drops the keys no rule knows as it reads; observations given directly may hold some.
    skipped["untagged"] += int(events.get("signals_with_no_tag", 0))
    report: dict[str, Any] = {
        "users": arrays.users,
        "entries": len(arrays.tags),
        "tags_per_user": {
            "mean": round(float(per_user.mean()), 3) if arrays.users else 0.0,
            "p50": float(np.percentile(per_user, 50)) if arrays.users else 0.0,
            "p90": float(np.percentile(per_user, 90)) if arrays.users else 0.0,
            "max": int(per_user.max()) if arrays.users else 0,
        },
        "coverage": {
            name: round(float(share), 4) for name, share in zip(family_names, coverage, strict=True)
        },
        "events": dict(events),
        "observations": observations,
        "skipped": skipped,
        "state_rows": state_rows,
    }
    if previous is not None:
        report["previous"] = {
            "version": previous.version,
            "state_rows": previous.state.num_rows,
            # New observations no later than the previous build's as_of: it may have counted them already.
            "observations_not_after_it": int(counts.get("not_after_previous") or 0),
        }
    return report


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def manifest_fields(result: BuildResult, key_check: str) -> dict[str, Any]:
    as_of = float(result.params.as_of or 0.0)
    return {
        "half_life_days": result.params.half_life_days,
        "as_of": iso(as_of),
        "as_of_unix": as_of,
        "retention_days": result.params.retention_days,
        "max_tags": result.params.max_tags,
        "key_check": key_check,
        "engine": result.engine,
        "since": result.since,
        "report": result.report,
    }


def write(root: Path, result: BuildResult, key_check: str, taxonomy: Taxonomy | None = None) -> Path:
    """Write `result` as a new version of the profile artifact under `root` (made CURRENT)."""
    vocab = (taxonomy or standard()).vocabulary()
    state = result.state

    def save_state(path: Path) -> None:
        pq.write_table(state, path, compression="zstd")

    return write_profiles(root, result.arrays, vocab, manifest_fields(result, key_check), state=save_state)
