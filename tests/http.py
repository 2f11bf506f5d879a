"""An HTTP client for the tests of the HTTP door: one request, the answer's status, headers and body."""

from __future__ import annotations

import gzip
import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 10.0


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    addr: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Reply:
    """One request to HOST:PORT `addr`, on a connection of its own; a gzip answer is inflated."""
    connection = http.client.HTTPConnection(addr, timeout=TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        payload = answer.read()
        found = {k.lower(): v for k, v in answer.getheaders()}
    finally:
        connection.close()
    if found.get("content-encoding") == "gzip":
        payload = gzip.decompress(payload)
    return Reply(answer.status, found, payload)


def post_bid(addr: str, body: bytes | dict[str, Any], **headers: str) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return call(addr, "POST", "/openrtb2/bid", data, {"content-type": "application/json", **headers})


def fetch(url: str) -> Reply:
    """GET a notice URL as an exchange does, once its macros are substituted."""
    parts = urlsplit(url)
    return call(parts.netloc, "GET", f"{parts.path}?{parts.query}")
