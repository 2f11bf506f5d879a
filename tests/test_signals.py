"""A request's signal keys: what the exchange says of the user (segments) and of the placement (context)."""

from __future__ import annotations

from personabid.decision.signals import context_keys, segment_keys, text_keys_of
from personabid.openrtb.request import (
    App,
    BidRequest,
    Content,
    Data,
    DataExt,
    Device,
    Dooh,
    Geo,
    Segment,
    Site,
    User,
)
from personabid.profiles.taxonomy import standard

TEXT = text_keys_of(standard())
YEAR = 2026


def segments(**fields: object) -> list[str]:
    return segment_keys(User(**fields), YEAR, TEXT)  # type: ignore[arg-type]


def context(**fields: object) -> list[str]:
    return context_keys(BidRequest(id="r", **fields), TEXT)  # type: ignore[arg-type]


def test_audience_taxonomy_segments_become_aud_keys() -> None:
    data = Data(segment=(Segment(id="608"), Segment(id=" 5 ")), ext=DataExt(segtax=4))
    assert segments(data=(data,)) == ["aud:608", "aud:5"]


def test_segment_ids_of_another_taxonomy_or_none_said_are_ignored() -> None:
    other = Data(segment=(Segment(id="608"),), segtax=5)
    unsaid = Data(segment=(Segment(id="608"),))
    assert segments(data=(other, unsaid)) == []


def test_names_of_segments_outside_the_audience_taxonomy_are_read_as_keywords() -> None:
    named = Data(segment=(Segment(id="12341318394918", name="soccer fans"), Segment(id="7", name="auto")))
    assert segments(data=(named,)) == ["kw:soccer"]


def test_names_of_audience_taxonomy_segments_add_nothing_to_their_ids() -> None:
    data = Data(segment=(Segment(id="608", name="soccer fans"),), ext=DataExt(segtax=4))
    assert segments(data=(data,)) == ["aud:608"]


def test_user_keywords_are_read_item_by_item() -> None:
    # "soccer, tickets" holds the word soccer; the comma ends a phrase.
    assert segments(keywords="soccer, tickets") == ["kw:soccer"]
    assert segments(kwarray=("soccer",)) == ["kw:soccer"]


def test_year_of_birth_becomes_the_age_band_of_this_year() -> None:
    assert segments(yob=YEAR - 27) == ["age:25-29"]


def test_a_child_gets_no_age_key() -> None:
    assert segments(yob=YEAR - 12) == []


def test_gender_m_and_f_become_gender_keys_and_o_none() -> None:
    assert segments(gender="F") == ["gender:female"]
    assert segments(gender="M") == ["gender:male"]
    assert segments(gender="O") == []


def test_site_categories_of_every_level_become_cat_keys() -> None:
    site = Site(cat=("IAB17",), sectioncat=("IAB17-1",), pagecat=("IAB17-44",))
    assert context(site=site) == ["cat:IAB17", "cat:IAB17-1", "cat:IAB17-44"]


def test_categories_of_another_taxonomy_are_not_read_as_content_1_0() -> None:
    assert context(site=Site(cat=("IAB17",), cattax=2)) == []


def test_content_categories_follow_the_contents_own_taxonomy() -> None:
    site = Site(cattax=2, cat=("483",), content=Content(cat=("IAB12",)))
    assert context(site=site) == ["cat:IAB12"]


def test_an_apps_store_category_becomes_an_appcat_key() -> None:
    assert "appcat:social" in context(app=App(cat=("Social",)))


def test_page_and_content_keywords_are_context() -> None:
    site = Site(keywords="news, soccer", content=Content(kwarray=("soccer",)))
    assert context(site=site) == ["kw:soccer", "kw:soccer"]


def test_a_screens_keywords_are_context() -> None:
    assert context(dooh=Dooh(keywords="soccer")) == ["kw:soccer"]


def test_device_os_type_and_country_are_context() -> None:
    device = Device(os="iOS", devicetype=5, geo=Geo(country="usa"))
    assert context(device=device) == ["os:ios", "devicetype:5", "country:USA"]


def test_a_request_with_nothing_said_has_no_keys() -> None:
    assert context() == [] and segments() == []
