"""Real exchanges' requests are matched on what they carry: every bid request of ../shared/openrtb (the
IAB's examples: a page's categories, a device's os, an app, segments...), POSTed as it is to the HTTP
door of a real server on the demo world, carries something usable, so none is answered "unmatched user"
(nbr 8); and an answer the match decided names the sources the user vector was blended from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from personabid.decision.reasons import PROGRESS, NoBid
from tests.conftest import SHARED, ThreadedServer, server_settings
from tests.http import call, post_bid

OPENRTB = SHARED / "openrtb"
# No-bid reasons given once the user was matched to campaigns: the answer says what the match used.
MATCHED = {int(reason) for reason in PROGRESS if reason != NoBid.UNMATCHED_USER}


def shared_requests() -> list[Any]:
    found = sorted(OPENRTB.glob("bsm/breq.*.json")) + sorted(OPENRTB.glob("spec-2.5/bid-request--*.json"))
    if not found:
        reason = f"{OPENRTB} holds no bid requests: the shared OpenRTB examples are not checked out"
        return [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(path, id=f"{path.parent.name}/{path.name}") for path in found]


@pytest.fixture(scope="module")
def served(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """A server of its own on the demo world."""
    events = tmp_path_factory.mktemp("shared") / "events.jsonl"
    settings = server_settings(demo_dir, event_log=events, watch_seconds=0)
    running = ThreadedServer(settings).start()
    yield running
    running.stop()


@pytest.mark.parametrize("path", shared_requests())
def test_a_shared_request_is_not_answered_unmatched_user(served: ThreadedServer, path: Path) -> None:
    reply = post_bid(served.http_addr, path.read_bytes())
    assert reply.status in (200, 204), (reply.status, reply.body[:300])
    unmatched = reply.status == 204 and reply.headers.get("x-nbr") == str(int(NoBid.UNMATCHED_USER))
    assert not unmatched, f"{path.name}: answered nbr 8 (unmatched user)"


@pytest.mark.parametrize("path", shared_requests())
def test_a_shared_request_the_match_decided_names_its_sources(served: ThreadedServer, path: Path) -> None:
    # The debug door answers a no-bid 200 with its reason and ext, so that its sources show too.
    reply = call(
        served.http_addr,
        "POST",
        "/openrtb2/bid?debug=1",
        path.read_bytes(),
        {"content-type": "application/json"},
    )
    assert reply.status == 200, (reply.status, reply.body[:300])
    answer = reply.json()
    nbr = answer.get("nbr")
    if "seatbid" in answer or nbr in MATCHED:
        assert answer.get("ext", {}).get("sources"), (
            f"{path.name}: decided (nbr {nbr}) without sources: {answer}"
        )
