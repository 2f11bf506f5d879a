"""Latency histograms and their summaries.

HDR histograms (the `hdrhistogram` package) because they give every percentile, up to the maximum, to a
fixed relative error (3 significant digits here) in a fixed, small amount of memory, and they merge
exactly: the load processes each record their own, and the runner adds them up. A list of samples would
grow with the run, and a histogram of fixed buckets would blur the tail, which is what is measured.
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60_000_000  # a minute: anything slower is a failure, not a latency
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# Points of the latency CDF kept in the JSON results (and plotted): dense in the tail.
CDF_PERCENTILES = (
    *range(1, 90),
    *(90 + i / 4 for i in range(36)),
    *(99 + i / 20 for i in range(18)),
    99.9,
    99.95,
    99.99,
    100.0,
)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def merge(encoded: list[bytes]) -> HdrHistogram:
    total = new_histogram()
    for item in encoded:
        if item:
            total.decode_and_add(item)
    return total


def summary(histogram: HdrHistogram) -> dict[str, Any]:
    """Latency percentiles in microseconds: p50, p90, p99, p99.9, max, mean, and the sample count."""
    if histogram.get_total_count() == 0:
        return {"count": 0}
    out: dict[str, Any] = {"count": int(histogram.get_total_count())}
    for p in PERCENTILES:
        out[_name(p)] = int(histogram.get_value_at_percentile(p))
    out["max_us"] = int(histogram.get_max_value())
    out["mean_us"] = round(float(histogram.get_mean_value()), 1)
    return out


def cdf(histogram: HdrHistogram) -> list[list[float]]:
    """[percentile, latency in microseconds] pairs of the latency distribution."""
    if histogram.get_total_count() == 0:
        return []
    return [[float(p), int(histogram.get_value_at_percentile(p))] for p in CDF_PERCENTILES]


def _name(p: float) -> str:
    return f"p{p:g}_us".replace(".", "_")
