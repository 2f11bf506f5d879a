"""Parity through a real server's HTTP door: a demo person known by id gets the bids that the same person's
stored profile, sent as a dense user.tag_vector with no id, gets.

The base is a real exchange's request (../shared/openrtb, the IAB's banner example): its own user ids are
dropped, and either the person's raw id is put in user.buyeruid (the server pseudonymises it and finds
the stored profile) or the profile itself is sent as user.tag_vector, in the index vocabulary's order.
Everything else the two requests carry (the page, the device) is the same, so the same context is
blended in. Both are test auctions (`test: 1`): nothing is reserved or counted between them.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from personabid.decision.pipeline import Decider
from personabid.demo import read_people
from personabid.privacy import Pseudonymizer
from personabid.profiles.store import EmbeddedProfiles, open_embedded
from personabid.profiles.suppression import Suppression
from personabid.world import World
from tests.conftest import SHARED, ThreadedServer, server_settings
from tests.http import Reply, post_bid

BASE_REQUEST = SHARED / "openrtb" / "bsm" / "breq.banner.json"
PEOPLE = 10  # people compared
CANDIDATES = 500  # people tried, in a seeded order, to find PEOPLE the server bids for
SEED = 14
PRICE_RELATIVE = 1e-9
SCORE_ABSOLUTE = 1e-6  # a cosine in float32


@pytest.fixture(scope="module")
def base_request() -> dict[str, Any]:
    if not BASE_REQUEST.is_file():
        pytest.skip(f"{BASE_REQUEST} is absent: the shared OpenRTB examples are not checked out")
    request: dict[str, Any] = json.loads(BASE_REQUEST.read_text())
    # Without tmax: the comparison is of two decisions, which a slow moment of a loaded machine must not
    # turn into a no-bid for one of them.
    request.pop("tmax", None)
    return request


@pytest.fixture(scope="module")
def served(
    base_request: dict[str, Any], demo_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedServer]:
    """A server on the demo world, with one moment for every auction: a pair of requests must not
    straddle an hour, which the model scores."""
    events = tmp_path_factory.mktemp("parity") / "events.jsonl"
    settings = server_settings(demo_dir, event_log=events, watch_seconds=0)
    running = ThreadedServer(settings).start()
    try:
        current = running.server.decider
        assert current is not None and current.profiles is not None, "the server loaded no profiles"
        moment = time.time()
        running.server.decider = Decider(
            current.snapshot,
            current.settings,
            clock=lambda: moment,
            spend=current.spend,
            profiles=current.profiles,
        )
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def profiles(served: ThreadedServer, demo_dir: Path) -> tuple[EmbeddedProfiles, Pseudonymizer]:
    """The stored profiles in the served index's vocabulary, and the key that finds them."""
    decider = served.server.decider
    assert decider is not None
    pseudonymize = Pseudonymizer.from_environment(demo_dir / "pseudonym.key")
    store = open_embedded(
        demo_dir / "profiles", decider.snapshot.bundle.vocab, pseudonymize, Suppression(None)
    )
    return store, pseudonymize


def by_id(base: dict[str, Any], person: str) -> dict[str, Any]:
    request = copy.deepcopy(base)
    request.update(id=f"parity-id-{person}", test=1, user={"buyeruid": person})
    return request


def by_profile(base: dict[str, Any], tag_vector: list[float], person: str) -> dict[str, Any]:
    request = copy.deepcopy(base)
    request.update(id=f"parity-profile-{person}", test=1, user={"tag_vector": tag_vector})
    return request


def bids(reply: Reply) -> list[dict[str, Any]]:
    return [bid for seat in reply.json()["seatbid"] for bid in seat["bid"]]


@pytest.fixture(scope="module")
def bid_for(
    served: ThreadedServer, base_request: dict[str, Any], demo_dir: Path, world: World
) -> list[tuple[str, Reply]]:
    """PEOPLE demo people the server bids for by id, with its answer."""
    people = read_people(demo_dir, world)
    order = np.random.default_rng(SEED).permutation(len(people.ids))[:CANDIDATES]
    found: list[tuple[str, Reply]] = []
    for person in (people.ids[i] for i in order.tolist()):
        reply = post_bid(served.http_addr, by_id(base_request, person))
        if reply.status == 200:
            found.append((person, reply))
            if len(found) == PEOPLE:
                return found
    raise AssertionError(f"the server bid for {len(found)} of {len(order)} demo people, not {PEOPLE}")


@pytest.mark.parametrize("n", range(PEOPLE))
def test_an_id_gets_the_bids_its_stored_profile_gets_as_a_tag_vector(
    served: ThreadedServer,
    base_request: dict[str, Any],
    profiles: tuple[EmbeddedProfiles, Pseudonymizer],
    bid_for: list[tuple[str, Reply]],
    n: int,
) -> None:
    person, known = bid_for[n]
    store, pseudonymize = profiles
    profile = store.lookup(pseudonymize(person))
    assert profile is not None, f"{person}: no stored profile"
    dense = np.zeros(store.vocab.dims, dtype=np.float64)
    dense[profile.positions] = profile.weights
    sent = post_bid(served.http_addr, by_profile(base_request, dense.tolist(), person))
    assert sent.status == 200, (
        f"{person}: no bid for the profile as a tag vector (nbr {sent.headers.get('x-nbr')})"
    )

    known_sources, sent_sources = known.json()["ext"]["sources"], sent.json()["ext"]["sources"]
    assert "profile" in known_sources and known_sources == sent_sources, (person, known_sources, sent_sources)
    by_id_bids, by_profile_bids = bids(known), bids(sent)
    assert len(by_id_bids) == len(by_profile_bids), (person, by_id_bids, by_profile_bids)
    for a, b in zip(by_id_bids, by_profile_bids, strict=True):
        assert (a["impid"], a["cid"], a["crid"]) == (b["impid"], b["cid"], b["crid"]), person
        assert a["price"] == pytest.approx(b["price"], rel=PRICE_RELATIVE), (person, a["cid"])
        assert a["ext"]["match_score"] == pytest.approx(b["ext"]["match_score"], abs=SCORE_ABSOLUTE), (
            person,
            a["cid"],
        )
