"""The `personabid` command line, run as a real process against a real server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from google.protobuf import json_format

from personabid.demo import WORLD_FILE, is_built
from personabid.v1 import bidder_pb2 as pb
from tests.conftest import ThreadedServer
from tests.processes import personabid


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        personabid(*args),
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "command", ["serve", "demo", "call", "health", "admin", "index build", "index inspect"]
)
def test_every_command_has_help(command: str) -> None:
    result = run(*command.split(), "--help")
    assert result.returncode == 0
    assert f"usage: personabid {command}" in result.stdout


def test_dry_run_prints_a_bid_request_as_json(demo_dir: Path) -> None:
    result = run("call", "--sample", "--seed", "3", "--data-dir", str(demo_dir), "--dry-run")
    assert result.returncode == 0, result.stderr
    request = json_format.Parse(result.stdout, pb.BidRequest())
    # What an exchange sends: the person's id and the context, no tags.
    assert request.imp and request.user.buyeruid.startswith("demo-user-") and not request.user.tags
    assert request.site.cat


def test_dry_run_with_tags_sends_the_persons_tags_and_no_id(demo_dir: Path) -> None:
    result = run("call", "--sample", "--tags", "--seed", "3", "--data-dir", str(demo_dir), "--dry-run")
    assert result.returncode == 0, result.stderr
    request = json_format.Parse(result.stdout, pb.BidRequest())
    assert request.user.tags and not request.user.buyeruid


def test_call_sample_prints_the_response_as_json(demo_dir: Path, server: ThreadedServer) -> None:
    result = run("call", "--sample", "--seed", "3", "--data-dir", str(demo_dir), "--addr", server.addr)
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["seatbid"] or response["nbr"]


def test_call_reaches_the_server_named_by_the_environment(demo_dir: Path, server: ThreadedServer) -> None:
    result = run("call", "--sample", "--data-dir", str(demo_dir), env={"PERSONABID_GRPC_ADDR": server.addr})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"]


def test_call_sends_a_request_given_as_json_on_stdin(demo_dir: Path, server: ThreadedServer) -> None:
    dry = run("call", "--sample", "--seed", "5", "--data-dir", str(demo_dir), "--dry-run").stdout
    result = run("call", "-", "--addr", server.addr, stdin=dry)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == json.loads(dry)["id"]


def test_call_reports_an_invalid_request_with_its_field(
    demo_dir: Path, server: ThreadedServer, tmp_path: Path
) -> None:
    request = tmp_path / "bad.json"
    request.write_text(json.dumps({"id": "x", "tmax": -3, "imp": [{"id": "1", "banner": {}}]}))
    result = run("call", str(request), "--addr", server.addr)
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr and "tmax=-3" in result.stderr


def test_call_rejects_json_that_is_not_a_bid_request(tmp_path: Path) -> None:
    request = tmp_path / "bad.json"
    request.write_text(json.dumps({"id": "x", "imp": "not a list"}))
    result = run("call", str(request), "--dry-run")
    assert result.returncode == 2
    assert "imp" in result.stderr


def test_health_command_exits_0_when_serving(server: ThreadedServer) -> None:
    result = run("health", "--addr", server.addr)
    assert result.returncode == 0
    assert result.stdout.strip() == "SERVING"


def test_health_command_fails_when_nothing_listens() -> None:
    assert run("health", "--addr", "127.0.0.1:1", "--timeout", "0.5").returncode == 1


def test_call_http_posts_the_sample_to_the_http_door(demo_dir: Path, server: ThreadedServer) -> None:
    result = run(
        "call", "--http", "--sample", "--seed", "3", "--data-dir", str(demo_dir), "--addr", server.http_addr
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer.get("seatbid") or answer.get("nbr")


def test_call_http_reaches_the_door_named_by_the_environment(demo_dir: Path, server: ThreadedServer) -> None:
    result = run(
        "call",
        "--http",
        "--sample",
        "--data-dir",
        str(demo_dir),
        env={"PERSONABID_HTTP_ADDR": server.http_addr},
    )
    assert result.returncode == 0, result.stderr


def test_call_http_reports_the_doors_refusal_with_its_field(server: ThreadedServer, tmp_path: Path) -> None:
    request = tmp_path / "bad.json"
    request.write_text(json.dumps({"id": "x", "tmax": -3, "imp": [{"id": "1", "banner": {}}]}))
    result = run("call", "--http", str(request), "--addr", server.http_addr)
    assert result.returncode == 1
    assert "HTTP 400" in result.stderr and "tmax=-3" in result.stderr


def test_demo_if_missing_rebuilds_a_world_of_an_earlier_format(tmp_path: Path) -> None:
    (tmp_path / "index").mkdir()
    (tmp_path / "model").mkdir()
    for marker in ("index/CURRENT", "model/CURRENT"):
        (tmp_path / marker).write_text("v1\n")
    (tmp_path / WORLD_FILE).write_text(json.dumps({"seed": 7, "campaigns": 10, "segments": 4}))
    assert not is_built(tmp_path)
