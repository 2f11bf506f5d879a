"""Build the demo world's artifacts: the persona index, a simulated impression log, and a CTR model.

DIR/world.json   seed and sizes, so that clients can draw users of the same world
DIR/index/       the index artifact root (CURRENT + versions)
DIR/model/       the model artifact root
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from personabid.decision.score import candidate_features, request_tokens
from personabid.index.store import IndexBundle, load_index, write_index
from personabid.training.evaluate import auc
from personabid.training.features import DEFAULT_SPEC, slot_token
from personabid.training.ftrl import FtrlParams
from personabid.training.train import train_ftrl
from personabid.world import DEVICE_SIZES, SIZES, World

log = logging.getLogger(__name__)
WORLD_FILE = "world.json"
CANDIDATES_PER_USER = 5
SEARCH_K = 30


@dataclass(frozen=True)
class DemoSpec:
    seed: int = 7
    campaigns: int = 10_000
    impressions: int = 400_000


@dataclass(frozen=True)
class SimulatedLog:
    indices: np.ndarray  # int64 (rows, width)
    labels: np.ndarray  # float64 (rows,)
    truth: np.ndarray  # float64 (rows,) ground-truth click probability


def is_built(directory: Path) -> bool:
    return (
        (directory / WORLD_FILE).is_file()
        and (directory / "index" / "CURRENT").is_file()
        and (directory / "model" / "CURRENT").is_file()
    )


def build_demo(directory: Path, spec: DemoSpec = DemoSpec()) -> dict[str, Any]:
    """Generate the world of `spec.seed` into `directory`; returns a summary of what was built."""
    started = time.perf_counter()
    world = World(spec.seed)
    specs, quality = world.campaigns(spec.campaigns)
    log.info("demo: %d campaigns generated; building the persona index", len(specs))
    write_index(directory / "index", world.vocab, specs, seed=spec.seed)
    bundle = load_index(directory / "index")
    log.info("demo: simulating %d impressions", spec.impressions)
    simulated = simulate_log(world, bundle, quality, spec.impressions, np.random.default_rng(spec.seed + 1))
    model, summary = train_ftrl(DEFAULT_SPEC, simulated.indices, simulated.labels, FtrlParams(epochs=2))
    tail = len(simulated.labels) - summary["rows"]["evaluation"]
    summary["evaluation"]["truth_auc"] = auc(simulated.labels[tail:], simulated.truth[tail:])
    model.save(
        directory / "model", {"training": {"data": "demo world simulation", "seed": spec.seed, **summary}}
    )
    world_info = {"seed": spec.seed, "campaigns": spec.campaigns, "segments": world.segments}
    tmp = directory / f".{WORLD_FILE}.tmp"
    tmp.write_text(json.dumps(world_info, indent=2) + "\n")
    os.replace(tmp, directory / WORLD_FILE)
    result = {
        "directory": str(directory),
        "campaigns": len(specs),
        "index_version": bundle.version,
        "index_type": bundle.manifest["index_type"],
        "model_auc": summary["evaluation"]["auc"],
        "truth_auc": summary["evaluation"]["truth_auc"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    log.info("demo: built %s", result)
    return result


def read_world(directory: Path) -> World:
    info = json.loads((directory / WORLD_FILE).read_text())
    return World(int(info["seed"]), int(info["segments"]))


def simulate_log(
    world: World, bundle: IndexBundle, quality: np.ndarray, impressions: int, rng: np.random.Generator
) -> SimulatedLog:
    """Impressions of world users on campaigns that match them, in time order, with sampled clicks."""
    n_users = max(1, impressions // CANDIDATES_PER_USER)
    users = world.users(n_users, rng)
    vectors = users.vectors.copy()
    faiss.normalize_L2(vectors)
    scores, labels = bundle.index.search(vectors, SEARCH_K)
    # Each user sees CANDIDATES_PER_USER of its top matches, one impression each.
    pick = rng.integers(0, SEARCH_K, size=(n_users, CANDIDATES_PER_USER))
    persona = np.take_along_axis(labels, pick, 1).ravel()
    similarity = np.take_along_axis(scores, pick, 1).ravel().astype(np.float32)
    user = np.repeat(np.arange(n_users), CANDIDATES_PER_USER)
    valid = persona >= 0
    persona, similarity, user = persona[valid], similarity[valid], user[valid]
    rows = bundle.persona_rows[persona]
    devicetype = users.devicetype[user]
    size = np.array([rng.choice(_sizes_for(int(t))) for t in devicetype])
    truth = world.true_ctr(similarity, quality[rows], devicetype, size)
    clicks = (rng.random(len(truth)) < truth).astype(np.float64)

    table = bundle.campaigns
    n = len(rows)
    context = {name: np.empty(n, dtype=np.uint64) for name in ("devicetype", "os", "country")}
    for i, (t, os_name, country) in enumerate(
        zip(devicetype, users.os[user], users.country[user], strict=True)
    ):
        for name, value in request_tokens(int(t), str(os_name), str(country)).items():
            context[name][i] = value
    slots = np.array([slot_token(*SIZES[s]) for s in size], dtype=np.uint64)
    indices = candidate_features(DEFAULT_SPEC, table, rows, similarity, context, slots)  # type: ignore[arg-type]
    return SimulatedLog(indices=indices, labels=clicks, truth=truth)


def _sizes_for(devicetype: int) -> tuple[int, ...]:
    return DEVICE_SIZES.get(devicetype, tuple(range(len(SIZES))))
