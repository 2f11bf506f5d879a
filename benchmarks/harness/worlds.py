"""Benchmark worlds: demo worlds of a given catalog size, built once and kept.

A million campaigns take minutes to generate and to index (HNSW), so built worlds are cached
(benchmarks/results/worlds/ by default; git ignores it) and a later run reuses them. The model is trained
on few simulated impressions: the benchmark measures serving, and a bench world's model only has to be a
real one.

The index is built as `personabid index build` builds it (auto type, recall tuned to the default target),
tuned on the user vectors of the world's people, as the demo's is (personabid.demo.tuned_on_people): the
recall target then holds on the users the bench sends (harness/recall.py measures it). So the people's
profiles are built first.
Where that target cannot be met (HNSW with the build's M and efConstruction reaches recall@100 of about
0.947 on the million-campaign demo catalog, even at efSearch 1024), the world is built with the
FALLBACK_RECALL target instead, as an operator would with --min-recall; the index manifest records
the target and the recall reached.

A cached world whose campaign table lacks a column this version of personabid reads (built before the
catalog grew one) is built again, as new versions of its index and model: the server would refuse to
load the old ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from personabid.artifact import resolve, write_atomic
from personabid.ctr.features import DEFAULT_SPEC
from personabid.demo import (
    WORLD_FILE,
    WORLD_FORMAT,
    DemoSpec,
    build_demo_profiles,
    is_built,
    simulate_log,
    train_demo_model,
    tuned_on_people,
)
from personabid.errors import ArtifactError
from personabid.index.bundle import load_index
from personabid.index.campaigns import CampaignTable
from personabid.index.store import BuildOptions, RecallTooLow, write_index
from personabid.world import World

log = logging.getLogger(__name__)
DEFAULT_ROOT = Path("benchmarks/results/worlds")
SEED = 7  # the demo world's
IMPRESSIONS = 50_000
PEOPLE = 20_000
FALLBACK_RECALL = 0.9


def world_dir(root: Path, campaigns: int) -> Path:
    return root / f"campaigns-{campaigns}"


def ensure_world(root: Path, campaigns: int, min_recall: float | None = None) -> Path:
    """The directory of a built world of `campaigns` campaigns under `root`, building it if missing."""
    directory = world_dir(root, campaigns)
    if is_built(directory):
        if _readable(directory):
            return directory
        # Built again in place: the index and the model are new versions, switched to atomically, so that
        # a server still reading the old ones keeps them.
        log.warning("the bench world in %s was built by an older personabid: building it again", directory)
    log.info("building the bench world of %d campaigns in %s", campaigns, directory)
    directory.mkdir(parents=True, exist_ok=True)
    world = World(SEED)
    specs, quality = world.campaigns(campaigns)
    # The people, their behaviour and profiles, as the demo builds them: requests can name them by id,
    # and the index is tuned on their user vectors.
    demo = DemoSpec(seed=SEED, campaigns=campaigns, people=PEOPLE)
    build_demo_profiles(directory, world, demo)
    options = tuned_on_people(
        directory, world, demo, BuildOptions(seed=SEED, min_recall=min_recall or BuildOptions.min_recall)
    )
    try:
        write_index(directory / "index", world.vocab, specs, options)
    except RecallTooLow as exc:
        log.warning("%s; building with a recall target of %g instead", exc, FALLBACK_RECALL)
        fallback = dataclasses.replace(options, min_recall=FALLBACK_RECALL)
        write_index(directory / "index", world.vocab, specs, fallback)
    bundle = load_index(directory / "index")
    simulated = simulate_log(world, bundle, quality, IMPRESSIONS, np.random.default_rng(SEED + 1))
    model, summary = train_demo_model(simulated, bundle.campaigns, DEFAULT_SPEC)
    model.save(directory / "model", {"training": {"data": "bench world simulation", "seed": SEED, **summary}})
    # The demo's format: is_built takes a world of another one for a world to build again.
    info = {
        "format": WORLD_FORMAT,
        "seed": SEED,
        "campaigns": campaigns,
        "segments": world.segments,
        "people": PEOPLE,
    }
    # Last: a world is built once its world.json exists.
    write_atomic(directory / WORLD_FILE, json.dumps(info, indent=2) + "\n")
    log.info("bench world of %d campaigns built (%s index)", campaigns, bundle.manifest.index_type)
    return directory


def _readable(directory: Path) -> bool:
    """Whether the world's current campaign table has every column this version reads (the file's
    directory of arrays only: nothing is loaded)."""
    try:
        with np.load(resolve(directory / "index") / "campaigns.npz", allow_pickle=False) as data:
            return {f.name for f in dataclasses.fields(CampaignTable)} <= set(data.files)
    except (OSError, ValueError, ArtifactError):
        return False
