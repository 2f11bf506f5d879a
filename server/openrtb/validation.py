"""Validation of a bid request: the one place that judges input, for both doors.

`validate` walks the request object by object, as the OpenRTB 2.6 specification states them (required
fields, ranges, exclusive fields, enumerations of AdCOM 1.0 lists), and raises InvalidRequest for the
first rule broken, naming the field's JSON path and its value: `imp[0].banner.format[1].h=0: must be
positive`. What the specification allows but personabid cannot serve (a currency it has no rate for,
a medium no campaign has a creative for, a taxonomy it does not read) is not invalid: the decision answers
it with a no-bid and its reason.

Strings and lists that come back in the answer (ids) or that a filter walks have size limits, so that no
request makes an answer larger than itself or a filter slower than its size; the door's body limit bounds
the rest.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import re
from collections.abc import Iterable, Sequence

import numpy as np

from personabid.errors import InvalidRequest
from personabid.openrtb.request import (
    Audio,
    Banner,
    BidRequest,
    Content,
    Device,
    Geo,
    Imp,
    Native,
    Pmp,
    Publisher,
    Regs,
    Source,
    Tag,
    User,
    Video,
)

MAX_IMPRESSIONS = 64
MAX_DEALS = 256
# TC strings with every vendor of the global list run to a few kilobytes; far more is not a consent string.
MAX_CONSENT_CHARS = 16_384
MAX_TAGS = 4096
MAX_ID_CHARS = 256  # ids are UUIDs or shorter in practice; OpenRTB sets no limit
MAX_TEXT_CHARS = 1024  # codes, domains, bundles, categories
MAX_LIST_ITEMS = 1024  # blocked categories and advertisers run to hundreds
MAX_PIXELS = 65_535
MAX_SECONDS = 86_400
FLOAT32_MAX = float(np.finfo(np.float32).max)
WEIGHT_RANGE = "must lie within float32's range, |w| <= 3.4e38 (the weights are float32 on the wire)"

CURRENCY = re.compile(r"^[A-Z]{3}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2}$")
COUNTRY = re.compile(r"^[A-Za-z]{3}$")
US_PRIVACY = re.compile(r"^1[YN-][YN-][YN-]$")
MIME = re.compile(r"^[A-Za-z0-9][\w.+-]*/[\w.+-]+$")
AUCTION_TYPES = (1, 2)  # and 500+ for exchange-specific auctions
DEAL_AUCTION_TYPES = (1, 2, 3)  # 3: the deal's floor is the price
PROTOCOLS = range(1, 17)  # AdCOM 1.0 list: Creative Subtypes - Audio/Video, VAST 1.0 to 4.3
CREATIVE_ATTRIBUTES = range(1, 18)
DEVICE_TYPES = range(0, 9)  # AdCOM device types 1 to 8; 0: not given
CONNECTION_TYPES = range(0, 8)
GEO_TYPES = range(1, 4)
IP_SERVICES = range(1, 5)
AD_POSITIONS = range(0, 8)
PLACEMENT_SUBTYPES = range(1, 5)  # 2.6 plcmt
PLACEMENT_TYPES = range(1, 6)  # 2.5 placement
LINEARITY = range(1, 3)
AGENT_TYPES = (1, 2, 3)  # eids[].uids[].atype; and 500+
GENDERS = ("M", "F", "O")


def validate(request: BidRequest, dims: int) -> None:
    """Raise InvalidRequest for the first rule `request` breaks; `dims` is the serving vocabulary's size."""
    _id("id", request.id)
    if request.tmax is not None and request.tmax <= 0:
        raise InvalidRequest("tmax", request.tmax, "must be a positive number of milliseconds")
    if request.at not in AUCTION_TYPES and request.at < 500:
        raise InvalidRequest("at", request.at, "must be 1 (first price), 2 (second price) or 500+")
    _flag("test", request.test)
    _flag("allimps", request.allimps)
    _positive("cattax", request.cattax)
    _codes("cur", request.cur, CURRENCY, "must be an ISO-4217 currency code, such as USD")
    _codes("wlang", request.wlang, LANGUAGE, "must be an ISO-639-1 language code, such as en")
    for name, items in (
        ("wlangb", request.wlangb),
        ("wseat", request.wseat),
        ("bseat", request.bseat),
        ("bcat", request.bcat),
        ("badv", request.badv),
        ("bapp", request.bapp),
    ):
        _texts(name, items)
    _impressions(request.imp)
    channels = [n for n in ("site", "app", "dooh") if getattr(request, n) is not None]
    if len(channels) > 1:
        raise InvalidRequest(
            channels[1], "an object", f"a request has one of site, app or dooh, not {channels}"
        )
    if request.site is not None:
        _channel(
            "site", request.site.cattax, request.site.cat + request.site.sectioncat + request.site.pagecat
        )
        _flag("site.mobile", request.site.mobile)
        _flag("site.privacypolicy", request.site.privacypolicy)
        _publisher("site.publisher", request.site.publisher)
        _content("site.content", request.site.content)
    elif request.app is not None:
        _channel("app", request.app.cattax, request.app.cat + request.app.sectioncat + request.app.pagecat)
        _flag("app.privacypolicy", request.app.privacypolicy)
        _flag("app.paid", request.app.paid)
        _publisher("app.publisher", request.app.publisher)
        _content("app.content", request.app.content)
    elif request.dooh is not None:
        _texts("dooh.venuetype", request.dooh.venuetype)
        _positive("dooh.venuetypetax", request.dooh.venuetypetax)
        _publisher("dooh.publisher", request.dooh.publisher)
        _content("dooh.content", request.dooh.content)
    _device(request.device)
    _user(request.user, dims)
    _source(request.source)
    _regs(request.regs)


# --- impressions and their media ---


def _impressions(impressions: Sequence[Imp]) -> None:
    if not impressions:
        raise InvalidRequest("imp", [], "at least one impression is required")
    if len(impressions) > MAX_IMPRESSIONS:
        raise InvalidRequest(
            "imp", f"{len(impressions)} impressions", f"at most {MAX_IMPRESSIONS} are accepted"
        )
    seen: set[str] = set()
    for i, imp in enumerate(impressions):
        where = f"imp[{i}]"
        _id(f"{where}.id", imp.id)
        if imp.id in seen:
            raise InvalidRequest(f"{where}.id", imp.id, "duplicate impression id")
        seen.add(imp.id)
        if imp.banner is None and imp.video is None and imp.audio is None and imp.native is None:
            medium = "an impression offers at least one of banner, video, audio, native"
            raise InvalidRequest(where, f"id {imp.id!r}, no medium", medium)
        _floor(where, imp.bidfloor, imp.bidfloorcur)
        _text(f"{where}.tagid", imp.tagid)
        _flag(f"{where}.instl", imp.instl)
        _flag(f"{where}.secure", imp.secure)
        _flag(f"{where}.rwdd", imp.rwdd)
        _within(f"{where}.exp", imp.exp, 0, MAX_SECONDS, "seconds")
        if imp.banner is not None:
            _banner(f"{where}.banner", imp.banner)
        if imp.video is not None:
            _video(f"{where}.video", imp.video)
        if imp.audio is not None:
            _audio(f"{where}.audio", imp.audio)
        if imp.native is not None:
            _native(f"{where}.native", imp.native)
        if imp.pmp is not None:
            _pmp(f"{where}.pmp", imp.pmp)


def _floor(where: str, bidfloor: float, bidfloorcur: str) -> None:
    if not math.isfinite(bidfloor) or bidfloor < 0:
        raise InvalidRequest(f"{where}.bidfloor", bidfloor, "must be a finite, non-negative CPM")
    if not CURRENCY.match(bidfloorcur):
        raise InvalidRequest(
            f"{where}.bidfloorcur", bidfloorcur, "must be an ISO-4217 currency code, such as USD"
        )


def _banner(where: str, banner: Banner) -> None:
    _within(f"{where}.w", banner.w, 0, MAX_PIXELS, "pixels")
    _within(f"{where}.h", banner.h, 0, MAX_PIXELS, "pixels")
    if (banner.w == 0) != (banner.h == 0):
        raise InvalidRequest(f"{where}.{'h' if banner.h == 0 else 'w'}", 0, "w and h are given together")
    if len(banner.format) > MAX_LIST_ITEMS:
        raise InvalidRequest(f"{where}.format", f"{len(banner.format)} items", f"at most {MAX_LIST_ITEMS}")
    for j, size in enumerate(banner.format):
        at = f"{where}.format[{j}]"
        if size.wratio or size.hratio or size.wmin:  # a flexible format: a ratio and a minimum width
            for name, value in (("wratio", size.wratio), ("hratio", size.hratio), ("wmin", size.wmin)):
                _within(f"{at}.{name}", value, 1, MAX_PIXELS, "pixels" if name == "wmin" else "(a ratio)")
            continue
        for name, value in (("w", size.w), ("h", size.h)):
            if value <= 0:
                raise InvalidRequest(f"{at}.{name}", value, "must be positive")
            _within(f"{at}.{name}", value, 1, MAX_PIXELS, "pixels")
    _within(f"{where}.pos", banner.pos, 0, max(AD_POSITIONS), "(AdCOM placement positions)")
    _attributes(f"{where}.battr", banner.battr)
    _flag(f"{where}.topframe", banner.topframe)
    _flag(f"{where}.vcm", banner.vcm)


def _durations(where: str, media: Video | Audio) -> None:
    if not media.mimes:
        raise InvalidRequest(f"{where}.mimes", [], "is required: the content MIME types the player takes")
    _codes(f"{where}.mimes", media.mimes, MIME, "must be a MIME type, such as video/mp4")
    _within(f"{where}.minduration", media.minduration, 0, MAX_SECONDS, "seconds")
    _within(f"{where}.maxduration", media.maxduration, 1, MAX_SECONDS, "seconds")
    if media.maxduration is not None and media.maxduration < media.minduration:
        raise InvalidRequest(
            f"{where}.maxduration", media.maxduration, f"must not be below minduration {media.minduration}"
        )
    if media.rqddurs:
        if media.minduration or media.maxduration is not None:
            raise InvalidRequest(
                f"{where}.rqddurs", list(media.rqddurs), "excludes minduration and maxduration"
            )
        for j, seconds in enumerate(media.rqddurs):
            _within(f"{where}.rqddurs[{j}]", seconds, 1, MAX_SECONDS, "seconds")
    for j, protocol in enumerate(media.protocols):
        if protocol not in PROTOCOLS and protocol < 500:
            raise InvalidRequest(
                f"{where}.protocols[{j}]", protocol, "must be an AdCOM protocol, 1 to 16 or 500+"
            )
    if media.startdelay is not None and media.startdelay < -2:
        raise InvalidRequest(
            f"{where}.startdelay", media.startdelay, "must be -2, -1, 0 or a positive offset"
        )
    _attributes(f"{where}.battr", media.battr)


def _video(where: str, video: Video) -> None:
    _durations(where, video)
    _within(f"{where}.w", video.w, 0, MAX_PIXELS, "pixels")
    _within(f"{where}.h", video.h, 0, MAX_PIXELS, "pixels")
    _within(f"{where}.plcmt", video.plcmt, 1, max(PLACEMENT_SUBTYPES), "(AdCOM plcmt subtypes)")
    _within(f"{where}.placement", video.placement, 1, max(PLACEMENT_TYPES), "(OpenRTB 2.5 placement types)")
    _within(f"{where}.linearity", video.linearity, 1, max(LINEARITY), "(1 linear, 2 non-linear)")
    _flag(f"{where}.skip", video.skip)
    _flag(f"{where}.boxingallowed", video.boxingallowed)
    _within(f"{where}.pos", video.pos, 0, max(AD_POSITIONS), "(AdCOM placement positions)")
    _within(f"{where}.minbitrate", video.minbitrate, 0, 2**31 - 1, "Kbps")
    _within(f"{where}.maxbitrate", video.maxbitrate, 0, 2**31 - 1, "Kbps")
    if video.minbitrate is not None and video.maxbitrate is not None and video.maxbitrate < video.minbitrate:
        raise InvalidRequest(
            f"{where}.maxbitrate", video.maxbitrate, f"must not be below minbitrate {video.minbitrate}"
        )


def _audio(where: str, audio: Audio) -> None:
    _durations(where, audio)


def _native(where: str, native: Native) -> None:
    # The Native Ad Request is read by the exchange's renderer, not by the decision: it must be there,
    # but its JSON is not judged (the specification's own example elides its assets as "[ ... ]").
    if not native.request:
        raise InvalidRequest(f"{where}.request", native.request, "is required: the Native Ad Request")
    _attributes(f"{where}.battr", native.battr)


def _pmp(where: str, pmp: Pmp) -> None:
    _flag(f"{where}.private_auction", pmp.private_auction)
    if len(pmp.deals) > MAX_DEALS:
        raise InvalidRequest(f"{where}.deals", f"{len(pmp.deals)} deals", f"at most {MAX_DEALS} are accepted")
    seen: set[str] = set()
    for j, deal in enumerate(pmp.deals):
        at = f"{where}.deals[{j}]"
        _id(f"{at}.id", deal.id)
        if deal.id in seen:
            raise InvalidRequest(f"{at}.id", deal.id, "duplicate deal id")
        seen.add(deal.id)
        _floor(at, deal.bidfloor, deal.bidfloorcur)
        if deal.at is not None and deal.at not in DEAL_AUCTION_TYPES and deal.at < 500:
            raise InvalidRequest(f"{at}.at", deal.at, "must be 1, 2, 3 (fixed price) or 500+")
        _texts(f"{at}.wseat", deal.wseat)
        _texts(f"{at}.wadomain", deal.wadomain)


# --- where, who and under which rules ---


def _channel(where: str, cattax: int, categories: tuple[str, ...]) -> None:
    _positive(f"{where}.cattax", cattax)
    _texts(f"{where}.cat", categories)


def _publisher(where: str, publisher: Publisher | None) -> None:
    if publisher is not None:
        _positive(f"{where}.cattax", publisher.cattax)
        _texts(f"{where}.cat", publisher.cat)


def _content(where: str, content: Content | None) -> None:
    if content is None:
        return
    _positive(f"{where}.cattax", content.cattax)
    _texts(f"{where}.cat", content.cat)
    if content.language and not LANGUAGE.match(content.language):
        raise InvalidRequest(f"{where}.language", content.language, "must be an ISO-639-1 language code")
    _flag(f"{where}.livestream", content.livestream)


def _device(device: Device) -> None:
    if device.devicetype not in DEVICE_TYPES:
        raise InvalidRequest("device.devicetype", device.devicetype, "must be an AdCOM device type, 1 to 8")
    for name in ("dnt", "lmt", "js"):
        _flag(f"device.{name}", getattr(device, name))
    _within("device.w", device.w, 0, MAX_PIXELS, "pixels")
    _within("device.h", device.h, 0, MAX_PIXELS, "pixels")
    _within("device.ppi", device.ppi, 1, MAX_PIXELS, "pixels per inch")
    if device.pxratio is not None and not (math.isfinite(device.pxratio) and device.pxratio > 0):
        raise InvalidRequest("device.pxratio", device.pxratio, "must be a positive ratio")
    _within(
        "device.connectiontype", device.connectiontype, 0, max(CONNECTION_TYPES), "(AdCOM connection types)"
    )
    if device.ip and not _is_ip(device.ip, ipaddress.IPv4Address):
        raise InvalidRequest("device.ip", device.ip, "must be an IPv4 address")
    if device.ipv6 and not _is_ip(device.ipv6, ipaddress.IPv6Address):
        raise InvalidRequest("device.ipv6", device.ipv6, "must be an IPv6 address")
    if device.language and not LANGUAGE.match(device.language):
        raise InvalidRequest("device.language", device.language, "must be an ISO-639-1 language code")
    for name in ("os", "make", "model", "osv"):
        _text(f"device.{name}", getattr(device, name))
    _id("device.ifa", device.ifa, required=False)
    _geo("device.geo", device.geo)


def _is_ip(text: str, kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def _geo(where: str, geo: Geo | None) -> None:
    if geo is None:
        return
    for name, value, bound in (("lat", geo.lat, 90.0), ("lon", geo.lon, 180.0)):
        if value is not None and not (math.isfinite(value) and -bound <= value <= bound):
            raise InvalidRequest(f"{where}.{name}", value, f"must lie within [-{bound:g}, {bound:g}] degrees")
    _within(f"{where}.type", geo.type, 1, max(GEO_TYPES), "(1 GPS, 2 IP address, 3 user provided)")
    _within(f"{where}.accuracy", geo.accuracy, 0, 2**31 - 1, "meters")
    _within(f"{where}.ipservice", geo.ipservice, 1, max(IP_SERVICES), "(AdCOM IP location services)")
    _within(f"{where}.utcoffset", geo.utcoffset, -720, 840, "minutes from UTC")
    if geo.country and not COUNTRY.match(geo.country):
        raise InvalidRequest(
            f"{where}.country", geo.country, "must be an ISO-3166-1 alpha-3 code, such as USA"
        )
    for name in ("region", "metro", "city", "zip"):
        _text(f"{where}.{name}", getattr(geo, name))


def _user(user: User, dims: int) -> None:
    _id("user.id", user.id, required=False)
    _id("user.buyeruid", user.buyeruid, required=False)
    if user.yob is not None and not 1900 <= user.yob <= dt.date.today().year:
        raise InvalidRequest("user.yob", user.yob, "must be a four-digit year of birth, 1900 to this year")
    if user.gender and user.gender not in GENDERS:
        raise InvalidRequest("user.gender", user.gender, "must be M, F or O")
    if len(user.consent) > MAX_CONSENT_CHARS:
        raise InvalidRequest(
            "user.consent", f"{len(user.consent)} characters", f"at most {MAX_CONSENT_CHARS} are accepted"
        )
    _texts("user.kwarray", user.kwarray)
    _geo("user.geo", user.geo)
    _count("user.data", user.data)
    for i, data in enumerate(user.data):
        _positive(f"user.data[{i}].segtax", data.segtax)
        _count(f"user.data[{i}].segment", data.segment)
        for j, segment in enumerate(data.segment):
            _text(f"user.data[{i}].segment[{j}].id", segment.id)
    _count("user.eids", user.eids)
    for i, eid in enumerate(user.eids):
        if not eid.source:
            raise InvalidRequest(f"user.eids[{i}].source", eid.source, "is required: the id's source domain")
        if not eid.uids:
            raise InvalidRequest(f"user.eids[{i}].uids", [], "at least one uid is required")
        _count(f"user.eids[{i}].uids", eid.uids)
        for j, uid in enumerate(eid.uids):
            _id(f"user.eids[{i}].uids[{j}].id", uid.id)
            if uid.atype is not None and uid.atype not in AGENT_TYPES and uid.atype < 500:
                raise InvalidRequest(f"user.eids[{i}].uids[{j}].atype", uid.atype, "must be 1, 2, 3 or 500+")
    _profile(user, dims)


def _profile(user: User, dims: int) -> None:
    vector = user.tag_vector
    has_vector = vector is not None and len(vector) > 0
    if has_vector and user.tags:
        raise InvalidRequest(
            "user", "tag_vector and tags", "exactly one of user.tag_vector or user.tags may carry the profile"
        )
    if has_vector:
        assert vector is not None
        if len(vector) != dims:
            raise InvalidRequest("user.tag_vector", f"length {len(vector)}", f"must have {dims} weights")
        bad = np.flatnonzero(~np.isfinite(vector))
        if bad.size:
            raise InvalidRequest(
                f"user.tag_vector[{bad[0]}]", float(vector[bad[0]]), "weights must be finite"
            )
        if vector.dtype != np.float32:  # the wire's float32 cannot hold more; JSON and the core's callers can
            bad = np.flatnonzero(np.abs(vector) > FLOAT32_MAX)
            if bad.size:
                raise InvalidRequest(f"user.tag_vector[{bad[0]}]", float(vector[bad[0]]), WEIGHT_RANGE)
    if len(user.tags) > MAX_TAGS:
        raise InvalidRequest("user.tags", f"{len(user.tags)} tags", f"at most {MAX_TAGS} are accepted")
    if _tags_hold(user.tags):
        return
    seen: set[str] = set()
    for i, tag in enumerate(user.tags):
        _id(f"user.tags[{i}].id", tag.id)
        if tag.id in seen:
            raise InvalidRequest(f"user.tags[{i}].id", tag.id, "duplicate tag")
        seen.add(tag.id)
        if not math.isfinite(tag.weight):
            raise InvalidRequest(f"user.tags[{i}].weight", tag.weight, "must be finite")
        if abs(tag.weight) > FLOAT32_MAX:
            raise InvalidRequest(f"user.tags[{i}].weight", tag.weight, WEIGHT_RANGE)


def _tags_hold(tags: tuple[Tag, ...]) -> bool:
    """True when every tag rule holds: the common case, checked in a few passes without a call per tag
    (a profile has tens of tags); the loop after it names the first that breaks a rule."""
    ids = [t.id for t in tags]
    weights = [t.weight for t in tags]
    return (
        len(set(ids)) == len(ids)
        and all(0 < len(i) <= MAX_ID_CHARS for i in ids)
        and all(-FLOAT32_MAX <= w <= FLOAT32_MAX for w in weights)  # False for NaN too
    )


def validate_ids(request: BidRequest) -> None:
    """The size limits of the user's and device's ids: checked before they are replaced by pseudonyms
    (codec.pseudonymised), which are all the same length whatever they hash."""
    _id("user.id", request.user.id, required=False)
    _id("user.buyeruid", request.user.buyeruid, required=False)
    _id("device.ifa", request.device.ifa, required=False)
    for i, eid in enumerate(request.user.eids):
        for j, uid in enumerate(eid.uids):
            _id(f"user.eids[{i}].uids[{j}].id", uid.id, required=False)


def _source(source: Source) -> None:
    _flag("source.fd", source.fd)
    _text("source.tid", source.tid)
    chain = source.schain
    if chain is None:
        return
    if chain.complete not in (0, 1):
        raise InvalidRequest("source.schain.complete", chain.complete, "is required: 0 or 1")
    if not chain.ver:
        raise InvalidRequest("source.schain.ver", chain.ver, "is required, such as 1.0")
    if not chain.nodes:
        raise InvalidRequest("source.schain.nodes", [], "at least one node is required")
    _count("source.schain.nodes", chain.nodes)
    for i, node in enumerate(chain.nodes):
        at = f"source.schain.nodes[{i}]"
        if not node.asi:
            raise InvalidRequest(f"{at}.asi", node.asi, "is required: the seller's advertising system domain")
        if not node.sid:
            raise InvalidRequest(f"{at}.sid", node.sid, "is required: the seller's id in that system")
        if node.hp not in (0, 1):
            raise InvalidRequest(f"{at}.hp", node.hp, "is required: 0 or 1")


def _regs(regs: Regs) -> None:
    _flag("regs.coppa", regs.coppa)
    _flag("regs.gdpr", regs.gdpr)
    if regs.us_privacy and not US_PRIVACY.match(regs.us_privacy):
        raise InvalidRequest(
            "regs.us_privacy", regs.us_privacy, "must be a US Privacy string: 1 then three of Y, N, -"
        )
    if len(regs.gpp) > MAX_CONSENT_CHARS:
        raise InvalidRequest("regs.gpp", f"{len(regs.gpp)} characters", f"at most {MAX_CONSENT_CHARS}")
    _count("regs.gpp_sid", regs.gpp_sid)
    for i, section in enumerate(regs.gpp_sid):
        _within(f"regs.gpp_sid[{i}]", section, 1, 2**16, "(GPP section ids)")


# --- the rules' vocabulary ---


def _id(name: str, value: str, required: bool = True) -> None:
    if required and not value:
        raise InvalidRequest(name, value, "must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise InvalidRequest(name, f"{len(value)} characters", f"at most {MAX_ID_CHARS} are accepted")


def _text(name: str, value: str) -> None:
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidRequest(name, f"{len(value)} characters", f"at most {MAX_TEXT_CHARS} are accepted")


def _count(name: str, items: Sequence[object]) -> None:
    if len(items) > MAX_LIST_ITEMS:
        raise InvalidRequest(name, f"{len(items)} items", f"at most {MAX_LIST_ITEMS} are accepted")


def _texts(name: str, items: Sequence[str]) -> None:
    _count(name, items)
    for i, item in enumerate(items):
        if len(item) > MAX_TEXT_CHARS:
            raise InvalidRequest(f"{name}[{i}]", f"{len(item)} characters", f"at most {MAX_TEXT_CHARS}")


def _codes(name: str, items: Sequence[str], pattern: re.Pattern[str], reason: str) -> None:
    _count(name, items)
    for i, item in enumerate(items):
        if not pattern.match(item):
            raise InvalidRequest(f"{name}[{i}]", item, reason)


def _flag(name: str, value: int | None) -> None:
    if value is not None and value not in (0, 1):
        raise InvalidRequest(name, value, "must be 0 or 1")


def _positive(name: str, value: int | None) -> None:
    if value is not None and not 0 < value <= 2**31 - 1:
        raise InvalidRequest(name, value, "must be positive")


def _within(name: str, value: int | None, low: int, high: int, unit: str) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidRequest(name, value, f"must be {low} to {high} {unit}".rstrip())


def _attributes(name: str, values: Iterable[int]) -> None:
    for i, value in enumerate(values):
        if value not in CREATIVE_ATTRIBUTES:
            raise InvalidRequest(f"{name}[{i}]", value, "must be an AdCOM creative attribute, 1 to 17")
