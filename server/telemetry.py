"""Prometheus metrics of the serving layer. Every metric lives in the registry it is given, so each test
builds a fresh CollectorRegistry; the decision core knows nothing of them."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Info

from personabid.artifact import version_time
from personabid.bidrecord import BidRecord
from personabid.decision.pipeline import IMPRESSION_FILTERS, REQUEST_FILTERS, STAGES, Decider, Decision
from personabid.decision.reasons import NoBid
from personabid.metric_arrays import CounterArray, HistogramArray
from personabid.spend.control import Notification

BID_METHODS = ("Bid", "BidStream")
# Call latency is a few milliseconds; stage latency tens of microseconds.
CALL_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)
STAGE_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)
FUNNEL_EVENTS = ("bid", "win", "impression", "loss", "click", "conversion")
# Arms are operators' names, but a label that takes every name it is given grows without bound: the first
# MAX_ARMS seen keep theirs, later ones are counted together as OTHER.
MAX_ARMS = 32
NO_ARM = "none"  # no experiment in force (or the bid is not known)
OTHER = "other"
# Bids whose arms a click or a later billing notice is counted under: the arms of the last bids won in
# this process. A click on a bid won in another worker is counted under NO_ARM.
ARM_MEMORY = 100_000


class BoundedLabel:
    """The first `limit` distinct values pass as they are; every later one becomes OTHER."""

    def __init__(self, limit: int = MAX_ARMS) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OTHER


class ArmMemory:
    """The arms of the last ARM_MEMORY bids won, by bid key ("auction:imp"), oldest forgotten first."""

    def __init__(self, size: int = ARM_MEMORY) -> None:
        self._size = size
        self._arms: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, key: str, arms: tuple[str, ...]) -> None:
        with self._lock:
            self._arms[key] = arms
            if len(self._arms) > self._size:
                self._arms.popitem(last=False)

    def recall(self, key: str) -> tuple[str, ...]:
        with self._lock:
            return self._arms.get(key, ())


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # The request path's metrics: counted in plain numbers, exposed when scraped (metric_arrays.py).
        self._lock = threading.Lock()  # over one request's observations, for decisions on several threads
        self.requests = CounterArray(
            "personabid_bid_requests",
            "Bid requests answered, by outcome (bid, nobid, invalid, error) and no-bid reason code.",
            ["method", "outcome", "nbr"],
            registry,
        )
        self.latency = HistogramArray(
            "personabid_bid_duration_seconds",
            "Time to answer one bid request inside the server.",
            ["method"],
            CALL_BUCKETS,
            registry,
        )
        # CPU, not elapsed time: what the path costs the core, whoever else holds it meanwhile. Divided by
        # the requests' count it is a request's own cost; the server's CPU beyond it is gRPC's, HTTP's
        # and asyncio's, and the background's (personabid bench accounts a request's CPU that way).
        self.request_cpu = CounterArray(
            "personabid_bid_cpu_seconds",
            "CPU time of the thread answering bid requests, from the request's conversion to its response "
            "and bid log, by method.",
            ["method"],
            registry,
        )
        self.stage_latency = HistogramArray(
            "personabid_stage_duration_seconds",
            "Time spent in each stage of the decision path.",
            ["stage"],
            STAGE_BUCKETS,
            registry,
        )
        self.filtered = CounterArray(
            "personabid_filter_removed_candidates",
            "Matched candidate campaigns removed, by eligibility filter.",
            ["filter"],
            registry,
        )
        self.candidates = HistogramArray(
            "personabid_match_candidates",
            "Campaigns returned by the persona match per request.",
            [],
            (0, 1, 5, 10, 25, 50, 100, 250, 1000),
            registry,
        )
        self.bid_price = HistogramArray(
            "personabid_bid_price_cpm",
            "Prices of the bids sent, CPM in USD.",
            [],
            (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 20),
            registry,
        )
        self.index_campaigns = Gauge(
            "personabid_index_campaigns", "Campaigns in the serving index.", registry=registry
        )
        self.index_vectors = Gauge(
            "personabid_index_persona_vectors", "Persona vectors in the serving index.", registry=registry
        )
        self.index_built = Gauge(
            "personabid_index_build_timestamp_seconds",
            "When the serving index version was built (unix time).",
            registry=registry,
        )
        self.index_info = Info("personabid_index", "The serving index version.", registry=registry)
        self.model_info = Info("personabid_model", "The serving CTR model version.", registry=registry)
        self.index_age = Gauge(
            "personabid_index_age_seconds", "Age of the serving index version.", registry=registry
        )
        self.index_age.set_function(lambda: time.time() - self._index_built if self._index_built else 0.0)
        self.model_built = Gauge(
            "personabid_model_build_timestamp_seconds",
            "When the serving model version was built (unix time).",
            registry=registry,
        )
        self.undecodable = Counter(
            "personabid_undecodable_requests",
            "Request bodies that are not the message their method takes, refused with INVALID_ARGUMENT "
            "(or a no-bid on BidStream, a rejected event on Notify).",
            ["method"],
            registry=registry,
        )
        self.reloads = Counter(
            "personabid_artifact_reloads",
            "Live reloads of the index, the model or the profiles, and changes of the experiments in force, "
            "by outcome (swapped or refused).",
            ["artifact", "outcome"],
            registry=registry,
        )
        for artifact in ("index", "model", "profiles", "experiments"):
            for outcome in ("swapped", "refused"):
                self.reloads.labels(artifact=artifact, outcome=outcome)
        self._index_built = 0.0
        self.notifications = Counter(
            "personabid_notifications",
            "Win, loss, impression, click and conversion notices, by outcome (accepted, duplicate, rejected, "
            "unknown_bid: a notice for a bid the server no longer knows, still applied).",
            ["type", "outcome"],
            registry=registry,
        )
        self.spend = Counter(
            "personabid_spend_usd",
            "Money spent on won impressions (clearing prices), USD.",
            registry=registry,
        )
        self.budget_remaining = Gauge(
            "personabid_budget_remaining_usd",
            "Daily budget left over all budgeted campaigns (spend in flight counted as spent), USD.",
            registry=registry,
        )
        self.budget_exhausted = Gauge(
            "personabid_budget_exhausted_campaigns",
            "Budgeted campaigns with no budget left today.",
            registry=registry,
        )
        self.pacing_rate = Gauge(
            "personabid_pacing_rate_mean",
            "Mean pacing throttle over budgeted campaigns: the share of eligible auctions they bid in.",
            registry=registry,
        )
        self.state_errors = Counter(
            "personabid_state_store_errors", "Failed calls to the shared spend store.", registry=registry
        )
        self.state_up = Gauge(
            "personabid_state_store_up", "1 while the shared spend store answers.", registry=registry
        )
        self.state_up.set(1)
        self.capped = Counter(
            "personabid_state_capped",
            "Entries a capped in-process store refused (pending: a bid not made) or evicted early "
            "(frequency: a user's view history, dedupe: a notification identity).",
            ["store"],
            registry=registry,
        )
        self.profile_lookups = CounterArray(
            "personabid_profile_lookups",
            "Decided requests by what the profile lookup gave: found, unknown (no profile for the id), "
            "unavailable (the store did not answer in time: bid without it), restricted (privacy forbade "
            "it), no_id (the request has no user id), none (the server holds no profiles).",
            ["outcome"],
            registry,
        )
        self.context_only = CounterArray(
            "personabid_context_only_requests",
            "Requests bid on their context alone because a rule forbade user-level data, by the rule: coppa "
            "(regs.coppa), gdpr (no consent to personalised ads), dnt, lmt (device.dnt, device.lmt).",
            ["reason"],
            registry,
        )
        self.match_sources = CounterArray(
            "personabid_match_sources",
            "Decided requests by what their user vector blended: profile, segments, context, joined by '+' "
            "(none: nothing usable).",
            ["sources"],
            registry,
        )
        self.profiles_users = Gauge(
            "personabid_profiles_users",
            "Users held by the embedded profile store in force.",
            registry=registry,
        )
        self.ready = Gauge(
            "personabid_ready",
            "1 when the server has an index and a model and serves bids.",
            registry=registry,
        )
        self.funnel = Counter(
            "personabid_funnel_events",
            "The funnel, by experiment arm ('experiment:arm'; none: no experiment; other: past the first "
            f"{MAX_ARMS} arms): bids sent, wins (the first win or billing notice of a bid), impressions "
            "(billing notices), losses, clicks, conversions. An event counts once under the arm of each "
            "experiment in force.",
            ["event", "arm"],
            registry=registry,
        )
        self.funnel_spend = Counter(
            "personabid_funnel_spend_usd",
            "Money spent on won bids (clearing prices), USD, by experiment arm.",
            ["arm"],
            registry=registry,
        )
        self.conversion_value = Counter(
            "personabid_conversion_value_usd",
            "Value of the conversions reported (orders, first report only), USD, by the user's arm.",
            ["arm"],
            registry=registry,
        )
        self.assignments = Counter(
            "personabid_experiment_assignments",
            "Decided requests by the experiment arm they were assigned to.",
            ["experiment", "arm"],
            registry=registry,
        )
        self.spend_today = Gauge(
            "personabid_spend_today_usd",
            "Spent today (UTC day of the server's clock) by the budgeted campaigns, USD.",
            registry=registry,
        )
        self.budget_today = Gauge(
            "personabid_budget_today_usd",
            "The sum of the budgeted campaigns' daily budgets (this process's share of them), USD.",
            registry=registry,
        )
        self.planned_fraction = Gauge(
            "personabid_budget_planned_fraction",
            "The share of the day's budget the pacing plan has spent by now (the part of the UTC day gone).",
            registry=registry,
        )
        self.clock_speed = Gauge(
            "personabid_clock_speed",
            "How many times faster than real time the server's clock runs (1: real time).",
            registry=registry,
        )
        self.clock_speed.set(1)
        self._arm_label = BoundedLabel()
        self._assignment_label = BoundedLabel()
        self._won_arms = ArmMemory()
        for event in FUNNEL_EVENTS:
            self.funnel.labels(event=event, arm=NO_ARM)
        self.funnel_spend.labels(arm=NO_ARM)
        self.conversion_value.labels(arm=NO_ARM)
        for name in (*REQUEST_FILTERS, *IMPRESSION_FILTERS):
            self.filtered.touch((name,))
        for stage in STAGES:
            self.stage_latency.touch((stage,))
        self.candidates.touch(())
        self.bid_price.touch(())

    def observe_cpu(self, method: str, seconds: float) -> None:
        """Count `seconds` of CPU spent answering one request of `method`."""
        with self._lock:
            self.request_cpu.inc((method,), seconds)

    def observe_decision(self, method: str, decision: Decision, seconds: float) -> None:
        with self._lock:
            self._observe_path(method, decision, seconds)
        if decision.bids:
            self._count("bid", decision.arms, len(decision.bids))
        for arm in decision.arms:
            experiment, _, name = arm.partition(":")
            if self._assignment_label(arm) == OTHER:
                experiment = name = OTHER
            self.assignments.labels(experiment=experiment, arm=name).inc()

    def _observe_path(self, method: str, decision: Decision, seconds: float) -> None:
        stage_latency = self.stage_latency
        for stage, spent in decision.stages.items():
            stage_latency.observe((stage,), spent)
        for name, removed in decision.removed.items():
            self.filtered.inc((name,), removed)
        self.candidates.observe((), decision.candidates)
        for bid in decision.bids:
            self.bid_price.observe((), bid.price)
        if decision.bids:
            self.requests.inc((method, "bid", ""))
        else:
            self.requests.inc((method, "nobid", str(int(decision.nbr or 0))))
        self.latency.observe((method,), seconds)
        self.profile_lookups.inc((decision.profile_outcome,))
        if decision.restriction:
            self.context_only.inc((decision.restriction,))
        self.match_sources.inc(("+".join(decision.sources) or "none",))

    def observe_failure(self, method: str, outcome: str, nbr: int, seconds: float) -> None:
        with self._lock:
            self.requests.inc((method, outcome, str(nbr)))
            self.latency.observe((method,), seconds)

    def observe_undecodable(self, method: str) -> None:
        self.undecodable.labels(method=method).inc()
        if method in BID_METHODS:
            with self._lock:
                self.requests.inc((method, "invalid", str(int(NoBid.INVALID_REQUEST))))

    def observe_capped(self, store: str) -> None:
        self.capped.labels(store=store).inc()

    def observe_reload(self, artifact: str, swapped: bool) -> None:
        self.reloads.labels(artifact=artifact, outcome="swapped" if swapped else "refused").inc()

    def observe_snapshot(self, decider: Decider) -> None:
        snapshot = decider.snapshot
        manifest = snapshot.bundle.manifest
        self.index_campaigns.set(manifest.campaigns)
        self.index_vectors.set(manifest.vectors)
        self.index_info.info(
            {
                "version": snapshot.bundle.version,
                "index_type": manifest.index_type,
                "dims": str(manifest.dims),
            }
        )
        self.model_info.info({"version": snapshot.model.version, "model_type": snapshot.model.model_type})
        self._index_built = version_time(snapshot.bundle.version)
        self.index_built.set(self._index_built)
        self.model_built.set(version_time(snapshot.model.version))
        store = decider.profiles
        self.profiles_users.set(getattr(store, "users", 0) if store is not None else 0)

    def observe_notification(self, kind: str, outcome: str) -> None:
        self.notifications.labels(type=kind, outcome=outcome).inc()

    def observe_notice(self, note: Notification, record: BidRecord | None, status: str) -> None:
        """The spend and the funnel of a notice the Notifier applied (its EventSink's arguments)."""
        key = note.bid_key
        first_bill = status == "applied" and note.type in ("win", "impression")
        if record is not None and first_bill:
            self._won_arms.remember(key, record.arms)
        arms = record.arms if record is not None else self._won_arms.recall(key)
        if first_bill:
            bid = (record.price or 0.0) if record is not None else 0.0
            # As the store charges it: the clearing price, never more than the bid when the bid is known.
            price = min(note.price, bid) if note.price and bid else (note.price or bid)
            self.spend.inc(price / 1000.0)
            self._count("win", arms)
            for label in self._labels(arms):
                self.funnel_spend.labels(arm=label).inc(price / 1000.0)
        if note.type == "impression":
            self._count("impression", arms)
        elif note.type in ("loss", "click") and status == "applied":
            self._count(note.type, arms)

    def observe_conversion(self, arms: tuple[str, ...], value_usd: float) -> None:
        self._count("conversion", arms)
        for label in self._labels(arms):
            self.conversion_value.labels(arm=label).inc(value_usd)

    def _count(self, event: str, arms: tuple[str, ...], n: int = 1) -> None:
        for label in self._labels(arms):
            self.funnel.labels(event=event, arm=label).inc(n)

    def _labels(self, arms: Iterable[str]) -> list[str]:
        """An event counts once under each of its arms (one per experiment in force), NO_ARM without."""
        return [self._arm_label(arm) for arm in arms] or [NO_ARM]

    def observe_spend_summary(
        self, summary: dict[str, float], up: bool, planned_fraction: float | None = None
    ) -> None:
        self.budget_remaining.set(summary["remaining"])
        self.budget_exhausted.set(summary["exhausted"])
        self.pacing_rate.set(summary["pacing_rate"])
        self.state_up.set(1 if up else 0)
        self.spend_today.set(summary.get("spent", 0.0))
        self.budget_today.set(summary.get("budget", 0.0))
        if planned_fraction is not None:
            self.planned_fraction.set(planned_fraction)
