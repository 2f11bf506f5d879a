"""Counters and histograms for the request path: plain numbers per label set, read when scraped.

prometheus_client's Counter and Histogram pay on every observation for what a scrape needs (a label
lookup through a lock, a value object per bucket, a timestamp per child): about a microsecond and a half
each, and a decision makes some twenty observations. Here an observation is a dict lookup and a list
increment; the exposition, with the same names, help, labels and buckets, is built when Prometheus
scrapes (collect). The caller holds one lock over all the observations of a request
(Metrics.observe_decision), rather than one per observation.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]


class CounterArray:
    """A counter family (exposed as NAME_total) whose children are plain floats."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.values: dict[Labels, float] = {}
        registry.register(self)

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def touch(self, labels: Labels) -> None:
        """Expose the child at 0 before it first counts, so that a rate over it starts at the start."""
        self.values.setdefault(labels, 0.0)

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self.values.items()):
            family.add_metric(list(labels), value)
        yield family


class HistogramArray:
    """A histogram family whose children are a list of per-bucket counts (the last for +Inf) and a sum."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self._les = [*(floatToGoString(b) for b in self.bounds), "+Inf"]
        self.series: dict[Labels, list[float]] = {}
        registry.register(self)

    def observe(self, labels: Labels, value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0.0] * (len(self.bounds) + 2)
        # Bucket i holds the values in (bounds[i-1], bounds[i]]: le is inclusive.
        series[bisect_left(self.bounds, value)] += 1
        series[-1] += value

    def touch(self, labels: Labels) -> None:
        self.series.setdefault(labels, [0.0] * (len(self.bounds) + 2))

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, series in list(self.series.items()):
            counts, total = series[:-1], series[-1]
            cumulative, buckets = 0.0, []
            for le, count in zip(self._les, counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(list(labels), buckets, total)
        yield family
