"""A bid request as signal keys (personabid.profiles.taxonomy): what it says of the user, and of where
the ad would show.

The two are kept apart because privacy treats them apart: *segments* (the exchange's audience segments,
the user's keywords, year of birth and gender) describe the person and may only be used when the request
allows profiling; *context* (the page's or app's categories and keywords, the kind of app, the device,
the country) describes the placement and may always be used.

Keys are emitted whether or not a rule knows them: the blend looks each up once and ignores the unknown,
which costs less than asking twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from personabid.openrtb.request import App, BidRequest, Content, Dooh, Site, User
from personabid.profiles.taxonomy import Taxonomy, age_key

AUDIENCE_SEGTAX = 4  # IAB Tech Lab Audience Taxonomy 1.1: its ids are the `aud:` keys
CONTENT_CATTAX = 1  # IAB Content Category Taxonomy 1.0: its codes are the `cat:` keys
GENDERS = {"M": "gender:male", "F": "gender:female"}  # "O" and absent: no key
OLDEST = 120  # a year of birth further back is a placeholder, not an age

TextKeys = Callable[[str], Sequence[str]]


def text_keys_of(taxonomy: Taxonomy, cache_size: int = 4096) -> TextKeys:
    """`taxonomy.text_keys`, remembered: a site's or an app's keywords recur on every request it sends,
    and a lookup costs less than splitting the text into phrases again."""
    cached = functools.lru_cache(maxsize=cache_size)(lambda text: tuple(taxonomy.text_keys(text)))
    return cached


def _keywords(keys: list[str], keywords: str, kwarray: tuple[str, ...], text_keys: TextKeys) -> None:
    # OpenRTB's keywords are a comma-separated list: each item is its own phrase, and no phrase may span
    # two items ("football, tickets" is not "football tickets").
    if keywords:
        for item in keywords.split(","):
            if item.strip():
                keys += text_keys(item)
    for item in kwarray:
        keys += text_keys(item)


def segment_keys(user: User, year: int, text_keys: TextKeys) -> list[str]:
    """What the exchange says of the user: Audience Taxonomy segments (segtax 4), keywords, the age band
    of the year of birth in `year`, and the gender."""
    keys: list[str] = []
    for data in user.data:
        if data.segtax == AUDIENCE_SEGTAX:
            keys += [f"aud:{segment.id.strip()}" for segment in data.segment if segment.id]
            continue
        # Segment ids of another taxonomy, or of none said, are some provider's own and mean nothing to
        # the rules; their names often say what they are ("sports fans"), read as keywords.
        for segment in data.segment:
            if segment.name:
                keys += text_keys(segment.name)
    _keywords(keys, user.keywords, user.kwarray, text_keys)
    if user.yob is not None and 0 <= year - user.yob <= OLDEST:
        age = age_key(year - user.yob)  # None for a child: children are not profiled
        if age is not None:
            keys.append(age)
    gender = GENDERS.get(user.gender.upper()) if user.gender else None
    if gender is not None:
        keys.append(gender)
    return keys


def _categories(keys: list[str], cattax: int, *lists: tuple[str, ...]) -> None:
    # Codes of another taxonomy (Content 2.x, 3.0...) would name other categories under the same
    # spelling: only Content 1.0's codes are read.
    if cattax == CONTENT_CATTAX:
        for codes in lists:
            keys += [f"cat:{code}" for code in codes]


def _content(keys: list[str], content: Content | None, text_keys: TextKeys) -> None:
    if content is not None:
        _categories(keys, content.cattax, content.cat)
        _keywords(keys, content.keywords, content.kwarray, text_keys)


def context_keys(request: BidRequest, text_keys: TextKeys) -> list[str]:
    """What the placement says: the site's or app's categories (its own, its section's, its page's, its
    content's), the kind of app, their keywords, the device's operating system and type, and the
    country the device is in."""
    keys: list[str] = []
    channel: Site | App | Dooh | None = request.site or request.app or request.dooh
    if isinstance(channel, Site | App):
        _categories(keys, channel.cattax, channel.cat, channel.sectioncat, channel.pagecat)
        if isinstance(channel, App):
            # Many exchanges put the store's category ("games", "social") in app.cat whatever cattax
            # says: read as a kind of app, a Content code simply matches no `appcat:` rule.
            keys += [f"appcat:{name.lower()}" for name in channel.cat]
        _keywords(keys, channel.keywords, channel.kwarray, text_keys)
        _content(keys, channel.content, text_keys)
    elif channel is not None:
        _keywords(keys, channel.keywords, (), text_keys)
        _content(keys, channel.content, text_keys)
    device = request.device
    if device.os:
        keys.append(f"os:{device.os.lower()}")
    if device.devicetype:
        keys.append(f"devicetype:{device.devicetype}")
    if device.geo.country:
        keys.append(f"country:{device.geo.country.upper()}")
    return keys
