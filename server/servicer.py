"""The Bidder gRPC service: converts messages (wire.py), hands auctions to the Auctioneer (auction.py) and
notifications to the Notifier, and answers their failures as failures.py's table says (a status code on a
unary call, a no-bid reason inside a stream)."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Iterator

import grpc

from personabid import wire
from personabid.auction import Auctioneer
from personabid.decision.reasons import NoBid
from personabid.decoding import Undecodable
from personabid.failures import detail_of, failure_of
from personabid.lograte import RateLimitedLog
from personabid.notifications import Notifier, Tally
from personabid.telemetry import Metrics
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


class BidderServicer(pb_grpc.BidderServicer):
    def __init__(self, auctioneer: Auctioneer, metrics: Metrics, notifier: Notifier | None = None) -> None:
        self._auctioneer = auctioneer
        self._metrics = metrics
        self._notifier = notifier
        self._log = RateLimitedLog(log)
        self.in_flight = 0  # notifications being applied, for the drain (decisions: the auctioneer's)

    def refuse_undecodable(self, method: str, undecodable: Undecodable) -> None:
        """Count and (at a bounded rate) log a request body that is not the method's message."""
        self._metrics.observe_undecodable(method)
        self._log.log(logging.WARNING, "undecodable", "%s refused on %s", undecodable, method)

    @contextlib.contextmanager
    def _call(self) -> Iterator[None]:
        """Counts a call in flight, for the drain on shutdown (app.BidServer.stop)."""
        self.in_flight += 1
        self._auctioneer.last_arrival = time.monotonic()
        try:
            yield
        finally:
            self.in_flight -= 1

    async def Bid(self, request: pb.BidRequest, context: grpc.aio.ServicerContext) -> pb.BidResponse:
        answer = await self._auctioneer.answer("Bid", functools.partial(wire.to_auction, request))
        if answer.failure is not None:
            await context.abort(answer.failure.code, answer.detail)
        assert answer.response is not None
        return wire.to_response(answer.response)

    async def BidStream(
        self, request_iterator: AsyncIterator[pb.BidRequest | Undecodable], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.BidResponse]:
        # One failed request must not end a stream that other auctions ride on: it gets a no-bid.
        async for request in request_iterator:
            if isinstance(request, Undecodable):
                self.refuse_undecodable("BidStream", request)
                yield wire.no_bid("", NoBid.INVALID_REQUEST, str(request))
                continue
            answer = await self._auctioneer.answer("BidStream", functools.partial(wire.to_auction, request))
            if answer.failure is not None:
                yield wire.no_bid(request.id, answer.failure.nbr, answer.detail)
            else:
                assert answer.response is not None
                yield wire.to_response(answer.response)
            if self._auctioneer.closing:
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
