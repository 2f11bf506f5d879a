"""Serving computes what training saw: a bid's pCTR equals the trainer's prediction for the impression
as the event log records it, and the demo's simulated log hashes like the decision path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from personabid import wire
from personabid.client import sample_request
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.snapshot import Snapshot
from personabid.demo import simulate_log
from personabid.index.store import load_index
from personabid.privacy import Pseudonymizer
from personabid.training.events import EventWriter, ImpressionEvent
from personabid.training.logs import BadRows, featurize
from personabid.training.source import LogFile
from personabid.world import World


@pytest.fixture(scope="module")
def decider(demo_dir: Path) -> Decider:
    return Decider(Snapshot.load(demo_dir / "index", demo_dir / "model"), DecisionSettings())


def test_server_pctr_equals_the_trainers_prediction_from_the_event_log(
    decider: Decider, world: World, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    table = decider.snapshot.index.campaigns
    served, impressions = [], []
    while len(served) < 20:
        request = wire.to_auction(sample_request(world, rng))
        for bid in decider.decide(request).bids:
            imp = next(i for i in request.impressions if i.id == bid.imp_id)
            served.append(bid.pctr)
            impressions.append(
                ImpressionEvent(
                    ts=1_763_900_000.0 + len(served),
                    user_id=request.user_id,
                    campaign=str(table.campaign_id[bid.campaign_row]),
                    advertiser=str(table.advertiser[bid.campaign_row]),
                    category=str(table.category[bid.campaign_row]),
                    devicetype=request.devicetype,
                    os=request.os,
                    country=request.country,
                    w=imp.w,
                    h=imp.h,
                    match=bid.match_score,
                    pctr=bid.pctr,
                )
            )
    path = tmp_path / "events.jsonl"
    with EventWriter(path, Pseudonymizer(b"p" * 32)) as writer:
        writer.write(impressions)
    model = decider.snapshot.model
    (chunk,) = LogFile(path, "events").chunks(BadRows())
    trained = model.pctr(featurize(model.spec, chunk))
    np.testing.assert_array_equal(trained, np.array(served, dtype=np.float32))


def test_simulated_log_hashes_as_the_decision_path_does_through_the_event_log(
    demo_dir: Path, world: World, tmp_path: Path
) -> None:
    bundle = load_index(demo_dir / "index")
    _, quality = world.campaigns(len(bundle.campaigns))
    simulated = simulate_log(world, bundle, quality, 2_000, np.random.default_rng(3))
    path = tmp_path / "events.jsonl"
    with EventWriter(path, Pseudonymizer(b"p" * 32)) as writer:
        writer.write(simulated.impressions(bundle.campaigns))
    spec = Snapshot.load(demo_dir / "index", demo_dir / "model").model.spec
    (from_log,) = LogFile(path, "events").chunks(BadRows())
    served = simulated.indices(spec, bundle.campaigns)
    np.testing.assert_array_equal(featurize(spec, from_log), served)
    np.testing.assert_array_equal(featurize(spec, simulated.chunk(bundle.campaigns)), served)
