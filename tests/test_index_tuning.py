"""Index builds tuned on queries the caller supplies (real users' vectors): the recall target holds on
them, as measured by an independent exact search; the manifest says where the queries came from; and
`--tuning-queries` refuses a file it cannot use, naming the flag and the problem."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from personabid.index.bundle import load_index
from personabid.index.catalog import write_catalog
from personabid.index.store import BuildOptions, write_index
from personabid.index.tuning import MIN_SUPPLIED, TuningQueryError, checked_queries
from personabid.world import World
from tests.processes import personabid

DIMS = 6


@pytest.fixture(scope="module")
def campaigns() -> tuple[World, list]:
    world = World(5)
    specs, _ = world.campaigns(3000)
    return world, specs


def world_users(world: World, count: int, seed: int) -> np.ndarray:
    """float32 (count, dims) unit vectors of the world's users: segment profiles, not personas."""
    vectors = world.users(count, np.random.default_rng(seed)).vectors.astype(np.float64)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def exact_recall(personas: np.ndarray, found: np.ndarray, queries: np.ndarray, k: int) -> float:
    exact = np.argsort(-(queries @ personas.T), axis=1, kind="stable")[:, :k]
    return float(
        np.mean([len(set(e) & set(f)) / k for e, f in zip(exact.tolist(), found.tolist(), strict=True)])
    )


@pytest.fixture(scope="module")
def supplied_version(campaigns: tuple[World, list], tmp_path_factory: pytest.TempPathFactory) -> Path:
    world, specs = campaigns
    options = BuildOptions(
        index_type="ivfflat",
        min_recall=0.95,
        tuning_queries=world_users(world, 2000, 1),
        tuning_origin="users",
    )
    return write_index(tmp_path_factory.mktemp("supplied"), world.vocab, specs, options)


def test_recall_target_holds_on_the_supplied_queries(
    campaigns: tuple[World, list], supplied_version: Path
) -> None:
    world, specs = campaigns
    bundle = load_index(supplied_version)
    personas = np.stack([s for spec in specs for s in spec.personas]).astype(np.float32)
    personas /= np.linalg.norm(personas, axis=1, keepdims=True)
    queries = world_users(world, 2000, 1)  # both halves: the tuning's and the held-out one
    _, found = bundle.index.search(queries, 100)
    assert exact_recall(personas, found, queries, 100) >= 0.95


def test_manifest_records_supplied_queries_and_the_persona_noise_floor(supplied_version: Path) -> None:
    recall = load_index(supplied_version).manifest.recall
    assert (recall.source, recall.origin, recall.queries) == ("supplied", "users", 1000)
    assert recall.persona_noise is not None and recall.persona_noise >= recall.target


def test_without_supplied_queries_the_build_says_its_queries_are_synthetic(
    campaigns: tuple[World, list], tmp_path: Path
) -> None:
    world, specs = campaigns
    version = write_index(tmp_path, world.vocab, specs[:300], BuildOptions(index_type="flat"))
    assert load_index(version).manifest.recall.source == "user-shaped"


def valid_queries(count: int = MIN_SUPPLIED) -> np.ndarray:
    return np.random.default_rng(0).random((count, DIMS)) + 0.01


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (valid_queries()[:, :5], r"shape \(n, 6\)"),
        (valid_queries()[0], r"shape \(n, 6\)"),
        (valid_queries(MIN_SUPPLIED - 1), f"at least {MIN_SUPPLIED}"),
        (np.where(np.eye(MIN_SUPPLIED, DIMS, dtype=bool), np.nan, valid_queries()), "not finite"),
        (np.where(np.eye(MIN_SUPPLIED, DIMS, dtype=bool), -1.0, valid_queries()), "negative"),
        (np.vstack([np.zeros((1, DIMS)), valid_queries()]), "all zero"),
        (valid_queries().astype(str), "numeric"),
    ],
    ids=["dims", "one-dimensional", "too-few", "nan", "negative", "zero-row", "strings"],
)
def test_unusable_tuning_queries_are_refused_naming_the_problem(array: np.ndarray, problem: str) -> None:
    with pytest.raises(TuningQueryError, match=problem):
        checked_queries(array, DIMS)


def test_tuning_queries_are_scaled_to_unit_length() -> None:
    queries = checked_queries(valid_queries() * 7.0, DIMS)
    assert queries.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, rtol=1e-6)


def index_build(tmp_path: Path, campaigns: tuple[World, list], queries: Path) -> subprocess.CompletedProcess:
    world, specs = campaigns
    catalog = tmp_path / "catalog.jsonl"
    write_catalog(specs[:300], world.vocab, catalog)
    command = personabid(
        "index", "build", "--catalog", str(catalog), "--out", str(tmp_path / "index"), "--vocab", "demo"
    )
    return subprocess.run(
        [*command, "--tuning-queries", str(queries)], capture_output=True, text=True, timeout=300
    )


def test_tuning_queries_flag_refuses_a_file_of_other_dims(
    campaigns: tuple[World, list], tmp_path: Path
) -> None:
    np.save(tmp_path / "users.npy", valid_queries())
    result = index_build(tmp_path, campaigns, tmp_path / "users.npy")
    assert result.returncode == 2
    assert "--tuning-queries" in result.stderr and f"not (20, {DIMS})" in result.stderr
    assert not (tmp_path / "index").exists()


def test_tuning_queries_flag_refuses_a_file_that_is_not_an_array(
    campaigns: tuple[World, list], tmp_path: Path
) -> None:
    (tmp_path / "users.npy").write_text("user vectors\n")
    result = index_build(tmp_path, campaigns, tmp_path / "users.npy")
    assert result.returncode == 2
    assert "--tuning-queries" in result.stderr and "not a readable" in result.stderr


def test_tuning_queries_flag_tunes_on_the_file(campaigns: tuple[World, list], tmp_path: Path) -> None:
    world, _ = campaigns
    np.save(tmp_path / "users.npy", world_users(world, 400, 2) * 3.0)  # any positive scale will do
    result = index_build(tmp_path, campaigns, tmp_path / "users.npy")
    assert result.returncode == 0, result.stderr
    recall = json.loads(result.stdout)["recall"]
    assert (recall["query_source"], recall["queries"]) == ("supplied", 200)
    assert recall["query_origin"] == str(tmp_path / "users.npy")


def test_ivfflat_index_gives_back_a_persona_by_label_after_load(
    campaigns: tuple[World, list], supplied_version: Path
) -> None:
    # The server's warm-up reconstructs a persona: an IVF index does so only through its direct map.
    _, specs = campaigns
    bundle = load_index(supplied_version)
    assert bundle.manifest.index_type == "ivfflat"
    np.testing.assert_array_equal(bundle.index.reconstruct(0), np.asarray(specs[0].personas[0], np.float32))
