"""Build the demo world's artifacts: the persona index, a simulated impression log, and a CTR model.

DIR/world.json   seed and sizes, so that clients can draw users of the same world
DIR/catalog.jsonl  the campaigns as a catalog, which `personabid index build` rebuilds the index from
DIR/index/       the index artifact root (CURRENT + versions)
DIR/model/       the model artifact root
DIR/behaviour/events.jsonl  what the world's people did (raw ids, as a collector records them)
DIR/profiles/    the profile artifact root, built from that behaviour by `personabid profiles build`

The profiles are built before the index: the index is tuned on the user vectors of the world's people
(people_user_vectors), so that its recall target holds on the users it will be asked about.

The model comes out of the training pipeline (`personabid.training.train`) exactly as one trained on the
service's event log would: the simulated impressions carry the event log's fields, in time order.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from personabid.artifact import write_atomic
from personabid.behaviour import Population, behaviour, population
from personabid.bidrecord import BidRecord
from personabid.client import exchange_auction
from personabid.config import Settings
from personabid.ctr.features import (
    DEFAULT_SPEC,
    LOGGED_TAGS,
    FeatureSpec,
    request_tokens,
    slot_token,
    tag_token_rows,
    time_token_arrays,
)
from personabid.ctr.model import CtrModel
from personabid.decision.blend import Blender
from personabid.decision.candidates import candidate_features
from personabid.decision.pipeline import PROFILE_IDS, DecisionSettings
from personabid.decision.restrictions import restriction
from personabid.decision.signals import context_keys, segment_keys, text_keys_of
from personabid.decision.uservec import strongest_tags
from personabid.errors import ArtifactError
from personabid.index.bundle import IndexBundle, load_index
from personabid.index.campaigns import CampaignTable
from personabid.index.catalog import read_catalog, write_catalog
from personabid.index.store import BuildOptions, write_index
from personabid.index.vocab import Vocabulary
from personabid.openrtb.codec import pseudonymised
from personabid.privacy import Pseudonymizer
from personabid.profiles.artifact import key_check
from personabid.profiles.store import open_embedded
from personabid.profiles.suppression import Suppression
from personabid.profiles.taxonomy import standard
from personabid.training.evaluate import auc
from personabid.training.ftrl import FtrlParams
from personabid.training.logs import Chunk
from personabid.training.profiles.build import BuildParams, build, write
from personabid.training.profiles.events import read_observations, write_events_jsonl
from personabid.training.source import MemoryRows
from personabid.training.train import EVALUATION, TrainOptions, train
from personabid.world import DEVICE_SIZES, SIZES, World

log = logging.getLogger(__name__)
CATALOG_FILE = "catalog.jsonl"
WORLD_FILE = "world.json"
# The demo world's format: 2 since creatives carry media types, markup, deals and languages; 3 since its
# vocabulary is the IAB-based standard one and its people have ids, behaviour and profiles. A world of
# another format is built again by `demo --if-missing` (make run), not served and refused.
WORLD_FORMAT = 3
BEHAVIOUR_FILE = "behaviour/events.jsonl"
# A user sees this many of its SEARCH_K best-matching campaigns, one impression each.
CANDIDATES_PER_USER = 20
SEARCH_K = 40
START = 1_763_856_000  # 2025-11-23T00:00:00Z: the simulated day starts here
DAY = 86_400
BEHAVIOUR_END = START  # the people's behaviour is of the days before the simulated day
DEMO_TRAINING = TrainOptions(model="ftrl", ftrl=FtrlParams(alpha=0.1, l1=5.0, l2=1.0, epochs=2))
# Requests of the world's people whose user vectors tune the index: halved into tuning and held-out
# queries of the build's default 1,000 each.
TUNING_REQUESTS = 2 * BuildOptions.recall_queries
TUNING_ORIGIN = "demo people: profile, segments and context as the server blends them"


@dataclass(frozen=True)
class DemoSpec:
    seed: int = 7
    campaigns: int = 10_000
    impressions: int = 400_000
    people: int = 20_000  # with ids, behaviour and profiles
    behaviour_days: int = 28


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
    user_tags: tuple[tuple[str, ...], ...] = ()  # by user number: the strongest tags, strongest first

    def _tag_tokens(self) -> np.ndarray:
        """uint64 (n, LOGGED_TAGS) tokens of each row's user's tags."""
        return tag_token_rows(self.user_tags)[self.user]

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
                **time_token_arrays(self.ts),
                "tags": self._tag_tokens(),
                "slot": _slot_tokens(self.size),
            },
            labels=self.labels,
            lines=np.arange(1, len(self) + 1, dtype=np.int64),
            time=np.round(self.ts * 1000).astype(np.int64),
            match=self.similarity,
        )

    def indices(self, spec: FeatureSpec, table: CampaignTable) -> np.ndarray:
        """int64 (n, spec.width) features of the rows, by the decision path's own function."""
        context = {
            **_context_tokens(self.devicetype, self.os, self.country),
            **time_token_arrays(self.ts),
            "tags": self._tag_tokens(),
        }
        slots = _slot_tokens(self.size)
        return candidate_features(spec, table, self.rows, self.similarity, context, slots)  # type: ignore[arg-type]

    def impressions(self, table: CampaignTable) -> Iterator[BidRecord]:
        """The rows as event log records (for `personabid train --format events`)."""
        for i in range(len(self)):
            row = int(self.rows[i])
            w, h = SIZES[int(self.size[i])]
            yield BidRecord(
                ts=float(self.ts[i]),
                user=f"demo-user-{int(self.user[i])}",  # raw: the EventWriter pseudonymises it
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
                tags=self.user_tags[int(self.user[i])],
            )


def _slot_tokens(size: np.ndarray) -> np.ndarray:
    return np.array([slot_token(w, h) for w, h in SIZES], dtype=np.uint64)[size]


def _context_tokens(
    devicetype: np.ndarray, os_names: np.ndarray, country: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-row request tokens, computed once per distinct (devicetype, os, country)."""
    os_values, os_code = np.unique(os_names, return_inverse=True)
    countries, country_code = np.unique(country, return_inverse=True)
    key = (devicetype.astype(np.int64) * len(os_values) + os_code) * len(countries) + country_code
    distinct, inverse = np.unique(key, return_inverse=True)
    out = {name: np.empty(len(distinct), dtype=np.uint64) for name in ("devicetype", "os", "country")}
    for k, combined in enumerate(distinct.tolist()):
        rest, c = divmod(combined, len(countries))
        t, o = divmod(rest, len(os_values))
        for name, value in request_tokens(t, str(os_values[o]), str(countries[c])).items():
            out[name][k] = value
    return {name: tokens[inverse] for name, tokens in out.items()}


def is_built(directory: Path) -> bool:
    if not (directory / WORLD_FILE).is_file():
        return False
    try:
        built_format = json.loads((directory / WORLD_FILE).read_text()).get("format", 1)
    except ValueError:
        return False
    return (
        built_format == WORLD_FORMAT
        and (directory / "index" / "CURRENT").is_file()
        and (directory / "model" / "CURRENT").is_file()
        and (directory / "profiles" / "CURRENT").is_file()
    )


def build_demo(directory: Path, spec: DemoSpec = DemoSpec()) -> dict[str, Any]:
    """Generate the world of `spec.seed` into `directory`; returns a summary of what was built."""
    started = time.perf_counter()
    world = World(spec.seed)
    specs, quality = world.campaigns(spec.campaigns)
    # The index is built the way operators build theirs: from a catalog file, read back and validated.
    directory.mkdir(parents=True, exist_ok=True)
    write_catalog(specs, world.vocab, directory / CATALOG_FILE)
    catalog = read_catalog(directory / CATALOG_FILE, world.vocab)
    if catalog.issues or len(catalog.campaigns) != len(specs):
        raise ArtifactError(f"the demo catalog does not read back: {catalog.issues[:3]}")
    log.info(
        "demo: behaviour of %d people over %d days, and their profiles", spec.people, spec.behaviour_days
    )
    profiles = build_demo_profiles(directory, world, spec)
    log.info("demo: %d campaigns in %s; building the persona index", len(specs), CATALOG_FILE)
    info = {"path": CATALOG_FILE, "sha256": catalog.sha256, "campaigns": len(catalog.campaigns)}
    options = tuned_on_people(directory, world, spec, BuildOptions(seed=spec.seed))
    write_index(directory / "index", world.vocab, catalog.campaigns, options, catalog=info)
    bundle = load_index(directory / "index")
    log.info("demo: simulating %d impressions", spec.impressions)
    simulated = simulate_log(world, bundle, quality, spec.impressions, np.random.default_rng(spec.seed + 1))
    model, summary = train_demo_model(simulated, bundle.campaigns, DEFAULT_SPEC)
    model.save(
        directory / "model", {"training": {"data": "demo world simulation", "seed": spec.seed, **summary}}
    )
    world_info = {
        "format": WORLD_FORMAT,
        "seed": spec.seed,
        "campaigns": spec.campaigns,
        "segments": world.segments,
        "people": spec.people,
    }
    write_atomic(directory / WORLD_FILE, json.dumps(world_info, indent=2) + "\n")
    result = {
        "directory": str(directory),
        "campaigns": len(specs),
        "index_version": bundle.version,
        "index_type": bundle.manifest.index_type,
        "model_auc": summary["evaluation"]["auc"],
        "truth_auc": summary["evaluation"]["truth_auc"],
        "profiles": profiles,
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
    rows = MemoryRows([chunk], description={"source": "demo world simulation"})
    model, summary = train(rows, spec, options)
    held_out = options.split.parts(len(simulated), chunk.time) == EVALUATION
    summary["evaluation"]["truth_auc"] = auc(simulated.labels[held_out], simulated.truth[held_out])
    return model, summary


def read_world(directory: Path) -> World:
    info = json.loads((directory / WORLD_FILE).read_text())
    return World(int(info["seed"]), int(info["segments"]))


def read_people(directory: Path, world: World) -> Population:
    """The world's people, as many as the demo built profiles for."""
    info = json.loads((directory / WORLD_FILE).read_text())
    return population(world, int(info.get("people", DemoSpec.people)))


def tuned_on_people(directory: Path, world: World, spec: DemoSpec, options: BuildOptions) -> BuildOptions:
    """`options` with the user vectors of TUNING_REQUESTS requests of the world's people (whose profiles
    build_demo_profiles has written) as the index's tuning queries."""
    people = population(world, spec.people)
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed).spawn(8)[7])
    users = people_user_vectors(directory, world, people, world.vocab, TUNING_REQUESTS, rng)
    return dataclasses.replace(options, tuning_queries=users, tuning_origin=TUNING_ORIGIN)


def people_user_vectors(
    directory: Path,
    world: World,
    people: Population,
    vocab: Vocabulary,
    count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """float32 (m, dims) unit user vectors of `count` requests an exchange sends for the world's people
    (client.exchange_auction: their synced id, the page, device and country), as a server of the world
    makes them (Decider._user_vector, with the decision settings' defaults): the profile of the first
    id the settings name, found under its pseudonym in the world's profiles, blended with what the
    request says of the user and its context. m < count where a request has nothing usable.

    The world's index need not exist yet: this reads only its people's profiles and the vocabulary."""
    settings = Settings(data_dir=directory)
    decisions = DecisionSettings()
    pseudonym = Pseudonymizer.from_environment(settings.key_file)
    store = open_embedded(settings.profiles, vocab, pseudonym, Suppression(settings.suppression))
    taxonomy = standard()
    weights = (settings.blend_profile, settings.blend_segments, settings.blend_context)
    blender = Blender(vocab, taxonomy, weights)
    text_keys = text_keys_of(taxonomy)
    id_order = [PROFILE_IDS[name] for name in decisions.profile_ids]
    year = time.gmtime().tm_year
    found = []
    for _ in range(count):
        request = pseudonymised(exchange_auction(world, people, rng), pseudonym)
        context = context_keys(request, text_keys)
        if restriction(request) is not None:
            user, _ = blender.blend(context_keys=context)
        else:
            key = next((found_id for id_of in id_order if (found_id := id_of(request))), "")
            profile = store.lookup(key) if key else None
            person = request.user
            user, _ = blender.blend(
                profile, segment_keys(person, year, text_keys), context, person.tags, person.tag_vector
            )
        if user is not None:
            found.append(user[0])
    return np.ascontiguousarray(np.array(found, dtype=np.float32).reshape(-1, vocab.dims))


def build_demo_profiles(directory: Path, world: World, spec: DemoSpec) -> dict[str, Any]:
    """Write the people's behaviour and build their profiles from it, through the profile pipeline."""
    people = population(world, spec.people)
    events = directory / BEHAVIOUR_FILE
    events.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed).spawn(6)[5])
    write_events_jsonl(events, behaviour(world, people, float(BEHAVIOUR_END), spec.behaviour_days, rng))
    pseudonymize = Pseudonymizer.from_environment(directory / "pseudonym.key")
    chunks, report = read_observations([events], pseudonymize)
    result = build(chunks, BuildParams(as_of=float(BEHAVIOUR_END)), events=report)
    version = write(directory / "profiles", result, key_check(pseudonymize))
    return {
        "version": version.name,
        "events": result.report["events"]["events"],
        "users": result.report["users"],
        "tags_per_user": result.report["tags_per_user"]["mean"],
    }


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
    names = world.vocab.tags
    user_tags = tuple(
        tuple(names[p] for p in strongest_tags(v, LOGGED_TAGS).tolist() if p >= 0) for v in vectors
    )
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
        user_tags=user_tags,
    )


def _sizes(devicetype: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A slot size (index into SIZES) for each impression, among those its device shows."""
    size = np.empty(len(devicetype), dtype=np.int64)
    for t in np.unique(devicetype).tolist():
        where = np.flatnonzero(devicetype == t)
        size[where] = rng.choice(DEVICE_SIZES.get(t, tuple(range(len(SIZES)))), size=len(where))
    return size
