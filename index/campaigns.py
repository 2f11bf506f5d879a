"""Campaigns as columns: numpy arrays indexed by campaign row, so that a filter is a boolean mask.

Targeting sets (countries, regions, OS, blocked site categories) are bitsets over a small per-artifact
code table whose code 0 means "unknown or not listed"; a campaign that targets everyone has every bit
set, so an unknown value still matches it. Strings live in fixed-width unicode arrays, which numpy saves
and loads without pickle.

Creatives are columns too, indexed by creative: campaign row i owns creatives creative_offsets[i] to
creative_offsets[i + 1], in catalog order. What an OpenRTB bid needs of a creative (media type, size,
mime, duration, protocol, attributes, whether it is secure, its markup) is there, so that the creative
fitting stage (personabid.decision.creatives) picks one with arrays only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

import numpy as np

from personabid.ctr.features import token
from personabid.errors import ArtifactError

T = TypeVar("T")

CODE_TABLES = (
    "domains",
    "categories",
    "countries",
    "os_names",
    "sizes",
    "regions",
    "site_categories",
    "mimes",
    "deals",
    "bundles",
    "languages",
)
DEVICE_TYPES = 9  # OpenRTB devicetype 0 (unknown) to 8
# The texts of a creative, in the order text_offsets holds them.
TEXTS = ("markup", "landing", "iurl")
MARKUP, LANDING, IURL = range(len(TEXTS))
ANY_DEVICE = np.uint16((1 << DEVICE_TYPES) - 1)
OTHER = ""  # code 0 of every code table
# OpenRTB 2.6 bid.mtype of each creative type.
MTYPES = {"banner": 1, "video": 2, "audio": 3, "native": 4}
BANNER, VIDEO, AUDIO, NATIVE = 1, 2, 3, 4
# A namespace name in XML (VAST 4 declares xmlns="http://www.iab.com/VAST") is never fetched.
_XMLNS = re.compile(r"""\bxmlns(?::[\w.-]+)?\s*=\s*("[^"]*"|'[^']*')""")


@dataclass(frozen=True)
class Creative:
    """One creative as a catalog states it (validated before it gets here); see catalog.py for the format.

    The markup is `markup` (banner HTML, VAST or DAAST XML of video and audio, the Native 1.2 response
    object of native as compact JSON) or, for a banner, `image`: the URL of an image the server wraps in
    a link to `landing`.
    """

    id: str
    w: int = 0  # 0 when the creative has no size (audio, native, a video without one)
    h: int = 0
    type: str = "banner"  # banner, video, audio or native (MTYPES)
    markup: str = ""
    image: str = ""  # banner image URL, instead of markup
    landing: str = ""  # click-through URL
    mime: str = ""  # video and audio: "video/mp4"
    duration: int = 0  # video and audio: seconds
    protocol: int = 0  # video and audio: AdCOM protocol of the VAST (2: VAST 2.0, 3: VAST 3.0, 7: VAST 4.0)
    attr: tuple[int, ...] = ()  # AdCOM creative attributes (1 to 17), sorted
    iurl: str = ""  # sample image URL, for the exchange's quality checks
    ver: str = ""  # native: version of the Native response ("1.2")

    @property
    def mtype(self) -> int:
        """OpenRTB 2.6 bid.mtype: 1 banner, 2 video, 3 audio, 4 native."""
        return MTYPES[self.type]

    @property
    def secure(self) -> bool:
        """Whether every URL the creative carries is https or protocol-relative (no "http://")."""
        text = " ".join((self.markup, self.image, self.landing, self.iurl))
        return "http://" not in _XMLNS.sub("", text).lower()


@dataclass(frozen=True)
class CampaignSpec:
    """One campaign as a catalog states it (validated before it gets here)."""

    id: str
    advertiser: str
    adomain: str
    category: str  # IAB content category, for example "IAB3-1"
    base_bid: float  # CPM bid for an average-CTR impression
    max_bid: float  # CPM cap
    personas: np.ndarray  # float32 (n_personas, dims), unit rows
    creatives: tuple[Creative, ...]
    countries: tuple[str, ...] = ()  # ISO-3166 alpha-3; empty means everywhere
    regions: tuple[str, ...] = ()  # "USA-CA" (country, then OpenRTB geo.region); empty means everywhere
    device_types: tuple[int, ...] = ()  # empty means every device type
    os: tuple[str, ...] = ()  # lower case; empty means every OS
    min_match: float = 0.3  # similarity floor
    start: int = 0  # unix seconds; 0 means no start
    end: int = 0  # unix seconds; 0 means no end
    daily_budget: float = 0.0  # 0 means unlimited
    currency: str = "USD"
    blocked_categories: tuple[str, ...] = ()  # site/app categories the campaign must not appear on
    frequency_cap: int = 0  # views per user within frequency_window; 0 means no cap
    frequency_window: float = 86_400.0  # seconds
    deals: tuple[str, ...] = ()  # deal ids the campaign may buy through
    deal_only: bool = False  # bids only through one of its deals, never in the open auction
    bundle: str = ""  # app store bundle advertised (for bapp); "" when none
    language: str = ""  # ISO 639-1 code of the creatives' language (for wlang); "" when unstated


@dataclass(frozen=True)
class CampaignTable:
    """Column store of the campaigns in one index version. Row i of every column is campaign i."""

    campaign_id: np.ndarray  # <U, (n,)
    advertiser: np.ndarray  # <U, (n,)
    adomain: np.ndarray  # <U, (n,)
    category: np.ndarray  # <U, (n,)
    base_bid: np.ndarray  # float64, (n,) CPM
    max_bid: np.ndarray  # float64, (n,) CPM
    min_match: np.ndarray  # float32, (n,)
    start: np.ndarray  # int64, (n,)
    end: np.ndarray  # int64, (n,) ; 0 = open-ended
    daily_budget: np.ndarray  # float64, (n,)
    freq_cap: np.ndarray  # int32, (n,) views per user per window, 0 = no cap
    freq_window: np.ndarray  # float64, (n,) seconds
    currency: np.ndarray  # <U3, (n,)
    adomain_code: np.ndarray  # int32, (n,) into domains
    category_code: np.ndarray  # int32, (n,) into categories
    category_parent_code: np.ndarray  # int32, (n,) into categories ("IAB3" for "IAB3-1")
    device_bits: np.ndarray  # uint16, (n,), bit t = devicetype t allowed
    country_bits: np.ndarray  # uint64, (n, words) over countries
    os_bits: np.ndarray  # uint64, (n, words) over os_names
    region_bits: np.ndarray  # uint64, (n, words) over regions
    blocked_site_bits: np.ndarray  # uint64, (n, words) over site_categories; set = blocked
    size_bits: np.ndarray  # uint64, (n, words) over sizes, the banner sizes the campaign has
    deal_bits: np.ndarray  # uint64, (n, words) over deals, the deals the campaign may buy through
    deal_only: np.ndarray  # bool, (n,) bids only through one of its deals
    bundle: np.ndarray  # <U, (n,) app store bundle advertised, "" when none
    bundle_code: np.ndarray  # int32, (n,) into bundles
    language_code: np.ndarray  # int32, (n,) into languages; 0 = unstated
    campaign_token: np.ndarray  # uint64, (n,) stable feature tokens
    advertiser_token: np.ndarray
    category_token: np.ndarray
    creative_offsets: np.ndarray  # int64, (n + 1,) CSR into the creative columns
    creative_id: np.ndarray  # <U, (n_creatives,)
    creative_size: np.ndarray  # int32, (n_creatives,) into sizes; 0 for all but banners
    creative_mtype: np.ndarray  # int8, (n_creatives,) OpenRTB mtype: 1 banner, 2 video, 3 audio, 4 native
    creative_w: np.ndarray  # int32, (n_creatives,) 0 when the creative has no size
    creative_h: np.ndarray  # int32, (n_creatives,)
    creative_mime: np.ndarray  # int32, (n_creatives,) into mimes; 0 = none (banner, native)
    creative_duration: np.ndarray  # int32, (n_creatives,) seconds; 0 = none
    creative_protocol: np.ndarray  # int32, (n_creatives,) AdCOM protocol; 0 = none
    creative_secure: np.ndarray  # bool, (n_creatives,) no http:// URL in markup, image, landing, iurl
    creative_attr_bits: np.ndarray  # uint32, (n_creatives,) bit a set for AdCOM creative attribute a
    creative_image: np.ndarray  # bool, (n_creatives,) the markup is an image URL to wrap in a link
    # Each creative's texts, UTF-8 one after another (markup, landing, iurl, see TEXTS): a fixed-width
    # string column would make every row as wide as the longest VAST document.
    text_bytes: np.ndarray  # uint8, (total bytes,)
    text_offsets: np.ndarray  # int64, (len(TEXTS) * n_creatives + 1,) text k of creative i at TEXTS*i+k
    domains: np.ndarray  # <U code table
    categories: np.ndarray  # <U code table
    countries: np.ndarray  # <U code table, [0] = ""
    os_names: np.ndarray  # <U code table, [0] = ""
    sizes: np.ndarray  # <U code table "WxH", [0] = ""
    regions: np.ndarray  # <U code table "USA-CA", [0] = ""
    site_categories: np.ndarray  # <U code table, [0] = ""
    mimes: np.ndarray  # <U code table "video/mp4", [0] = ""
    deals: np.ndarray  # <U code table of deal ids, [0] = ""
    bundles: np.ndarray  # <U code table, [0] = ""
    languages: np.ndarray  # <U code table "en", [0] = ""

    def __len__(self) -> int:
        return len(self.campaign_id)

    def code_of(self, table: str, value: str) -> int:
        """Code of `value` in the code table named `table` ("countries", "sizes"...), 0 if not listed."""
        return self.derived("lookups", _code_lookups)[table].get(value, 0)

    def derived(self, name: str, build: Callable[[CampaignTable], T]) -> T:
        """What `build` derives from the columns, built on first use and kept with the table: its columns
        never change. (Two threads may both build it at once; either result is the same.)"""
        kept = self.__dict__.get(f"_derived_{name}")
        if kept is None:
            kept = build(self)
            object.__setattr__(self, f"_derived_{name}", kept)
        return kept

    def creative_text(self, creative: int, text: int) -> str:
        """Text `text` (MARKUP, LANDING or IURL) of creative `creative`; "" when it has none."""
        at = len(TEXTS) * creative + text
        start, stop = int(self.text_offsets[at]), int(self.text_offsets[at + 1])
        return self.text_bytes[start:stop].tobytes().decode()

    def creative_for(self, row: int, size_code: int) -> int:
        """Index of the campaign's first banner creative of that size (any size when size_code is 0), or
        -1. (personabid.decision.creatives.fit judges every media type.)"""
        for i in range(self.creative_offsets[row], self.creative_offsets[row + 1]):
            if self.creative_mtype[i] == BANNER and (size_code == 0 or self.creative_size[i] == size_code):
                return int(i)
        return -1

    def save(self, path: Path) -> None:
        with path.open("wb") as handle:
            np.savez(handle, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> CampaignTable:
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [f.name for f in fields(cls) if f.name not in data.files]
                if missing:
                    raise ArtifactError(
                        f"{path}: the campaign table lacks column(s) {', '.join(missing)}: it was written "
                        "by an older personabid; rebuild the index with `personabid index build`"
                    )
                columns = {f.name: data[f.name] for f in fields(cls)}
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{path}: unreadable campaign table: {exc}") from exc
        table = cls(**columns)
        table.check()
        return table

    def check(self) -> None:
        """ArtifactError unless every column has its length, and the kernels' columns their dtype."""
        n = len(self.campaign_id)
        for f in fields(self):
            column = getattr(self, f.name)
            if f.name == "creative_offsets":
                expected = n + 1
            elif f.name == "text_offsets":
                expected = len(TEXTS) * len(self.creative_id) + 1
            elif f.name == "text_bytes":
                expected = int(self.text_offsets[-1]) if len(self.text_offsets) else 0
            elif f.name.startswith("creative_"):
                expected = len(self.creative_id)
            elif f.name in CODE_TABLES:
                continue
            else:
                expected = n
            if len(column) != expected:
                raise ArtifactError(f"campaign column {f.name} has {len(column)} rows, expected {expected}")
            dtype = KERNEL_DTYPES.get(f.name)
            if dtype is not None and column.dtype != dtype:
                raise ArtifactError(f"campaign column {f.name} is {column.dtype}, expected {np.dtype(dtype)}")


# The columns the Numba kernels read, whose dtype a kernel relies on.
KERNEL_DTYPES: dict[str, type[np.generic]] = {
    "creative_offsets": np.int64,
    "creative_mtype": np.int8,
    "creative_w": np.int32,
    "creative_h": np.int32,
    "creative_mime": np.int32,
    "creative_duration": np.int32,
    "creative_protocol": np.int32,
    "creative_secure": np.bool_,
    "creative_attr_bits": np.uint32,
}


def _packed_texts(texts: Sequence[tuple[str, str, str]]) -> dict[str, np.ndarray]:
    """The text_bytes and text_offsets columns of each creative's (markup, landing, iurl)."""
    encoded = [t.encode() for triple in texts for t in triple]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(e) for e in encoded])
    return {"text_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), "text_offsets": offsets}


def bitset(code_lists: Sequence[Sequence[int]], n_codes: int) -> np.ndarray:
    """uint64 (len(code_lists), words) with bit c of row i set when c is in code_lists[i]."""
    words = max(1, (n_codes + 63) // 64)
    bits = np.zeros((len(code_lists), words), dtype=np.uint64)
    for row, codes in enumerate(code_lists):
        for code in codes:
            bits[row, code >> 6] |= np.uint64(1) << np.uint64(code & 63)
    return bits


def bitset_member(bits: np.ndarray, rows: np.ndarray, code: int) -> np.ndarray:
    """bool (len(rows),): whether bit `code` is set in each of the given rows of a bitset column."""
    word = bits[rows, code >> 6]
    return ((word >> np.uint64(code & 63)) & np.uint64(1)).astype(bool)


def _code_table(values: set[str]) -> tuple[np.ndarray, dict[str, int]]:
    ordered = [OTHER, *sorted(values - {OTHER})]
    return np.array(ordered, dtype=str), {v: i for i, v in enumerate(ordered)}


def _parent(category: str) -> str:
    return category.split("-", 1)[0]


def build_table(specs: Sequence[CampaignSpec]) -> tuple[CampaignTable, np.ndarray, np.ndarray]:
    """Columns for `specs`, plus the persona matrix (float32 (m, dims)) and its campaign rows (int32 (m,))."""
    if not specs:
        raise ArtifactError("a campaign table needs at least one campaign")
    domains, domain_code = _code_table({s.adomain for s in specs})
    categories, category_code = _code_table(
        {s.category for s in specs} | {_parent(s.category) for s in specs}
    )
    countries, country_code = _code_table({c for s in specs for c in s.countries})
    os_names, os_code = _code_table({o for s in specs for o in s.os})
    sizes, size_code = _code_table({f"{c.w}x{c.h}" for s in specs for c in s.creatives if c.mtype == BANNER})
    regions, region_code = _code_table({r for s in specs for r in s.regions})
    site_categories, site_code = _code_table({c for s in specs for c in s.blocked_categories})
    mimes, mime_code = _code_table({c.mime for s in specs for c in s.creatives})
    deals, deal_code = _code_table({d for s in specs for d in s.deals})
    bundles, bundle_code = _code_table({s.bundle for s in specs})
    languages, language_code = _code_table({s.language for s in specs})
    creatives = [c for s in specs for c in s.creatives]

    def every(n: int) -> list[int]:
        return list(range(n))

    device_bits = np.array(
        [sum(1 << t for t in s.device_types) if s.device_types else int(ANY_DEVICE) for s in specs],
        dtype=np.uint16,
    )
    country_bits = bitset(
        [[country_code[c] for c in s.countries] if s.countries else every(len(countries)) for s in specs],
        len(countries),
    )
    os_bits = bitset(
        [[os_code[o] for o in s.os] if s.os else every(len(os_names)) for s in specs], len(os_names)
    )
    region_bits = bitset(
        [[region_code[r] for r in s.regions] if s.regions else every(len(regions)) for s in specs],
        len(regions),
    )
    blocked_site_bits = bitset(
        [[site_code[c] for c in s.blocked_categories] for s in specs], len(site_categories)
    )
    size_bits = bitset(
        [[size_code[f"{c.w}x{c.h}"] for c in s.creatives if c.mtype == BANNER] for s in specs], len(sizes)
    )
    offsets = np.zeros(len(specs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s.creatives) for s in specs])
    personas = np.concatenate([np.asarray(s.personas, dtype=np.float32) for s in specs])
    persona_rows = np.repeat(np.arange(len(specs), dtype=np.int32), [len(s.personas) for s in specs])
    table = CampaignTable(
        campaign_id=np.array([s.id for s in specs], dtype=str),
        advertiser=np.array([s.advertiser for s in specs], dtype=str),
        adomain=np.array([s.adomain for s in specs], dtype=str),
        category=np.array([s.category for s in specs], dtype=str),
        base_bid=np.array([s.base_bid for s in specs], dtype=np.float64),
        max_bid=np.array([s.max_bid for s in specs], dtype=np.float64),
        min_match=np.array([s.min_match for s in specs], dtype=np.float32),
        start=np.array([s.start for s in specs], dtype=np.int64),
        end=np.array([s.end for s in specs], dtype=np.int64),
        daily_budget=np.array([s.daily_budget for s in specs], dtype=np.float64),
        freq_cap=np.array([s.frequency_cap for s in specs], dtype=np.int32),
        freq_window=np.array([s.frequency_window for s in specs], dtype=np.float64),
        currency=np.array([s.currency for s in specs], dtype="<U3"),
        adomain_code=np.array([domain_code[s.adomain] for s in specs], dtype=np.int32),
        category_code=np.array([category_code[s.category] for s in specs], dtype=np.int32),
        category_parent_code=np.array([category_code[_parent(s.category)] for s in specs], dtype=np.int32),
        device_bits=device_bits,
        country_bits=country_bits,
        os_bits=os_bits,
        region_bits=region_bits,
        blocked_site_bits=blocked_site_bits,
        size_bits=size_bits,
        deal_bits=bitset([[deal_code[d] for d in s.deals] for s in specs], len(deals)),
        deal_only=np.array([s.deal_only for s in specs], dtype=bool),
        bundle=np.array([s.bundle for s in specs], dtype=str),
        bundle_code=np.array([bundle_code[s.bundle] for s in specs], dtype=np.int32),
        language_code=np.array([language_code[s.language] for s in specs], dtype=np.int32),
        campaign_token=np.array([token(s.id) for s in specs], dtype=np.uint64),
        advertiser_token=np.array([token(s.advertiser) for s in specs], dtype=np.uint64),
        category_token=np.array([token(s.category) for s in specs], dtype=np.uint64),
        creative_offsets=offsets,
        creative_id=np.array([c.id for c in creatives], dtype=str),
        creative_size=np.array(
            [size_code[f"{c.w}x{c.h}"] if c.mtype == BANNER else 0 for c in creatives], dtype=np.int32
        ),
        creative_mtype=np.array([c.mtype for c in creatives], dtype=np.int8),
        creative_w=np.array([c.w for c in creatives], dtype=np.int32),
        creative_h=np.array([c.h for c in creatives], dtype=np.int32),
        creative_mime=np.array([mime_code[c.mime] for c in creatives], dtype=np.int32),
        creative_duration=np.array([c.duration for c in creatives], dtype=np.int32),
        creative_protocol=np.array([c.protocol for c in creatives], dtype=np.int32),
        creative_secure=np.array([c.secure for c in creatives], dtype=bool),
        creative_attr_bits=np.array([sum(1 << a for a in set(c.attr)) for c in creatives], dtype=np.uint32),
        creative_image=np.array([bool(c.image) for c in creatives], dtype=bool),
        **_packed_texts([(c.image or c.markup, c.landing, c.iurl) for c in creatives]),
        domains=domains,
        categories=categories,
        countries=countries,
        os_names=os_names,
        sizes=sizes,
        regions=regions,
        site_categories=site_categories,
        mimes=mimes,
        deals=deals,
        bundles=bundles,
        languages=languages,
    )
    table.check()
    return table, personas, persona_rows


def _code_lookups(table: CampaignTable) -> dict[str, dict[str, int]]:
    """Each code table's values to their codes, for code_of."""
    return {name: {str(v): i for i, v in enumerate(getattr(table, name))} for name in CODE_TABLES}
