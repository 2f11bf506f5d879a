"""The in-process store's view counts (frequency caps) against a plain log of every view, through
evictions at a small cap: answering users with no history without a lookup changes no count."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.index.campaigns import CampaignSpec, CampaignTable, Creative, build_table
from personabid.spend.control import SpendControl
from personabid.spend.store import MemoryStore, StoreLimits

USERS = st.sampled_from(["u1", "u2", "u3"])
CAMPAIGNS = st.sampled_from(["c1", "c2", "c3", "c4"])
STEP = st.one_of(
    st.tuples(st.just("view"), USERS, CAMPAIGNS, st.floats(0, 50)),
    st.tuples(st.just("ask"), USERS, CAMPAIGNS, st.floats(0, 50)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=60), st.integers(1, 6))
def test_view_counts_are_what_a_log_of_the_views_kept_says(
    steps: list[tuple[str, str, str, float]], cap: int
) -> None:
    store = MemoryStore(StoreLimits(max_frequency_keys=cap))
    window = 10.0
    now = 1_000.0
    log: dict[tuple[str, str], list[float]] = {}  # the pairs the store still holds, with their views
    for kind, user, campaign, advance in steps:
        now += advance
        if kind == "view":
            key = (user, campaign)
            if key not in log:
                # The store first forgets histories wholly out of their window, oldest first, then the
                # least recently seen pair when it is full; the log follows the same rule.
                for old in list(log):
                    if log[old][-1] > now - window:
                        break
                    del log[old]
                if len(log) >= cap:
                    del log[next(iter(log))]
                log[key] = []
            else:
                log[key] = log.pop(key)  # most recently seen last
            log[key] = [t for t in [*log[key], now] if t > now - window]
        else:
            expected = sum(1 for t in log.get((user, campaign), ()) if t > now - window)
            assert store.views(user, [campaign], [window], now) == [expected]
        if kind == "view":
            store.add_view(user, campaign, now, window)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def views(self, user: str, campaigns: list[str], windows: list[float], now: float) -> list[int]:
        self.reads += 1
        return super().views(user, campaigns, windows, now)


def _capped_table() -> CampaignTable:
    spec = CampaignSpec(
        id="c", advertiser="a", adomain="a.example", category="IAB1", base_bid=1.0, max_bid=2.0,
        personas=np.eye(4, dtype=np.float32)[:1], creatives=(Creative("cr", 300, 250),), frequency_cap=1,
    )  # fmt: skip
    return build_table([spec])[0]


def test_a_user_with_no_views_is_under_every_cap_without_a_lookup() -> None:
    store = CountingStore()
    keep = SpendControl(store, clock=lambda: 1_000.0).under_cap(_capped_table(), np.array([0]), "u1")
    assert (keep.tolist(), store.reads) == ([True], 0)


def test_a_user_with_views_is_looked_up_and_capped() -> None:
    store = CountingStore()
    store.add_view("u1", "c", 999.0, 86_400.0)
    keep = SpendControl(store, clock=lambda: 1_000.0).under_cap(_capped_table(), np.array([0]), "u1")
    assert (keep.tolist(), store.reads) == ([False], 1)
