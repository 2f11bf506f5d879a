"""Request bodies that are not the message their method takes, answered as bad input.

grpc's generated code parses a request with `Message.FromString`; when that raises, grpc answers UNKNOWN
with the exception's class in the status message and logs a traceback: an attacker's garbage would fill
the log and read as a server fault. Here every method's parser is wrapped so that it never raises: it
returns an `Undecodable` in place of the message. Unary methods get INVALID_ARGUMENT before the servicer
runs; methods that read a stream of messages receive the `Undecodable` and answer it in their own terms
(a no-bid on BidStream, a rejected event on Notify), so that one bad message does not end the stream.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError


@dataclass(frozen=True)
class Undecodable:
    """What arrived in place of a `message_type` message: `detail` says why it could not be parsed."""

    message_type: str
    detail: str

    def __str__(self) -> str:
        return f"request body: not a valid {self.message_type} ({self.detail})"


def tolerant_parser(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """`parse`, answering an Undecodable instead of raising on a body it cannot parse."""
    message_type = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)
    name = message_type.full_name if message_type is not None else "message"

    def parse_or_undecodable(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError:
            return Undecodable(name, "protobuf decoding failed")
        except Exception:
            # The upb parser raises DecodeError; whatever another parser raises on a body, the body is
            # what is wrong, so it is answered the same way.
            return Undecodable(name, "protobuf decoding failed")

    return parse_or_undecodable


# Called with (method name, undecodable) for every call refused here, for metrics.
OnUndecodable = Callable[[str, Undecodable], None]
Behavior = Callable[..., Any]


def _refuse_unary(method: str, behavior: Behavior, count: OnUndecodable) -> Behavior:
    """`behavior` of a method that takes one message, refusing an undecodable one first."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        count(method, request)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request))

    # grpc tells a streaming answer written by `yield` from one written with `context.write` by the
    # function's kind, so the guard keeps the kind of the function it wraps.
    if inspect.isasyncgenfunction(behavior):

        async def guarded_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await refuse(request, context)
            async for answer in behavior(request, context):
                yield answer

        return guarded_stream

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            await refuse(request, context)
        return await behavior(request, context)

    return guarded


def _refuse_in_stream(method: str, behavior: Behavior, count: OnUndecodable) -> Behavior:
    """`behavior` of a method that reads a stream of messages, ending the call at an undecodable one: for
    services that do not answer such a message themselves."""

    async def checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, Undecodable):
                count(method, request)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request))
            yield request

    if inspect.isasyncgenfunction(behavior):

        async def guarded_stream(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for answer in behavior(checked(requests, context), context):
                yield answer

        return guarded_stream

    async def guarded(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        return await behavior(checked(requests, context), context)

    return guarded


def _tolerant_handler(
    method: str, handler: grpc.RpcMethodHandler, count: OnUndecodable, streams_answer: bool
) -> Any:
    parse = handler.request_deserializer
    replaced: dict[str, Any] = {"request_deserializer": tolerant_parser(parse) if parse else None}
    for kind in ("unary_unary", "unary_stream"):
        if getattr(handler, kind) is not None:
            replaced[kind] = _refuse_unary(method, getattr(handler, kind), count)
    if not streams_answer:
        for kind in ("stream_unary", "stream_stream"):
            if getattr(handler, kind) is not None:
                replaced[kind] = _refuse_in_stream(method, getattr(handler, kind), count)
    return handler._replace(**replaced)  # type: ignore[attr-defined]


class _Capture:
    """Stands in for the server while generated code registers a service, to keep its handlers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: Mapping[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the registered handlers below carry the same methods

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        self.service, self.handlers = service, handlers


def add_tolerant_servicer(
    add_to_server: Callable[[Any, Any], None],
    servicer: object,
    server: grpc.aio.Server,
    count: OnUndecodable = lambda method, undecodable: None,
    streams_answer: bool = False,
) -> None:
    """Register `servicer` through its generated `add_XServicer_to_server`, every parser made tolerant.

    Unary methods refuse an undecodable request with INVALID_ARGUMENT; so do streaming ones, ending the
    call, unless `streams_answer` says the servicer answers an `Undecodable` in the stream itself.
    """
    capture = _Capture()
    add_to_server(servicer, capture)
    handlers = {
        method: _tolerant_handler(method, handler, count, streams_answer)
        for method, handler in capture.handlers.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(capture.service, handlers),))
    server.add_registered_method_handlers(capture.service, handlers)
