"""Any body at all, posted to the HTTP door, is answered 200, 204 or 400: never a 5xx, never an ERROR line.

Bodies are drawn as arbitrary JSON, and as a valid request with values anywhere in it replaced by
arbitrary JSON (the shapes exchanges get wrong: strings for numbers, nulls, objects for lists, huge
numbers). The core is checked the same way in process, over many more examples than the door."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.snapshot import Snapshot
from personabid.errors import InvalidRequest
from personabid.openrtb.codec import decode_request
from tests.conftest import ThreadedServer
from tests.http import post_bid
from tests.openrtb_invalid import BASE

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _paths(child, (*path, i))
    return found


PATHS = _paths(BASE)[1:]


@st.composite
def spoiled_requests(draw: st.DrawFn) -> bytes:
    """The golden base request with one to three of its values replaced by arbitrary JSON."""
    request = copy.deepcopy(BASE)
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3)):
        parent: Any = request
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement took this path away
    return json.dumps(request).encode()


bodies = st.one_of(
    spoiled_requests(),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)


@pytest.fixture(scope="module")
def decider(demo_dir: Path) -> Decider:
    return Decider(Snapshot.load(demo_dir / "index", demo_dir / "model"), DecisionSettings())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_the_core_decides_or_refuses_any_body_naming_a_field(decider: Decider, body: bytes) -> None:
    try:
        decision = decider.decide(decode_request(body))
    except InvalidRequest as refused:
        assert refused.field and str(refused).startswith(refused.field)
        msgspec.json.encode({"value": str(refused.value)})  # the door can always send it back
        return
    assert decision.bids or decision.nbr is not None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_the_door_answers_any_body_200_204_or_400_without_an_error_line(
    server: ThreadedServer, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        reply = post_bid(server.http_addr, body)
    assert reply.status in (200, 204, 400), reply.body[:200]
    if reply.status == 400:
        assert json.loads(reply.body)["error"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
