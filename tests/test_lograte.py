"""Lines that clients can cause are written at a bounded rate, and the next line says what was left out."""

from __future__ import annotations

import logging

import pytest

from personabid.lograte import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited(caplog: pytest.LogCaptureFixture) -> tuple[RateLimitedLog, Clock, pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="test.lograte")
    clock = Clock()
    return (
        RateLimitedLog(logging.getLogger("test.lograte"), interval=10.0, burst=3, clock=clock),
        clock,
        caplog,
    )


def test_a_burst_is_written_then_the_rest_of_the_interval_is_held_back(
    limited: tuple[RateLimitedLog, Clock, pytest.LogCaptureFixture],
) -> None:
    log, _, caplog = limited
    written = [log.log(logging.WARNING, "bad", "bad request %d", i) for i in range(1000)]
    assert written[:3] == [True, True, True] and not any(written[3:])
    assert [r.getMessage() for r in caplog.records] == ["bad request 0", "bad request 1", "bad request 2"]


def test_the_first_line_of_the_next_interval_counts_what_was_left_out(
    limited: tuple[RateLimitedLog, Clock, pytest.LogCaptureFixture],
) -> None:
    log, clock, caplog = limited
    for i in range(10):
        log.log(logging.WARNING, "bad", "bad request %d", i)
    clock.now += 10.0
    assert log.log(logging.WARNING, "bad", "bad request %d", 10)
    assert caplog.records[-1].getMessage() == "bad request 10 (7 similar line(s) left out)"


def test_each_kind_has_its_own_allowance(
    limited: tuple[RateLimitedLog, Clock, pytest.LogCaptureFixture],
) -> None:
    log, _, _ = limited
    for i in range(5):
        log.log(logging.WARNING, "bad", "bad request %d", i)
    assert log.log(logging.ERROR, "failed", "a failure")
