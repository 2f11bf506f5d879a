"""The benchmark worlds: the demo world's generator at the demo's size (10,000 campaigns), and cached
worlds of 100,000 and 1,000,000 campaigns for the benchmarks marked `slow`.

Untimed (`--benchmark-disable`, as `make test` runs them) the benchmarks only have to run and check their
answers, so the 10k ones use the test suite's own session world (the root conftest.py's `demo_dir`)
rather than a second one: one `make test` builds one world. Timed, they build the 10,000-campaign world.

The slow ones build (or reuse, from benchmarks/results/worlds/) catalogs that take minutes: they are
skipped unless PERSONABID_BENCH_SLOW=1 (as `make bench` sets it) or `-m` names the slow marker, so that
`make test`, which runs every benchmark once untimed, stays quick.
"""

from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np
import pytest

from personabid.client import sample_auction
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.snapshot import Snapshot
from personabid.demo import DemoSpec, build_demo, read_world
from personabid.openrtb.request import BidRequest
from personabid.reload import warm_up

BENCH_WORLD = DemoSpec(seed=7, campaigns=10_000, impressions=100_000)
BENCH_DIR = Path(__file__).resolve().parent
SLOW_ENV = "PERSONABID_BENCH_SLOW"
# The harness (personabid.bench, benchmarks/harness/) is a package of the service's distribution, not
# benchmarks to collect; it is imported as personabid.bench only.
collect_ignore = ["harness"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(SLOW_ENV) == "1" or "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason=f"slow (large inputs, long runs): {SLOW_ENV}=1 (make bench) runs it")
    for item in items:
        if "slow" in item.keywords and BENCH_DIR in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def one_faiss_thread() -> None:
    # As the server runs it (app.BidServer): one thread per query, processes for parallelism.
    faiss.omp_set_num_threads(1)


@pytest.fixture(scope="session")
def bench_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if request.config.getoption("benchmark_disable"):
        shared: Path = request.getfixturevalue("demo_dir")
        return shared
    directory = tmp_path_factory.mktemp("bench-world")
    build_demo(directory, BENCH_WORLD)
    return directory


@pytest.fixture(scope="session")
def decider(bench_dir: Path) -> Decider:
    decider = Decider(Snapshot.load(bench_dir / "index", bench_dir / "model"), DecisionSettings())
    # As the server does before serving: a first decision that compiles the kernels would overrun the
    # requests' tmax and check nothing.
    warm_up(decider)
    return decider


@pytest.fixture(scope="session")
def requests(bench_dir: Path) -> list[BidRequest]:
    world = read_world(bench_dir)
    rng = np.random.default_rng(2026)
    return [sample_auction(world, rng) for _ in range(512)]
