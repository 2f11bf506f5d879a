"""Fixtures shared by tests/ and benchmarks/: the one demo world a `make test` session builds.

Here, at the root, rather than in tests/conftest.py, so that both folders see the same session-scoped
fixture (a fixture defined or imported in two conftest files would be built once for each).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from personabid.demo import build_demo, read_world
from personabid.world import World
from tests.demo_world import TEST_WORLD


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("world")
    build_demo(directory, TEST_WORLD)
    return directory


@pytest.fixture(scope="session")
def world(demo_dir: Path) -> World:
    return read_world(demo_dir)
