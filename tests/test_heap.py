"""A loaded server keeps its artifacts out of the cyclic garbage collector's full collections."""

from __future__ import annotations

import gc

from tests.conftest import ThreadedServer


def test_what_the_server_loaded_is_frozen_out_of_full_collections(server: ThreadedServer) -> None:
    # The session's server has loaded its index, model, taxonomy and profiles: tens of thousands of
    # objects the collector no longer walks.
    assert gc.get_freeze_count() > 10_000
