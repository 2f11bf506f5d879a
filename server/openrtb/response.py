"""The OpenRTB 2.6 bid response: what both doors send back, built once from a Decision (answer.py)."""

from __future__ import annotations

from msgspec import Struct


class _Object(Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    pass


class BidExt(_Object, frozen=True):
    pctr: float = 0.0  # predicted click-through rate of this creative on this impression
    match_score: float = 0.0  # similarity of the user to the campaign's persona, in [-1, 1]
    # The bid's signed click URL: the ad's link goes through it (the banner markup's already does), so
    # that the click is counted before the user reaches the advertiser's site.
    clickurl: str = ""


class Bid(_Object, frozen=True):
    id: str
    impid: str
    price: float  # CPM in the response's currency
    adid: str = ""
    nurl: str = ""
    burl: str = ""
    lurl: str = ""
    adm: str = ""
    adomain: tuple[str, ...] = ()
    bundle: str = ""
    iurl: str = ""
    cid: str = ""
    crid: str = ""
    cat: tuple[str, ...] = ()
    cattax: int = 1
    attr: tuple[int, ...] = ()
    w: int = 0
    h: int = 0
    dealid: str = ""
    mtype: int = 0  # 1 banner, 2 video, 3 audio, 4 native
    exp: int = 0
    language: str = ""
    ext: BidExt | None = None


class SeatBid(_Object, frozen=True):
    seat: str = ""
    bid: tuple[Bid, ...] = ()


class ResponseExt(_Object, frozen=True):
    detail: str = ""  # why no bid, in words: the field and value of an invalid request, the filter...
    # What the user vector was blended from: "profile" (personabid's own, by the user's id), "segments"
    # (what the exchange says of the user) and "context" (the page or app, device, place).
    sources: tuple[str, ...] = ()
    # Why no user-level data was used ("coppa", "gdpr", "dnt", "lmt"); "" when none applied.
    restriction: str = ""


class BidResponse(_Object, frozen=True):
    id: str
    # "" (not given) means USD, as in OpenRTB; personabid always names it, and exchanges read it.
    cur: str = ""
    seatbid: tuple[SeatBid, ...] = ()
    bidid: str = ""
    nbr: int | None = None
    ext: ResponseExt | None = None
