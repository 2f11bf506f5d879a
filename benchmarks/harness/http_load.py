"""HTTP load, beside load.py's gRPC load: OpenRTB JSON requests POSTed to a path, closed or open loop.

The windows, bounds, counts and latencies are load.py's (LoadSpec, LoadResult, its tally and its loops);
what differs is the wire:

- `spec.target` is HOST:PORT and `spec.service` the URL path (`/openrtb2/bid`); `spec.rpc` is "unary".
- HTTP/1.1 carries one call at a time per connection, so a load process keeps at most `spec.concurrency`
  keep-alive connections. In an open loop, arrivals beyond them wait for one, and the wait is part of
  their latency, as behind an exchange's bounded connection pool to a bidder.
- 200 (a BidResponse: a bid when its seatbid is not empty, else a no-bid with its nbr) and 204 (a no-bid,
  reason in the X-Nbr header) are answers; any other status is a failure, counted as "HTTP <status>";
  a call past its deadline as "DEADLINE_EXCEEDED", a refused or broken connection as "UNAVAILABLE".

Requests are demo-world users as OpenRTB JSON, encoded once by the HTTP door's own codec (so the body is
what the door reads), each sent with a fresh id (as requests.py does for the protobuf ones). The client
does not offer to take gzip (aiohttp would, by default): the door would then compress its bids and the
echo would not, and the comparison would be of gzip.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import Any

import aiohttp
import msgspec
import numpy as np

from personabid.bench.load import (
    CONNECT_TIMEOUT,
    LoadResult,
    LoadSpec,
    _client_cpu,
    _closed_unary,
    _open_unary,
    _sleep_until,
    _Tally,
)
from personabid.bench.requests import ID_LENGTH, RequestStream
from personabid.client import sample_auction
from personabid.openrtb.codec import encode
from personabid.world import World

JSON_ID_PREFIX = b'{"id":"'  # the codec writes fields in their order, and id is BidRequest's first
JSON_HEADERS = {"Content-Type": "application/json"}
_decode = msgspec.json.Decoder()


def json_request_pool(world: World, count: int, seed: int) -> list[bytes]:
    """`count` BidRequests as compact OpenRTB JSON, for random users of `world`."""
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(count):
        body = encode(sample_auction(world, rng))
        if not body.startswith(JSON_ID_PREFIX) or body[len(JSON_ID_PREFIX) + ID_LENGTH] != ord('"'):
            raise ValueError("a JSON request template does not start with its 32-character id")
        pool.append(body)
    return pool


class _HttpTally(_Tally):
    def answered_http(self, began: float, status: int, raw: bytes, nbr: str | None) -> None:
        if status not in (200, 204):
            self.failed(began, f"HTTP {status}")
            return
        if not self.arrived(began, len(raw)):
            return
        if status == 200:
            response = _decode.decode(raw)
            if response.get("seatbid"):
                self.result.bids += 1
                return
            reason = int(response.get("nbr", 0))
        else:
            reason = int(nbr) if nbr is not None and nbr.isdigit() else 0
        self.result.no_bids[reason] = self.result.no_bids.get(reason, 0) + 1


async def _http_call(post: Any, request: bytes, began: float, tally: _Tally, timeout: float) -> None:
    assert isinstance(tally, _HttpTally)
    try:
        async with post(data=request, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            raw = await response.read()
            status, nbr = response.status, response.headers.get("X-Nbr")
    except TimeoutError:  # aiohttp's timeouts are TimeoutErrors (ServerTimeoutError too)
        tally.failed(began, "DEADLINE_EXCEEDED")
    except aiohttp.ClientError:
        tally.failed(began, "UNAVAILABLE")
    else:
        tally.answered_http(began, status, raw, nbr)


async def run_load(spec: LoadSpec, pool: list[bytes], rng: np.random.Generator) -> LoadResult:
    """Run `spec` (HTTP) against its target; returns what the measured window saw."""
    if spec.rpc != "unary":
        raise ValueError(f"rpc={spec.rpc!r}: HTTP load is unary")
    if not spec.service.startswith("/"):
        raise ValueError(f"service={spec.service!r}: for HTTP load, the URL path (such as /openrtb2/bid)")
    requests = RequestStream(pool, spec.id_prefix, JSON_ID_PREFIX)
    tally = _HttpTally(spec)
    connector = aiohttp.TCPConnector(limit=spec.concurrency)
    async with aiohttp.ClientSession(
        connector=connector, headers=JSON_HEADERS, skip_auto_headers=("Accept-Encoding",)
    ) as session:
        post = functools.partial(session.post, f"http://{spec.target}{spec.service}")
        await _reachable(post, spec.target)
        cpu = asyncio.create_task(_client_cpu(tally))
        await _sleep_until(spec.start_at)
        run = _closed_unary if spec.mode == "closed" else _open_unary
        await run(spec, [post], requests, tally, rng, call=_http_call)
        cpu.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cpu
    tally.result.histogram = tally.histogram.encode()
    tally.result.send_lag = tally.send_lag.encode()
    return tally.result


async def _reachable(post: Any, target: str) -> None:
    """Fail early, and plainly, when nothing answers HTTP at the target (as channel_ready does for gRPC)."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        try:
            async with post(data=b"{}", timeout=aiohttp.ClientTimeout(total=CONNECT_TIMEOUT)) as response:
                await response.read()
                return
        except (aiohttp.ClientError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise ConnectionError(f"no HTTP server answers at {target}: {exc}") from exc
            await asyncio.sleep(0.1)


def run_in_loop(spec: LoadSpec, pool: list[bytes], seed: int) -> LoadResult:
    return asyncio.run(run_load(spec, pool, np.random.default_rng(seed)))
