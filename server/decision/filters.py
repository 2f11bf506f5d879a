"""Eligibility filters: boolean masks over the matched candidates, cheapest first.

Each filter takes the campaign table, the candidate rows (int32 (m,)) and what it needs of the request,
and returns a bool (m,) mask of the candidates it keeps. The pipeline applies them in order, counts what
each removed and stops when no candidate is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from personabid.index.campaigns import CampaignTable, bitset_member


@dataclass(frozen=True)
class RequestContext:
    """What the request-level filters need, resolved once per request against the table's code tables."""

    now: int  # unix seconds
    devicetype: int
    country_code: int
    region_code: int
    os_code: int
    site_categories: np.ndarray  # int32 codes of the page's categories and their parents
    blocked_categories: np.ndarray  # int32 codes
    blocked_domains: np.ndarray  # int32 codes
    blocked_apps: np.ndarray  # int32 codes of the advertised apps' bundles
    languages: np.ndarray | None  # int32 codes of the creative languages allowed; None: any


def context_for(
    table: CampaignTable,
    now: int,
    devicetype: int,
    country: str,
    os: str,
    bcat: tuple[str, ...],
    badv: tuple[str, ...],
    region: str = "",
    site_categories: tuple[str, ...] = (),
    bapp: tuple[str, ...] = (),
    wlang: tuple[str, ...] = (),
) -> RequestContext:
    def codes(name: str, values: tuple[str, ...]) -> np.ndarray:
        found = [table.code_of(name, v) for v in values]
        return np.array([c for c in found if c > 0], dtype=np.int32)

    return RequestContext(
        now=now,
        devicetype=devicetype,
        country_code=table.code_of("countries", country.upper()),
        region_code=table.code_of("regions", f"{country.upper()}-{region.upper()}") if region else 0,
        os_code=table.code_of("os_names", os.lower()),
        site_categories=codes(
            "site_categories", tuple(site_categories) + tuple(c.split("-", 1)[0] for c in site_categories)
        ),
        blocked_categories=codes("categories", bcat),
        blocked_domains=codes("domains", badv),
        blocked_apps=codes("bundles", bapp),
        # Codes of the languages the catalog has; one it has not, none of its campaigns can match.
        languages=codes("languages", tuple(w.lower() for w in wlang)) if wlang else None,
    )


def similarity_floor(
    table: CampaignTable, rows: np.ndarray, scores: np.ndarray, match_scale: float = 1.0
) -> np.ndarray:
    """Candidates at least as similar as their campaign's floor, scaled by `match_scale` (in float32)."""
    return scores >= table.min_match[rows] * np.float32(match_scale)


def schedule(table: CampaignTable, rows: np.ndarray, now: int) -> np.ndarray:
    start, end = table.start[rows], table.end[rows]
    return (start <= now) & ((end == 0) | (now < end))


def blocked_category(table: CampaignTable, rows: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    if blocked.size == 0:
        return np.ones(len(rows), dtype=bool)
    return ~(np.isin(table.category_code[rows], blocked) | np.isin(table.category_parent_code[rows], blocked))


def blocked_advertiser(table: CampaignTable, rows: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    if blocked.size == 0:
        return np.ones(len(rows), dtype=bool)
    return ~np.isin(table.adomain_code[rows], blocked)


def blocked_app(table: CampaignTable, rows: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """Campaigns whose advertised app (bundle) the exchange does not block."""
    if blocked.size == 0:
        return np.ones(len(rows), dtype=bool)
    return ~np.isin(table.bundle_code[rows], blocked)


def language(table: CampaignTable, rows: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Campaigns whose creatives' language the exchange allows (wlang); a campaign that declares no
    language bids only where no language is asked for."""
    if allowed is None:
        return np.ones(len(rows), dtype=bool)
    return np.isin(table.language_code[rows], allowed)


def geo(table: CampaignTable, rows: np.ndarray, country_code: int, region_code: int = 0) -> np.ndarray:
    """Campaigns targeting the country (or everywhere) and the region (or every region)."""
    return bitset_member(table.country_bits, rows, country_code) & bitset_member(
        table.region_bits, rows, region_code
    )


def site_category(table: CampaignTable, rows: np.ndarray, page_categories: np.ndarray) -> np.ndarray:
    """Campaigns that do not block any of the page's categories (a blocked parent blocks its children)."""
    keep = np.ones(len(rows), dtype=bool)
    for code in page_categories:
        keep &= ~bitset_member(table.blocked_site_bits, rows, int(code))
    return keep


def device(table: CampaignTable, rows: np.ndarray, devicetype: int, os_code: int) -> np.ndarray:
    by_type = ((table.device_bits[rows] >> np.uint16(devicetype)) & np.uint16(1)).astype(bool)
    return by_type & bitset_member(table.os_bits, rows, os_code)


def creative_size(table: CampaignTable, rows: np.ndarray, size_code: int | None) -> np.ndarray:
    """Campaigns with a creative of the slot's size; `None` means the slot takes any size."""
    if size_code is None:
        return np.ones(len(rows), dtype=bool)
    if size_code == 0:  # a size no campaign has
        return np.zeros(len(rows), dtype=bool)
    return bitset_member(table.size_bits, rows, size_code)


def floor_reachable(table: CampaignTable, rows: np.ndarray, bidfloor: float) -> np.ndarray:
    """Campaigns whose maximum bid can reach the floor at all (pricing decides the rest)."""
    return table.max_bid[rows] >= bidfloor


Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


def request_predicates(
    table: CampaignTable, context: RequestContext, match_scale: float = 1.0
) -> dict[str, Mask]:
    """The request's filters, plainly, by their names in the chain (decision/eligibility.py CHAIN), each a
    mask over (rows, scores): what the kernel is held to, step by step, in the tests and benchmarks."""
    return {
        "similarity": lambda r, s: similarity_floor(table, r, s, match_scale),
        "schedule": lambda r, s: schedule(table, r, context.now),
        "bcat": lambda r, s: blocked_category(table, r, context.blocked_categories),
        "badv": lambda r, s: blocked_advertiser(table, r, context.blocked_domains),
        "bapp": lambda r, s: blocked_app(table, r, context.blocked_apps),
        "wlang": lambda r, s: language(table, r, context.languages),
        "geo": lambda r, s: geo(table, r, context.country_code, context.region_code),
        "site_category": lambda r, s: site_category(table, r, context.site_categories),
        "device": lambda r, s: device(table, r, context.devicetype, context.os_code),
    }
