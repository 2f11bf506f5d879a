"""Live reloads on a real server: new versions swap in, bad ones are refused, and no request fails."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest

from personabid.artifact import MANIFEST, resolve, sha256_file
from personabid.client import sample_request
from personabid.index.store import BuildOptions, write_index
from personabid.index.vocab import Vocabulary
from personabid.training.model import CtrModel
from personabid.v1 import admin_pb2 as admin
from personabid.v1 import admin_pb2_grpc as admin_grpc
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.world import World
from tests.conftest import ThreadedServer, server_settings


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
    served: ThreadedServer, data: Path, world: World, rng: np.random.Generator, spoil, check: str
) -> None:
    before = admin_stub(served).GetStatus(admin.StatusRequest()).index.version
    version = new_version(data, world, "bad-")
    spoil(data / "index" / version)
    with pytest.raises(grpc.RpcError) as refused:
        admin_stub(served).ReloadIndex(admin.ReloadRequest(version=version), timeout=60)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert check in refused.value.details()
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
    assert "dims 50 differ from the serving 226" in refused.value.details()


def test_model_reload_swaps_in_a_new_model(served: ThreadedServer, data: Path) -> None:
    model = CtrModel.load(data / "model")
    version = model.save(data / "model").name
    answer = admin_stub(served).ReloadModel(admin.ReloadRequest(), timeout=60)
    assert answer.swapped and answer.version == version


def test_reload_under_concurrent_bid_load_fails_no_request(
    served: ThreadedServer, data: Path, world: World
) -> None:
    first = admin_stub(served).GetStatus(admin.StatusRequest()).index.version
    second = new_version(data, world, "second-")
    requests = [sample_request(world, np.random.default_rng(seed)) for seed in range(64)]
    failures: list[str] = []
    answered = [0] * 4
    stop = threading.Event()

    def load(worker: int) -> None:
        with grpc.insecure_channel(served.addr) as channel:
            stub = pb_grpc.BidderStub(channel)
            deadline = time.monotonic() + 60
            for i in range(5000):  # bounded in count and time
                if stop.is_set() or time.monotonic() > deadline:
                    return
                request = requests[(worker * 17 + i) % len(requests)]
                try:
                    response = stub.Bid(request, timeout=5)
                except grpc.RpcError as exc:
                    failures.append(f"{exc.code().name}: {exc.details()}")
                    continue
                if response.id != request.id or not (response.seatbid or response.nbr):
                    failures.append(f"bad response {response}")
                answered[worker] += 1

    workers = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    try:
        swaps = 0
        for version in (second, first, second, first):
            time.sleep(0.3)
            swaps += admin_stub(served).ReloadIndex(admin.ReloadRequest(version=version), timeout=60).swapped
    finally:
        time.sleep(0.3)
        stop.set()
        for w in workers:
            w.join(30)
    assert swaps == 4
    assert sum(answered) > 100
    assert failures == []
