"""Serving computes what training saw: a bid's pCTR equals the model's prediction for the impression as
the server's own event log records it, and the demo's simulated log hashes like the decision path."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np

from personabid.client import sample_request
from personabid.ctr.features import DEFAULT_SPEC, NO_TAG, FeatureSpec
from personabid.ctr.model import CtrModel
from personabid.decision.snapshot import Snapshot
from personabid.demo import simulate_log
from personabid.index.bundle import load_index
from personabid.privacy import Pseudonymizer
from personabid.training.events import EventWriter
from personabid.training.logs import BadRows, Chunk, featurize
from personabid.training.source import LogFile
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World
from tests.conftest import ThreadedServer, server_settings


def served_and_logged(
    model_path: Path, index_path: Path, world: World, tmp_path: Path
) -> tuple[np.ndarray, Chunk]:
    """A real server on the model at `model_path`: the pCTRs of 20 bids it made, and the rows its own
    event log recorded when those bids were won."""
    log = tmp_path / "events.jsonl"
    server = ThreadedServer(
        server_settings(tmp_path, index_path=index_path, model_path=model_path, event_log=log)
    ).start()
    served: list[float] = []
    try:
        with grpc.insecure_channel(server.addr) as channel:
            stub = pb_grpc.BidderStub(channel)
            for seed in range(500):
                request = sample_request(world, np.random.default_rng(seed))
                for bid in (b for seat in stub.Bid(request, timeout=5).seatbid for b in seat.bid):
                    win = pb.Event(
                        type=pb.Event.WIN, auction_id=request.id, imp_id=bid.impid, bid_id=bid.id,
                        campaign_id=bid.campaign_id, price=bid.price,
                    )  # fmt: skip
                    assert stub.NotifyOne(win, timeout=5).accepted == 1
                    served.append(bid.pctr)
                if len(served) >= 20:
                    break
    finally:
        server.stop()
    # Without bids, the comparisons below would compare empty arrays and pass.
    assert len(served) >= 20, f"{len(served)} bids in 500 requests"
    # The server writes a file per day of its clock: one, unless the test ran across midnight UTC.
    whole = tmp_path / "whole-log.jsonl"
    whole.write_text("".join(day.read_text() for day in sorted(tmp_path.glob("events-*.jsonl"))))
    (chunk,) = LogFile(whole, "events").chunks(BadRows())
    return np.array(served, dtype=np.float32), chunk


def test_server_pctr_equals_the_trainers_prediction_from_the_servers_own_event_log(
    demo_dir: Path, world: World, tmp_path: Path
) -> None:
    served, logged = served_and_logged(demo_dir / "model", demo_dir / "index", world, tmp_path)
    model = CtrModel.load(demo_dir / "model")
    np.testing.assert_array_equal(model.pctr(featurize(model.spec, logged)), served)


def test_parity_holds_with_hour_weekday_and_user_tag_features(
    demo_dir: Path, world: World, tmp_path: Path
) -> None:
    spec = FeatureSpec(
        fields=(*DEFAULT_SPEC.fields, "hour", "weekday", "tags"),
        crosses=(("hour", "country"), ("tags", "campaign")),
        bits=16,
        match_buckets=DEFAULT_SPEC.match_buckets,
        tag_slots=6,
    )
    # Every hashed feature weighs something, so that any feature computed differently shows in the pCTR.
    weights = np.random.default_rng(8).normal(0.0, 0.5, spec.size + 1).astype(np.float32)
    model = CtrModel(spec=spec, weights=weights, calibration=(1.0, -3.0), avg_ctr=0.05, version="")
    model.save(tmp_path / "model")
    served, logged = served_and_logged(tmp_path / "model", demo_dir / "index", world, tmp_path)
    assert (logged.tokens["tags"][:, 0] != NO_TAG).all()  # the users' tags were logged
    np.testing.assert_array_equal(model.pctr(featurize(spec, logged)), served)


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
