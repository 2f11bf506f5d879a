"""Feature hashing: stable across processes, equal to a plain-Python reference, within its range."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest

from personabid.ctr.features import (
    DEFAULT_SPEC,
    NO_TAG,
    FeatureSpec,
    match_tokens,
    tag_token,
    tag_token_rows,
    time_token_arrays,
    time_tokens,
    token,
)

MASK64 = (1 << 64) - 1


def ref_mix(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def ref_indices(spec: FeatureSpec, tokens: list[list[int]]) -> list[list[int]]:
    """Each field's columns (tag_slots of them for `tags`), hashed with the field's salt; then for each
    cross, every column of its first field with every column of its second."""
    columns = [f for f in spec.fields for _ in range(spec.tag_slots if f == "tags" else 1)]
    salts = [
        int.from_bytes(hashlib.blake2b(f"field:{f}".encode(), digest_size=8).digest(), "little")
        for f in columns
    ]
    mask = (1 << spec.bits) - 1
    out = []
    for row in tokens:
        features = [ref_mix(t ^ s) & mask for t, s in zip(row, salts, strict=True)]
        for a, b in spec.crosses:
            for i in (k for k, f in enumerate(columns) if f == a):
                for j in (k for k, f in enumerate(columns) if f == b):
                    features.append(ref_mix(ref_mix(row[i] ^ salts[i]) ^ row[j] ^ salts[j]) & mask)
        out.append(features)
    return out


TAGGED = FeatureSpec(
    fields=("campaign", "tags", "country"),
    crosses=(("tags", "campaign"), ("country", "campaign")),
    bits=18,
    tag_slots=3,
)


def test_indices_equal_the_reference() -> None:
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 1 << 63, size=(50, len(DEFAULT_SPEC.fields)), dtype=np.uint64)
    got = DEFAULT_SPEC.indices(tokens)
    assert got.tolist() == ref_indices(DEFAULT_SPEC, [[int(t) for t in row] for row in tokens])


def test_indices_of_a_spec_with_user_tags_equal_the_reference() -> None:
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 1 << 63, size=(50, 5), dtype=np.uint64)
    got = TAGGED.indices(tokens)
    assert got.shape == (50, TAGGED.width) and TAGGED.width == 5 + 3 + 1
    assert got.tolist() == ref_indices(TAGGED, [[int(t) for t in row] for row in tokens])


def test_a_tag_hashes_the_same_at_any_rank() -> None:
    sources: dict[str, np.ndarray | int] = {"campaign": token("cmp-1"), "country": token("USA")}
    first = TAGGED.indices(TAGGED.token_matrix({**sources, "tags": tag_token_rows([["interest:golf"]])}, 1))
    third = TAGGED.indices(
        TAGGED.token_matrix(
            {**sources, "tags": tag_token_rows([["age:18-24", "os:ios", "interest:golf"]])}, 1
        )
    )
    # columns: campaign, tags x 3, country, tags x campaign x 3, country x campaign
    assert first[0, 1] == third[0, 3] and first[0, 5] == third[0, 7]


def test_token_matrix_uses_the_first_tag_slots_tags() -> None:
    tags = tag_token_rows([["a", "b", "c", "d", "e"]])
    matrix = TAGGED.token_matrix({"campaign": 1, "country": 2, "tags": tags}, 1)
    assert matrix[0, 1:4].tolist() == [tag_token("a"), tag_token("b"), tag_token("c")]


def test_tag_token_rows_pad_short_rows_with_no_tag() -> None:
    assert tag_token_rows([["a"], []], width=2).tolist() == [[tag_token("a"), NO_TAG], [NO_TAG, NO_TAG]]


def test_indices_fall_within_the_hash_space() -> None:
    spec = FeatureSpec(fields=("campaign", "slot"), crosses=(("campaign", "slot"),), bits=8)
    tokens = np.random.default_rng(1).integers(0, 1 << 63, size=(1000, 2), dtype=np.uint64)
    got = spec.indices(tokens)
    assert got.shape == (1000, 3)
    assert got.min() >= 0 and got.max() < 256


def test_tokens_and_indices_are_the_same_in_another_process() -> None:
    code = (
        "import numpy as np;"
        "from personabid.ctr.features import DEFAULT_SPEC, token;"
        "w=len(DEFAULT_SPEC.fields);"
        "t=np.array([[token(f'v{i}-{j}') for j in range(w)] for i in range(5)],dtype=np.uint64);"
        "print(token('interest:travel'), DEFAULT_SPEC.indices(t).tolist())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout.strip()
    tokens = np.array(
        [[token(f"v{i}-{j}") for j in range(len(DEFAULT_SPEC.fields))] for i in range(5)], dtype=np.uint64
    )
    assert other == f"{token('interest:travel')} {DEFAULT_SPEC.indices(tokens).tolist()}"


def test_match_tokens_bucket_nearby_scores_together() -> None:
    got = match_tokens(np.array([0.50, 0.54, 0.56, -1.0, 1.0], dtype=np.float32), 40)
    assert got[0] == got[1]
    assert got[1] != got[2]
    assert len(set(got.tolist())) == 4


@pytest.mark.parametrize(
    "bad",
    [
        {"fields": ("campaign", "weather"), "crosses": (), "bits": 20},
        {"fields": ("campaign",), "crosses": (("campaign", "slot"),), "bits": 20},
        {"fields": ("campaign",), "crosses": (), "bits": 40},
        {"fields": ("campaign", "tags"), "crosses": (), "bits": 20, "tag_slots": 17},
    ],
)
def test_feature_spec_rejects_what_serving_cannot_compute(bad: dict) -> None:
    with pytest.raises(ValueError, match="feature spec"):
        FeatureSpec(**bad)


def test_feature_spec_round_trips_through_json() -> None:
    assert FeatureSpec.from_json(TAGGED.to_json()) == TAGGED


def test_a_spec_written_before_user_tags_reads_with_eight_tag_slots() -> None:
    written = {k: v for k, v in DEFAULT_SPEC.to_json().items() if k != "tag_slots"}
    assert FeatureSpec.from_json(written) == DEFAULT_SPEC and DEFAULT_SPEC.tag_slots == 8


def test_time_tokens_name_the_utc_hour_and_weekday() -> None:
    # 2026-11-23 (a Monday) 17:45:12 UTC
    ts = datetime(2026, 11, 23, 17, 45, 12, tzinfo=UTC).timestamp()
    assert time_tokens(ts) == {"hour": token("hour:17"), "weekday": token("weekday:0")}


def test_time_token_arrays_equal_the_scalar_tokens_row_by_row() -> None:
    ts = np.random.default_rng(4).uniform(0, 2e9, 500)
    arrays = time_token_arrays(ts)
    for name in ("hour", "weekday"):
        assert arrays[name].tolist() == [time_tokens(float(t))[name] for t in ts]
