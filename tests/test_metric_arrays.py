"""The request path's counters and histograms (metric_arrays.py) expose what prometheus_client's own
Counter and Histogram expose for the same observations (their _created timestamps aside)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram

from personabid.metric_arrays import CounterArray, HistogramArray

BUCKETS = (0.0, 0.001, 0.5, 1.0, 2.5, 100.0)
LABELS = st.sampled_from(["a", "b", "c"])


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(LABELS, st.floats(-1e6, 1e9, allow_nan=False) | st.sampled_from(BUCKETS) | st.just(0.0)),
        max_size=60,
    )
)
def test_a_histogram_array_exposes_the_buckets_count_and_sum_of_a_histogram(
    observations: list[tuple[str, float]],
) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("h_seconds", "help", ["stage"], buckets=BUCKETS, registry=theirs)
    array = HistogramArray("h_seconds", "help", ["stage"], BUCKETS, ours)
    for label, value in observations:
        reference.labels(stage=label).observe(value)
        array.observe((label,), value)
    assert samples(ours) == samples(theirs)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(LABELS, LABELS, st.floats(0, 1e12)), max_size=60))
def test_a_counter_array_exposes_the_totals_of_a_counter(observations: list[tuple[str, str, float]]) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Counter("c_events", "help", ["kind", "arm"], registry=theirs)
    array = CounterArray("c_events", "help", ["kind", "arm"], ours)
    for kind, arm, amount in observations:
        reference.labels(kind=kind, arm=arm).inc(amount)
        array.inc((kind, arm), amount)
    assert samples(ours) == samples(theirs)


def test_a_touched_child_is_exposed_at_zero_before_it_counts() -> None:
    registry = CollectorRegistry()
    CounterArray("c_events", "help", ["kind"], registry).touch(("x",))
    assert registry.get_sample_value("c_events_total", {"kind": "x"}) == 0.0
