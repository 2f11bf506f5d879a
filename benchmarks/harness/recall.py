"""Recall@k of the match on queries drawn like real users, against exact search.

The index build measures its recall on personas plus noise (index/build.py): queries shaped like the
vectors indexed. Users are not shaped like that: a user vector blends a profile, the exchange's segments
and the page's context (decision/blend.py). Here the queries are what an exchange sends for the world's
demo people (client.exchange_auction: their synced id, the page, the device, the country), made into
user vectors by the server's own Decider (profile lookup, segments, context, through the Blender), and
searched in the world's index at its serving parameters; the truth is the exact top-k by inner product
over the index's own vectors. Recall counts persona vectors, as the build's does, so the two compare.
The load's requests (requests.py: users with their tags and no profile) are measured the same way.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from personabid import wire
from personabid.bench.requests import request_pool
from personabid.bench.serving import Serving, serving
from personabid.client import exchange_auction
from personabid.decision.pipeline import Decision
from personabid.decision.restrictions import restriction
from personabid.demo import read_people, read_world
from personabid.index.build import exact_neighbours
from personabid.index.bundle import IndexBundle
from personabid.index.campaigns import build_table
from personabid.index.store import BuildOptions
from personabid.openrtb.codec import pseudonymised
from personabid.openrtb.request import BidRequest
from personabid.v1 import bidder_pb2 as pb

log = logging.getLogger(__name__)
TARGET = BuildOptions.min_recall  # the index's recall target (the build's default)
# Index types whose stored vectors are the persona vectors themselves (quantised ones only approximate
# them, and their truth is rebuilt from the catalog instead).
EXACT_STORAGE = ("flat", "hnsw", "ivfflat")


def user_recall(world_dir: Path, k: int = 100, queries: int = 1000, seed: int = 5) -> dict[str, Any]:
    """Recall@k of the world's index on `queries` user vectors of demo people (drawn with `seed`)."""
    started = time.perf_counter()
    served = serving(world_dir)
    bundle = served.snapshot.bundle
    world = read_world(world_dir)
    people = read_people(world_dir, world)
    rng = np.random.default_rng(seed)
    users, profiles_found = _user_vectors(
        served, [exchange_auction(world, people, rng) for _ in range(queries)]
    )
    # The load's requests (in the wire format the load sends), made into vectors the same way.
    load, _ = _user_vectors(
        served,
        [wire.to_auction(pb.BidRequest.FromString(raw)) for raw in request_pool(world_dir, queries, seed)],
    )
    vectors = index_vectors(bundle, world_dir)
    manifest = bundle.manifest
    value = manifest.recall.value
    result = {
        "k": k,
        "queries": queries,
        "unmatched": queries - len(users),  # requests with nothing to make a user vector of
        "profiles_found": profiles_found,  # share of the queries whose person's profile the store had
        "recall": _recall(bundle, vectors, users, k),
        "load_requests_recall": _recall(bundle, vectors, load, k),
        "target": TARGET,
        "index_type": manifest.index_type,
        "index_params": manifest.index_params,
        # The build's own measurements: on the queries it was tuned on (real users' vectors where the
        # world supplied them: build_query_source), and its floor on personas plus noise (older builds
        # measured only that).
        "build_recall": manifest.recall.value,
        "build_held_out": manifest.recall.held_out,
        "build_query_source": manifest.recall.source,
        "persona_noise_recall": noise if (noise := manifest.recall.persona_noise) is not None else value,
        "build_target": manifest.recall.target,
        "campaigns": manifest.campaigns,
        "vectors": manifest.vectors,
        "seconds": round(time.perf_counter() - started, 1),
    }
    log.info(
        "recall@%d at %d campaigns: %.4f on user-like queries, %.4f on personas plus noise (%s %s)",
        k,
        manifest.campaigns,
        result["recall"] or 0.0,
        result["persona_noise_recall"],
        manifest.index_type,
        manifest.index_params,
    )
    return result


def _user_vectors(served: Serving, auctions: list[BidRequest]) -> tuple[np.ndarray, float]:
    """float32 (m, dims) user vectors of the auctions that have one, as the server's Decider blends them
    (the ids pseudonymised first, as the doors do), and the share of auctions whose profile was found."""
    decider = served.decider
    now = time.time()
    found = []
    profiles = 0
    for auction in auctions:
        request = pseudonymised(auction, served.pseudonym)
        decision = Decision(request_id=request.id)
        # The Decider's own step, not a copy of it: the vector is the one the match is given.
        user = decider._user_vector(decision, request, restriction(request), now)
        profiles += decision.profile_outcome == "found"
        if user is not None:
            found.append(user.reshape(-1))
    dims = served.snapshot.bundle.vocab.dims
    vectors = np.ascontiguousarray(np.array(found, dtype=np.float32).reshape(-1, dims))
    return vectors, round(profiles / len(auctions), 4) if auctions else 0.0


def _recall(bundle: IndexBundle, vectors: np.ndarray, users: np.ndarray, k: int) -> float | None:
    if len(users) == 0:
        return None
    truth = exact_neighbours(vectors, users, k)
    # As the server searches (the lists held sparse where they are), at the parameters load_index set.
    _, found = bundle.searcher.search(users, truth.shape[1])
    hits = sum(len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist(), strict=True))
    return round(hits / truth.size, 4)


def index_vectors(bundle: IndexBundle, world_dir: Path) -> np.ndarray:
    """float32 (n, dims) persona vectors of the index, row i being label i."""
    index = bundle.index
    if bundle.manifest.index_type in EXACT_STORAGE:
        try:
            ivf = faiss.extract_index_ivf(index)
        except RuntimeError:
            ivf = None  # not an IVF index
        if ivf is not None:
            ivf.make_direct_map()  # an IVF index reconstructs by label only through its direct map
        return np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)
    return _catalog_personas(world_dir, bundle.manifest.campaigns)


def _catalog_personas(world_dir: Path, campaigns: int) -> np.ndarray:
    """The persona vectors as the index build made them from the world's catalog (worlds.py builds a
    bench world's index from its World's campaigns)."""
    specs, _ = read_world(world_dir).campaigns(campaigns)
    _, personas, _ = build_table(specs)
    return np.ascontiguousarray(personas, dtype=np.float32)
