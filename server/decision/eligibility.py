"""Which matched campaigns may bid on this request at all: the request's filter chain, in one pass.

The chain is declared once, here (CHAIN): each step's name (the label the metrics count its removals
under), the no-bid reason and detail when it leaves no candidate, and whether the kernel judges it. The
kernel walks the candidate rows once, reading the campaign columns in place, and gives each candidate the
number of the first step it fails (0: it passes them all). That one array says everything the
step-by-step narrowing said, without its chain of small NumPy operations (each a few microseconds of
overhead at k = 100 candidates):

- a step's removals are the candidates whose first failure it is (a candidate is counted once, by the
  first step that drops it, as when the steps narrow in turn);
- when no candidate is left, the step that emptied the set is the last step any candidate failed at.

The steps after the kernel's (frequency caps, pacing) read the spend state of the user and draw random
numbers: they run on the survivors only, in the pipeline, in the chain's order.

Each step's predicate is stated once more, plainly, in decision/filters.py: the tests hold the kernel to
those, step by step, over random tables and requests (tests/test_eligibility.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from personabid.decision.filter_rows import (
    ADOMAIN_CODE,
    BUNDLE_CODE,
    CATEGORY_CODE,
    DEVICE_BITS,
    END,
    LANGUAGE_CODE,
    MIN_MATCH,
    PARENT_CODE,
    START,
    filter_rows,
)
from personabid.decision.filters import RequestContext
from personabid.decision.reasons import NoBid
from personabid.index.campaigns import CampaignTable


@dataclass(frozen=True)
class Step:
    name: str  # the metrics' filter label
    reason: NoBid  # the no-bid reason when this step leaves no candidate
    detail: str  # the no-bid detail then
    in_kernel: bool = True  # judged by the kernel; else by the pipeline on the kernel's survivors


def _failed(name: str) -> str:
    return f"every matched campaign failed {name}"


CHAIN: tuple[Step, ...] = (
    # The user is known (nbr 8 is for a request that carries nothing usable); no campaign targets anyone
    # like them.
    Step("similarity", NoBid.NO_ELIGIBLE_CAMPAIGN, "no persona is similar enough to the user"),
    Step("schedule", NoBid.NO_ELIGIBLE_CAMPAIGN, _failed("schedule")),
    Step("bcat", NoBid.NO_ELIGIBLE_CAMPAIGN, _failed("bcat")),
    Step("badv", NoBid.NO_ELIGIBLE_CAMPAIGN, _failed("badv")),
    Step("bapp", NoBid.NO_ELIGIBLE_CAMPAIGN, _failed("bapp")),
    Step("wlang", NoBid.NO_ELIGIBLE_CAMPAIGN, _failed("wlang")),
    Step("geo", NoBid.NO_ELIGIBLE_CAMPAIGN, _failed("geo")),
    Step("site_category", NoBid.NO_ELIGIBLE_CAMPAIGN, _failed("site_category")),
    Step("device", NoBid.NO_ELIGIBLE_CAMPAIGN, _failed("device")),
    # Spend control's steps; a test auction (no spend control) skips them.
    Step("budget", NoBid.BUDGET_EXHAUSTED, "every eligible campaign failed budget"),
    Step("frequency", NoBid.FREQUENCY_CAPPED, "every eligible campaign failed frequency", in_kernel=False),
    Step("pacing", NoBid.PACED, "every eligible campaign failed pacing", in_kernel=False),
)
NAMES = tuple(step.name for step in CHAIN)
KERNEL_STEPS = sum(1 for step in CHAIN if step.in_kernel)
assert all(step.in_kernel for step in CHAIN[:KERNEL_STEPS]), "the kernel's steps come first"
# The step numbers the kernel gives (1-based; 0 = passed), by name.
SIMILARITY, SCHEDULE, BCAT, BADV, BAPP, WLANG, GEO, SITE_CATEGORY, DEVICE, BUDGET = range(1, KERNEL_STEPS + 1)
_NO_BUDGET = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Eligible:
    """What the kernel's steps leave of the candidates, and what each removed."""

    rows: np.ndarray  # the candidates that passed every kernel step, in their order
    scores: np.ndarray
    removed: tuple[int, ...]  # candidates removed by each kernel step, in CHAIN order
    emptied: Step | None  # the step that left no candidate (None while some are left)
    budget_left: np.ndarray | None = None  # the budget step's input, narrowed with `rows`


def eligible(
    table: CampaignTable,
    rows: np.ndarray,
    scores: np.ndarray,
    context: RequestContext,
    match_scale: float = 1.0,
    budget_left: np.ndarray | None = None,
) -> Eligible:
    """The candidates that pass the kernel's steps (arguments as first_failures)."""
    failures = first_failures(table, rows, scores, context, match_scale, budget_left)
    keep, removed = _tally(failures, KERNEL_STEPS)
    kept_left = budget_left
    if keep.shape[0] == rows.shape[0]:
        kept_rows, kept_scores = rows, scores
    else:
        kept_rows, kept_scores = rows[keep], scores[keep]
        kept_left = budget_left[keep] if budget_left is not None else None
    emptied = None
    if keep.shape[0] == 0:
        # No candidate at all (an empty index) reads as none similar enough.
        emptied = CHAIN[max(int(failures.max(initial=0)) - 1, 0)]
    return Eligible(kept_rows, kept_scores, tuple(removed.tolist()), emptied, kept_left)


def first_failures(
    table: CampaignTable,
    rows: np.ndarray,
    scores: np.ndarray,
    context: RequestContext,
    match_scale: float = 1.0,
    budget_left: np.ndarray | None = None,
) -> np.ndarray:
    """int8 (len(rows),): for each candidate, the number (1-based, CHAIN order) of the first kernel step
    it fails, 0 if it passes them all.

    `rows` are int64 campaign rows, `scores` their float32 match scores; a campaign's similarity floor is
    its min_match times `match_scale` (in float32). `budget_left` is int64 micros per candidate (aligned
    with `rows`) from spend control, or None to skip the budget step (a test auction). The kernel reads
    the table's filter rows (filter_rows.py), the same columns side by side."""
    packed = filter_rows(table)
    languages = context.languages
    return _first_failures(
        rows,
        scores,
        np.float32(match_scale),
        packed.ints,
        packed.floats,
        packed.codes,
        packed.words,
        (packed.country, packed.region, packed.site, packed.os),
        context.now,
        context.blocked_categories,
        context.blocked_domains,
        context.blocked_apps,
        languages if languages is not None else np.zeros(0, dtype=np.int32),
        languages is not None,
        context.country_code,
        context.region_code,
        context.site_categories,
        context.devicetype,
        context.os_code,
        budget_left if budget_left is not None else _NO_BUDGET,
        budget_left is not None,
    )


@nb.njit(cache=True, inline="always")
def _member(words: np.ndarray, row: int, at: int, code: int) -> bool:
    """Whether bit `code` is set in the row's bitset whose first word is `at`."""
    return (words[row, at + (code >> 6)] >> np.uint64(code & 63)) & np.uint64(1) != 0


@nb.njit(cache=True, inline="always")
def _listed(value: int, codes: np.ndarray) -> bool:
    # A loop, not any(generator): Numba compiles no generators. The lists are a few codes: a scan beats a set.
    for code in codes:  # noqa: SIM110
        if code == value:
            return True
    return False


@nb.njit(cache=True)
def _tally(failures: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the candidates that failed no step, and how many each step removed."""
    removed = np.zeros(steps, dtype=np.int64)
    keep = np.empty(failures.shape[0], dtype=np.int64)
    kept = 0
    for i in range(failures.shape[0]):
        if failures[i] == 0:
            keep[kept] = i
            kept += 1
        else:
            removed[failures[i] - 1] += 1
    return keep[:kept], removed


@nb.njit(cache=True)
def _first_failures(
    rows: np.ndarray,
    scores: np.ndarray,
    match_scale: np.float32,
    ints: np.ndarray,
    floats: np.ndarray,
    codes: np.ndarray,
    words: np.ndarray,
    bitsets: tuple[int, int, int, int],
    now: int,
    blocked_categories: np.ndarray,
    blocked_domains: np.ndarray,
    blocked_apps: np.ndarray,
    languages: np.ndarray,
    any_language_asked: bool,
    country_code: int,
    region_code: int,
    site_categories: np.ndarray,
    devicetype: int,
    os_code: int,
    budget_left: np.ndarray,
    check_budget: bool,
) -> np.ndarray:
    country_at, region_at, site_at, os_at = bitsets
    out = np.zeros(rows.shape[0], dtype=np.int8)
    for i in range(rows.shape[0]):
        r = rows[i]
        if scores[i] < np.float32(floats[r, MIN_MATCH]) * match_scale:
            out[i] = SIMILARITY
        elif ints[r, START] > now or (ints[r, END] != 0 and now >= ints[r, END]):
            out[i] = SCHEDULE
        elif _listed(codes[r, CATEGORY_CODE], blocked_categories) or _listed(
            codes[r, PARENT_CODE], blocked_categories
        ):
            out[i] = BCAT
        elif _listed(codes[r, ADOMAIN_CODE], blocked_domains):
            out[i] = BADV
        elif _listed(codes[r, BUNDLE_CODE], blocked_apps):
            out[i] = BAPP
        elif any_language_asked and not _listed(codes[r, LANGUAGE_CODE], languages):
            out[i] = WLANG
        elif not (_member(words, r, country_at, country_code) and _member(words, r, region_at, region_code)):
            out[i] = GEO
        else:
            blocked_site = False
            for code in site_categories:
                if _member(words, r, site_at, code):
                    blocked_site = True
                    break
            if blocked_site:
                out[i] = SITE_CATEGORY
            elif not (
                0 <= devicetype < 16
                and (codes[r, DEVICE_BITS] >> devicetype) & 1 != 0
                and _member(words, r, os_at, os_code)
            ):
                out[i] = DEVICE
            elif check_budget and budget_left[i] <= 0:
                out[i] = BUDGET
    return out
