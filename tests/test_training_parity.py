"""Serving computes what training saw: a bid's pCTR equals the trainer's prediction for the impression
as the event log records it, and the demo's simulated log hashes like the decision path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from personabid import wire
from personabid.client import sample_request
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.snapshot import Snapshot
from personabid.demo import simulate_log
from personabid.index.store import load_index
from personabid.privacy import Pseudonymizer
from personabid.training.events import EventWriter, ImpressionEvent
from personabid.training.features import DEFAULT_SPEC, FeatureSpec
from personabid.training.logs import BadRows, featurize
from personabid.training.model import CtrModel
from personabid.training.source import LogFile
from personabid.world import World


def served_and_retrained(decider: Decider, world: World, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """pCTRs of 20 bids as the server made them, and as the model predicts them from the event log
    those bids' impressions were written to (with the moment the decider's clock gave each auction)."""
    rng = np.random.default_rng(5)
    table = decider.snapshot.index.campaigns
    served, impressions = [], []
    while len(served) < 20:
        request = wire.to_auction(sample_request(world, rng))
        decision = decider.decide(request)
        for bid in decision.bids:
            imp = next(i for i in request.impressions if i.id == bid.imp_id)
            served.append(bid.pctr)
            impressions.append(
                ImpressionEvent(
                    ts=float(decider.clock.last),  # type: ignore[attr-defined]
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
    with EventWriter(path, Pseudonymizer(b"p" * 32)) as writer:
        writer.write(impressions)
    model = decider.snapshot.model
    (chunk,) = LogFile(path, "events").chunks(BadRows())
    return np.array(served, dtype=np.float32), model.pctr(featurize(model.spec, chunk))


class SteppingClock:
    """A clock that moves 47 minutes and a second on at each reading, so auctions fall in many hours and
    weekdays; `last` is the latest reading."""

    def __init__(self, start: float = 1_763_900_000.5) -> None:
        self.last = start

    def __call__(self) -> float:
        self.last += 47 * 60 + 1
        return self.last


def test_server_pctr_equals_the_trainers_prediction_from_the_event_log(
    demo_dir: Path, world: World, tmp_path: Path
) -> None:
    snapshot = Snapshot.load(demo_dir / "index", demo_dir / "model")
    decider = Decider(snapshot, DecisionSettings(), clock=SteppingClock())
    served, retrained = served_and_retrained(decider, world, tmp_path / "events.jsonl")
    np.testing.assert_array_equal(retrained, served)


def test_server_pctr_equals_the_trainers_prediction_with_hour_and_weekday_features(
    demo_dir: Path, world: World, tmp_path: Path
) -> None:
    demo = Snapshot.load(demo_dir / "index", demo_dir / "model")
    spec = FeatureSpec(
        fields=(*DEFAULT_SPEC.fields, "hour", "weekday"),
        crosses=(("hour", "country"), ("weekday", "slot")),
        bits=16,
        match_buckets=DEFAULT_SPEC.match_buckets,
    )
    # Every hashed feature weighs something, so that any feature computed differently shows in the pCTR.
    weights = np.random.default_rng(8).normal(0.0, 0.5, spec.size + 1).astype(np.float32)
    model = CtrModel(spec=spec, weights=weights, calibration=(1.0, -3.0), avg_ctr=0.05, version="timed")
    decider = Decider(Snapshot(index=demo.index, model=model), DecisionSettings(), clock=SteppingClock())
    served, retrained = served_and_retrained(decider, world, tmp_path / "events.jsonl")
    np.testing.assert_array_equal(retrained, served)


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
