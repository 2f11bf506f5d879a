"""A spend store outage is logged once when it starts and once when it ends, not once per request."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from personabid.spend.control import SpendControl, SpendSettings
from personabid.spend.redis_store import RedisStore
from personabid.spend.store import StateUnavailable
from tests.conftest import RedisServer
from tests.test_spend_control import ROWS, Clock, table

START = 1_800_000_000.0
LOGGER = "personabid.spend.control"


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def test_an_outage_writes_one_line_at_its_start_and_one_at_its_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    redis_server = RedisServer(tmp_path).start()
    clock = Clock(START)
    spend = SpendControl(RedisStore(redis_server.url, timeout=0.5), SpendSettings(retry_seconds=1.0), clock)
    campaigns = table(cap=3)
    try:
        assert spend.under_cap(campaigns, ROWS, "u1").tolist() == [True]
        redis_server.stop()
        failures = 0
        for _ in range(20):  # twenty requests meet the outage, each after the retry delay
            clock.now += 1.5
            with pytest.raises(StateUnavailable):
                spend.under_cap(campaigns, ROWS, "u1")
            failures += 1
            assert not spend.probe()
        assert failures == 20
        during = outage_lines(caplog)
        redis_server.start()
        clock.now += 4.0
        assert spend.probe()
        assert spend.under_cap(campaigns, ROWS, "u1").tolist() == [True]
    finally:
        redis_server.stop()
    assert len(during) == 1 and "unreachable" in during[0]
    after = outage_lines(caplog)
    assert (
        len(after) == 2 and "reachable again after 32.5 s" in after[1]
    )  # from the first failure (+1.5 s) to +34 s
    assert spend.outage_started is None
