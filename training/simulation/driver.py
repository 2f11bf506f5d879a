"""The run: arrivals and follow-ups in the order of the server's clock, calls on a thread pool.

The main thread owns every decision and every random draw; the pool only makes the calls. A request's
draws come from a random stream of its own (the seed and the request's number), so that a seed draws
the same users, prices and outcomes whatever order the server's answers come back in.

What follows a bid waits in a heap by server time: the win or loss notice, then the billing notice (if
the ad rendered), the click, the purchases. Each step of a bid is sent once the step before it was
answered, so the server never hears of a click before the impression it came from. The run ends when
the window of --hours is over (follow-ups due later are counted, not sent), at --max-seconds, on
Ctrl-C, or once the --max-requests were sent and everything that follows them was; it waits for the
calls in flight, then writes the summary.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import secrets
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from personabid.privacy import Pseudonymizer
from personabid.progress import progress
from personabid.training.simulation.admin import ServerClock
from personabid.training.simulation.arms import AUCTION_PREFIX, Split
from personabid.training.simulation.doors import Answer, Door, Notice, Offer
from personabid.training.simulation.market import Clearing, Exchange, Market, clear
from personabid.training.simulation.outcomes import Expectation, GroundTruth
from personabid.training.simulation.summary import ALL, Tally, Window, fixed
from personabid.training.simulation.traffic import Audience, Diurnal, arrivals, at_auction

log = logging.getLogger(__name__)

NOTICE_DELAY = 0.2  # server seconds from the auction to the win or loss notice
RENDER_DELAY = 1.0  # ... to the billing notice of a rendered ad
RESEND_DELAY = 60.0  # a site's second postback of the same order
UNANSWERED = 20  # bid requests that all fail before the run gives up on the server
LONGEST_WAIT = 0.1  # real seconds the loop sleeps at most, to notice Ctrl-C and the bounds soon
FINAL_WAIT = 10.0  # real seconds the calls in flight get at the end


@dataclass(frozen=True)
class Plan:
    hours: float
    rate: float  # bid requests per real second, on average over a week
    seed: int = 0
    max_seconds: float = 600.0
    max_requests: int | None = None
    concurrency: int = 16
    diurnal: Diurnal = field(default_factory=Diurnal)

    def __post_init__(self) -> None:
        if not 0 < self.hours <= 24 * 366:
            raise ValueError(f"hours={self.hours!r}: expected (0, 8784]")
        if not 0 < self.rate <= 1e6:
            raise ValueError(f"rate={self.rate!r}: expected requests per second in (0, 1e6]")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds={self.max_seconds!r}: expected > 0")
        if self.max_requests is not None and self.max_requests < 0:
            raise ValueError(f"max_requests={self.max_requests!r}: expected >= 0")
        if not 1 <= self.concurrency <= 1024:
            raise ValueError(f"concurrency={self.concurrency!r}: expected 1 to 1024")


@dataclass
class Auction:
    """A request in flight and what the market needs to settle it."""

    number: int
    person: int
    named: bool
    arm: str
    exchange: Exchange
    floor: float
    w: int
    h: int
    country: str
    devicetype: int
    rng: np.random.Generator


@dataclass
class Placement:
    """A bid in the market: the steps that follow it, each sent after the one before was answered."""

    auction: Auction
    steps: list[tuple[float, str, Notice]]  # (server time, label, notice), in time order
    next: int = 0
    expectation: Expectation | None = None  # of a rendered impression
    drawn_clicks: int = 0
    drawn_conversions: int = 0
    drawn_revenue: float = 0.0


@dataclass
class Simulation:
    door: Door
    clock: ServerClock
    plan: Plan
    audience: Audience
    market: Market
    exchanges: tuple[Exchange, ...]
    truth: GroundTruth
    split: Split | None = None
    pseudonymize: Pseudonymizer | None = None
    tally: Tally = field(default_factory=Tally)
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    _heap: list[tuple[float, int, Placement]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)
    _orders: itertools.count[int] = field(default_factory=itertools.count)
    _failures: set[str] = field(default_factory=set)

    def run(self) -> Window:
        plan, clock = self.plan, self.clock
        started = time.monotonic()
        since = clock.now()
        end = since + plan.hours * 3600.0
        schedule = arrivals(
            since,
            end,
            plan.rate / clock.speed,
            np.random.default_rng(np.random.SeedSequence([plan.seed, 0x74696D65])),
            plan.diurnal,
            limit=plan.max_requests,
        )
        expected = plan.rate * min(plan.hours * 3600.0 / clock.speed, plan.max_seconds)
        total = min(int(expected), plan.max_requests) if plan.max_requests is not None else int(expected)
        inflight: dict[Future[Any], tuple[str, Any]] = {}
        stopped = "window"
        numbers = itertools.count()
        with (
            ThreadPoolExecutor(plan.concurrency, thread_name_prefix="simulate") as pool,
            progress(log, "simulate", total=total, unit="requests") as shown,
        ):
            upcoming = next(schedule, None)
            try:
                while True:
                    now = clock.now()
                    if time.monotonic() - started >= plan.max_seconds:
                        stopped = "max-seconds"
                        break
                    if self._unanswered():
                        stopped = "the server does not answer"
                        break
                    while upcoming is not None and upcoming <= now:
                        if len(inflight) >= 2 * plan.concurrency:
                            self.tally.dropped += 1
                        else:
                            auction, request = self._auction(next(numbers))
                            inflight[pool.submit(self.door.bid, request)] = ("bid", auction)
                            shown.update(1)
                        upcoming = next(schedule, None)
                    while (
                        self._heap
                        and self._heap[0][0] <= min(now, end)
                        and len(inflight) < 4 * plan.concurrency
                    ):
                        _, _, placement = heapq.heappop(self._heap)
                        _, label, notice = placement.steps[placement.next]
                        inflight[pool.submit(self.door.send, notice)] = ("notice", (placement, label))
                    if now >= end and not inflight and not (self._heap and self._heap[0][0] <= end):
                        break
                    if upcoming is None and not inflight and not self._heap:
                        stopped = "max-requests"  # all sent and answered: nothing more can happen
                        break
                    waits = [LONGEST_WAIT]
                    if upcoming is not None:
                        waits.append(clock.real_seconds(upcoming - now))
                    if self._heap and len(inflight) < 4 * plan.concurrency:
                        waits.append(clock.real_seconds(self._heap[0][0] - now))
                    timeout = max(0.0, min(waits))
                    if inflight:
                        done, _ = wait(list(inflight), timeout=timeout, return_when=FIRST_COMPLETED)
                        for future in done:
                            kind, what = inflight.pop(future)
                            self._completed(kind, what, self._result(kind, future))
                    elif timeout > 0:
                        time.sleep(timeout)
            except KeyboardInterrupt:
                stopped = "interrupted"
            traffic_end = min(clock.now(), end)
            done, _ = wait(list(inflight), timeout=FINAL_WAIT)
            for future in done:
                kind, what = inflight.pop(future)
                if not isinstance(future.exception(), KeyboardInterrupt):
                    self._completed(kind, what, self._result(kind, future), follow=False)
            for future in inflight:
                future.cancel()
        # The calls in flight at the end reached the server after it: the window closes when they are done.
        until = clock.now()
        return Window(
            since, traffic_end, until, clock.speed, clock.source, time.monotonic() - started, stopped
        )

    def _result(self, kind: str, future: Future[Any]) -> Any:
        """A call's answer; a call that failed in the simulator's own code is counted as failed, by the
        error's type, and logged once per type, so that one odd answer does not end the run."""
        error = future.exception()
        if error is None:
            return future.result()
        if isinstance(error, KeyboardInterrupt):  # raised in a worker: stop as on Ctrl-C
            raise error
        failed = f"failed: {type(error).__name__}"
        if failed not in self._failures:
            self._failures.add(failed)
            log.error("a %s call failed", kind, exc_info=error)
        return Answer((), failed) if kind == "bid" else failed

    def _unanswered(self) -> bool:
        answers = self.tally.answers
        return answers["bid"] + answers["no-bid"] == 0 and answers.total() >= UNANSWERED

    def pending(self) -> Counter[str]:
        """Steps not sent: the next step of each bid still waiting, and the ones after it."""
        left: Counter[str] = Counter()
        for _, _, placement in self._heap:
            for _, label, _ in placement.steps[placement.next :]:
                left[label] += 1
        return left

    def _auction(self, number: int) -> tuple[Auction, Any]:
        rng = np.random.default_rng(np.random.SeedSequence([self.plan.seed, number]))
        person = self.audience.person(rng)
        exchange = self.exchanges[int(rng.integers(len(self.exchanges)))]
        request_id = f"sim-{self.run_id}-{number:09d}"
        request, named = self.audience.request(person, request_id, rng)
        banner = request.imp[0].banner
        assert banner is not None and banner.w is not None and banner.h is not None
        country = request.device.geo.country if request.device.geo is not None else ""
        floor = round(self.market.bucket(banner.w, banner.h, country).floor, 2)
        arm = self._arm(person, named, request_id)
        auction = Auction(
            number, person, named, arm, exchange, floor, banner.w, banner.h, country,
            int(request.device.devicetype or 0), rng,
        )  # fmt: skip
        for counts in self.tally.counts(arm):
            counts.requests += 1
        if named:
            self.tally.truth_of(ALL).users.add(person)
            if arm != ALL:
                self.tally.truth_of(arm).users.add(person)
        return auction, at_auction(request, floor, exchange.auction)

    def _arm(self, person: int, named: bool, request_id: str) -> str:
        if self.split is None:
            return ALL
        if named and self.pseudonymize is not None:
            return self.split.label(self.pseudonymize(self.audience.people.ids[person]))
        if not named:
            return self.split.label(AUCTION_PREFIX + request_id)
        return ALL  # the key is not readable here: the arm cannot be told

    def _completed(self, kind: str, what: Any, result: Any, follow: bool = True) -> None:
        if kind == "bid":
            self._answered(what, result)
        else:
            placement, label = what
            self._sent(placement, label, result, follow)

    def _answered(self, auction: Auction, answer: Answer) -> None:
        self.tally.answers[answer.outcome] += 1
        if answer.nbr is not None:
            self.tally.no_bid_reasons[answer.nbr] += 1
        now = self.clock.now()
        by_imp: dict[str, list[Offer]] = {}
        for offer in answer.offers:
            by_imp.setdefault(offer.imp_id, []).append(offer)
        for counts in self.tally.counts(auction.arm):
            counts.bids += len(answer.offers)
        bucket = self.market.bucket(auction.w, auction.h, auction.country)
        for offers in by_imp.values():
            competing = self.market.competing(bucket, auction.rng)
            offers.sort(key=lambda o: -o.price)
            for rank, offer in enumerate(offers):
                # Our other bids on the same impression compete with our best one, and lose to it.
                rival = competing if rank == 0 else max(competing, offers[0].price)
                clearing = clear(offer.price, rival, auction.floor, auction.exchange.auction)
                self._settle(auction, offer, clearing, now)

    def _settle(self, auction: Auction, offer: Offer, clearing: Clearing, now: float) -> None:
        rng = auction.rng
        known = self.truth.knows(offer.campaign)
        advertiser = self.truth.advertiser[self.truth.row[offer.campaign]] if known else ""
        self.tally.unknown_campaigns += not known
        person = self.audience.unit_vectors[auction.person]
        ctr = self.truth.true_ctr(person, auction.devicetype, auction.w, auction.h, offer.campaign)
        story = self.truth.story(ctr, advertiser, rng)  # drawn win or lose: the stream stays aligned
        if not clearing.won:
            min_to_win = clearing.min_to_win if auction.exchange.tells_min_to_win else None
            notice = Notice("loss", offer, loss_reason=clearing.loss_reason, min_to_win=min_to_win)
            self._push(Placement(auction, [(now + NOTICE_DELAY, "loss", notice)]))
            return
        steps = [(now + NOTICE_DELAY, "win", Notice("win", offer, price=clearing.price))]
        placement = Placement(auction, steps)
        if story.rendered:
            shown = now + RENDER_DELAY
            steps.append((shown, "impression", Notice("bill", offer, price=clearing.price)))
            placement.expectation = self.truth.expect(ctr, advertiser)
            if story.click_delay is not None:
                steps.append((shown + story.click_delay, "click", Notice("click", offer)))
                placement.drawn_clicks = 1
            user = self.audience.people.ids[auction.person] if auction.named else ""
            for purchase in story.purchases:
                order = f"{self.run_id}-o{next(self._orders):08d}"
                notice = Notice(
                    "conversion", offer, advertiser=advertiser, order_id=order, value=purchase.value,
                    user=user, names_click=purchase.post_click,
                )  # fmt: skip
                steps.append((shown + purchase.delay, "conversion", notice))
                if purchase.duplicate:
                    steps.append((shown + purchase.delay + RESEND_DELAY, "resent conversion", notice))
                placement.drawn_conversions += 1
                placement.drawn_revenue += purchase.value
        self._push(placement)

    def _push(self, placement: Placement) -> None:
        at = placement.steps[placement.next][0]
        heapq.heappush(self._heap, (at, next(self._order), placement))

    def _sent(self, placement: Placement, label: str, outcome: str, follow: bool) -> None:
        self.tally.notices[label, outcome] += 1
        _, _, notice = placement.steps[placement.next]
        arm = placement.auction.arm
        if outcome == "ok":
            for counts in self.tally.counts(arm):
                if label == "win":
                    counts.wins += 1
                    counts.spend += notice.price / 1000.0
                elif label == "impression":
                    counts.impressions += 1
                elif label == "click":
                    counts.clicks += 1
                elif label == "conversion":
                    counts.conversions += 1
                    counts.conversions_post_click += int(notice.names_click)
                    counts.revenue += notice.value
        if label == "impression" and outcome in ("ok", "duplicate") and placement.expectation is not None:
            for name in {ALL, arm}:
                truth = self.tally.truth_of(name)
                truth.impressions += 1
                truth.expected_clicks += fixed(placement.expectation.clicks)
                truth.expected_conversions += fixed(placement.expectation.conversions)
                truth.expected_revenue += fixed(placement.expectation.revenue)
                truth.clicks_drawn += placement.drawn_clicks
                truth.conversions_drawn += placement.drawn_conversions
                truth.revenue_drawn += fixed(placement.drawn_revenue)
        placement.next += 1
        if follow and placement.next < len(placement.steps):
            at, next_label, next_notice = placement.steps[placement.next]
            placement.steps[placement.next] = (max(at, self.clock.now()), next_label, next_notice)
            self._push(placement)
