"""The HTTP echo (the floor under the OpenRTB JSON door) and the HTTP load that measures against it.

The echo runs as a real process on 127.0.0.1; the load runs against it for a fraction of a second, and
what is checked is what was counted, never how fast.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest

from personabid.bench import echo_pb2_grpc
from personabid.bench.echo import typical_response as typical_grpc_response
from personabid.bench.histogram import merge
from personabid.bench.http_echo import PATH, typical_response
from personabid.bench.http_load import JSON_ID_PREFIX, json_request_pool, run_load
from personabid.bench.load import LoadResult, LoadSpec
from personabid.bench.processes import HOST
from personabid.bench.requests import RequestStream
from personabid.bench.services import Service, http_echo_command
from personabid.client import sample_request
from personabid.httpdoor import MAX_BODY
from personabid.world import World

JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Echo:
    http: str  # HOST:PORT
    grpc: str  # HOST:PORT, the gRPC echo on the same event loop


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Echo]:
    log = tmp_path_factory.mktemp("http-echo") / "http-echo.log"
    # Port 0: the HTTP address is the one the ready line gives.
    with Service("http-echo", http_echo_command(0, 1), 1, log) as service:
        grpc_addr = service.wait_ready(60)
        assert service.http_addr.startswith(f"{HOST}:") and not service.http_addr.endswith(":0")
        yield Echo(service.http_addr, grpc_addr)


@pytest.fixture(scope="module")
def pool(world: World) -> list[bytes]:
    return json_request_pool(world, 50, seed=1)


def _post(
    echo: Echo, body: bytes, headers: dict[str, str] = JSON, path: str = PATH, method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    host, _, port = echo.http.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def _load(echo: Echo, pool: list[bytes], **overrides: object) -> LoadResult:
    fields: dict[str, object] = {
        "target": echo.http, "service": PATH, "warmup": 0.1, "duration": 0.5, "concurrency": 4, **overrides,
    }  # fmt: skip
    spec = LoadSpec(**fields, start_at=time.monotonic() + 0.3)  # type: ignore[arg-type]
    return asyncio.run(run_load(spec, pool, np.random.default_rng(0)))


def test_a_bid_request_is_answered_with_the_typical_response_as_json(echo: Echo, pool: list[bytes]) -> None:
    status, headers, body = _post(echo, pool[0])
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == typical_response()


def test_requests_follow_one_another_on_a_kept_alive_connection(echo: Echo, pool: list[bytes]) -> None:
    host, _, port = echo.http.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        statuses, sockets = [], []
        for body in pool[:3]:
            connection.request("POST", PATH, body=body, headers=JSON)
            answer = connection.getresponse()
            answer.read()
            statuses.append(answer.status)
            sockets.append(connection.sock)
    finally:
        connection.close()
    assert statuses == [200, 200, 200]
    assert sockets[0] is not None and sockets.count(sockets[0]) == 3


def test_a_gzip_body_is_inflated_before_it_is_decoded(echo: Echo, pool: list[bytes]) -> None:
    status, _, body = _post(echo, gzip.compress(pool[0]), {**JSON, "Content-Encoding": "gzip"})
    assert status == 200 and json.loads(body) == typical_response()


def test_a_gzip_body_that_inflates_past_the_limit_is_refused(echo: Echo) -> None:
    bomb = gzip.compress(b" " * (MAX_BODY + 1))
    assert len(bomb) < 10_000
    status, _, body = _post(echo, bomb, {**JSON, "Content-Encoding": "gzip"})
    assert status == 413 and "over" in json.loads(body)["error"]


def test_a_body_that_is_not_json_is_refused_with_a_json_error(echo: Echo) -> None:
    status, headers, body = _post(echo, b"id=1&imp=2")
    assert status == 400 and headers["content-type"] == "application/json"
    assert "not JSON" in json.loads(body)["error"]


def test_a_json_body_that_is_not_an_object_is_refused(echo: Echo) -> None:
    status, _, body = _post(echo, b"[1, 2]")
    assert status == 400 and "not a BidRequest object" in json.loads(body)["error"]


@pytest.mark.parametrize(
    ("method", "path", "expected"), [("POST", "/openrtb2/auction", 404), ("GET", PATH, 405)]
)
def test_other_paths_and_methods_are_refused(echo: Echo, method: str, path: str, expected: int) -> None:
    status, _, body = _post(echo, b"", path=path, method=method)
    assert status == expected and json.loads(body)["error"]


def test_the_grpc_echo_answers_on_the_same_process(
    echo: Echo, world: World, rng: np.random.Generator
) -> None:
    with grpc.insecure_channel(echo.grpc) as channel:
        answer = echo_pb2_grpc.EchoStub(channel).Bid(sample_request(world, rng), timeout=5)
    assert answer == typical_grpc_response()


def test_each_json_request_of_a_pool_is_sent_with_its_own_auction_id(pool: list[bytes]) -> None:
    stream = RequestStream(pool, 7, JSON_ID_PREFIX)
    sent = [json.loads(stream.next()) for _ in range(2 * len(pool))]
    assert len({r["id"] for r in sent}) == len(sent)
    assert sent[0]["user"] == json.loads(pool[0])["user"]


def test_a_closed_http_loop_counts_every_answer_it_times(echo: Echo, pool: list[bytes]) -> None:
    result = _load(echo, pool, mode="closed")
    latencies = merge([result.histogram]).get_total_count()
    assert result.started > 0 and result.errors == {}
    assert latencies == result.bids == result.started  # the echo always bids


def test_an_open_http_loop_sends_at_the_poisson_rate(echo: Echo, pool: list[bytes]) -> None:
    result = _load(echo, pool, mode="open", rate=400.0, duration=1.0)
    # 400 expected arrivals in the window: Poisson, so within +-5 standard deviations (20) nearly surely.
    assert 300 <= result.started <= 500
    assert result.errors == {} and result.shed == 0


def test_an_http_load_counts_other_statuses_as_failures(echo: Echo, pool: list[bytes]) -> None:
    result = _load(echo, pool, service="/openrtb2/auction", mode="closed")
    assert result.started > 0 and result.bids == 0
    assert result.errors == {"HTTP 404": result.started}


def test_an_http_load_is_unary() -> None:
    spec = LoadSpec(target=f"{HOST}:1", service=PATH, rpc="stream")
    with pytest.raises(ValueError, match="HTTP load is unary"):
        asyncio.run(run_load(spec, [b"{}"], np.random.default_rng(0)))
