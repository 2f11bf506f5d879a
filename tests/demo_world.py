"""The one seeded demo world of `make test`: the tests' session world (the `demo_dir` and `world`
fixtures of the root conftest.py), which the benchmarks share when they run untimed."""

from __future__ import annotations

from personabid.demo import DemoSpec

TEST_WORLD = DemoSpec(seed=11, campaigns=2000, impressions=100_000, people=5_000)
