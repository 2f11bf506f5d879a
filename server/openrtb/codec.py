"""OpenRTB JSON in and out: bytes to the core's BidRequest and a BidResponse to bytes.

msgspec decodes straight into the typed objects in one pass, checking each value's JSON type on the way
(in C, a few microseconds for a typical request), and names the path of a value of the wrong type; this
module turns that into the same InvalidRequest that validation raises, with the value read back from the
body. Unknown fields are ignored, as OpenRTB asks of a bidder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from personabid.errors import InvalidRequest
from personabid.openrtb.request import BidRequest, Eid, Uid
from personabid.openrtb.response import BidResponse
from personabid.openrtb.validation import validate_ids

_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _decode_hook(kind: type, value: Any) -> Any:
    if kind is np.ndarray:  # user.tag_vector: float64 here, so that validation sees values beyond float32
        if not isinstance(value, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise ValueError("Expected an array of numbers")
        return np.asarray(value, dtype=np.float64)
    raise NotImplementedError(kind)


def _encode_hook(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise NotImplementedError(type(value))


_request_decoder = msgspec.json.Decoder(BidRequest, dec_hook=_decode_hook)
_encoder = msgspec.json.Encoder(enc_hook=_encode_hook)


def decode_request(body: bytes) -> BidRequest:
    """The request in `body`, or InvalidRequest naming the first value of the wrong JSON type."""
    try:
        return _request_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc), body) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest("(body)", _excerpt(body), f"not valid JSON: {exc}") from None
    except RecursionError:  # msgspec's bound on nesting, in the body or in an ext object it skips
        raise InvalidRequest("(body)", _excerpt(body), "nested too deeply to be an OpenRTB request") from None


def encode(value: BidRequest | BidResponse) -> bytes:
    return _encoder.encode(value)


def decode_response(body: bytes) -> BidResponse:
    return msgspec.json.decode(body, type=BidResponse)


def pseudonymised(request: BidRequest, pseudonym: Callable[[str], str]) -> BidRequest:
    """`request` with every user and device id replaced by its keyed hash: the raw ids go no further."""
    user, device = request.user, request.device
    if not (user.id or user.buyeruid or user.eids or device.ifa):
        return request
    validate_ids(request)  # their size limits, while they are still the sender's ids
    eids = tuple(
        Eid(source=e.source, uids=tuple(Uid(id=pseudonym(u.id), atype=u.atype) for u in e.uids))
        for e in user.eids
    )
    return msgspec.structs.replace(
        request,
        user=msgspec.structs.replace(
            user, id=pseudonym(user.id), buyeruid=pseudonym(user.buyeruid), eids=eids, ext=None
        ),
        device=msgspec.structs.replace(device, ifa=pseudonym(device.ifa)),
    )


def _invalid(message: str, body: bytes) -> InvalidRequest:
    found = _PATH.search(message)
    reason = message[: found.start()] if found else message
    reason = reason[0].lower() + reason[1:] if reason else "invalid"
    if found is None or not found.group("path"):
        return InvalidRequest("(body)", _excerpt(body), reason)
    path = found.group("path").lstrip(".")
    return InvalidRequest(path, _value_at(body, path), reason.replace("`", ""))


def _value_at(body: bytes, path: str) -> object:
    """The value at `path` (as msgspec writes it: `imp[0].banner.w`) in the JSON of `body`."""
    try:
        value: Any = json.loads(body)
        for key, index in _STEP.findall("." + path):
            value = value[int(index)] if index else value[key]
    except (ValueError, KeyError, IndexError, TypeError):
        return "?"
    return value


def _excerpt(body: bytes, limit: int = 40) -> str:
    text = body[:limit].decode("utf-8", "replace")
    return text + ("..." if len(body) > limit else "")
