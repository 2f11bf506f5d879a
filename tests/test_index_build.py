"""Index builds: type by size, recall measured against an independent exact search, tuned parameters,
and the `personabid index` commands."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from personabid.artifact import resolve
from personabid.index.build import (
    EF_SEARCH_STEPS,
    FLAT_MAX,
    choose,
    realistic_queries,
)
from personabid.index.bundle import apply_search_params, load_index
from personabid.index.catalog import write_catalog
from personabid.index.store import BuildOptions, RecallTooLow, write_index
from personabid.world import World
from tests.processes import personabid


@pytest.fixture(scope="module")
def campaigns() -> tuple[World, list]:
    world = World(5)
    specs, _ = world.campaigns(3000)
    return world, specs


def brute_force_recall(personas: np.ndarray, found: np.ndarray, queries: np.ndarray, k: int) -> float:
    exact = np.argsort(-(queries @ personas.T), axis=1, kind="stable")[:, :k]
    return float(
        np.mean([len(set(e) & set(f)) / k for e, f in zip(exact.tolist(), found.tolist(), strict=True)])
    )


@pytest.fixture(scope="module")
def hnsw_version(campaigns: tuple[World, list], tmp_path_factory: pytest.TempPathFactory) -> Path:
    world, specs = campaigns
    return write_index(
        tmp_path_factory.mktemp("hnsw"), world.vocab, specs, BuildOptions(index_type="hnsw", min_recall=0.97)
    )


def test_reported_recall_matches_an_independent_exact_search(hnsw_version: Path) -> None:
    bundle = load_index(hnsw_version)
    recall = bundle.manifest.recall
    personas = np.stack([bundle.index.reconstruct(i) for i in range(bundle.index.ntotal)])
    queries = realistic_queries(personas, recall.queries, seed=recall.query_seed)
    _, found = bundle.index.search(queries, recall.k)
    assert brute_force_recall(personas, found, queries, recall.k) == pytest.approx(recall.value, abs=1e-9)


def test_tuning_keeps_the_cheapest_ef_search_that_meets_the_target(hnsw_version: Path) -> None:
    bundle = load_index(hnsw_version)
    chosen = bundle.manifest.index_params["efSearch"]
    assert bundle.manifest.recall.value >= 0.97
    cheaper = [ef for ef in EF_SEARCH_STEPS if bundle.manifest.recall.k <= ef < chosen]
    if cheaper:
        personas = np.stack([bundle.index.reconstruct(i) for i in range(bundle.index.ntotal)])
        queries = realistic_queries(personas, 1000, seed=0)
        apply_search_params(bundle.index, {"efSearch": cheaper[-1]})
        _, found = bundle.index.search(queries, 100)
        assert brute_force_recall(personas, found, queries, 100) < 0.97


def test_ivfpq_index_builds_searches_and_meets_its_target(
    campaigns: tuple[World, list], tmp_path: Path
) -> None:
    world, specs = campaigns
    version = write_index(tmp_path, world.vocab, specs, BuildOptions(index_type="ivfpq", min_recall=0.9))
    bundle = load_index(version)
    assert bundle.manifest.index_type == "ivfpq"
    assert bundle.manifest.recall.value >= 0.9
    assert bundle.manifest.memory_estimate_bytes < len(bundle.persona_rows) * world.vocab.dims * 4


def test_unreachable_recall_target_writes_nothing(campaigns: tuple[World, list], tmp_path: Path) -> None:
    world, specs = campaigns
    with pytest.raises(RecallTooLow, match="below the target"):
        write_index(tmp_path, world.vocab, specs[:600], BuildOptions(index_type="ivfpq", min_recall=1.01))
    assert not any(p.name == "CURRENT" or not p.name.startswith(".") for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    ("vectors", "budget", "expected"),
    [
        (10_000, 1 << 40, "flat"),
        (FLAT_MAX, 1 << 40, "flat"),
        (FLAT_MAX + 1, 1 << 40, "hnsw"),
        (1_000_000, 1 << 28, "ivfpq"),
    ],
)
def test_index_type_follows_catalog_size_and_memory_budget(vectors: int, budget: int, expected: str) -> None:
    assert choose(vectors, 226, "auto", budget).index_type == expected


def write_world_catalog(tmp_path: Path, campaigns: tuple[World, list], extra: Sequence[str] = ()) -> Path:
    world, specs = campaigns
    catalog = tmp_path / "catalog.jsonl"
    write_catalog(specs[:300], world.vocab, catalog)
    with catalog.open("a") as handle:
        for line in extra:
            handle.write(line + "\n")
    return catalog


def index_build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(personabid("index", "build", *args), capture_output=True, text=True, timeout=300)


def test_index_build_command_writes_a_current_version(campaigns: tuple[World, list], tmp_path: Path) -> None:
    catalog = write_world_catalog(tmp_path, campaigns)
    result = index_build("--catalog", str(catalog), "--out", str(tmp_path / "index"), "--vocab", "demo")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    manifest = load_index(tmp_path / "index").manifest
    assert summary["version"] == manifest.version == resolve(tmp_path / "index").name
    assert manifest.catalog["campaigns"] == manifest.campaigns == 300


def test_catalog_with_errors_builds_nothing(campaigns: tuple[World, list], tmp_path: Path) -> None:
    catalog = write_world_catalog(tmp_path, campaigns, extra=['{"id": "broken"}'])
    result = index_build("--catalog", str(catalog), "--out", str(tmp_path / "index"), "--vocab", "demo")
    assert result.returncode == 1
    assert "line 301: campaign broken" in result.stderr
    assert not (tmp_path / "index").exists()


def test_skip_invalid_builds_the_rest_and_reports_what_it_skipped(
    campaigns: tuple[World, list], tmp_path: Path
) -> None:
    catalog = write_world_catalog(tmp_path, campaigns, extra=['{"id": "broken"}'])
    result = index_build(
        "--catalog", str(catalog), "--out", str(tmp_path / "index"), "--vocab", "demo", "--skip-invalid"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["skipped"] == 1
    assert "line 301: campaign broken" in result.stderr


def test_inspect_checks_every_file(hnsw_version: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        personabid("index", "inspect", str(hnsw_version)), capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["checksums"] == "ok"
    copy = tmp_path / hnsw_version.name
    shutil.copytree(hnsw_version, copy)
    with (copy / "persona_rows.npy").open("ab") as handle:
        handle.write(b"\0")
    bad = subprocess.run(
        personabid("index", "inspect", str(copy)), capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and "persona_rows.npy: sha256" in bad.stderr


def test_recall_target_also_holds_on_held_out_queries(hnsw_version: Path) -> None:
    recall = load_index(hnsw_version).manifest.recall
    assert recall.held_out >= recall.target == 0.97
