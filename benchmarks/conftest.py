"""The benchmark world: the demo world's generator at the demo's size (10,000 campaigns)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from personabid import wire
from personabid.client import sample_request
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.request import AuctionRequest
from personabid.decision.snapshot import Snapshot
from personabid.demo import DemoSpec, build_demo, read_world

BENCH_WORLD = DemoSpec(seed=7, campaigns=10_000, impressions=100_000)


@pytest.fixture(scope="session", autouse=True)
def one_faiss_thread() -> None:
    # As the server runs it (app.BidServer): one thread per query, processes for parallelism.
    faiss.omp_set_num_threads(1)


@pytest.fixture(scope="session")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bench-world")
    build_demo(directory, BENCH_WORLD)
    return directory


@pytest.fixture(scope="session")
def decider(bench_dir: Path) -> Decider:
    return Decider(Snapshot.load(bench_dir / "index", bench_dir / "model"), DecisionSettings())


@pytest.fixture(scope="session")
def requests(bench_dir: Path) -> list[AuctionRequest]:
    world = read_world(bench_dir)
    rng = np.random.default_rng(2026)
    return [wire.to_auction(sample_request(world, rng)) for _ in range(512)]
