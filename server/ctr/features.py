"""Hashed CTR features: the one module that training and serving both use.

Every raw value becomes a 64-bit token that does not depend on the process or the machine (blake2b of
its text; Python's salted `hash()` would differ between processes). A feature is a field's token, or a
cross of two fields' tokens, mixed with a per-field salt and reduced to `bits` bits. The model's feature
specification (schema, fields, crosses, bits) travels in its artifact, so serving computes what training
saw.

One field has several values a row: `tags`, the user's strongest profile tags (the event log records up
to LOGGED_TAGS, strongest first; a spec uses the first `tag_slots`, padded with a "no tag" token). It
takes `tag_slots` columns, all hashed with the field's one salt, so that a tag weighs the same whatever its
rank; a cross with it, `tags x campaign` say, gives one feature per tag: the user-interest-by-campaign
affinity that a single similarity score summarises.

A schema is the set of fields one kind of log supplies. "serving" is what the decision path can compute
for an (impression, candidate campaign) pair, and what the service's own event log records; the public
log formats (iPinYou, Criteo, Avazu) have their own fields, so models trained on them can be trained and
evaluated offline but not served.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from personabid.arrays import require

# Fields that the decision path can supply for an (impression, campaign) pair. The hour (0-23) and the
# weekday (0 is Monday) are UTC, of the moment the bid was decided: the bidder does not know the user's
# time zone, and a cross with country recovers the local time of day where it matters.
KNOWN_FIELDS = (
    "campaign", "advertiser", "category", "devicetype", "os", "country", "slot", "match", "hour", "weekday",
    "tags",
)  # fmt: skip
MULTI_VALUED = "tags"
LOGGED_TAGS = 16  # the most tags an event log record carries, and so the most a spec may use
SERVING = "serving"
# The fields of each log schema. iPinYou's are the 16 of the preprocessed FM files, in their order.
SCHEMAS: dict[str, tuple[str, ...]] = {
    SERVING: KNOWN_FIELDS,
    "ipinyou": (
        "weekday", "hour", "useragent", "IP", "region", "city", "adexchange", "domain", "slotid",
        "slotwidth", "slotheight", "slotvisibility", "slotformat", "creative", "advertiser", "slotprice",
    ),
    "criteo": tuple(f"I{i}" for i in range(1, 14)) + tuple(f"C{i}" for i in range(1, 27)),
    "avazu": (
        "hour", "weekday", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
        "app_domain", "app_category", "device_id", "device_ip", "device_model", "device_type",
        "device_conn_type", *(f"C{i}" for i in range(14, 22)),
    ),
}  # fmt: skip


def token(value: str) -> int:
    """Stable 64-bit token of a string value."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")


@nb.njit(cache=True, inline="always")
def _mix(x: np.uint64) -> np.uint64:
    # splitmix64's finaliser: a cheap bijection with good avalanche, so nearby tokens spread out.
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@nb.njit(cache=True)
def _hash_indices(
    tokens: np.ndarray, salts: np.ndarray, cross_a: np.ndarray, cross_b: np.ndarray, bits: int
) -> np.ndarray:
    n, n_fields = tokens.shape
    n_cross = cross_a.shape[0]
    mask = np.uint64((1 << bits) - 1)
    out = np.empty((n, n_fields + n_cross), dtype=np.int64)
    for i in range(n):
        for f in range(n_fields):
            out[i, f] = np.int64(_mix(tokens[i, f] ^ salts[f]) & mask)
        for c in range(n_cross):
            a = cross_a[c]
            b = cross_b[c]
            left = _mix(tokens[i, a] ^ salts[a])
            out[i, n_fields + c] = np.int64(_mix(left ^ tokens[i, b] ^ salts[b]) & mask)
    return out


@nb.njit(cache=True)
def _match_tokens(scores: np.ndarray, buckets: int) -> np.ndarray:
    out = np.empty(scores.shape[0], dtype=np.uint64)
    for i in range(scores.shape[0]):
        bucket = int(np.floor((scores[i] + 1.0) * 0.5 * buckets))
        bucket = min(max(bucket, 0), buckets - 1)
        out[i] = _mix(np.uint64(bucket + 0x9E3779B9))
    return out


def match_tokens(scores: np.ndarray, buckets: int) -> np.ndarray:
    """uint64 tokens of similarity scores (float32 (n,) in [-1, 1]), bucketed into `buckets` equal bins."""
    return _match_tokens(np.ascontiguousarray(scores, dtype=np.float32), buckets)


def slot_name(w: int, h: int) -> str:
    return f"{w}x{h}"


NO_TAG = token("tag:")  # pads a user with fewer tags than tag_slots

# Request values repeat endlessly (a few device types, countries, sizes): cache their tokens.
_cached_token = functools.lru_cache(maxsize=1 << 16)(token)


def request_tokens(devicetype: int, os: str, country: str) -> dict[str, int]:
    """Tokens of the request-level fields, as training and serving both compute them."""
    return {
        "devicetype": _cached_token(f"devicetype:{devicetype}"),
        "os": _cached_token(os.lower()),
        "country": _cached_token(country.upper()),
    }


_HOUR_TOKENS = np.array([token(f"hour:{h}") for h in range(24)], dtype=np.uint64)
_WEEKDAY_TOKENS = np.array([token(f"weekday:{d}") for d in range(7)], dtype=np.uint64)


def _hour_and_weekday(seconds: Any) -> tuple[Any, Any]:
    """UTC hour (0-23) and weekday (0 is Monday) of whole unix seconds, an int or an int64 array."""
    return seconds // 3600 % 24, (seconds // 86_400 + 3) % 7  # 1970-01-01 was a Thursday


def time_tokens(ts: float) -> dict[str, int]:
    """Tokens of the UTC hour and weekday of unix time `ts`, as training and serving both compute them."""
    hour, weekday = _hour_and_weekday(int(ts))
    return {"hour": int(_HOUR_TOKENS[hour]), "weekday": int(_WEEKDAY_TOKENS[weekday])}


def time_token_arrays(ts: np.ndarray) -> dict[str, np.ndarray]:
    """`time_tokens` of every row of a unix-seconds array."""
    hour, weekday = _hour_and_weekday(np.floor(ts).astype(np.int64))
    return {"hour": _HOUR_TOKENS[hour], "weekday": _WEEKDAY_TOKENS[weekday]}


def slot_token(w: int, h: int) -> int:
    return _cached_token(slot_name(w, h))


def tag_token(name: str) -> int:
    return _cached_token(f"tag:{name}")


def tag_token_rows(rows: Sequence[Sequence[str]], width: int = LOGGED_TAGS) -> np.ndarray:
    """uint64 (len(rows), width): the tokens of each row's tags, in order, padded with NO_TAG."""
    out = np.full((len(rows), width), NO_TAG, dtype=np.uint64)
    for i, names in enumerate(rows):
        for j, name in enumerate(names[:width]):
            out[i, j] = tag_token(name)
    return out


@dataclass(frozen=True)
class FeatureSpec:
    fields: tuple[str, ...]
    crosses: tuple[tuple[str, str], ...]
    bits: int
    # Similarity is continuous and the strongest signal of a click; 40 bins are 0.05 wide, 100 are 0.02.
    match_buckets: int = 40
    schema: str = SERVING
    tag_slots: int = 8  # columns of the multi-valued `tags` field, when the spec has it

    def __post_init__(self) -> None:
        if self.schema not in SCHEMAS:
            raise ValueError(f"feature spec: unknown schema {self.schema!r}; known: {sorted(SCHEMAS)}")
        known = SCHEMAS[self.schema]
        unknown = [f for f in self.fields if f not in known]
        if unknown:
            raise ValueError(f"feature spec: unknown {self.schema} fields {unknown}; known: {known}")
        if not self.fields or len(set(self.fields)) != len(self.fields):
            raise ValueError(f"feature spec: fields {self.fields} must be distinct and at least one")
        for a, b in self.crosses:
            if a not in self.fields or b not in self.fields:
                raise ValueError(f"feature spec: cross ({a}, {b}) uses a field not in {self.fields}")
        if not 8 <= self.bits <= 30:
            raise ValueError(f"feature spec: bits={self.bits} outside [8, 30]")
        if not 2 <= self.match_buckets <= 1000:
            raise ValueError(f"feature spec: match_buckets={self.match_buckets} outside [2, 1000]")
        if not 1 <= self.tag_slots <= LOGGED_TAGS:
            raise ValueError(f"feature spec: tag_slots={self.tag_slots} outside [1, {LOGGED_TAGS}]")
        # Token columns: one per field, tag_slots for the multi-valued one; a cross pairs every column of
        # its first field with every column of its second.
        columns = {f: self._columns_of(f) for f in self.fields}
        order = [f for f in self.fields for _ in columns[f]]
        pairs = [(i, j) for a, b in self.crosses for i in columns[a] for j in columns[b]]
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_salts", np.array([token(f"field:{f}") for f in order], dtype=np.uint64))
        object.__setattr__(self, "_cross_a", np.array([i for i, _ in pairs], dtype=np.int64))
        object.__setattr__(self, "_cross_b", np.array([j for _, j in pairs], dtype=np.int64))

    def _columns_of(self, name: str) -> range:
        start = sum(
            self.tag_slots if f == MULTI_VALUED else 1 for f in self.fields[: self.fields.index(name)]
        )
        return range(start, start + (self.tag_slots if name == MULTI_VALUED else 1))

    @property
    def width(self) -> int:
        """Features per row: one per token column, one per pair of columns that a cross makes."""
        return len(self._salts) + len(self._cross_a)  # type: ignore[attr-defined]

    @property
    def size(self) -> int:
        """Number of hash buckets."""
        return 1 << self.bits

    @property
    def servable(self) -> bool:
        """Whether the decision path can compute these features."""
        return self.schema == SERVING

    def token_matrix(self, sources: Mapping[str, np.ndarray | int], n: int) -> np.ndarray:
        """uint64 (n, columns): for every field, a per-row array or one token for all rows; for `tags`, an
        (n, k) array or a (k,) row for all rows, k >= tag_slots, strongest first."""
        missing = [name for name in self.fields if name not in sources]
        if missing:
            raise ValueError(f"feature spec needs fields {missing}, which the rows do not supply")
        tokens = np.empty((n, len(self._salts)), dtype=np.uint64)  # type: ignore[attr-defined]
        for name, columns in self._columns.items():  # type: ignore[attr-defined]
            source = sources[name]
            if name == MULTI_VALUED:
                tokens[:, columns.start : columns.stop] = np.asarray(source)[..., : self.tag_slots]
            else:
                tokens[:, columns.start] = source
        return tokens

    def indices(self, tokens: np.ndarray) -> np.ndarray:
        """int64 (n, width) feature indices in [0, size) for a uint64 (n, columns) token matrix."""
        require("tokens", tokens, np.uint64, 2, width=len(self._salts))  # type: ignore[attr-defined]
        return _hash_indices(tokens, self._salts, self._cross_a, self._cross_b, self.bits)  # type: ignore[attr-defined]

    def to_json(self) -> dict[str, Any]:
        return {
            "fields": list(self.fields),
            "crosses": [list(c) for c in self.crosses],
            "bits": self.bits,
            "match_buckets": self.match_buckets,
            "schema": self.schema,
            "tag_slots": self.tag_slots,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            fields=tuple(data["fields"]),
            crosses=tuple((str(a), str(b)) for a, b in data["crosses"]),
            bits=int(data["bits"]),
            match_buckets=int(data["match_buckets"]),
            # Artifacts written before schemas existed are serving models.
            schema=str(data.get("schema", SERVING)),
            tag_slots=int(data.get("tag_slots", 8)),
        )


# The serving default, chosen on the demo world's held-out impressions: per-campaign crosses only add noise
# at a few clicks per campaign, while similarity, the strongest signal, is worth 0.02-wide bins. Hour and
# weekday are left to a specification that asks for them (`--spec`): the demo world's clicks do not
# depend on the time, so there they would only be noise.
DEFAULT_SPEC = FeatureSpec(
    fields=("campaign", "advertiser", "category", "devicetype", "os", "country", "slot", "match"),
    crosses=(("devicetype", "slot"),),
    bits=20,
    match_buckets=100,
)


def default_spec(schema: str) -> FeatureSpec:
    """The default specification over a schema's fields: DEFAULT_SPEC for serving; every field, one-hot,
    for the public log formats (crosses are theirs to add)."""
    if schema == SERVING:
        return DEFAULT_SPEC
    if schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}; known: {sorted(SCHEMAS)}")
    return FeatureSpec(fields=SCHEMAS[schema], crosses=(), bits=20, schema=schema)
