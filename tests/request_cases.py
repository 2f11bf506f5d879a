"""Bid requests over the whole valid range of every field and just outside it, for property tests.

A Case is a BidRequest and the field paths of the API rules it breaks (none for a valid request), so that a
test can hold the answer to both: a valid request is decided, a broken one is refused naming one of them.
Requests start from a user of the seeded demo world, so that many of them reach matching and pricing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import text_format
from hypothesis import strategies as st

from personabid.client import sample_request
from personabid.decision.request import MAX_CONSENT_CHARS, MAX_IMPRESSIONS, MAX_TAGS
from personabid.v1 import bidder_pb2 as pb
from personabid.world import COUNTRIES, DEVICES, SIZES, World
from tests.demo_world import TEST_WORLD
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

# The kinds of rule a Case may break (a valid Case breaks none), one entry each, so that each is drawn as
# often as any other.
IMP_RULES = ("count", "empty-id", "duplicate-id", "bidfloor", "bidfloorcur", "banner")
PROFILE_RULES = ("both", "length", "nonfinite", "many", "empty", "duplicate", "tag-nonfinite")
SPOILABLE = (
    *("id", "tmax", "at", "cur", "devicetype", "regs", "consent"),
    *(f"imp:{rule}" for rule in IMP_RULES),
    *(f"profile:{rule}" for rule in PROFILE_RULES),
)

weights32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
nonzero32 = weights32.filter(lambda w: w != 0.0)
positive32 = st.floats(min_value=F32_TINY, max_value=F32_MAX, width=32)
short_text = st.text(max_size=12)
categories = st.builds(
    lambda parent, child: f"IAB{parent}" if child == 0 else f"IAB{parent}-{child}",
    st.integers(1, 26),
    st.integers(0, 5),
)


@dataclass(frozen=True, repr=False)
class Case:
    message: pb.BidRequest
    invalid: frozenset[str]  # field paths of the rules the request breaks; empty when it is valid

    def __repr__(self) -> str:
        # Hypothesis prints a failing example: thousands of tags or a dense vector would bury it (and past
        # 30 kB it warns, which the suite turns into an error), so long repeated fields are cut short.
        shown = pb.BidRequest()
        shown.CopyFrom(self.message)
        notes = []
        if len(shown.user.tag_vector) > 8:
            notes.append(f"user.tag_vector: {len(shown.user.tag_vector)} weights, first 8 shown")
            del shown.user.tag_vector[8:]
        if len(shown.user.tags) > 8:
            notes.append(f"user.tags: {len(shown.user.tags)} tags, first 8 shown")
            del shown.user.tags[8:]
        if len(shown.imp) > 8:
            notes.append(f"imp: {len(shown.imp)} impressions, first 8 shown")
            del shown.imp[8:]
        if len(shown.user.consent) > 200:
            notes.append(f"user.consent: {len(shown.user.consent)} characters")
            shown.user.consent = shown.user.consent[:200]
        text = text_format.MessageToString(shown, as_one_line=True)
        return f"Case(invalid={sorted(self.invalid)}, message=<{text}>{''.join(f'; {n}' for n in notes)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # Hypothesis's printer would otherwise walk every dataclass field


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


@st.composite
def floors(draw: st.DrawFn, bad: bool = False) -> float:
    if bad:
        return draw(
            st.one_of(
                st.sampled_from([float("nan"), float("inf"), -float("inf"), -F64_MAX, -0.01]),
                st.floats(max_value=-F32_TINY, allow_nan=False),  # negative, down to -inf
                st.just(float("nan")),  # the one a sign check misses
            )
        )
    return draw(
        st.one_of(
            st.sampled_from([0.0, -0.0, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, HIGH_FLOOR]),
            st.floats(min_value=0.0, max_value=HIGH_FLOOR),
            st.floats(min_value=0.0, max_value=F64_MAX),
        )
    )


@st.composite
def banners(draw: st.DrawFn, bad: bool = False) -> tuple[int, int]:
    if bad:
        w, h = draw(st.integers(INT32_MIN, -1)), draw(st.integers(INT32_MIN, INT32_MAX))
        return (w, h) if draw(st.booleans()) else (h, w)
    return draw(
        st.one_of(
            st.sampled_from(SIZES),
            st.sampled_from([(0, 0), (0, 250), (300, 0), (1, 1)]),  # any size; a size no campaign has
            st.tuples(st.integers(0, INT32_MAX), st.integers(0, INT32_MAX)),
        )
    )


def _impressions(draw: st.DrawFn, message: pb.BidRequest, kind: str) -> set[str]:
    """Rewrite the impressions: 1 to 64 of them, or ones that break the rule `kind` (of IMP_RULES)."""
    template = message.imp[0].banner
    del message.imp[:]
    if kind == "count":
        count = draw(st.sampled_from([0, MAX_IMPRESSIONS + 1, MAX_IMPRESSIONS + 5]))
    else:
        count = draw(st.one_of(st.integers(1, 3), st.integers(1, MAX_IMPRESSIONS)))
    if kind == "duplicate-id":
        count = max(count, 2)
    spoiled = (
        draw(st.integers(1 if kind == "duplicate-id" else 0, count - 1)) if kind and kind != "count" else -1
    )
    invalid: set[str] = {"imp"} if kind == "count" else set()
    for i in range(count):
        imp = message.imp.add(id=str(i + 1))
        bad_banner = kind == "banner" and i == spoiled
        if i == 0 and not bad_banner and draw(st.booleans()):
            w, h = template.w, template.h  # a size that fits the user's device
        else:
            w, h = draw(banners(bad=bad_banner))
        imp.banner.w, imp.banner.h = w, h
        imp.bidfloor = draw(floors(bad=kind == "bidfloor" and i == spoiled))
        imp.bidfloorcur = draw(st.sampled_from(["", "USD"]))
        imp.tagid = draw(short_text)
        if i != spoiled:
            continue
        if kind == "empty-id":
            imp.id = ""
        elif kind == "duplicate-id":
            imp.id = message.imp[draw(st.integers(0, i - 1))].id
        elif kind == "bidfloorcur":
            imp.bidfloorcur = draw(st.sampled_from(["EUR", "usd", "JPY", "US"]))
        invalid.add(f"imp[{i}].{kind.removeprefix('empty-').removeprefix('duplicate-')}")
    return invalid


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


@st.composite
def cases(draw: st.DrawFn, breaks: str = "some") -> Case:
    """Requests over the valid range of every field that break none of the API's rules (`breaks` "none"),
    exactly one ("one"), or none, one or two ("some": about half break at least one)."""
    spoiled = draw(
        {
            "none": st.just(frozenset()),
            "one": st.sampled_from(SPOILABLE).map(lambda kind: frozenset({kind})),
            # At most one rule of the impressions and one of the profile: each area breaks one at a time.
            "some": st.one_of(
                st.just(frozenset()),
                st.frozensets(st.sampled_from(SPOILABLE), min_size=1, max_size=2).filter(
                    lambda kinds: (
                        sum(k.startswith("imp:") for k in kinds) <= 1
                        and sum(k.startswith("profile:") for k in kinds) <= 1
                    )
                ),
            ),
        }[breaks]
    )
    seed = draw(st.integers(0, 2**32 - 1))
    message = sample_request(WORLD, np.random.default_rng(seed), dense=draw(st.booleans()))
    invalid: set[str] = set()

    if "id" in spoiled:
        message.id = ""
        invalid.add("id")
    else:
        message.id = draw(st.one_of(st.just(f"auction-{seed}"), st.text(min_size=1, max_size=40)))

    if "tmax" in spoiled:
        message.tmax = draw(st.integers(INT32_MIN, 0))
        invalid.add("tmax")
    else:
        tmax = draw(st.one_of(st.none(), st.just(100), st.integers(1, INT32_MAX), st.integers(1, 20)))
        if tmax is None:
            message.ClearField("tmax")
        else:
            message.tmax = tmax

    if "at" in spoiled:
        message.at = draw(st.one_of(st.integers(INT32_MIN, 0), st.integers(3, 499)))
        invalid.add("at")
    else:
        at = draw(st.one_of(st.none(), st.sampled_from([1, 2, 500]), st.integers(500, INT32_MAX)))
        if at is not None:
            message.at = at

    del message.cur[:]
    if "cur" in spoiled:
        others = st.one_of(st.sampled_from(["EUR", "usd", "GBP", ""]), st.text(max_size=4))
        message.cur.extend(draw(st.lists(others.filter(lambda c: c != "USD"), min_size=1, max_size=3)))
        invalid.add("cur")
    else:
        message.cur.extend(draw(st.sampled_from([[], ["USD"], ["EUR", "USD"], ["USD", "USD", "JPY"]])))

    invalid |= _impressions(draw, message, next((k[4:] for k in spoiled if k.startswith("imp:")), ""))

    device = message.device
    if "devicetype" in spoiled:
        device.devicetype = draw(st.one_of(st.integers(9, INT32_MAX), st.integers(INT32_MIN, -1)))
        invalid.add("device.devicetype")
    elif draw(st.booleans()):
        device.devicetype = draw(st.integers(0, 8))
    if draw(st.booleans()):
        device.os = draw(
            st.one_of(st.sampled_from([os for _, os in DEVICES] + ["", "iOS", "Linux"]), short_text)
        )
    if draw(st.booleans()):
        device.geo.country = draw(st.one_of(st.sampled_from([*COUNTRIES, "usa", "ATA", ""]), short_text))
        device.geo.region = draw(st.one_of(st.just(""), short_text))
        device.geo.city = draw(short_text)

    channel = draw(st.sampled_from(["site", "app", "none"]))
    cats = draw(st.lists(st.one_of(categories, short_text), max_size=4))
    if channel == "app":
        message.app.id, message.app.bundle = draw(short_text), draw(short_text)
        message.app.cat.extend(cats)
    elif channel == "none":
        message.ClearField("site")
    else:
        del message.site.cat[:]
        message.site.cat.extend(cats)
    message.bcat.extend(draw(st.lists(st.one_of(categories, short_text), max_size=6)))
    domains = st.builds(lambda n: f"brand{n:05d}.example", st.integers(0, 300))
    message.badv.extend(draw(st.lists(st.one_of(domains, short_text), max_size=6)))

    if "regs" in spoiled:
        bad_flag = st.one_of(st.integers(2, INT32_MAX), st.integers(INT32_MIN, -1))
        which = draw(st.sampled_from(["coppa", "gdpr"]))
        setattr(message.regs, which, draw(bad_flag))
        invalid.add(f"regs.{which}")
    else:
        # Mostly 0: a coppa request, or a gdpr one without consent, is declined before matching.
        message.regs.coppa = draw(st.sampled_from([0] * 9 + [1]))
        message.regs.gdpr = draw(st.sampled_from([0, 0, 0, 1]))
    if "consent" in spoiled:
        message.user.consent = "C" * draw(st.integers(MAX_CONSENT_CHARS + 1, MAX_CONSENT_CHARS + 64))
        invalid.add("user.consent")
    else:
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

    invalid |= _profile(draw, message, next((k[8:] for k in spoiled if k.startswith("profile:")), ""))
    return Case(message, frozenset(invalid))
