"""Deals: which candidates bid through which of an impression's deals, and at which floor.

A campaign that lists a deal the impression offers bids through it (the first such deal, in the
impression's order), at the deal's floor, when the deal is open to personabid's seat (wseat) and to the
campaign's advertiser (wadomain). Otherwise it bids in the open auction at the impression's floor, unless
the campaign is deal-bound (deal_only) or the auction private (`pmp.private_auction = 1`). Floors are in
USD; a floor in a currency without a rate leaves its deal, or the open auction, closed to everyone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from personabid.decision.currency import Currencies
from personabid.index.campaigns import CampaignTable, bitset_member
from personabid.openrtb.request import Imp

FIXED_PRICE = 3  # deal.at: the floor is the price
_NO_DEALS = np.zeros(0, dtype=bool)


@dataclass(frozen=True)
class DealTerms:
    eligible: np.ndarray  # bool (m,): may bid, through a deal or in the open auction
    floors: np.ndarray  # float64 (m,): CPM in USD each must reach
    deals: np.ndarray  # int64 (m,): index into the impression's deals, -1 for the open auction
    ids: tuple[str, ...]  # the impression's deal ids, by index
    fixed_price: np.ndarray  # bool (deals,): bought at its floor
    unpriced: bool  # some floor had a currency without a rate

    def fixed(self, deals: np.ndarray) -> np.ndarray:
        """bool, like `deals` (indices, -1 for none): which bid through a fixed-price deal."""
        if not self.fixed_price.any():
            return np.zeros(len(deals), dtype=bool)
        return (deals >= 0) & self.fixed_price[np.maximum(deals, 0)]


def deal_terms(
    table: CampaignTable, rows: np.ndarray, imp: Imp, seat: str, currencies: Currencies
) -> DealTerms:
    m = len(rows)
    open_floor = currencies.to_usd(imp.bidfloor, imp.bidfloorcur)
    unpriced = open_floor is None
    if imp.pmp is None and open_floor is not None:  # the common case: an open auction, no deal offered
        return DealTerms(
            eligible=~table.deal_only[rows],
            floors=np.full(m, open_floor, dtype=np.float64),
            deals=np.full(m, -1, dtype=np.int64),
            ids=(),
            fixed_price=_NO_DEALS,
            unpriced=False,
        )
    floors = np.full(m, open_floor or 0.0, dtype=np.float64)
    deals = np.full(m, -1, dtype=np.int64)
    offered = imp.pmp.deals if imp.pmp is not None else ()
    for j, deal in enumerate(offered):
        if deal.wseat and seat not in deal.wseat:
            continue
        code = table.code_of("deals", deal.id)
        if code == 0:  # no campaign buys through it
            continue
        floor = currencies.to_usd(deal.bidfloor, deal.bidfloorcur)
        if floor is None:
            unpriced = True
            continue
        members = bitset_member(table.deal_bits, rows, code) & (deals < 0)
        if deal.wadomain:
            members &= np.isin(table.adomain[rows], [d.lower() for d in deal.wadomain])
        deals[members] = j
        floors[members] = floor
    private = imp.pmp is not None and imp.pmp.private_auction == 1
    in_open = np.zeros(m, dtype=bool) if private or open_floor is None else ~table.deal_only[rows]
    return DealTerms(
        eligible=(deals >= 0) | in_open,
        floors=floors,
        deals=deals,
        ids=tuple(d.id for d in offered),
        fixed_price=np.array([d.at == FIXED_PRICE for d in offered], dtype=bool),
        unpriced=unpriced,
    )
