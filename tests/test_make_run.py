"""`make run`, as a newcomer types it: builds the demo world and serves it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from personabid.client import health_status
from tests.conftest import ROOT
from tests.processes import ServerProcess, personabid


@pytest.mark.slow
def test_make_run_builds_the_demo_world_and_serves_bids(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    process = ServerProcess(
        [
            "make",
            "--no-print-directory",
            "run",
            f"DATA={data}",
            f"PYTHON={sys.executable}",
            "SERVE_ARGS=--grpc-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0",
        ],
        cwd=ROOT,
    )
    try:
        addr, _ = process.wait_ready(300)
        assert health_status(addr, "personabid.v1.Bidder", 5) == "SERVING"
        answers = [
            json.loads(
                subprocess.run(
                    personabid(
                        "call", "--sample", "--seed", str(seed), "--data-dir", str(data), "--addr", addr
                    ),
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=True,
                ).stdout
            )
            for seed in range(10)
        ]
        assert any(a.get("seatbid") for a in answers)
    finally:
        process.stop()
