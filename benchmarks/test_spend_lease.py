"""What a worker's keeper pays to lease campaigns' slices from a real Redis: the asks for 500 campaigns
sent one script call each (a campaign at a time, as a keeper with one new candidate asks) against one
script call for all of them (as a fresh worker's keeper asks for the hundreds its first requests meet).
Each round asks again for the same campaigns, whose slices then shrink: the script's work is the same."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from personabid.spend.lease import LeaseAsk
from personabid.spend.redis_store import RedisStore
from tests.conftest import RedisServer

NOW = 1_800_100_800.0
CAMPAIGNS = 500
ASKS = [
    LeaseAsk("2027-01-16", f"c{i}", budget=10**15, smallest=10_000, share=0.001) for i in range(CAMPAIGNS)
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisStore]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    opened = RedisStore(server.url, timeout=5.0)
    yield opened
    opened.close()
    server.stop()


def test_lease_500_campaigns_one_call_each(benchmark: BenchmarkFixture, store: RedisStore) -> None:
    def one_each() -> list[int]:
        return [store.lease("w1", [ask], NOW, NOW - 30.0)[0] for ask in ASKS]

    grants = benchmark(one_each)
    assert len(grants) == CAMPAIGNS and min(grants) > 0


def test_lease_500_campaigns_in_one_call(benchmark: BenchmarkFixture, store: RedisStore) -> None:
    grants = benchmark(store.lease, "w1", ASKS, NOW, NOW - 30.0)
    assert len(grants) == CAMPAIGNS and min(grants) > 0
