"""Build the demo world's artifacts: the persona index, a simulated impression log, and a CTR model.

DIR/world.json   seed and sizes, so that clients can draw users of the same world
DIR/index/       the index artifact root (CURRENT + versions)
DIR/model/       the model artifact root

The model comes out of the training pipeline (`personabid.training.train`) exactly as one trained on the
service's event log would: the simulated impressions carry the event log's fields, in time order.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from personabid.decision.score import candidate_features
from personabid.index.campaigns import CampaignTable
from personabid.index.store import BuildOptions, IndexBundle, load_index, write_index
from personabid.training.evaluate import auc
from personabid.training.events import Impression
from personabid.training.features import DEFAULT_SPEC, FeatureSpec, request_tokens, slot_token
from personabid.training.ftrl import FtrlParams
from personabid.training.logs import Chunk
from personabid.training.model import CtrModel
from personabid.training.source import MemoryRows
from personabid.training.train import EVALUATION, TrainOptions, train
from personabid.world import DEVICE_SIZES, SIZES, World

log = logging.getLogger(__name__)
WORLD_FILE = "world.json"
# A user sees this many of its SEARCH_K best-matching campaigns, one impression each.
CANDIDATES_PER_USER = 8
SEARCH_K = 30
START = 1_763_856_000  # 2025-11-23T00:00:00Z: the simulated day starts here
DAY = 86_400
DEMO_TRAINING = TrainOptions(model="ftrl", ftrl=FtrlParams(epochs=2))


@dataclass(frozen=True)
class DemoSpec:
    seed: int = 7
    campaigns: int = 10_000
    impressions: int = 400_000


@dataclass(frozen=True)
class SimulatedLog:
    """Impressions in time order, with what the event log records and the ground-truth click rate."""

    rows: np.ndarray  # int32 (n,) campaign rows of the index's campaign table
    similarity: np.ndarray  # float32 (n,)
    devicetype: np.ndarray  # int32 (n,)
    os: np.ndarray  # <U (n,)
    country: np.ndarray  # <U (n,)
    size: np.ndarray  # int64 (n,) into SIZES
    user: np.ndarray  # int64 (n,) user number
    ts: np.ndarray  # float64 (n,) unix seconds, increasing
    labels: np.ndarray  # float64 (n,) sampled clicks
    truth: np.ndarray  # float64 (n,) ground-truth click probability

    def __len__(self) -> int:
        return len(self.labels)

    def chunk(self, table: CampaignTable) -> Chunk:
        """The rows as the event log reader yields them: tokens of the serving schema's fields."""
        context = _context_tokens(self.devicetype, self.os, self.country)
        return Chunk(
            tokens={
                "campaign": table.campaign_token[self.rows],
                "advertiser": table.advertiser_token[self.rows],
                "category": table.category_token[self.rows],
                **context,
                "slot": _slot_tokens(self.size),
            },
            labels=self.labels,
            lines=np.arange(1, len(self) + 1, dtype=np.int64),
            time=np.round(self.ts * 1000).astype(np.int64),
            match=self.similarity,
        )

    def indices(self, spec: FeatureSpec, table: CampaignTable) -> np.ndarray:
        """int64 (n, spec.width) features of the rows, by the decision path's own function."""
        context = _context_tokens(self.devicetype, self.os, self.country)
        slots = _slot_tokens(self.size)
        return candidate_features(spec, table, self.rows, self.similarity, context, slots)  # type: ignore[arg-type]

    def impressions(self, table: CampaignTable) -> Iterator[Impression]:
        """The rows as event log records (for `personabid train --format events`)."""
        for i in range(len(self)):
            row = int(self.rows[i])
            w, h = SIZES[int(self.size[i])]
            yield Impression(
                ts=float(self.ts[i]),
                user_id=f"demo-user-{int(self.user[i])}",
                campaign=str(table.campaign_id[row]),
                advertiser=str(table.advertiser[row]),
                category=str(table.category[row]),
                devicetype=int(self.devicetype[i]),
                os=str(self.os[i]),
                country=str(self.country[i]),
                w=w,
                h=h,
                match=float(self.similarity[i]),
                click=int(self.labels[i]),
            )


def _slot_tokens(size: np.ndarray) -> np.ndarray:
    return np.array([slot_token(w, h) for w, h in SIZES], dtype=np.uint64)[size]


def _context_tokens(
    devicetype: np.ndarray, os_names: np.ndarray, country: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-row request tokens, computed once per distinct (devicetype, os, country)."""
    keys = np.array(
        [
            f"{t}|{o}|{c}"
            for t, o, c in zip(devicetype.tolist(), os_names.tolist(), country.tolist(), strict=True)
        ]
    )
    distinct, inverse = np.unique(keys, return_inverse=True)
    out = {name: np.empty(len(distinct), dtype=np.uint64) for name in ("devicetype", "os", "country")}
    for k, key in enumerate(distinct.tolist()):
        t, o, c = key.split("|")
        for name, value in request_tokens(int(t), o, c).items():
            out[name][k] = value
    return {name: tokens[inverse] for name, tokens in out.items()}


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
    write_index(directory / "index", world.vocab, specs, BuildOptions(seed=spec.seed))
    bundle = load_index(directory / "index")
    log.info("demo: simulating %d impressions", spec.impressions)
    simulated = simulate_log(world, bundle, quality, spec.impressions, np.random.default_rng(spec.seed + 1))
    model, summary = train_demo_model(simulated, bundle.campaigns, DEFAULT_SPEC)
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


def train_demo_model(
    simulated: SimulatedLog, table: CampaignTable, spec: FeatureSpec, options: TrainOptions = DEMO_TRAINING
) -> tuple[CtrModel, dict[str, Any]]:
    """Train on a simulated log through the training pipeline; the evaluation also gives the AUC of the
    ground truth on the same held-out rows."""
    chunk = simulated.chunk(table)
    rows = MemoryRows([chunk], description={"data": "demo world simulation", "rows": len(simulated)})
    model, summary = train(rows, spec, options)
    held_out = options.split.parts(len(simulated), chunk.time) == EVALUATION
    summary["evaluation"]["truth_auc"] = auc(simulated.labels[held_out], simulated.truth[held_out])
    return model, summary


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
    pick = np.argsort(rng.random((n_users, SEARCH_K)), axis=1)[:, :CANDIDATES_PER_USER]
    persona = np.take_along_axis(labels, pick, 1).ravel()
    similarity = np.take_along_axis(scores, pick, 1).ravel().astype(np.float32)
    user = np.repeat(np.arange(n_users), CANDIDATES_PER_USER)
    slot = np.tile(np.arange(CANDIDATES_PER_USER), n_users)
    valid = persona >= 0
    persona, similarity, user, slot = persona[valid], similarity[valid], user[valid], slot[valid]
    rows = bundle.persona_rows[persona]
    devicetype = users.devicetype[user]
    size = _sizes(devicetype, rng)
    truth = world.true_ctr(similarity, quality[rows], devicetype, size)
    # Users arrive through the day, a user's impressions a second apart.
    ts = START + (user * (DAY / n_users)) + slot
    return SimulatedLog(
        rows=rows.astype(np.int32),
        similarity=similarity,
        devicetype=devicetype,
        os=users.os[user],
        country=users.country[user],
        size=size,
        user=user.astype(np.int64),
        ts=ts.astype(np.float64),
        labels=(rng.random(len(truth)) < truth).astype(np.float64),
        truth=truth,
    )


def _sizes(devicetype: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A slot size (index into SIZES) for each impression, among those its device shows."""
    size = np.empty(len(devicetype), dtype=np.int64)
    for t in np.unique(devicetype).tolist():
        where = np.flatnonzero(devicetype == t)
        size[where] = rng.choice(DEVICE_SIZES.get(t, tuple(range(len(SIZES)))), size=len(where))
    return size
