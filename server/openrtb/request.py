"""The OpenRTB 2.6 bid request as the core sees it: typed, immutable objects with the specification's names.

Both doors build these: the HTTP door decodes JSON straight into them (codec.py), the gRPC door copies
its message into them (wire.py). Neither judges what it builds; validation.py does, once, naming the
JSON path of what is wrong. Fields personabid does not act on are not carried (JSON ignores them).

Absent optional values are None where the specification gives absence its own meaning, else the
specification's default. Flags are OpenRTB's 0/1 integers; JSON booleans are read as 0/1 too, because
exchanges send both.

OpenRTB 2.5 carried some of these fields in `ext` objects (user.ext.consent, user.ext.eids, regs.ext.gdpr,
regs.ext.us_privacy, source.ext.schain): those are read from `ext` when the 2.6 field is absent.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
from msgspec import Struct, field
from msgspec.structs import force_setattr

Flag = int | bool  # OpenRTB's 0/1; True and False compare equal to 1 and 0


class _Object(Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Base of every OpenRTB object: immutable, keyword-built, and encoded without its defaults."""


class Format(_Object, frozen=True):
    w: int = 0
    h: int = 0
    wratio: int = 0
    hratio: int = 0
    wmin: int = 0


class Banner(_Object, frozen=True):
    w: int = 0  # 0: not given; the slot then takes format[] or any size
    h: int = 0
    format: tuple[Format, ...] = ()
    btype: tuple[int, ...] = ()
    battr: tuple[int, ...] = ()
    pos: int | None = None
    mimes: tuple[str, ...] = ()
    topframe: Flag = 0
    api: tuple[int, ...] = ()
    id: str = ""
    vcm: Flag = 0


class Video(_Object, frozen=True):
    mimes: tuple[str, ...] = ()
    minduration: int = 0
    maxduration: int | None = None
    rqddurs: tuple[int, ...] = ()
    protocols: tuple[int, ...] = ()
    w: int = 0
    h: int = 0
    startdelay: int | None = None
    plcmt: int | None = None
    placement: int | None = None  # 2.5's placement, deprecated by plcmt
    linearity: int | None = None
    skip: Flag | None = None
    battr: tuple[int, ...] = ()
    minbitrate: int | None = None
    maxbitrate: int | None = None
    boxingallowed: Flag = 1
    pos: int | None = None
    api: tuple[int, ...] = ()


class Audio(_Object, frozen=True):
    mimes: tuple[str, ...] = ()
    minduration: int = 0
    maxduration: int | None = None
    rqddurs: tuple[int, ...] = ()
    protocols: tuple[int, ...] = ()
    startdelay: int | None = None
    battr: tuple[int, ...] = ()
    api: tuple[int, ...] = ()


class Native(_Object, frozen=True):
    # The Native Ad Request, a JSON document in a string. Some exchanges send the object itself: it is
    # read as the document it stands for.
    request: str | dict[str, Any] = ""
    ver: str = ""
    api: tuple[int, ...] = ()
    battr: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.request, dict):
            force_setattr(self, "request", msgspec.json.encode(self.request).decode())


class Deal(_Object, frozen=True):
    id: str = ""
    bidfloor: float = 0.0
    bidfloorcur: str = "USD"
    at: int | None = (
        None  # 1 first price, 2 second price, 3 the floor is the fixed price; None: the request's
    )
    wseat: tuple[str, ...] = ()
    wadomain: tuple[str, ...] = ()


class Pmp(_Object, frozen=True):
    private_auction: Flag = 0
    deals: tuple[Deal, ...] = ()


class Imp(_Object, frozen=True):
    id: str = ""
    banner: Banner | None = None
    video: Video | None = None
    audio: Audio | None = None
    native: Native | None = None
    pmp: Pmp | None = None
    instl: Flag = 0
    tagid: str = ""
    bidfloor: float = 0.0
    bidfloorcur: str = "USD"
    secure: Flag | None = None  # None: unknown, taken as non-secure
    exp: int | None = None  # seconds the exchange may wait between the auction and the impression
    rwdd: Flag = 0


class Publisher(_Object, frozen=True):
    id: str = ""
    name: str = ""
    domain: str = ""
    cat: tuple[str, ...] = ()
    cattax: int = 1


class Content(_Object, frozen=True):
    id: str = ""
    title: str = ""
    url: str = ""
    cat: tuple[str, ...] = ()
    cattax: int = 1
    language: str = ""
    langb: str = ""
    keywords: str = ""
    kwarray: tuple[str, ...] = ()
    livestream: Flag | None = None


class Site(_Object, frozen=True):
    id: str = ""
    name: str = ""
    domain: str = ""
    cattax: int = 1
    cat: tuple[str, ...] = ()
    sectioncat: tuple[str, ...] = ()
    pagecat: tuple[str, ...] = ()
    page: str = ""
    ref: str = ""
    search: str = ""
    mobile: Flag | None = None
    privacypolicy: Flag | None = None
    publisher: Publisher | None = None
    content: Content | None = None
    keywords: str = ""
    kwarray: tuple[str, ...] = ()


class App(_Object, frozen=True):
    id: str = ""
    name: str = ""
    bundle: str = ""
    domain: str = ""
    storeurl: str = ""
    cattax: int = 1
    cat: tuple[str, ...] = ()
    sectioncat: tuple[str, ...] = ()
    pagecat: tuple[str, ...] = ()
    ver: str = ""
    privacypolicy: Flag | None = None
    paid: Flag | None = None
    publisher: Publisher | None = None
    content: Content | None = None
    keywords: str = ""
    kwarray: tuple[str, ...] = ()


class Dooh(_Object, frozen=True):
    id: str = ""
    name: str = ""
    venuetype: tuple[str, ...] = ()
    venuetypetax: int | None = None
    publisher: Publisher | None = None
    domain: str = ""
    keywords: str = ""
    content: Content | None = None


class Geo(_Object, frozen=True):
    lat: float | None = None
    lon: float | None = None
    type: int | None = None  # 1 GPS, 2 IP address, 3 user provided
    accuracy: int | None = None
    lastfix: int | None = None
    ipservice: int | None = None
    country: str = ""  # ISO-3166-1 alpha-3
    region: str = ""
    metro: str = ""
    city: str = ""
    zip: str = ""
    utcoffset: int | None = None  # minutes from UTC


class BrandVersion(_Object, frozen=True):
    brand: str = ""
    version: tuple[str, ...] = ()


class UserAgent(_Object, frozen=True):
    browsers: tuple[BrandVersion, ...] = ()
    platform: BrandVersion | None = None
    mobile: Flag | None = None
    architecture: str = ""
    bitness: str = ""
    model: str = ""
    source: int = 0


class Device(_Object, frozen=True):
    geo: Geo = field(default_factory=Geo)
    dnt: Flag | None = None
    lmt: Flag | None = None
    ua: str = ""
    sua: UserAgent | None = None
    ip: str = ""
    ipv6: str = ""
    devicetype: int = 0  # 0: not given
    make: str = ""
    model: str = ""
    os: str = ""
    osv: str = ""
    hwv: str = ""
    w: int = 0
    h: int = 0
    ppi: int | None = None
    pxratio: float | None = None
    js: Flag | None = None
    language: str = ""
    langb: str = ""
    carrier: str = ""
    mccmnc: str = ""
    connectiontype: int | None = None
    ifa: str = ""  # already a pseudonym in the core (see codec.pseudonymised)


class DataExt(_Object, frozen=True):
    segtax: int | None = None


class Segment(_Object, frozen=True):
    id: str = ""
    name: str = ""
    value: str = ""


class Data(_Object, frozen=True):
    id: str = ""
    name: str = ""
    segment: tuple[Segment, ...] = ()
    # The taxonomy of the segment ids (4: IAB Tech Lab Audience Taxonomy 1.1), from ext.segtax.
    segtax: int | None = None
    ext: DataExt | None = None

    def __post_init__(self) -> None:
        if self.segtax is None and self.ext is not None and self.ext.segtax is not None:
            force_setattr(self, "segtax", self.ext.segtax)


class Uid(_Object, frozen=True):
    id: str = ""
    atype: int | None = None


class Eid(_Object, frozen=True):
    source: str = ""
    uids: tuple[Uid, ...] = ()


class Tag(_Object, frozen=True):
    """personabid's own: one (tag, weight) of a profile held by the caller, in the vocabulary's names."""

    id: str = ""
    weight: float = 0.0


class UserExt(_Object, frozen=True):
    consent: str | None = None
    eids: tuple[Eid, ...] | None = None


class User(_Object, frozen=True):
    id: str = ""  # already a pseudonym in the core (see codec.pseudonymised)
    buyeruid: str = ""  # likewise
    yob: int | None = None
    gender: str = ""  # "M", "F" or "O"
    keywords: str = ""
    kwarray: tuple[str, ...] = ()
    geo: Geo | None = None
    data: tuple[Data, ...] = ()
    consent: str = ""  # the TCF v2 consent string, read when regs.gdpr = 1
    eids: tuple[Eid, ...] = ()
    # personabid's own: a profile the caller holds, dense (one weight per vocabulary tag) or sparse.
    tag_vector: np.ndarray | None = None
    tags: tuple[Tag, ...] = ()
    ext: UserExt | None = None

    def __post_init__(self) -> None:
        if self.ext is not None:
            if not self.consent and self.ext.consent:
                force_setattr(self, "consent", self.ext.consent)
            if not self.eids and self.ext.eids:
                force_setattr(self, "eids", self.ext.eids)


class SupplyChainNode(_Object, frozen=True):
    asi: str = ""
    sid: str = ""
    rid: str = ""
    name: str = ""
    domain: str = ""
    hp: int | None = None


class SupplyChain(_Object, frozen=True):
    complete: int | None = None
    nodes: tuple[SupplyChainNode, ...] = ()
    ver: str = ""


class SourceExt(_Object, frozen=True):
    schain: SupplyChain | None = None


class Source(_Object, frozen=True):
    fd: Flag | None = None
    tid: str = ""
    pchain: str = ""
    schain: SupplyChain | None = None
    ext: SourceExt | None = None

    def __post_init__(self) -> None:
        if self.schain is None and self.ext is not None and self.ext.schain is not None:
            force_setattr(self, "schain", self.ext.schain)


class RegsExt(_Object, frozen=True):
    gdpr: Flag | None = None
    us_privacy: str | None = None


class Regs(_Object, frozen=True):
    coppa: Flag = 0
    gdpr: Flag | None = None  # None: unknown, taken as 0
    us_privacy: str = ""
    gpp: str = ""
    gpp_sid: tuple[int, ...] = ()
    ext: RegsExt | None = None

    def __post_init__(self) -> None:
        if self.ext is not None:
            if self.gdpr is None and self.ext.gdpr is not None:
                force_setattr(self, "gdpr", self.ext.gdpr)
            if not self.us_privacy and self.ext.us_privacy:
                force_setattr(self, "us_privacy", self.ext.us_privacy)


class BidRequest(_Object, frozen=True):
    id: str = ""
    imp: tuple[Imp, ...] = ()
    site: Site | None = None
    app: App | None = None
    dooh: Dooh | None = None
    device: Device = field(default_factory=Device)
    user: User = field(default_factory=User)
    test: Flag = 0
    at: int = 2
    tmax: int | None = None
    wseat: tuple[str, ...] = ()
    bseat: tuple[str, ...] = ()
    allimps: Flag = 0
    cur: tuple[str, ...] = ()
    wlang: tuple[str, ...] = ()
    wlangb: tuple[str, ...] = ()
    cattax: int = 1  # the taxonomy of bcat (1: IAB Content Category Taxonomy 1.0)
    bcat: tuple[str, ...] = ()
    badv: tuple[str, ...] = ()
    bapp: tuple[str, ...] = ()
    source: Source = field(default_factory=Source)
    regs: Regs = field(default_factory=Regs)

    @property
    def channel(self) -> Site | App | Dooh | None:
        """The distribution channel: the site, the app or the digital out-of-home screen."""
        return self.site or self.app or self.dooh

    def page_categories(self) -> tuple[str, ...]:
        """The channel's categories, its section's and its page's, and its content's."""
        channel = self.channel
        if channel is None:
            return ()
        found: tuple[str, ...] = ()
        if not isinstance(channel, Dooh):  # a screen has venue types, not categories
            found = channel.cat + channel.sectioncat + channel.pagecat
        if channel.content is not None:
            found += channel.content.cat
        return found
