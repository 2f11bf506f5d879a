"""Profiles in Redis, through a real server: found by the request's id, and an outage of that Redis
degrades bids to the context, counted, never an error.

The profiles live in a Redis of their own (profile_redis_url) and the spend state in the server's memory,
so that stopping the profiles' Redis touches nothing but the profiles.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest

from personabid.client import exchange_auction
from personabid.demo import read_people
from personabid.openrtb.codec import encode
from personabid.profiles.artifact import load_profiles
from personabid.profiles.redis_store import RedisProfiles
from personabid.world import World
from tests.conftest import RedisServer, ThreadedServer, server_settings
from tests.http import post_bid


@pytest.fixture
def served(demo_dir: Path, world: World, redis_server: RedisServer) -> Iterator[ThreadedServer]:
    pushed = RedisProfiles(redis_server.url, world.vocab).push(load_profiles(demo_dir / "profiles"))
    assert pushed > 0
    settings = server_settings(demo_dir, profile_store="redis", profile_redis_url=redis_server.url)
    running = ThreadedServer(settings).start()
    yield running
    running.stop()


def request_body(demo_dir: Path, world: World, seed: int) -> bytes:
    # test=1: nothing is reserved, so the same person can be asked for again and again.
    auction = exchange_auction(world, read_people(demo_dir, world), np.random.default_rng(seed))
    return encode(msgspec.structs.replace(auction, test=1))


def sources_of(server: ThreadedServer, body: bytes) -> list[str]:
    reply = post_bid(server.http_addr, body)
    assert reply.status == 200, (reply.status, reply.headers, reply.body[:300])
    return list(reply.json().get("ext", {}).get("sources", []))


def lookups(server: ThreadedServer, outcome: str) -> float:
    with urllib.request.urlopen(server.metrics_url, timeout=10) as answer:
        text = answer.read().decode()
    prefix = f'personabid_profile_lookups_total{{outcome="{outcome}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_a_person_is_matched_on_their_profile_from_redis(
    demo_dir: Path, world: World, served: ThreadedServer
) -> None:
    assert "profile" in sources_of(served, request_body(demo_dir, world, seed=1))
    assert lookups(served, "found") >= 1


def test_a_redis_outage_degrades_to_the_context_and_is_counted(
    demo_dir: Path, world: World, served: ThreadedServer, redis_server: RedisServer
) -> None:
    body = request_body(demo_dir, world, seed=2)
    assert "profile" in sources_of(served, body)
    redis_server.stop()
    before = lookups(served, "unavailable")
    assert sources_of(served, body) == ["context"]
    assert lookups(served, "unavailable") == before + 1
