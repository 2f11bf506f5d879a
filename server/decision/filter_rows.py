"""The request filters' campaign columns, side by side: one row of 64-bit words a campaign.

The filter kernel (eligibility.py) reads thirteen columns of each candidate: its similarity floor,
schedule, five codes, device bits and four bitsets. Held as columns, a candidate costs thirteen cache
lines, one in each column; under load, between one auction and the next, gRPC, the event loop and the rest
of the request path push those lines out of the core's caches, and the kernel waits on memory for each of
them (at 100,000 campaigns and 100 candidates, in process: 35 us with the table's lines in the caches, 140
us after 64 MB of other work). Side by side, a candidate's checks read the one or two lines of its row.

A row is 6 + the bitsets' words long (10 words, 80 bytes, when each bitset has one word): start and end
(int64), the similarity floor (the float32 held exactly as a float64), six int32 codes in three words
(category, its parent, advertiser domain, app bundle, language, device bits), then the country, region,
blocked site category and OS bitsets. The kernel reads the one buffer through int64, float64 and int32
views. It is built from the table once, on the first auction or the warm-up (reload.warm_up), and kept
with the table, whose columns never change: 8 MB at 100,000 campaigns and 80 MB at 1,000,000, beside the
columns, which the rest of the path still reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from personabid.index.campaigns import CampaignTable

START, END, MIN_MATCH = 0, 1, 2  # words
# int32 positions in the int32 view: words 3 to 5
CATEGORY_CODE, PARENT_CODE, ADOMAIN_CODE, BUNDLE_CODE, LANGUAGE_CODE, DEVICE_BITS = range(6, 12)
BITSETS_AT = 6  # the first bitset's first word


@dataclass(frozen=True)
class FilterRows:
    words: np.ndarray  # uint64 (n, width): the bitsets
    ints: np.ndarray  # the same buffer as int64: start, end
    floats: np.ndarray  # as float64: the similarity floor
    codes: np.ndarray  # as int32 (n, 2 * width): the codes
    country: int  # the first word of each bitset
    region: int
    site: int
    os: int


def filter_rows(table: CampaignTable) -> FilterRows:
    """The table's filter rows, built on first use and kept with it."""
    return table.derived("filter_rows", _pack)


def _pack(table: CampaignTable) -> FilterRows:
    bitsets = (table.country_bits, table.region_bits, table.blocked_site_bits, table.os_bits)
    starts = np.cumsum([BITSETS_AT] + [bits.shape[1] for bits in bitsets]).tolist()
    words = np.zeros((len(table), starts[-1]), dtype=np.uint64)
    ints, floats, codes = words.view(np.int64), words.view(np.float64), words.view(np.int32)
    ints[:, START] = table.start
    ints[:, END] = table.end
    floats[:, MIN_MATCH] = table.min_match  # float32 to float64: exact
    for position, column in (
        (CATEGORY_CODE, table.category_code),
        (PARENT_CODE, table.category_parent_code),
        (ADOMAIN_CODE, table.adomain_code),
        (BUNDLE_CODE, table.bundle_code),
        (LANGUAGE_CODE, table.language_code),
        (DEVICE_BITS, table.device_bits),
    ):
        codes[:, position] = column
    for bits, at in zip(bitsets, starts, strict=False):
        words[:, at : at + bits.shape[1]] = bits
    return FilterRows(words, ints, floats, codes, *starts[:4])
