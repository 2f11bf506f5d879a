"""Index builds: candidate types by size and memory, the auto build's choice by measured cost, recall
measured against an independent exact search, tuned parameters, and the `personabid index` commands."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np
import pytest

from personabid.artifact import resolve
from personabid.index import selection
from personabid.index.build import (
    EF_SEARCH_STEPS,
    FLAT_MAX,
    context_axes,
    family_axes,
    user_queries,
)
from personabid.index.bundle import apply_search_params, load_index
from personabid.index.catalog import write_catalog
from personabid.index.selection import candidate_types
from personabid.index.sparse import Searcher
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
    queries = user_queries(
        personas, recall.queries, recall.query_seed, context_axes(bundle.vocab), family_axes(bundle.vocab)
    )
    _, found = bundle.index.search(queries, recall.k)
    assert brute_force_recall(personas, found, queries, recall.k) == pytest.approx(recall.value, abs=1e-9)


def test_tuning_keeps_the_cheapest_ef_search_that_meets_the_target(hnsw_version: Path) -> None:
    bundle = load_index(hnsw_version)
    chosen = bundle.manifest.index_params["efSearch"]
    assert bundle.manifest.recall.value >= 0.97
    cheaper = [ef for ef in EF_SEARCH_STEPS if bundle.manifest.recall.k <= ef < chosen]
    if cheaper:
        personas = np.stack([bundle.index.reconstruct(i) for i in range(bundle.index.ntotal)])
        queries = user_queries(personas, 1000, 0, context_axes(bundle.vocab), family_axes(bundle.vocab))
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
        (10_000, 1 << 40, ["flat"]),
        (FLAT_MAX, 1 << 40, ["flat"]),
        (FLAT_MAX + 1, 1 << 40, ["ivfflat", "hnsw"]),
        (1_000_000, 1000 << 20, ["ivfflat"]),  # IVF-Flat needs about 912 MB, HNSW about 1,176 MB
        (1_000_000, 1 << 28, ["ivfpq"]),
    ],
)
def test_auto_candidates_follow_catalog_size_and_memory_budget(
    vectors: int, budget: int, expected: list[str]
) -> None:
    assert candidate_types(vectors, 226, budget) == expected


def timer_by_type(costs: dict[str, float]) -> selection.SearchTimer:
    """A search timer that says `costs` by index class, so that the choice does not depend on the machine."""

    def timer(index: Searcher, queries: np.ndarray, k: int) -> float:
        # IVF-Flat is timed as the server searches it: its lists held sparse.
        graph = isinstance(index, faiss.Index) and isinstance(faiss.downcast_index(index), faiss.IndexHNSW)
        return costs["hnsw" if graph else "ivfflat"]

    return timer


def auto_version(
    campaigns: tuple[World, list], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, costs: dict[str, float]
) -> Path:
    world, specs = campaigns
    monkeypatch.setattr(selection, "FLAT_MAX", 1000)  # candidates from 1,000 vectors: a small, quick world
    options = BuildOptions(min_recall=0.95, timer=timer_by_type(costs))
    return write_index(tmp_path, world.vocab, specs, options)


def test_auto_keeps_the_cheaper_candidate_that_meets_the_target(
    campaigns: tuple[World, list], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = load_index(
        auto_version(campaigns, tmp_path, monkeypatch, {"hnsw": 40.0, "ivfflat": 90.0})
    ).manifest
    assert manifest.index_type == "hnsw"
    assert [c["index_type"] for c in manifest.selection] == ["ivfflat", "hnsw"]
    assert [c["search_us"] for c in manifest.selection] == [90.0, 40.0]
    assert all(min(c["recall"], c["held_out"]) >= 0.95 for c in manifest.selection)


def test_auto_skips_hnsw_when_ivfflat_is_below_its_floor_and_says_why(
    campaigns: tuple[World, list], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = load_index(
        auto_version(campaigns, tmp_path, monkeypatch, {"hnsw": 40.0, "ivfflat": 30.0})
    ).manifest
    assert manifest.index_type == "ivfflat"
    ivfflat, hnsw = manifest.selection
    assert ivfflat["search_us"] == 30.0 and ivfflat["params"] == manifest.index_params
    assert "floor" in hnsw["skipped"] and hnsw["search_us"] is None


def test_ivfflat_round_trip_meets_its_target_on_unseen_queries(
    campaigns: tuple[World, list], tmp_path: Path
) -> None:
    world, specs = campaigns
    version = write_index(tmp_path, world.vocab, specs, BuildOptions(index_type="ivfflat", min_recall=0.95))
    bundle = load_index(version)
    assert bundle.manifest.index_type == "ivfflat"
    assert faiss.extract_index_ivf(bundle.index).nprobe == bundle.manifest.index_params["nprobe"]
    personas = np.stack([s for spec in specs for s in spec.personas]).astype(np.float32)
    queries = user_queries(personas, 500, 99, context_axes(world.vocab), family_axes(world.vocab))
    _, found = bundle.index.search(queries, 100)
    assert brute_force_recall(personas, found, queries, 100) >= 0.95


def test_graph_quantizer_beam_is_restored_on_load(tmp_path: Path) -> None:
    index = faiss.IndexIVFFlat(
        faiss.IndexHNSWFlat(8, 8, faiss.METRIC_INNER_PRODUCT), 8, 16, faiss.METRIC_INNER_PRODUCT
    )
    vectors = np.random.default_rng(0).random((800, 8), dtype=np.float32)
    index.train(vectors)
    faiss.write_index(index, str(tmp_path / "ivf.faiss"))
    loaded = faiss.read_index(str(tmp_path / "ivf.faiss"))
    apply_search_params(loaded, {"nprobe": 9, "quantizer_efSearch": 300})
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(loaded).quantizer)
    assert isinstance(quantizer, faiss.IndexHNSW)
    assert faiss.extract_index_ivf(loaded).nprobe == 9 and quantizer.hnsw.efSearch == 300


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


def test_index_type_ivfflat_from_the_command_line(campaigns: tuple[World, list], tmp_path: Path) -> None:
    catalog = write_world_catalog(tmp_path, campaigns)
    out = tmp_path / "index"
    result = index_build(
        "--catalog", str(catalog), "--out", str(out), "--vocab", "demo", "--index-type", "ivfflat"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["index_type"] == load_index(out).manifest.index_type == "ivfflat"


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
