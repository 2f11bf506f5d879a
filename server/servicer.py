"""The Bidder gRPC service: converts messages (wire.py), delegates to the decision core, and answers its
errors as failures.py's table says (a status code on a unary call, a no-bid reason inside a stream)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor

import grpc

from personabid import wire
from personabid.decision.pipeline import Decider, Decision
from personabid.decision.reasons import NoBid
from personabid.decoding import Undecodable
from personabid.errors import NotReady, ShuttingDown
from personabid.failures import Failure, detail_of, failure_of
from personabid.lograte import RateLimitedLog
from personabid.notifications import Notifier, Tally
from personabid.privacy import Pseudonymizer
from personabid.telemetry import Metrics
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class BidderServicer(pb_grpc.BidderServicer):
    def __init__(
        self,
        decider: Callable[[], Decider | None],
        metrics: Metrics,
        pseudonym: Pseudonymizer,
        seat: str,
        notifier: Notifier | None = None,
        executor: Executor | None = None,
    ) -> None:
        # `decider` returns the current Decider: a reload swaps it, and a call keeps the one it started with.
        self._decider = decider
        self._metrics = metrics
        self._pseudonym = pseudonym
        self._seat = seat
        self._notifier = notifier
        self._log = RateLimitedLog(log)
        # Decisions run here, off the event loop, when given: the loop then keeps taking calls (and a
        # shutdown's signal) while a decision runs, and several decisions may be in flight at once.
        self._executor = executor
        self.in_flight = 0  # calls being answered; read and written on the event loop only
        self.last_arrival = 0.0  # time.monotonic() of the latest call
        self.closing = False  # set once the server drains: streams end after the message in hand

    def refuse_undecodable(self, method: str, undecodable: Undecodable) -> None:
        """Count and (at a bounded rate) log a request body that is not the method's message."""
        self._metrics.observe_undecodable(method)
        self._log.log(logging.WARNING, "undecodable", "%s refused on %s", undecodable, method)

    def _decide(self, message: pb.BidRequest) -> Decision:
        decider = self._decider()
        if decider is None:
            raise NotReady("the index and model are still loading")
        return decider.decide(wire.to_auction(message, self._pseudonym))

    @contextlib.contextmanager
    def _call(self) -> Iterator[None]:
        """Counts a call in flight, for the drain on shutdown (app.BidServer.stop)."""
        self.in_flight += 1
        self.last_arrival = time.monotonic()
        try:
            yield
        finally:
            self.in_flight -= 1

    async def _answer(
        self, method: str, message: pb.BidRequest
    ) -> tuple[pb.BidResponse | None, Failure | None, str]:
        if self.closing:
            return self._failed(method, ShuttingDown("the server is shutting down: send to another"), 0.0)
        if self._executor is None:
            # Decided on the event loop: nothing else runs until it returns, so the drain never sees it
            # in flight, and the per-call bookkeeping is one clock read.
            self.last_arrival = time.monotonic()
            return self._answer_now(method, message)
        with self._call():
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._answer_now, method, message)

    def _answer_now(
        self, method: str, message: pb.BidRequest
    ) -> tuple[pb.BidResponse | None, Failure | None, str]:
        """The response, or the failure (failures.py) and its message; counts it either way."""
        started = time.perf_counter()
        try:
            decision = self._decide(message)
        except Exception as exc:
            return self._failed(method, exc, time.perf_counter() - started, message)
        self._metrics.observe_decision(method, decision, time.perf_counter() - started)
        return wire.to_response(decision, self._seat), None, ""

    def _failed(
        self, method: str, error: Exception, seconds: float, message: pb.BidRequest | None = None
    ) -> tuple[None, Failure, str]:
        failure = failure_of(error)
        self._metrics.observe_failure(method, failure.outcome, failure.nbr, seconds)
        if not failure.expected:
            # A fault of ours, but one that a client can trigger again and again: bounded, like any line
            # a client can cause.
            self._log.log(
                logging.ERROR,
                "failed",
                "bid request %r (user %s) failed",
                message.id[:64] if message is not None else "-",
                (self._pseudonym(message.user.id) if message is not None else "") or "-",
                exc_info=error,
            )
        return None, failure, detail_of(error)

    async def Bid(self, request: pb.BidRequest, context: grpc.aio.ServicerContext) -> pb.BidResponse:
        response, failure, detail = await self._answer("Bid", request)
        if failure is not None:
            await context.abort(failure.code, detail)
        assert response is not None
        return response

    async def BidStream(
        self, request_iterator: AsyncIterator[pb.BidRequest | Undecodable], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.BidResponse]:
        # One failed request must not end a stream that other auctions ride on: it gets a no-bid.
        async for request in request_iterator:
            if isinstance(request, Undecodable):
                self.refuse_undecodable("BidStream", request)
                yield wire.no_bid("", NoBid.INVALID_REQUEST, str(request))
                continue
            response, failure, detail = await self._answer("BidStream", request)
            if failure is not None:
                yield wire.no_bid(request.id, failure.nbr, detail)
            else:
                assert response is not None
                yield response
            if self.closing:
                # The server is stopping: every request read has its answer; the exchange reconnects
                # elsewhere for the rest rather than have the stream cut at the grace period's end.
                return

    async def _notify(
        self,
        events: AsyncIterator[pb.Event | Undecodable] | list[pb.Event],
        context: grpc.aio.ServicerContext,
    ) -> pb.NotifyAck:
        if self._notifier is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server keeps no spend state")
        assert self._notifier is not None
        with self._call():
            return await self._apply(self._notifier, events, context)

    async def _apply(
        self,
        notifier: Notifier,
        events: AsyncIterator[pb.Event | Undecodable] | list[pb.Event],
        context: grpc.aio.ServicerContext,
    ) -> pb.NotifyAck:
        tally = Tally()
        i = 0
        try:
            if isinstance(events, list):
                for one in events:
                    notifier.handle(wire.to_notification(one), tally, "event")
            else:
                async for event in events:
                    if isinstance(event, Undecodable):
                        # One unreadable event is rejected like an invalid one; the stream goes on.
                        self.refuse_undecodable("Notify", event)
                        tally.rejected += 1
                        tally.errors.append(f"events[{i}]: {event}")
                    else:
                        notifier.handle(wire.to_notification(event), tally, f"events[{i}]")
                    i += 1
        except Exception as exc:
            failure = failure_of(exc)
            if not failure.expected:
                self._log.log(
                    logging.ERROR,
                    "failed",
                    "notification failed after %d event(s)",
                    tally.accepted,
                    exc_info=exc,
                )
            # Nothing of the failed event was applied; those before it were, and a resend is deduplicated.
            await context.abort(
                failure.code, f"{detail_of(exc)}; {tally.accepted} event(s) applied, send again"
            )
        return wire.to_ack(tally)

    async def Notify(
        self, request_iterator: AsyncIterator[pb.Event], context: grpc.aio.ServicerContext
    ) -> pb.NotifyAck:
        return await self._notify(request_iterator, context)

    async def NotifyOne(self, request: pb.Event, context: grpc.aio.ServicerContext) -> pb.NotifyAck:
        return await self._notify([request], context)
