"""Privacy decides what may be used, not whether to bid: through a real server's HTTP door, a request the
user may not be profiled on (COPPA, the GDPR without consent, do-not-track, limit-ad-tracking) is bid on
its context alone, and the profile store is never read for it.

The server serves a small catalog of its own (a sports, a travel and a food campaign over the standard
vocabulary), so that what the context matches is known.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from personabid.ctr.features import FeatureSpec
from personabid.ctr.model import CtrModel
from personabid.decision.pipeline import Decider
from personabid.index.campaigns import CampaignSpec, Creative
from personabid.index.store import BuildOptions, write_index
from personabid.index.vocab import Vocabulary
from personabid.profiles.store import Profile
from personabid.profiles.taxonomy import standard
from tests.conftest import ThreadedServer, server_settings
from tests.http import post_bid
from tests.tcf import tc_string

PERSONAS = {
    "sports": {"interest:sports": 1.0, "interest:sports/soccer": 0.6, "device:ios": 0.3},
    "travel": {"interest:travel": 1.0, "region:GBR": 0.5},
    "food": {"interest:food-and-drink": 1.0, "age:35-39": 0.4},
}


def small_catalog(vocab: Vocabulary) -> list[CampaignSpec]:
    specs = []
    for name, weights in PERSONAS.items():
        persona = vocab.dense(weights)
        specs.append(
            CampaignSpec(
                id=name,
                advertiser=f"{name}-co",
                adomain=f"{name}.example",
                category="IAB17" if name == "sports" else "IAB20",
                base_bid=2.0,
                max_bid=5.0,
                personas=(persona / np.linalg.norm(persona)).reshape(1, -1),
                creatives=(
                    Creative(
                        id=f"{name}-1",
                        w=300,
                        h=250,
                        image=f"https://{name}.example/ad.png",
                        landing=f"https://{name}.example/",
                    ),
                ),
                min_match=0.3,
            )
        )
    return specs


def write_small_world(directory: Path) -> Path:
    """A data directory with the small catalog's index and a model that knows nothing (every pCTR the
    same), so that the match alone decides who bids."""
    vocab = standard().vocabulary()
    write_index(directory / "index", vocab, small_catalog(vocab), BuildOptions())
    spec = FeatureSpec(fields=("campaign", "slot"), crosses=(), bits=8)
    CtrModel(spec, np.zeros(spec.size + 1, dtype=np.float32), (1.0, 0.0), 0.02).save(directory / "model")
    return directory


class RecordingProfiles:
    """A profile store that knows every user as a food lover, and records whom it was asked about."""

    version = "test"

    def __init__(self, vocab: Vocabulary) -> None:
        self.lookups: list[str] = []
        position = vocab.position("interest:food-and-drink")
        self.profile = Profile(
            np.array([position], dtype=np.int32), np.ones(1, np.float32), np.ones(1, np.uint16)
        )

    def lookup(self, pseudonym: str) -> Profile | None:
        self.lookups.append(pseudonym)
        return self.profile


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadedServer, RecordingProfiles]]:
    directory = write_small_world(tmp_path_factory.mktemp("small-world"))
    running = ThreadedServer(server_settings(directory)).start()
    current = running.server.decider
    assert current is not None
    profiles = RecordingProfiles(current.snapshot.bundle.vocab)
    running.server.decider = Decider(
        current.snapshot, current.settings, spend=current.spend, profiles=profiles
    )
    yield running, profiles
    running.stop()


def sports_page(**fields: Any) -> dict[str, Any]:
    """An OpenRTB request from a known user (the store would say: food) on a sports page, on an iPhone
    in the USA."""
    request: dict[str, Any] = {
        "id": "r1",
        "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}],
        "site": {"id": "s", "page": "https://sports.example/match", "cat": ["IAB17"]},
        "device": {"os": "iOS", "devicetype": 4, "geo": {"country": "USA"}, "ifa": "raw-device-id"},
        "user": {"buyeruid": "raw-buyer-id", "gender": "F", "yob": 1988},
        "test": 1,
    }
    for name, value in fields.items():
        request[name] = {**request.get(name, {}), **value}
    return request


def bid_campaigns(server: ThreadedServer, request: dict[str, Any]) -> list[str]:
    reply = post_bid(server.http_addr, request)
    assert reply.status == 200, (reply.status, reply.headers.get("x-nbr"))
    return [bid["cid"] for seat in reply.json()["seatbid"] for bid in seat["bid"]]


RESTRICTED: dict[str, dict[str, Any]] = {
    "coppa": {"regs": {"coppa": 1}},
    "gdpr without consent": {"regs": {"gdpr": 1}},
    "gdpr refusing personalised ads": {"regs": {"gdpr": 1}, "user": {"consent": tc_string({1, 3})}},
    "dnt": {"device": {"dnt": 1}},
    "lmt": {"device": {"lmt": 1}},
}


@pytest.mark.parametrize("restriction", list(RESTRICTED))
def test_a_restricted_request_is_bid_on_its_context_without_reading_the_profile(
    served: tuple[ThreadedServer, RecordingProfiles], restriction: str
) -> None:
    server, profiles = served
    profiles.lookups.clear()
    assert bid_campaigns(server, sports_page(**RESTRICTED[restriction])) == ["sports"]
    assert profiles.lookups == []


def test_an_unrestricted_request_reads_the_profile_and_is_matched_on_it(
    served: tuple[ThreadedServer, RecordingProfiles],
) -> None:
    # The same request the restricted ones are: the store is read, and its profile outweighs the page.
    server, profiles = served
    profiles.lookups.clear()
    assert bid_campaigns(server, sports_page()) == ["food"]
    assert len(profiles.lookups) == 1 and "raw-buyer-id" not in profiles.lookups


def test_consent_to_personalised_ads_lets_the_profile_be_read(
    served: tuple[ThreadedServer, RecordingProfiles],
) -> None:
    server, profiles = served
    profiles.lookups.clear()
    consented = sports_page(regs={"gdpr": 1}, user={"consent": tc_string({1, 3, 4})})
    assert bid_campaigns(server, consented) == ["food"]
    assert len(profiles.lookups) == 1
