"""Bid requests over the whole valid range of every field and just outside it, for property tests.

A Case is a BidRequest and the field paths of the API rules it breaks (none for a valid request), so that a
test can hold the answer to both: a valid request is decided, a broken one is refused naming one of them.
Requests start from a user of the seeded demo world, so that many of them reach matching and pricing; their
impressions offer banners (sizes, formats), video and audio (the catalog's MIME types among others,
durations, protocols), native, and deals (the catalog's deal ids and one no campaign buys, private
auctions, floors in USD, in EUR and in XXX, which no configuration rates), under seat, app, language and
test rules.

RULES holds one way to break each rule of openrtb/validation.py that a message can break (a message
cannot carry two channels at once), keyed "area:rule": a request breaks at most one rule of an area, so
that two broken rules never undo each other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import Message
from hypothesis import strategies as st

from personabid.client import sample_request
from personabid.openrtb.validation import (
    MAX_CONSENT_CHARS,
    MAX_DEALS,
    MAX_ID_CHARS,
    MAX_IMPRESSIONS,
    MAX_LIST_ITEMS,
    MAX_PIXELS,
    MAX_SECONDS,
    MAX_TAGS,
    MAX_TEXT_CHARS,
)
from personabid.v1 import bidder_pb2 as pb
from personabid.world import COUNTRIES, DEALS, DEVICES, SIZES, World
from tests.demo_world import TEST_WORLD
from tests.outcomes import SEAT
from tests.tcf import tc_string

# World(seed) is cheap (segments only) and draws the same users as the session world of TEST_WORLD.seed.
WORLD = World(TEST_WORLD.seed)
VOCAB = WORLD.vocab
DIMS = VOCAB.dims
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)
F64_MAX = float(np.finfo(np.float64).max)
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# Every demo campaign's max bid is far below this (tests assert it), so floors up to it cover "between
# some max bids", "above every max bid" and the rest of the finite range is drawn separately.
HIGH_FLOOR = 100.0
# The deal ids campaigns of the world buy through (the campaign table's `deals`), and one none buys.
DEAL_IDS = (*DEALS, "deal-nobody-buys")
# USD; EUR, which the tests' second decider rates; XXX, which nothing rates (a no-bid, not an error).
FLOOR_CURRENCIES = ("", "", "USD", "USD", "USD", "EUR", "XXX")
VIDEO_MIMES = ("video/mp4", "video/webm", "VIDEO/MP4", "application/javascript")
AUDIO_MIMES = ("audio/mp4", "audio/mpeg")
PROTOCOLS = (2, 3, 5, 6, 7, 8, 500)
DURATIONS = (6, 15, 20, 30, 60)
NATIVE_REQUEST = '{"ver":"1.2","assets":[{"id":1,"required":1,"title":{"len":90}}]}'
# Breaking these only makes an id too long, and the doors replace ids by their keyed hash before the
# core sees them (openrtb/codec.py's pseudonymised): a server answers what the core refuses.
HASHED_AT_THE_DOOR = frozenset({"user:id-long", "user:buyeruid-long", "device:ifa-long", "user:uid-long"})

weights32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
nonzero32 = weights32.filter(lambda w: w != 0.0)
positive32 = st.floats(min_value=F32_TINY, max_value=F32_MAX, width=32)
short_text = st.text(max_size=12)
categories = st.builds(
    lambda parent, child: f"IAB{parent}" if child == 0 else f"IAB{parent}-{child}",
    st.integers(1, 26),
    st.integers(0, 5),
)
domains = st.builds(lambda n: f"brand{n:05d}.example", st.integers(0, 300))
bundles = st.builds(lambda n: f"com.brand{n:05d}.app", st.integers(0, 300))  # as the world's campaigns
pixels = st.integers(1, MAX_PIXELS)


@dataclass(frozen=True, repr=False)
class Case:
    message: pb.BidRequest
    invalid: frozenset[str]  # field paths of the rules the request breaks; empty when it is valid
    hashed: frozenset[str] = frozenset()  # those of `invalid` that the doors' pseudonymisation repairs

    @property
    def invalid_at_the_door(self) -> frozenset[str]:
        return self.invalid - self.hashed

    def __repr__(self) -> str:
        # Hypothesis prints a failing example: thousands of tags or a dense vector would bury it (and past
        # 30 kB it warns, which the suite turns into an error), so long fields are cut short.
        shown = pb.BidRequest()
        shown.CopyFrom(self.message)
        notes: list[str] = []
        _shorten(shown, notes)
        text = text_format.MessageToString(shown, as_one_line=True)
        return f"Case(invalid={sorted(self.invalid)}, message=<{text}>{''.join(f'; {n}' for n in notes)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # Hypothesis's printer would otherwise walk every dataclass field


def _shorten(message: Message, notes: list[str], where: str = "") -> None:
    """Cut every repeated field of `message` to 8 items and every string to 200 characters, noting it."""
    for descriptor, value in message.ListFields():
        path = f"{where}{descriptor.name}"
        if descriptor.is_repeated:
            if len(value) > 8:
                notes.append(f"{path}: {len(value)} items, first 8 shown")
                del value[8:]
            if descriptor.message_type is not None:
                for k, item in enumerate(value):
                    _shorten(item, notes, f"{path}[{k}].")
        elif descriptor.message_type is not None:
            _shorten(value, notes, f"{path}.")
        elif isinstance(value, str) and len(value) > 200:
            notes.append(f"{path}: {len(value)} characters")
            setattr(message, descriptor.name, value[:200])


def sample_case(seed: int, dense: bool = False, floors: tuple[float, ...] = (0.1,)) -> Case:
    """A demo user's request (as `personabid.client.sample_request` makes it), one impression per floor."""
    message = sample_request(WORLD, np.random.default_rng(seed), dense=dense)
    message.id = f"auction-{seed}"
    banner = message.imp[0].banner
    del message.imp[:]
    for i, floor in enumerate(floors):
        message.imp.add(id=str(i + 1), banner=banner, bidfloor=floor, bidfloorcur="USD")
    return Case(message, frozenset())


def uniform_dense_case(seed: int, weight: float) -> Case:
    """A demo user's request whose dense profile has the same weight on every tag."""
    case = sample_case(seed, dense=True)
    del case.message.user.tag_vector[:]
    case.message.user.tag_vector.extend([weight] * DIMS)
    return case


def one_tag_case(seed: int, weight: float) -> Case:
    """A demo user's request whose sparse profile is the user's heaviest tag alone, at `weight`."""
    case = sample_case(seed)
    heaviest = max(case.message.user.tags, key=lambda t: t.weight).id
    del case.message.user.tags[:]
    case.message.user.tags.add(id=heaviest, weight=weight)
    return case


def floors(bad: bool = False) -> st.SearchStrategy[float]:
    """CPM floors: from 0 to far above every max bid and on to float64's limit, or (`bad`) ones that are
    negative or not finite."""
    return BAD_FLOORS if bad else FLOORS


FLOORS = st.one_of(
    st.sampled_from([0.0, -0.0, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, HIGH_FLOOR]),
    st.floats(min_value=0.0, max_value=HIGH_FLOOR),
    st.floats(min_value=0.0, max_value=F64_MAX),
)
BAD_FLOORS = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -F64_MAX, -0.01]),
    st.floats(max_value=-F32_TINY, allow_nan=False),  # negative, down to -inf
    st.just(float("nan")),  # the one a sign check misses
)


# -- valid impressions -------------------------------------------------------------------------------------

MEDIA_MIXES = st.sampled_from(
    [
        *[("banner",)] * 5,
        ("video",),
        ("audio",),
        ("native",),
        ("banner", "video"),
        ("banner", "native"),
        ("video", "audio", "native"),
    ]
)
SLOT_SIZES = st.one_of(
    st.sampled_from(SIZES),
    st.sampled_from([(0, 0), (1, 1), (MAX_PIXELS, MAX_PIXELS)]),  # any size; sizes no campaign has
    st.tuples(pixels, pixels),
)
FORMATS = st.one_of(
    st.just(()),
    st.lists(st.one_of(st.sampled_from(SIZES), st.tuples(pixels, pixels)), min_size=1, max_size=3),
    st.tuples(st.tuples(pixels, pixels, pixels)),  # one flexible format: wratio, hratio, wmin
)
ATTRIBUTES = st.lists(st.integers(1, 17), max_size=2)
PLAYER_SIZES = st.sampled_from([(0, 0), (640, 360), (1280, 720)])
DURATION_RULES = st.one_of(
    st.tuples(st.integers(0, 40), st.none()),  # a minimum only
    st.integers(0, 40).flatmap(lambda low: st.tuples(st.just(low), st.integers(max(1, low), MAX_SECONDS))),
    st.lists(st.sampled_from(DURATIONS), min_size=1, max_size=3),  # durations required
    st.just(()),  # any duration
)
PROTOCOL_LISTS = st.lists(st.sampled_from(PROTOCOLS), max_size=3, unique=True)
MIME_LISTS: dict[tuple[str, ...], st.SearchStrategy[list[str]]] = {
    mimes: st.lists(st.sampled_from(mimes), min_size=1, max_size=3, unique=True)
    for mimes in (VIDEO_MIMES, AUDIO_MIMES)
}
DEAL_TERMS = st.tuples(
    FLOORS,
    st.sampled_from(FLOOR_CURRENCIES),
    st.sampled_from([None, 1, 2, 3, 3, 500]),  # at; 3: a fixed price, the floor
    st.sampled_from([(), (), (SEAT,), ("other-seat",)]),
    st.lists(domains, max_size=2),
)
DEALS_OFFERED = st.one_of(
    st.lists(st.sampled_from(DEAL_IDS), max_size=3, unique=True),
    st.permutations(DEAL_IDS),  # every deal: a matched campaign that buys one may bid through it
)
IMP_TERMS = st.tuples(
    FLOORS,
    st.sampled_from(FLOOR_CURRENCIES),
    short_text,  # tagid
    st.sampled_from([None, 0, 1]),  # secure
    st.one_of(st.none(), st.integers(0, MAX_SECONDS)),  # exp
    st.sampled_from([False, False, False, True]),  # with a pmp
)


DRAWN_IN_FULL = 4


def _banner(draw: st.DrawFn, banner: pb.Banner, fitting: tuple[int, int] | None) -> None:
    banner.w, banner.h = fitting or draw(SLOT_SIZES)
    for size in draw(FORMATS):
        if len(size) == 3:
            banner.format.add(wratio=size[0], hratio=size[1], wmin=size[2])
        else:
            banner.format.add(w=size[0], h=size[1])
    banner.battr.extend(draw(ATTRIBUTES))


def _player(draw: st.DrawFn, player: pb.Video | pb.Audio, mimes: tuple[str, ...]) -> None:
    player.mimes.extend(draw(MIME_LISTS[mimes]))
    durations = draw(DURATION_RULES)
    if isinstance(durations, list):
        player.rqddurs.extend(durations)
    elif durations:
        player.minduration = durations[0]
        if durations[1] is not None:
            player.maxduration = durations[1]
    player.protocols.extend(draw(PROTOCOL_LISTS))
    player.battr.extend(draw(ATTRIBUTES))


def _pmp(draw: st.DrawFn, pmp: pb.Pmp) -> None:
    pmp.private_auction = draw(st.sampled_from([0, 0, 1]))
    for deal_id in draw(DEALS_OFFERED):
        floor, currency, at, wseat, wadomain = draw(DEAL_TERMS)
        deal = pmp.deals.add(id=deal_id, bidfloor=floor, bidfloorcur=currency, wseat=wseat, wadomain=wadomain)
        if at is not None:
            deal.at = at


def _impression(draw: st.DrawFn, imp: pb.Imp, fitting: tuple[int, int] | None) -> None:
    """A valid impression: its media, floor, deals and flags."""
    for medium in draw(MEDIA_MIXES):
        if medium == "banner":
            _banner(draw, imp.banner, fitting)
        elif medium == "video":
            _player(draw, imp.video, VIDEO_MIMES)
            imp.video.w, imp.video.h = draw(PLAYER_SIZES)
        elif medium == "audio":
            _player(draw, imp.audio, AUDIO_MIMES)
        else:
            imp.native.request = NATIVE_REQUEST
    imp.bidfloor, imp.bidfloorcur, imp.tagid, secure, exp, with_pmp = draw(IMP_TERMS)
    if secure is not None:
        imp.secure = secure
    if exp is not None:
        imp.exp = exp
    if with_pmp:
        _pmp(draw, imp.pmp)


def _impressions(draw: st.DrawFn, message: pb.BidRequest) -> None:
    """1 to 64 valid impressions, the first often of a size that fits the user's device. Past the first
    four, each repeats one of those with a floor of its own (a request with many impressions is about
    their number and their floors; drawing each in full would take most of a test's time)."""
    template = message.imp[0].banner
    fitting = (template.w, template.h)
    del message.imp[:]
    count = draw(st.one_of(st.integers(1, 3), st.integers(1, MAX_IMPRESSIONS)))
    for i in range(count):
        imp = message.imp.add()
        if i < DRAWN_IN_FULL:
            _impression(draw, imp, fitting if i == 0 and draw(st.booleans()) else None)
        else:
            imp.CopyFrom(message.imp[i % DRAWN_IN_FULL])
            imp.bidfloor = draw(FLOORS)
        imp.id = str(i + 1)


# -- profiles ----------------------------------------------------------------------------------------------

PROFILE_RULES = ("both", "length", "nonfinite", "many", "empty", "duplicate", "tag-nonfinite")


def _profile(draw: st.DrawFn, message: pb.BidRequest, kind: str) -> set[str]:
    """Rewrite the user's profile: every valid shape (dense or sparse, any finite float32 weights, scaled
    to float32's limits, none at all) or one that breaks the rule `kind` (of PROFILE_RULES)."""
    user = message.user
    dense = len(user.tag_vector) > 0
    weights = np.array(user.tag_vector, dtype=np.float64) if dense else None
    if kind:
        if kind == "both":
            if not dense:
                user.tag_vector.extend([0.0] * DIMS)
            user.tags.add(id=draw(st.sampled_from(VOCAB.tags)), weight=draw(weights32))
            return {"user"}
        if kind == "length":
            length = draw(st.one_of(st.integers(1, DIMS - 1), st.integers(DIMS + 1, DIMS + 8)))
            del user.tag_vector[:], user.tags[:]
            user.tag_vector.extend(draw(st.lists(weights32, min_size=length, max_size=length)))
            return {"user.tag_vector"}
        if kind == "nonfinite":
            del user.tags[:]
            if not dense:
                user.tag_vector.extend([0.0] * DIMS)
            where = draw(st.lists(st.integers(0, DIMS - 1), min_size=1, max_size=3, unique=True))
            for i in where:
                user.tag_vector[i] = draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
            return {f"user.tag_vector[{i}]" for i in where}
        del user.tag_vector[:]
        if kind == "many":
            for i in range(MAX_TAGS + 1):
                user.tags.add(id=f"x:{i}", weight=1.0)
            return {"user.tags"}
        if not user.tags:
            user.tags.add(id=VOCAB.tags[0], weight=1.0)
        i = draw(st.integers(0, len(user.tags) - 1))
        if kind == "empty":
            user.tags[i].id = ""
            return {f"user.tags[{i}].id"}
        if kind == "duplicate":
            user.tags.add(id=user.tags[i].id, weight=draw(weights32))
            return {f"user.tags[{len(user.tags) - 1}].id"}
        user.tags[i].weight = draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
        return {f"user.tags[{i}].weight"}

    # The user's own profile most often, so that many requests reach pricing.
    shape = draw(
        st.sampled_from(["sample"] * 4 + ["scaled"] * 2 + ["one-tag", "uniform", "random", "none", "zeros"])
    )
    if shape == "sample":
        return set()
    if shape == "scaled":
        # The user's own profile, its heaviest weight moved anywhere in float32's positive range.
        top = draw(positive32)
        if dense:
            assert weights is not None and np.abs(weights).max() > 0
            scaled = np.clip(weights * (top / np.abs(weights).max()), -F32_MAX, F32_MAX)
            del user.tag_vector[:]
            user.tag_vector.extend(scaled.astype(np.float32).tolist())
        else:
            heaviest = max(abs(t.weight) for t in user.tags)
            for tag in user.tags:
                tag.weight = float(np.float32(min(tag.weight * (top / heaviest), F32_MAX)))
        return set()
    del user.tag_vector[:], user.tags[:]
    if shape == "none":
        return set()
    if dense:
        if shape == "one-tag":
            vector = [0.0] * DIMS
            vector[draw(st.integers(0, DIMS - 1))] = draw(nonzero32)
        elif shape == "uniform":
            vector = [draw(nonzero32)] * DIMS
        elif shape == "random":
            vector = draw(st.lists(weights32, min_size=DIMS, max_size=DIMS))
        else:
            vector = [0.0] * DIMS
        user.tag_vector.extend(vector)
        return set()
    names = st.one_of(st.sampled_from(VOCAB.tags), st.text(min_size=1, max_size=20))
    if shape == "one-tag":
        pairs = [(draw(names), draw(nonzero32))]
    elif shape == "uniform":
        weight = draw(nonzero32)
        pairs = [(tag, weight) for tag in VOCAB.tags]
    elif shape == "random":
        pairs = draw(st.lists(st.tuples(names, weights32), max_size=40, unique_by=lambda p: p[0]))
    else:
        pairs = [(tag, 0.0) for tag in draw(st.lists(names, min_size=1, max_size=5, unique=True))]
    for name, weight in pairs:
        user.tags.add(id=name, weight=weight)
    return set()


# -- broken rules ------------------------------------------------------------------------------------------

# A way to break one rule: it changes the message and returns the field paths it broke.
Spoiler = Callable[[st.DrawFn, pb.BidRequest], set[str]]
# Where a rule's field lives: a path prefix ("" for the request itself, "imp[2].video"...), made to exist.
Place = Callable[[st.DrawFn, pb.BidRequest], str]


def outside(low: int, high: int) -> st.SearchStrategy[int]:
    """int32 values outside [low, high]."""
    below = [st.integers(INT32_MIN, low - 1)] if low > INT32_MIN else []
    above = [st.integers(high + 1, INT32_MAX)] if high < INT32_MAX else []
    return st.one_of(*below, *above)


BAD_FLAG = outside(0, 1)
NOT_POSITIVE = st.integers(INT32_MIN, 0)
NEGATIVE = st.integers(INT32_MIN, -1)
LONG_TEXT = st.integers(MAX_TEXT_CHARS + 1, MAX_TEXT_CHARS + 64).map(lambda n: "t" * n)
LONG_ID = st.integers(MAX_ID_CHARS + 1, MAX_ID_CHARS + 64).map(lambda n: "i" * n)
BAD_CURRENCY = st.sampled_from(["usd", "US", "EURO", "U5D", "$", " USD"])
BAD_LANGUAGE = st.sampled_from(["english", "e", "e1", "en-US", "EN_"])
BAD_MIME = st.sampled_from(["mp4", "video", "/mp4", "video/", "video mp4", "", " video/mp4", "video/mp4;x=1"])


def _at(message: Message, path: str) -> Any:
    """The message at `path` ("imp[2].video"; "" for `message` itself)."""
    node: Any = message
    for part in path.split(".") if path else ():
        field, _, index = part.partition("[")
        node = getattr(node, field)
        if index:
            node = node[int(index.rstrip("]"))]
    return node


def _node(message: Message, path: str) -> tuple[Any, str]:
    """The message holding the field at `path` ("imp[2].video.w") and the field's name."""
    parent, _, name = path.rpartition(".")
    return _at(message, parent), name


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _top(draw: st.DrawFn, message: pb.BidRequest) -> str:
    return ""


def _imp(draw: st.DrawFn, message: pb.BidRequest) -> str:
    return f"imp[{draw(st.integers(0, len(message.imp) - 1))}]"


def _medium(name: str) -> Place:
    """An impression's banner, video, audio, native or pmp, given valid values where it had none."""

    def place(draw: st.DrawFn, message: pb.BidRequest) -> str:
        where = _imp(draw, message)
        imp = _at(message, where)
        if not imp.HasField(name):
            if name == "video":
                imp.video.mimes.append("video/mp4")
            elif name == "audio":
                imp.audio.mimes.append("audio/mp4")
            elif name == "native":
                imp.native.request = NATIVE_REQUEST
            else:
                getattr(imp, name).SetInParent()
        return f"{where}.{name}"

    return place


def _deal(draw: st.DrawFn, message: pb.BidRequest) -> str:
    where = _medium("pmp")(draw, message)
    pmp = _at(message, where)
    if not pmp.deals:
        pmp.deals.add(id=DEALS[0])
    return f"{where}.deals[{draw(st.integers(0, len(pmp.deals) - 1))}]"


def _channel(name: str, part: str = "") -> Place:
    """The request's site, app or dooh (the one the request goes through from now on), or its `part`."""

    def place(draw: st.DrawFn, message: pb.BidRequest) -> str:
        channel = getattr(message, name)
        channel.SetInParent()
        if part:
            getattr(channel, part).SetInParent()
            return f"{name}.{part}"
        return name

    return place


def _fixed(path: str) -> Place:
    def place(draw: st.DrawFn, message: pb.BidRequest) -> str:
        return path

    return place


def _eid(draw: st.DrawFn, message: pb.BidRequest) -> str:
    if not message.user.eids:
        message.user.eids.add(source="id5-sync.com").uids.add(id="ID5-abc", atype=1)
    return f"user.eids[{draw(st.integers(0, len(message.user.eids) - 1))}]"


def _uid(draw: st.DrawFn, message: pb.BidRequest) -> str:
    where = _eid(draw, message)
    eid = _at(message, where)
    return f"{where}.uids[{draw(st.integers(0, len(eid.uids) - 1))}]"


def _data(draw: st.DrawFn, message: pb.BidRequest) -> str:
    if not message.user.data:
        message.user.data.add(id="segments.example").segment.add(id="1")
    return f"user.data[{draw(st.integers(0, len(message.user.data) - 1))}]"


def _segment(draw: st.DrawFn, message: pb.BidRequest) -> str:
    where = _data(draw, message)
    data = _at(message, where)
    if not data.segment:
        data.segment.add(id="1")
    return f"{where}.segment[{draw(st.integers(0, len(data.segment) - 1))}]"


def _schain(draw: st.DrawFn, message: pb.BidRequest) -> str:
    chain = message.source.schain
    if not chain.nodes:
        chain.complete, chain.ver = 1, "1.0"
        chain.nodes.add(asi="exchange.example", sid="pub-1", hp=1)
    return "source.schain"


def _node_of_chain(draw: st.DrawFn, message: pb.BidRequest) -> str:
    _schain(draw, message)
    return f"source.schain.nodes[{draw(st.integers(0, len(message.source.schain.nodes) - 1))}]"


def scalar(place: Place, name: str, values: st.SearchStrategy[Any]) -> Spoiler:
    """Set the field `name` of `place` to one of `values`; the field is the one named."""

    def spoil(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
        where = _join(place(draw, message), name)
        node, field = _node(message, where)
        setattr(node, field, draw(values))
        return {where}

    return spoil


def positive(place: Place, name: str) -> Spoiler:
    """Set the positive field `name` of `place` to 0 or below (below only, when 0 means "not sent")."""

    def spoil(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
        where = _join(place(draw, message), name)
        node, field = _node(message, where)
        present = node.DESCRIPTOR.fields_by_name[field].has_presence
        setattr(node, field, draw(NOT_POSITIVE if present else NEGATIVE))
        return {where}

    return spoil


def cleared(place: Place, name: str) -> Spoiler:
    """Leave out the required field `name` of `place`."""

    def spoil(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
        where = _join(place(draw, message), name)
        node, field = _node(message, where)
        node.ClearField(field)
        return {where}

    return spoil


def item(place: Place, name: str, values: st.SearchStrategy[Any]) -> Spoiler:
    """Add one of `values` to the repeated field `name` of `place`; that item is the field named."""

    def spoil(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
        where = _join(place(draw, message), name)
        node, field = _node(message, where)
        items = getattr(node, field)
        items.append(draw(values))
        return {f"{where}[{len(items) - 1}]"}

    return spoil


def too_many(place: Place, name: str, limit: int, make: Callable[[int], Any] = str) -> Spoiler:
    """Fill the repeated field `name` of `place` with valid items, one more than `limit`."""

    def spoil(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
        where = _join(place(draw, message), name)
        node, field = _node(message, where)
        items = getattr(node, field)
        del items[:]
        extra = draw(st.integers(1, 3))
        if isinstance(make(0), Message):
            for k in range(limit + extra):
                items.add().CopyFrom(make(k))
        else:
            items.extend(make(k) for k in range(limit + extra))
        return {where}

    return spoil


def _flags(place: Place, *names: str) -> dict[str, Spoiler]:
    return {name: scalar(place, name, BAD_FLAG) for name in names}


def _count_and_length(prefix: str, place: Place, name: str) -> dict[str, Spoiler]:
    """The two rules of a list of strings: at most MAX_LIST_ITEMS items, of at most MAX_TEXT_CHARS."""
    return {
        f"{prefix}-count": too_many(place, name, MAX_LIST_ITEMS, lambda k: f"x{k}"),
        f"{prefix}-long": item(place, name, LONG_TEXT),
    }


def _area(area: str, rules: dict[str, Spoiler]) -> dict[str, Spoiler]:
    return {f"{area}:{name}": spoil for name, spoil in rules.items()}


# -- the request itself ------------------------------------------------------------------------------------


def _no_impressions(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
    if draw(st.booleans()):
        del message.imp[:]
    else:
        for k in range(len(message.imp), MAX_IMPRESSIONS + draw(st.integers(1, 5))):
            message.imp.add(id=f"extra-{k}", banner=pb.Banner(w=300, h=250))
    return {"imp"}


def _duplicate_imp(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
    if len(message.imp) == 1:
        message.imp.add().CopyFrom(message.imp[0])
        return {"imp[1].id"}
    i = draw(st.integers(1, len(message.imp) - 1))
    message.imp[i].id = message.imp[draw(st.integers(0, i - 1))].id
    return {f"imp[{i}].id"}


def _no_media(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
    where = _imp(draw, message)
    imp = _at(message, where)
    for name in ("banner", "video", "audio", "native"):
        imp.ClearField(name)
    return {where}


def _half_size(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
    where = _medium("banner")(draw, message)
    banner = _at(message, where)
    banner.format.add(w=300, h=250)  # a slot whose own size is half given still has sizes to take
    if draw(st.booleans()):
        banner.w, banner.h = draw(pixels), 0
        return {f"{where}.h"}
    banner.w, banner.h = 0, draw(pixels)
    return {f"{where}.w"}


def _format_size(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
    where = _medium("banner")(draw, message)
    banner = _at(message, where)
    bad, good = draw(outside(1, MAX_PIXELS)), draw(pixels)
    name = draw(st.sampled_from(["w", "h"]))
    banner.format.add(**{name: bad, "h" if name == "w" else "w": good})
    return {f"{where}.format[{len(banner.format) - 1}].{name}"}


def _format_ratio(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
    where = _medium("banner")(draw, message)
    banner = _at(message, where)
    values = {name: draw(pixels) for name in ("wratio", "hratio", "wmin")}
    name = draw(st.sampled_from(sorted(values)))
    values[name] = draw(outside(1, MAX_PIXELS))  # the other two, set, make it a flexible format
    banner.format.add(**values)
    return {f"{where}.format[{len(banner.format) - 1}].{name}"}


def _longer_than_min(draw: st.DrawFn, message: pb.BidRequest, medium: str) -> set[str]:
    where = _medium(medium)(draw, message)
    player = _at(message, where)
    del player.rqddurs[:]
    player.minduration = draw(st.integers(2, MAX_SECONDS))
    player.maxduration = draw(st.integers(1, player.minduration - 1))
    return {f"{where}.maxduration"}


def _durations_and_range(draw: st.DrawFn, message: pb.BidRequest, medium: str) -> set[str]:
    where = _medium(medium)(draw, message)
    player = _at(message, where)
    player.minduration = 0
    player.ClearField("maxduration")
    if not player.rqddurs:
        player.rqddurs.append(15)
    if draw(st.booleans()):
        player.minduration = draw(st.integers(1, 60))
    else:
        player.maxduration = draw(st.integers(1, MAX_SECONDS))
    return {f"{where}.rqddurs"}


def _bad_required_duration(draw: st.DrawFn, message: pb.BidRequest, medium: str) -> set[str]:
    where = _medium(medium)(draw, message)
    player = _at(message, where)
    player.minduration = 0
    player.ClearField("maxduration")
    player.rqddurs.append(draw(outside(1, MAX_SECONDS)))
    return {f"{where}.rqddurs[{len(player.rqddurs) - 1}]"}


def _no_mimes(draw: st.DrawFn, message: pb.BidRequest, medium: str) -> set[str]:
    where = _medium(medium)(draw, message)
    player = _at(message, where)
    del player.mimes[:]
    return {f"{where}.mimes"}


def _player_rules(medium: str) -> dict[str, Spoiler]:
    """The rules video and audio share (openrtb/validation.py's _durations)."""
    place = _medium(medium)
    return {
        "mimes-missing": lambda draw, message: _no_mimes(draw, message, medium),
        "mime": item(place, "mimes", BAD_MIME),
        "minduration": scalar(place, "minduration", outside(0, MAX_SECONDS)),
        "maxduration": scalar(place, "maxduration", outside(1, MAX_SECONDS)),
        "max-below-min": lambda draw, message: _longer_than_min(draw, message, medium),
        "rqddurs-and-range": lambda draw, message: _durations_and_range(draw, message, medium),
        "rqddurs-item": lambda draw, message: _bad_required_duration(draw, message, medium),
        "protocol": item(place, "protocols", st.one_of(NOT_POSITIVE, st.integers(17, 499))),
        "startdelay": scalar(place, "startdelay", st.integers(INT32_MIN, -3)),
        "battr": item(place, "battr", outside(1, 17)),
    }


def _bitrates_crossed(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
    where = _medium("video")(draw, message)
    video = _at(message, where)
    video.minbitrate = draw(st.integers(1, INT32_MAX))
    video.maxbitrate = draw(st.integers(0, video.minbitrate - 1))
    return {f"{where}.maxbitrate"}


def _empty_native(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
    where = _medium("native")(draw, message)
    native = _at(message, where)
    native.request = ""
    return {f"{where}.request"}


def _duplicate_deal(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
    where = _deal(draw, message)
    at_pmp = where.rpartition(".")[0]
    pmp = _at(message, at_pmp)
    pmp.deals.add(id=_at(message, where).id)
    return {f"{at_pmp}.deals[{len(pmp.deals) - 1}].id"}


def _long_category(draw: st.DrawFn, message: pb.BidRequest, channel: str) -> set[str]:
    """A category too long in cat, sectioncat or pagecat, which the rule reads as one list."""
    node = getattr(message, channel)
    name = draw(st.sampled_from(["cat", "sectioncat", "pagecat"]))
    getattr(node, name).append(draw(LONG_TEXT))
    index = {"cat": len(node.cat) - 1, "sectioncat": len(node.cat) + len(node.sectioncat) - 1}.get(
        name, len(node.cat) + len(node.sectioncat) + len(node.pagecat) - 1
    )
    return {f"{channel}.cat[{index}]"}


def _many_categories(draw: st.DrawFn, message: pb.BidRequest, channel: str) -> set[str]:
    node = getattr(message, channel)
    name = draw(st.sampled_from(["cat", "sectioncat", "pagecat"]))
    getattr(node, name).extend(f"IAB{k % 26 + 1}" for k in range(MAX_LIST_ITEMS + 1))
    return {f"{channel}.cat"}


def _channel_rules(channel: str) -> dict[str, Spoiler]:
    place = _channel(channel)
    rules: dict[str, Spoiler] = {}
    if channel == "dooh":
        rules |= _count_and_length("venuetype", place, "venuetype")
        rules["venuetypetax"] = positive(place, "venuetypetax")
    else:
        rules["cattax"] = positive(place, "cattax")

        def long_category(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
            place(draw, message)
            return _long_category(draw, message, channel)

        def many_categories(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
            place(draw, message)
            return _many_categories(draw, message, channel)

        rules["cat-long"], rules["cat-count"] = long_category, many_categories
        rules |= _flags(
            place, *(("mobile", "privacypolicy") if channel == "site" else ("privacypolicy", "paid"))
        )
    publisher, content = _channel(channel, "publisher"), _channel(channel, "content")
    rules |= {
        "publisher.cattax": positive(publisher, "cattax"),
        "publisher.cat": item(publisher, "cat", LONG_TEXT),
        "content.cattax": positive(content, "cattax"),
        "content.cat": item(content, "cat", LONG_TEXT),
        "content.language": scalar(content, "language", BAD_LANGUAGE),
        "content.livestream": scalar(content, "livestream", BAD_FLAG),
    }
    return {f"{channel}.{name}": spoil for name, spoil in rules.items()}


def beyond(bound: float) -> st.SearchStrategy[float]:
    """Degrees outside [-bound, bound], or not finite."""
    return st.one_of(
        st.sampled_from([float("nan"), float("inf"), -float("inf")]),
        st.floats(min_value=bound, exclude_min=True, allow_infinity=False),
        st.floats(max_value=-bound, exclude_max=True, allow_infinity=False),
    )


def _geo_rules(where: str) -> dict[str, Spoiler]:
    place = _fixed(where)
    rules = {
        "lat": scalar(place, "lat", beyond(90.0)),
        "lon": scalar(place, "lon", beyond(180.0)),
        "type": scalar(place, "type", outside(1, 3)),
        "accuracy": scalar(place, "accuracy", NEGATIVE),
        "ipservice": scalar(place, "ipservice", outside(1, 4)),
        "utcoffset": scalar(place, "utcoffset", outside(-720, 840)),
        "country": scalar(place, "country", st.sampled_from(["US", "U1A", "USAA", "ÜSA", "us "])),
        **{name: scalar(place, name, LONG_TEXT) for name in ("region", "metro", "city", "zip")},
    }
    return {f"{where}.{name}": spoil for name, spoil in rules.items()}


def _profile_rule(rule: str) -> Spoiler:
    def spoil(draw: st.DrawFn, message: pb.BidRequest) -> set[str]:
        return _profile(draw, message, rule)

    return spoil


def _user_id_long(name: str) -> Spoiler:
    return scalar(_fixed("user"), name, LONG_ID)


YEAR = dt.date.today().year
SEGMENT = pb.Segment(id="1")
EID = pb.Eid(source="id5-sync.com", uids=[pb.Uid(id="ID5-abc")])
NODE = pb.SupplyChainNode(asi="exchange.example", sid="pub-1", hp=1)

RULES: dict[str, Spoiler] = {
    **_area(
        "request",
        {
            "id-empty": scalar(_top, "id", st.just("")),
            "id-long": scalar(_top, "id", LONG_ID),
            "tmax": scalar(_top, "tmax", NOT_POSITIVE),
            "at": scalar(_top, "at", st.one_of(NOT_POSITIVE, st.integers(3, 499))),
            **_flags(_top, "test", "allimps"),
            "cattax": positive(_top, "cattax"),
            "cur": item(_top, "cur", BAD_CURRENCY),
            "wlang": item(_top, "wlang", BAD_LANGUAGE),
            **{
                rule: spoil
                for name in ("wlangb", "wseat", "bseat", "bcat", "badv", "bapp")
                for rule, spoil in _count_and_length(name, _top, name).items()
            },
        },
    ),
    **_area(
        "imp",
        {
            "count": _no_impressions,
            "id-empty": scalar(_imp, "id", st.just("")),
            "id-long": scalar(_imp, "id", LONG_ID),
            "id-duplicate": _duplicate_imp,
            "no-media": _no_media,
            "bidfloor": scalar(_imp, "bidfloor", floors(bad=True)),
            "bidfloorcur": scalar(_imp, "bidfloorcur", BAD_CURRENCY),
            "tagid": scalar(_imp, "tagid", LONG_TEXT),
            **_flags(_imp, "instl", "secure", "rwdd"),
            "exp": scalar(_imp, "exp", outside(0, MAX_SECONDS)),
            "banner.w": scalar(_medium("banner"), "w", outside(0, MAX_PIXELS)),
            "banner.h": scalar(_medium("banner"), "h", outside(0, MAX_PIXELS)),
            "banner.half-size": _half_size,
            "banner.format-count": too_many(
                _medium("banner"), "format", MAX_LIST_ITEMS, lambda k: pb.Format(w=300, h=250)
            ),
            "banner.format-size": _format_size,
            "banner.format-ratio": _format_ratio,
            "banner.pos": scalar(_medium("banner"), "pos", outside(0, 7)),
            "banner.battr": item(_medium("banner"), "battr", outside(1, 17)),
            **{f"banner.{k}": v for k, v in _flags(_medium("banner"), "topframe", "vcm").items()},
            **{f"video.{k}": v for k, v in _player_rules("video").items()},
            **{f"audio.{k}": v for k, v in _player_rules("audio").items()},
            "video.w": scalar(_medium("video"), "w", outside(0, MAX_PIXELS)),
            "video.h": scalar(_medium("video"), "h", outside(0, MAX_PIXELS)),
            "video.plcmt": scalar(_medium("video"), "plcmt", outside(1, 4)),
            "video.placement": scalar(_medium("video"), "placement", outside(1, 5)),
            "video.linearity": scalar(_medium("video"), "linearity", outside(1, 2)),
            "video.pos": scalar(_medium("video"), "pos", outside(0, 7)),
            **{f"video.{k}": v for k, v in _flags(_medium("video"), "skip", "boxingallowed").items()},
            "video.minbitrate": scalar(_medium("video"), "minbitrate", NEGATIVE),
            "video.maxbitrate": scalar(_medium("video"), "maxbitrate", NEGATIVE),
            "video.bitrates-crossed": _bitrates_crossed,
            "native.request": _empty_native,
            "native.battr": item(_medium("native"), "battr", outside(1, 17)),
            "pmp.private_auction": scalar(_medium("pmp"), "private_auction", BAD_FLAG),
            "pmp.deals-count": too_many(
                _medium("pmp"), "deals", MAX_DEALS, lambda k: pb.Deal(id=f"deal-x{k}")
            ),
            "deal.id-empty": scalar(_deal, "id", st.just("")),
            "deal.id-long": scalar(_deal, "id", LONG_ID),
            "deal.id-duplicate": _duplicate_deal,
            "deal.bidfloor": scalar(_deal, "bidfloor", floors(bad=True)),
            "deal.bidfloorcur": scalar(_deal, "bidfloorcur", BAD_CURRENCY),
            "deal.at": scalar(_deal, "at", st.one_of(NOT_POSITIVE, st.integers(4, 499))),
            "deal.wseat": item(_deal, "wseat", LONG_TEXT),
            "deal.wadomain": item(_deal, "wadomain", LONG_TEXT),
        },
    ),
    **_area("channel", {**_channel_rules("site"), **_channel_rules("app"), **_channel_rules("dooh")}),
    **_area(
        "device",
        {
            "devicetype": scalar(_fixed("device"), "devicetype", outside(0, 8)),
            **_flags(_fixed("device"), "dnt", "lmt", "js"),
            "w": scalar(_fixed("device"), "w", outside(0, MAX_PIXELS)),
            "h": scalar(_fixed("device"), "h", outside(0, MAX_PIXELS)),
            "ppi": scalar(_fixed("device"), "ppi", outside(1, MAX_PIXELS)),
            "pxratio": scalar(
                _fixed("device"),
                "pxratio",
                st.one_of(st.sampled_from([0.0, float("nan"), float("inf")]), st.floats(max_value=0.0)),
            ),
            "connectiontype": scalar(_fixed("device"), "connectiontype", outside(0, 7)),
            "ip": scalar(_fixed("device"), "ip", st.sampled_from(["::1", "300.1.2.3", "1.2.3", "localhost"])),
            "ipv6": scalar(
                _fixed("device"), "ipv6", st.sampled_from(["1.2.3.4", "zz::1", ":::", "2001:db8::g"])
            ),
            "language": scalar(_fixed("device"), "language", BAD_LANGUAGE),
            **{name: scalar(_fixed("device"), name, LONG_TEXT) for name in ("os", "make", "model", "osv")},
            "ifa-long": scalar(_fixed("device"), "ifa", LONG_ID),
            **_geo_rules("device.geo"),
        },
    ),
    **_area(
        "user",
        {
            "id-long": _user_id_long("id"),
            "buyeruid-long": _user_id_long("buyeruid"),
            "yob": scalar(
                _fixed("user"),
                "yob",
                st.one_of(st.integers(INT32_MIN, 1899), st.integers(YEAR + 1, INT32_MAX)),
            ),
            "gender": scalar(_fixed("user"), "gender", st.sampled_from(["m", "male", "X", "MF"])),
            "consent": scalar(
                _fixed("user"),
                "consent",
                st.integers(MAX_CONSENT_CHARS + 1, MAX_CONSENT_CHARS + 64).map(lambda n: "C" * n),
            ),
            **_count_and_length("kwarray", _fixed("user"), "kwarray"),
            **_geo_rules("user.geo"),
            "data-count": too_many(_fixed("user"), "data", MAX_LIST_ITEMS, lambda k: pb.Data(id=f"d{k}")),
            "segtax": positive(_data, "segtax"),
            "segment-count": too_many(_data, "segment", MAX_LIST_ITEMS, lambda k: SEGMENT),
            "segment-id": scalar(_segment, "id", LONG_TEXT),
            "eids-count": too_many(_fixed("user"), "eids", MAX_LIST_ITEMS, lambda k: EID),
            "eid-source": scalar(_eid, "source", st.just("")),
            "eid-uids": cleared(_eid, "uids"),
            "uids-count": too_many(_eid, "uids", MAX_LIST_ITEMS, lambda k: pb.Uid(id=f"u{k}")),
            "uid-empty": scalar(_uid, "id", st.just("")),
            "uid-long": scalar(_uid, "id", LONG_ID),
            "atype": scalar(_uid, "atype", st.one_of(NOT_POSITIVE, st.integers(4, 499))),
        },
    ),
    **{f"profile:{rule}": _profile_rule(rule) for rule in PROFILE_RULES},
    **_area(
        "source",
        {
            "fd": scalar(_fixed("source"), "fd", BAD_FLAG),
            "tid": scalar(_fixed("source"), "tid", LONG_TEXT),
            "schain.complete-missing": cleared(_schain, "complete"),
            "schain.complete": scalar(_schain, "complete", BAD_FLAG),
            "schain.ver": scalar(_schain, "ver", st.just("")),
            "schain.nodes-missing": cleared(_schain, "nodes"),
            "schain.nodes-count": too_many(_schain, "nodes", MAX_LIST_ITEMS, lambda k: NODE),
            "schain.asi": scalar(_node_of_chain, "asi", st.just("")),
            "schain.sid": scalar(_node_of_chain, "sid", st.just("")),
            "schain.hp-missing": cleared(_node_of_chain, "hp"),
            "schain.hp": scalar(_node_of_chain, "hp", BAD_FLAG),
        },
    ),
    **_area(
        "regs",
        {
            **_flags(_fixed("regs"), "coppa", "gdpr"),
            "us_privacy": scalar(
                _fixed("regs"), "us_privacy", st.sampled_from(["1YNNN", "2YNN", "1ABC", "Y"])
            ),
            "gpp": scalar(
                _fixed("regs"),
                "gpp",
                st.integers(MAX_CONSENT_CHARS + 1, MAX_CONSENT_CHARS + 64).map(lambda n: "D" * n),
            ),
            "gpp_sid-count": too_many(_fixed("regs"), "gpp_sid", MAX_LIST_ITEMS, lambda k: k % 20 + 1),
            "gpp_sid": item(_fixed("regs"), "gpp_sid", outside(1, 2**16)),
        },
    ),
}
SPOILABLE = tuple(RULES)


# -- valid requests ----------------------------------------------------------------------------------------


def _context(draw: st.DrawFn, message: pb.BidRequest) -> None:
    """The valid rest of the request: auction rules, blocks, channel, device, regulations."""
    message.id = draw(st.one_of(st.just(message.id), st.text(min_size=1, max_size=40)))
    tmax = draw(st.one_of(st.none(), st.just(100), st.integers(1, INT32_MAX), st.integers(1, 20)))
    if tmax is None:
        message.ClearField("tmax")
    else:
        message.tmax = tmax
    at = draw(st.one_of(st.none(), st.sampled_from([1, 2, 500]), st.integers(500, INT32_MAX)))
    if at is not None:
        message.at = at
    del message.cur[:]
    # EUR and XXX alone: the first decider has no rate for either, the second none for XXX (no-bid 510).
    message.cur.extend(
        draw(
            st.sampled_from(
                [[], [], ["USD"], ["USD"], ["EUR", "USD"], ["USD", "USD", "JPY"], ["EUR"], ["XXX"]]
            )
        )
    )
    message.test = draw(st.sampled_from([0, 0, 0, 1]))
    message.allimps = draw(st.sampled_from([0, 1]))
    # Rarely a seat rule that leaves personabid out (a no-bid before anything else is decided).
    message.wseat.extend(draw(st.sampled_from([[]] * 12 + [[SEAT], ["other-seat"], [SEAT, "other-seat"]])))
    message.bseat.extend(draw(st.sampled_from([[]] * 12 + [["other-seat"], [SEAT]])))
    message.wlang.extend(draw(st.sampled_from([[]] * 4 + [["en"], ["en", "es"], ["de"], ["EN"], ["ja"]])))
    message.wlangb.extend(draw(st.sampled_from([[]] * 6 + [["en-US"], ["fr-CA", "es"]])))
    cattax = draw(st.sampled_from([None, None, 1, 2]))  # unset: taxonomy 1
    if cattax is not None:
        message.cattax = cattax

    device = message.device
    if draw(st.booleans()):
        device.devicetype = draw(st.integers(0, 8))
    if draw(st.booleans()):
        device.os = draw(
            st.one_of(st.sampled_from([os for _, os in DEVICES] + ["", "iOS", "Linux"]), short_text)
        )
    if draw(st.booleans()):
        letters = st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=3, max_size=3
        )
        device.geo.country = draw(st.one_of(st.sampled_from([*COUNTRIES, "usa", "ATA", ""]), letters))
        device.geo.region = draw(st.one_of(st.just(""), short_text))
        device.geo.city = draw(short_text)
    if draw(st.booleans()):
        device.ifa = draw(st.sampled_from(["", "ifa-1", "6D92078A-8246-4BA4-AE5B-76104861E7DC"]))
        device.language = draw(st.sampled_from(["", "en", "de"]))
        device.ip = draw(st.sampled_from(["", "192.0.2.1"]))

    channel = draw(st.sampled_from(["site", "site", "app", "dooh", "none"]))
    cats = draw(st.lists(st.one_of(categories, short_text), max_size=4))
    if channel == "app":
        message.app.id, message.app.bundle = draw(short_text), draw(st.one_of(bundles, short_text))
        message.app.cat.extend(cats)
    elif channel == "dooh":
        message.dooh.id = draw(short_text)
        message.dooh.venuetype.extend(draw(st.lists(short_text, max_size=2)))
    elif channel == "none":
        message.ClearField("site")
    else:
        del message.site.cat[:]
        message.site.cat.extend(cats)
        message.site.pagecat.extend(draw(st.lists(categories, max_size=2)))
        if draw(st.booleans()):
            message.site.content.cat.extend(draw(st.lists(categories, max_size=2)))
            message.site.content.language = draw(st.sampled_from(["", "en", "fr"]))
    message.bcat.extend(draw(st.lists(st.one_of(categories, short_text), max_size=6)))
    message.badv.extend(draw(st.lists(st.one_of(domains, short_text), max_size=6)))
    message.bapp.extend(draw(st.lists(st.one_of(bundles, short_text), max_size=4)))

    # Mostly 0: a coppa request, or a gdpr one without consent, is matched on its context alone.
    message.regs.coppa = draw(st.sampled_from([0] * 9 + [1]))
    message.regs.gdpr = draw(st.sampled_from([0, 0, 0, 1]))
    message.regs.us_privacy = draw(st.sampled_from(["", "", "1YNN", "1---"]))
    purposes = st.sets(st.integers(1, 10), max_size=10)
    consenting = st.builds(lambda p: tc_string(p | {3, 4}), purposes)  # to personalised ads
    message.user.consent = draw(
        consenting
        if message.regs.gdpr and draw(st.booleans())
        else st.one_of(
            consenting,
            st.just(""),
            st.builds(lambda p: tc_string(p), purposes),
            st.builds(lambda p: tc_string(p, version=1), purposes),
            st.text(max_size=64),
            st.just("C" * MAX_CONSENT_CHARS),
        )
    )
    # Whom frequency caps count: the exchange's id, the buyer's, or the device's.
    message.user.buyeruid = draw(st.sampled_from(["", "", "buyer-1"]))


@st.composite
def cases(draw: st.DrawFn, breaks: str = "some") -> Case:
    """Requests over the valid range of every field that break none of the API's rules (`breaks` "none"),
    exactly one ("one", or the name of one rule of RULES), or none, one or two ("some": about half break
    at least one, never two of one area)."""
    spoiled: frozenset[str] = draw(
        {
            "none": st.just(frozenset()),
            "one": st.sampled_from(SPOILABLE).map(lambda kind: frozenset({kind})),
            "some": st.one_of(
                st.just(frozenset()),
                st.frozensets(st.sampled_from(SPOILABLE), min_size=1, max_size=2).filter(
                    lambda kinds: len({k.split(":")[0] for k in kinds}) == len(kinds)
                ),
            ),
        }.get(breaks, st.just(frozenset({breaks})))
    )
    seed = draw(st.integers(0, 2**32 - 1))
    message = sample_request(WORLD, np.random.default_rng(seed), dense=draw(st.booleans()))
    message.id = f"auction-{seed}"
    _impressions(draw, message)
    _context(draw, message)
    invalid: set[str] = set()
    hashed: set[str] = set()
    profile = next((k for k in spoiled if k.startswith("profile:")), "")
    invalid |= _profile(draw, message, profile.removeprefix("profile:"))
    for kind in sorted(spoiled - {profile}):
        broken = RULES[kind](draw, message)
        invalid |= broken
        if kind in HASHED_AT_THE_DOOR:
            hashed |= broken
    return Case(message, frozenset(invalid), frozenset(hashed))
