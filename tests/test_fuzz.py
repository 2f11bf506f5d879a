"""A short run of the request fuzzer (tests/fuzz_request.py) in the suite; `make fuzz` runs it longer."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Bounds of the short run, whichever comes first: enough for libFuzzer to go through the seed corpus and
# mutate it for a while; `make fuzz` gives it FUZZ_SECONDS.
FUZZ_SECONDS = 30
FUZZ_RUNS = 200_000


@pytest.mark.slow
def test_fuzzed_requests_are_decided_or_refused_never_crash(demo_dir: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.fail("atheris is missing: `pip install -e .[dev]` installs it")
    corpus = tmp_path / "corpus"
    run = subprocess.run(
        [
            sys.executable, "-m", "tests.fuzz_request", "--world", str(demo_dir), "--corpus", str(corpus),
            f"-max_total_time={FUZZ_SECONDS}", f"-runs={FUZZ_RUNS}", "-seed=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 300,  # the run itself, plus loading the world and compiling the kernels
    )  # fmt: skip
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert run.returncode == 0 and not crashes, f"{crashes}\n{run.stderr[-6000:]}"
    done = re.search(r"Done (\d+) runs", run.stderr)
    seeds = len(list(corpus.iterdir()))
    assert done is not None and seeds > 0 and int(done.group(1)) >= seeds, run.stderr[-2000:]
