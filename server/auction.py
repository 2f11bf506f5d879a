"""An auction from either door: decide it and build its answer, or say how it failed.

The gRPC servicer and the HTTP door each turn their wire format into the core's BidRequest and back;
everything between is here, once: pseudonymising the user's ids, the decision (on the event loop or on a
decision thread), the response, the metrics, the failure table, the rate-limited log of faults, and the
count of calls in flight that a shutdown drains.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from personabid.decision.pipeline import Decides, Decision
from personabid.errors import InvalidRequest, NotReady, ShuttingDown
from personabid.failures import Failure, detail_of, failure_of
from personabid.lograte import RateLimitedLog
from personabid.openrtb.codec import pseudonymised
from personabid.openrtb.request import BidRequest
from personabid.openrtb.response import BidResponse
from personabid.privacy import Pseudonymizer
from personabid.respond import Responder
from personabid.telemetry import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    response: BidResponse | None  # None when the auction failed
    failure: Failure | None = None
    detail: str = ""  # the failure's message for the client
    # An invalid request's field, value and reason, for answers that give them apart (the HTTP door's).
    fields: dict[str, object] | None = None


class Auctioneer:
    def __init__(
        self,
        decider: Callable[[], Decides | None],
        metrics: Metrics,
        pseudonym: Pseudonymizer,
        responder: Responder,
        executor: Executor | None = None,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        # `decider` returns what decides now (the Decider, or the routing of the experiments in force over
        # their arms' Deciders): a reload swaps it, and a call keeps the one it started with.
        self._decider = decider
        self._metrics = metrics
        self._pseudonym = pseudonym
        self._responder = responder
        # Given each decision with bids once it is answered: the event log's "bid" lines.
        self._on_decision = on_decision
        self._log = RateLimitedLog(log)
        # Decisions run here, off the event loop, when given: the loop then keeps taking calls (and a
        # shutdown's signal) while a decision runs, and several decisions may be in flight at once.
        self._executor = executor
        self.in_flight = 0  # calls being answered; read and written on the event loop only
        self.last_arrival = 0.0  # time.monotonic() of the latest call
        self.closing = False  # set once the server drains: new auctions are refused

    async def answer(self, method: str, request: Callable[[], BidRequest]) -> Answer:
        """Decide the auction that `request()` builds (decoding happens there, so that a request that
        cannot be built fails like an invalid one); `method` labels the metrics."""
        self.last_arrival = time.monotonic()
        if self.closing:
            return self._failed(method, ShuttingDown("the server is shutting down: send to another"), 0.0)
        if self._executor is None:
            # Decided on the event loop: nothing else runs until it returns, so the drain never sees it
            # in flight, and the per-call bookkeeping is one clock read.
            return self._answer_now(method, request)
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._answer_now, method, request)
        finally:
            self.in_flight -= 1

    def _answer_now(self, method: str, build: Callable[[], BidRequest]) -> Answer:
        cpu = time.thread_time()
        try:
            return self._answer(method, build)
        finally:
            self._metrics.observe_cpu(method, time.thread_time() - cpu)

    def _answer(self, method: str, build: Callable[[], BidRequest]) -> Answer:
        started = time.perf_counter()
        request: BidRequest | None = None
        try:
            request = pseudonymised(build(), self._pseudonym)
            decider = self._decider()
            if decider is None:
                raise NotReady("the index and model are still loading")
            decision = decider.decide(request)
            response = self._responder.respond(decision)
        except Exception as exc:
            return self._failed(method, exc, time.perf_counter() - started, request)
        self._metrics.observe_decision(method, decision, time.perf_counter() - started)
        if self._on_decision is not None and decision.bids:
            try:
                self._on_decision(decision)
            except OSError as exc:
                # The bids stand (their cost is reserved, the answer made): a log that cannot be written
                # loses their lines, not the auction.
                self._log.log(logging.ERROR, "bid log", "bid lines not written: %s", exc)
        return Answer(response)

    def _failed(
        self, method: str, error: Exception, seconds: float, request: BidRequest | None = None
    ) -> Answer:
        failure = failure_of(error)
        self._metrics.observe_failure(method, failure.outcome, failure.nbr, seconds)
        if not failure.expected:
            # A fault of ours, but one that a client can trigger again and again: bounded, like any line
            # a client can cause.
            self._log.log(
                logging.ERROR,
                "failed",
                "bid request %r (user %s) failed",
                request.id[:64] if request is not None else "-",
                (request.user.id if request is not None else "") or "-",  # already a pseudonym
                exc_info=error,
            )
        fields = None
        if isinstance(error, InvalidRequest):
            fields = {"field": error.field, "value": _plain(error.value), "reason": error.reason}
        return Answer(None, failure, detail_of(error), fields)


def _plain(value: object) -> object:
    """`value` as JSON can carry it: numbers, strings, lists of them; anything else as its text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value[:20]]
    return str(value)
