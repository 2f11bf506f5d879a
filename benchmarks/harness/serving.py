"""The bidder's decision parts built from a bench world in this process, as `personabid serve` builds
them (server/app.py, reload.py): the decision settings from the server's defaults, the world's own
pseudonym key, and its profiles looked up where the server looks them up. The profile of one request and
the recall of user-like queries both read the server's path, not a simplified copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss

from personabid.app import decision_settings
from personabid.config import Settings
from personabid.decision.pipeline import Decider
from personabid.decision.snapshot import Snapshot
from personabid.privacy import Pseudonymizer
from personabid.profiles.source import ProfileSource
from personabid.profiles.suppression import Suppression
from personabid.reload import warm_up
from personabid.spend.control import SpendControl


@dataclass(frozen=True)
class Serving:
    """What a server of the world decides with: its Decider and the pseudonymizer of its requests' ids."""

    snapshot: Snapshot
    decider: Decider
    pseudonym: Pseudonymizer
    settings: Settings


def serving(world_dir: Path, spend: SpendControl | None = None) -> Serving:
    """The server's Decider of the world in `world_dir` (its profiles too, where it has any), warmed."""
    faiss.omp_set_num_threads(1)  # as the server runs it (app.BidServer)
    settings = Settings(data_dir=world_dir)
    decisions = decision_settings(settings)
    pseudonym = Pseudonymizer.from_environment(settings.key_file)
    snapshot = Snapshot.load(settings.index, settings.model)
    source = ProfileSource(
        settings.profile_store,
        settings.profiles,
        Suppression(settings.suppression),
        pseudonym,
        timeout_seconds=settings.profile_timeout_ms / 1000.0,
    )
    profiles = source.load() if source.present() else None
    warm_up(Decider(snapshot, decisions))
    store = source.store(snapshot.bundle.vocab, profiles)
    decider = Decider(snapshot, decisions, spend=spend, profiles=store)
    return Serving(snapshot, decider, pseudonym, settings)
