"""The ready line that harnesses wait for: the server's and the echo service's, parsed in one place."""

from __future__ import annotations

from personabid.bench.processes import Ready, parse_ready


def test_server_ready_line_gives_its_grpc_and_metrics_addresses() -> None:
    line = (
        "2026-11-30 12:00:00,000 INFO personabid.app: personabid ready: grpc=127.0.0.1:5001 "
        "metrics=127.0.0.1:9464 admin=127.0.0.1:5002 campaigns=2000 index=v1 (flat) model=m1, loaded in 1.0s"
    )
    assert parse_ready(line) == Ready("personabid", "127.0.0.1:5001", "127.0.0.1:9464")


def test_echo_ready_line_has_no_metrics_address() -> None:
    line = "2026-11-30 12:00:00,000 INFO personabid.bench.echo: personabid echo ready: grpc=127.0.0.1:5003"
    assert parse_ready(line) == Ready("echo", "127.0.0.1:5003", "")


def test_other_lines_are_not_ready_lines() -> None:
    assert parse_ready("2026-11-30 12:00:00,000 INFO personabid.app: loading the index") is None
