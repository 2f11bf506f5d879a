"""The standard vocabulary and its signal rules, as shipped (server/profiles/iab/)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personabid.profiles.taxonomy import (
    FAMILIES,
    MAX_PHRASE_WORDS,
    SHIPPED,
    age_key,
    income_key,
    standard,
)


def test_every_tag_is_of_a_known_family() -> None:
    assert {tag.split(":", 1)[0] for tag in standard().tags} == set(FAMILIES)


def test_the_shipped_files_carry_the_iab_tech_lab_attribution() -> None:
    for name in ("vocabulary.tsv", "rules.tsv"):
        first = (SHIPPED / name).read_text(encoding="utf-8").splitlines()[0]
        assert "IAB Tech Lab" in first and "Creative Commons Attribution 3.0" in first, name


def test_a_content_category_maps_onto_its_interest_and_half_onto_the_parent() -> None:
    assert dict(standard().rules("cat:IAB17-1")) == {
        "interest:sports/auto-racing": 1.0,
        "interest:sports": 0.5,
    }


def test_an_audience_segment_below_tier_2_maps_onto_its_tier_2_ancestor() -> None:
    # 608 is Interest | Sports | American Football; its children are deeper segments of it.
    assert dict(standard().rules("aud:608"))["interest:sports/american-football"] == 1.0


def test_demographic_segments_of_the_audience_taxonomy_map_onto_their_tags() -> None:
    taxonomy = standard()
    assert taxonomy.rules("aud:49") == (("gender:female", 1.0),)
    assert taxonomy.rules("aud:5") == (("age:25-29", 1.0),)


def test_religion_is_not_profiled() -> None:
    # Content 1.0's IAB23 (religion and spirituality) has no Audience interest on purpose.
    assert all(standard().rules(f"cat:IAB23-{i}") == () for i in range(1, 11))


def test_an_unknown_key_has_no_rule() -> None:
    assert standard().rules("cat:IAB99-99") == ()


def _reference_text_keys(text: str) -> list[str]:
    """The definition: at each word, the longest phrase (of up to MAX_PHRASE_WORDS) some rule knows."""
    taxonomy = standard()
    words = re.findall(r"[a-z0-9]+", text.lower())
    found: list[str] = []
    start = 0
    while start < len(words):
        for length in range(min(MAX_PHRASE_WORDS, len(words) - start), 0, -1):
            phrase = " ".join(words[start : start + length])
            hits = [k for k in (f"kw:{phrase}", f"product:{phrase}") if taxonomy.rules(k)]
            if hits:
                found += hits
                start += length
                break
        else:
            start += 1
    return found


PHRASE_WORDS = sorted(standard().phrase_words())


@given(st.lists(st.sampled_from([*PHRASE_WORDS[:400], "the", "of", "x1", "Soccer", "&"]), max_size=12))
def test_text_keys_are_the_longest_known_phrases_at_each_word(words: list[str]) -> None:
    text = " ".join(words)
    assert standard().text_keys(text) == _reference_text_keys(text)


def test_text_keys_prefer_the_longer_phrase() -> None:
    keys = standard().text_keys("American football tonight")
    assert keys and all("american football" in key for key in keys)


@pytest.mark.parametrize(
    ("age", "key"),
    [(17, None), (18, "age:18-20"), (20, "age:18-20"), (21, "age:21-24"), (74, "age:70-74"), (75, "age:75+")],
)
def test_age_bands_follow_the_audience_taxonomy(age: int, key: str | None) -> None:
    assert age_key(age) == key
    assert key is None or standard().rules(key) == ((key, 1.0),)


@pytest.mark.parametrize(
    ("usd", "key"),
    [(-1, None), (0, "income:0-9999"), (9_999.99, "income:0-9999"), (10_000, "income:10000-14999"),
     (249_999, "income:200000-249999"), (250_000, "income:250000+"), (1e12, "income:250000+")],
)  # fmt: skip
def test_income_bands_follow_the_audience_taxonomy(usd: float, key: str | None) -> None:
    assert income_key(usd) == key
    assert key is None or standard().rules(key) == ((key, 1.0),)
