"""The Bidder gRPC service: converts messages, delegates to the decision core, maps errors to status
codes (here and nowhere else)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc

from personabid import wire
from personabid.decision.pipeline import Decider, Decision
from personabid.decision.reasons import NoBid
from personabid.errors import InvalidRequest, NotReady
from personabid.notifications import Notifier, Tally
from personabid.privacy import Pseudonymizer
from personabid.spend.store import StateUnavailable
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
    ) -> None:
        # `decider` returns the current Decider: a reload swaps it, and a call keeps the one it started with.
        self._decider = decider
        self._metrics = metrics
        self._pseudonym = pseudonym
        self._seat = seat
        self._notifier = notifier

    def _decide(self, message: pb.BidRequest) -> Decision:
        decider = self._decider()
        if decider is None:
            raise NotReady("the index and model are still loading")
        return decider.decide(wire.to_auction(message, self._pseudonym))

    def _answer(
        self, method: str, message: pb.BidRequest
    ) -> tuple[pb.BidResponse | None, grpc.StatusCode, str]:
        """The response, or the status code and message of a failure; counts it either way."""
        started = time.perf_counter()
        try:
            decision = self._decide(message)
        except InvalidRequest as exc:
            self._metrics.observe_failure(
                method, "invalid", NoBid.INVALID_REQUEST, time.perf_counter() - started
            )
            return None, grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except NotReady as exc:
            self._metrics.observe_failure(
                method, "unavailable", NoBid.NOT_READY, time.perf_counter() - started
            )
            return None, grpc.StatusCode.UNAVAILABLE, str(exc)
        except Exception:
            self._metrics.observe_failure(
                method, "error", NoBid.TECHNICAL_ERROR, time.perf_counter() - started
            )
            log.exception(
                "bid request %r (user %s) failed", message.id, self._pseudonym(message.user.id) or "-"
            )
            return None, grpc.StatusCode.INTERNAL, "internal error"
        self._metrics.observe_decision(method, decision, time.perf_counter() - started)
        return wire.to_response(decision, self._seat), grpc.StatusCode.OK, ""

    async def Bid(self, request: pb.BidRequest, context: grpc.aio.ServicerContext) -> pb.BidResponse:
        response, code, detail = self._answer("Bid", request)
        if response is None:
            await context.abort(code, detail)
        assert response is not None
        return response

    async def BidStream(
        self, request_iterator: AsyncIterator[pb.BidRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.BidResponse]:
        # One failed request must not end a stream that other auctions ride on: it gets a no-bid.
        reasons = {
            grpc.StatusCode.INVALID_ARGUMENT: NoBid.INVALID_REQUEST,
            grpc.StatusCode.UNAVAILABLE: NoBid.NOT_READY,
            grpc.StatusCode.INTERNAL: NoBid.TECHNICAL_ERROR,
        }
        async for request in request_iterator:
            response, code, detail = self._answer("BidStream", request)
            yield response if response is not None else wire.no_bid(request.id, reasons[code], detail)

    async def _notify(
        self, events: AsyncIterator[pb.Event] | list[pb.Event], context: grpc.aio.ServicerContext
    ) -> pb.NotifyAck:
        if self._notifier is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server keeps no spend state")
        assert self._notifier is not None
        tally = Tally()
        i = 0
        try:
            if isinstance(events, list):
                for event in events:
                    self._notifier.handle(event, tally, "event")
            else:
                async for event in events:
                    self._notifier.handle(event, tally, f"events[{i}]")
                    i += 1
        except StateUnavailable as exc:
            # Nothing of the failed event was applied; those before it were, and a resend is deduplicated.
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"{exc}; {tally.accepted} event(s) applied, send again"
            )
        except Exception:
            log.exception("notification failed after %d event(s)", tally.accepted)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return tally.ack()

    async def Notify(
        self, request_iterator: AsyncIterator[pb.Event], context: grpc.aio.ServicerContext
    ) -> pb.NotifyAck:
        return await self._notify(request_iterator, context)

    async def NotifyOne(self, request: pb.Event, context: grpc.aio.ServicerContext) -> pb.NotifyAck:
        return await self._notify([request], context)
