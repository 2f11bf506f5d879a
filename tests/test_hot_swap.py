"""Live reloads on a real server: new versions swap in, bad ones are refused, and no request fails."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest

from personabid.artifact import MANIFEST, resolve, sha256_file
from personabid.client import sample_request
from personabid.ctr.model import CtrModel
from personabid.decision.pipeline import Decider, Decision
from personabid.index.store import BuildOptions, write_index
from personabid.index.vocab import Vocabulary
from personabid.openrtb.request import BidRequest
from personabid.v1 import admin_pb2 as admin
from personabid.v1 import admin_pb2_grpc as admin_grpc
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World
from tests.conftest import ThreadedServer, server_settings
from tests.steady_load import steady_load


@pytest.fixture
def data(demo_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo world's artifacts, free to gain versions."""
    for name in ("index", "model"):
        shutil.copytree(demo_dir / name, tmp_path / name)
    shutil.copy(demo_dir / "world.json", tmp_path / "world.json")
    return tmp_path


def start(data: Path, watch_seconds: float = 0.0) -> ThreadedServer:
    return ThreadedServer(server_settings(data, watch_seconds=watch_seconds)).start()


@pytest.fixture
def served(data: Path) -> Iterator[ThreadedServer]:
    server = start(data)
    yield server
    server.stop()


def admin_stub(server: ThreadedServer) -> admin_grpc.AdminStub:
    return admin_grpc.AdminStub(grpc.insecure_channel(f"127.0.0.1:{server.server.admin_port}"))


def new_version(data: Path, world: World, prefix: str, count: int = 400) -> str:
    """Write a version whose campaign ids all start with `prefix`, made current; return its name."""
    specs, _ = world.campaigns(count)
    specs = [replace(s, id=f"{prefix}{s.id}") for s in specs]
    return write_index(data / "index", world.vocab, specs, BuildOptions()).name


def test_admin_reload_swaps_in_the_current_version(
    served: ThreadedServer, data: Path, world: World, rng: np.random.Generator
) -> None:
    before = admin_stub(served).GetStatus(admin.StatusRequest()).index.version
    version = new_version(data, world, "new-")
    answer = admin_stub(served).ReloadIndex(admin.ReloadRequest(), timeout=60)
    assert (answer.swapped, answer.version, answer.previous_version) == (True, version, before)
    with grpc.insecure_channel(served.addr) as channel:
        responses = [
            pb_grpc.BidderStub(channel).Bid(sample_request(world, rng), timeout=5) for _ in range(30)
        ]
    bids = [b for r in responses for s in r.seatbid for b in s.bid]
    assert bids and all(b.campaign_id.startswith("new-") for b in bids)


def test_status_reports_versions_counts_and_ages(served: ThreadedServer, data: Path) -> None:
    status = admin_stub(served).GetStatus(admin.StatusRequest(), timeout=5)
    assert status.serving
    assert status.index.version == resolve(data / "index").name
    assert status.model.version == resolve(data / "model").name
    assert status.index.campaigns > 0 and status.index.vectors >= status.index.campaigns
    assert 0 <= status.index.age_seconds < 86_400


def test_watcher_picks_up_a_new_current_version(data: Path, world: World) -> None:
    server = start(data, watch_seconds=0.2)
    try:
        version = new_version(data, world, "watched-")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if admin_stub(server).GetStatus(admin.StatusRequest(), timeout=5).index.version == version:
                break
            time.sleep(0.1)
        assert admin_stub(server).GetStatus(admin.StatusRequest(), timeout=5).index.version == version
    finally:
        server.stop()


def truncate_index(version: Path) -> None:
    data = (version / "personas.faiss").read_bytes()
    (version / "personas.faiss").write_bytes(data[: len(data) // 3])


def wrong_checksum(version: Path) -> None:
    manifest = json.loads((version / MANIFEST).read_text())
    manifest["files"]["campaigns.npz"]["sha256"] = "0" * 64
    (version / MANIFEST).write_text(json.dumps(manifest))


def wrong_dims(version: Path) -> None:
    vocab = json.loads((version / "vocab.json").read_text())
    vocab["tags"].append("interest:one-more")
    (version / "vocab.json").write_text(json.dumps(vocab))
    manifest = json.loads((version / MANIFEST).read_text())
    manifest["files"]["vocab.json"]["sha256"] = sha256_file(version / "vocab.json")
    (version / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("spoil", "check"),
    [
        (truncate_index, "personas.faiss: sha256"),
        (wrong_checksum, "campaigns.npz: sha256"),
        (wrong_dims, "dims"),
    ],
)
def test_bad_version_is_refused_and_the_old_one_keeps_serving(
    served: ThreadedServer,
    data: Path,
    world: World,
    rng: np.random.Generator,
    spoil: Callable[[Path], None],
    check: str,
) -> None:
    before = admin_stub(served).GetStatus(admin.StatusRequest()).index.version
    version = new_version(data, world, "bad-")
    spoil(data / "index" / version)
    with pytest.raises(grpc.RpcError) as refused:
        admin_stub(served).ReloadIndex(admin.ReloadRequest(version=version), timeout=60)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert check in (refused.value.details() or "")
    status = admin_stub(served).GetStatus(admin.StatusRequest(), timeout=5)
    assert status.index.version == before and status.index.reloads_failed == 1
    assert (
        served.server.registry.get_sample_value(
            "personabid_artifact_reloads_total", {"artifact": "index", "outcome": "refused"}
        )
        == 1
    )
    with grpc.insecure_channel(served.addr) as channel:
        assert pb_grpc.BidderStub(channel).Bid(sample_request(world, rng), timeout=5).id


def test_index_with_another_vocabulary_size_is_refused(
    served: ThreadedServer, data: Path, world: World
) -> None:
    small = Vocabulary(world.vocab.tags[:50])
    specs, _ = world.campaigns(100)
    specs = [replace(s, personas=s.personas[:, :50] + 1e-3) for s in specs]
    version = write_index(data / "index", small, specs, BuildOptions()).name
    with pytest.raises(grpc.RpcError) as refused:
        admin_stub(served).ReloadIndex(admin.ReloadRequest(version=version), timeout=60)
    assert world.vocab.dims != 50
    assert f"dims 50 differ from the serving {world.vocab.dims}" in (refused.value.details() or "")


def test_model_reload_swaps_in_a_new_model(served: ThreadedServer, data: Path) -> None:
    model = CtrModel.load(data / "model")
    version = model.save(data / "model").name
    answer = admin_stub(served).ReloadModel(admin.ReloadRequest(), timeout=60)
    assert answer.swapped and answer.version == version


class HeldDecider(Decider):
    """The serving Decider, but each decision waits at its start until the test releases it: a call is
    then provably in flight inside the decision."""

    def __init__(self, serving: Decider) -> None:
        super().__init__(serving.snapshot, serving.settings, serving.clock, serving.spend)
        self.entered = threading.Event()
        self.release = threading.Event()

    def decide(self, request: BidRequest) -> Decision:
        self.entered.set()
        self.release.wait(HOLD_SECONDS)  # bounded: a test that never releases fails on its own checks
        return super().decide(request)


HOLD_SECONDS = 60.0


def bids_of(stub: pb_grpc.BidderStub, requests: list[pb.BidRequest]) -> list[pb.Bid]:
    return [b for r in requests for s in stub.Bid(r, timeout=5).seatbid for b in s.bid]


def test_a_call_inside_the_decision_during_a_swap_finishes_on_the_version_it_started_with(
    served: ThreadedServer, data: Path, world: World
) -> None:
    second = new_version(data, world, "second-")
    requests = [sample_request(world, np.random.default_rng(seed)) for seed in range(30)]
    with grpc.insecure_channel(served.addr) as channel:
        stub = pb_grpc.BidderStub(channel)
        # A request that the serving version bids on, so that its answer shows which version decided it.
        bidding = next(r for r in requests if stub.Bid(r, timeout=5).seatbid)
        held_request = pb.BidRequest()
        held_request.CopyFrom(bidding)
        held_request.id = f"held-{bidding.id}"  # an auction of its own, not a resend of the one above
        held_request.ClearField("tmax")  # the time it is held must not turn its answer into a time-out
        serving = served.server.decider
        assert serving is not None
        held = HeldDecider(serving)
        served.server.decider = held
        with ThreadPoolExecutor(max_workers=1) as caller:
            call = caller.submit(stub.Bid, held_request, timeout=HOLD_SECONDS + 30)
            try:
                assert held.entered.wait(30), "the call never reached the decision"
                # The server's event loop is held inside that decision, so the reload runs here, on a loop
                # of its own: the same verification, warm-up and swap as an Admin reload.
                result = asyncio.run(served.server.reloader.reload("index", second))
                assert result.swapped and result.version == second
                assert not call.done(), "the swap must happen while the call is in flight"
            finally:
                held.release.set()
            answer = call.result(30)
        # Answered, with a bid, by the version it started with.
        held_bids = [b.campaign_id for s in answer.seatbid for b in s.bid]
        assert held_bids and not any(c.startswith("second-") for c in held_bids)
        after = bids_of(
            stub, [sample_request(world, np.random.default_rng(seed)) for seed in range(100, 130)]
        )
    assert after and all(b.campaign_id.startswith("second-") for b in after)


def test_swaps_under_concurrent_bid_load_fail_no_request(
    served: ThreadedServer, data: Path, world: World
) -> None:
    first = admin_stub(served).GetStatus(admin.StatusRequest()).index.version
    second = new_version(data, world, "second-")
    requests = [sample_request(world, np.random.default_rng(seed)) for seed in range(64)]
    with steady_load(served.addr, requests) as load:
        swaps = 0
        for version in (second, first, second, first):
            load.every_worker_answered_again()
            swaps += admin_stub(served).ReloadIndex(admin.ReloadRequest(version=version), timeout=60).swapped
        load.every_worker_answered_again()
    assert swaps == 4
    assert load.failures == []
