"""GDPR consent: a TC string is read as the IAB's TCF v2 core segment lays it out, and as an independent
decoder (the iab-tcf package) reads it."""

from __future__ import annotations

import numpy as np
import pytest
from iab_tcf import decode

from personabid.decision.consent import consent_refusal
from tests.tcf import tc_string


def test_consent_to_purposes_3_and_4_allows_personalised_ads() -> None:
    assert consent_refusal(tc_string({1, 3, 4})) is None


@pytest.mark.parametrize(("purposes", "missing"), [({1, 3}, "[4]"), ({1, 4, 7}, "[3]"), (set(), "[3, 4]")])
def test_a_string_without_both_purposes_is_refused_naming_the_missing_ones(
    purposes: set[int], missing: str
) -> None:
    assert f"does not consent to TCF purposes {missing}" in (consent_refusal(tc_string(purposes)) or "")


def test_segments_after_the_core_one_are_not_read() -> None:
    assert consent_refusal(tc_string({3, 4}, tail=".YAAAAAAAAAA")) is None


def test_a_version_1_string_is_refused_with_its_version() -> None:
    assert consent_refusal(tc_string({3, 4}, version=1)) == "is a TCF version 1 string; version 2 is required"


@pytest.mark.parametrize(
    ("consent", "why"),
    [("", "is empty"), ("not a tc string!", "not base64url"), ("CPXxRfAPXxRf", "too short")],
)
def test_what_is_not_a_tc_string_is_refused_saying_why(consent: str, why: str) -> None:
    assert why in (consent_refusal(consent) or "")


def test_the_purposes_read_agree_with_the_iab_tcf_decoder() -> None:
    rng = np.random.default_rng(11)
    for _ in range(300):
        purposes = {int(p) for p in np.flatnonzero(rng.random(24) < 0.5) + 1}
        vendors = {int(v) for v in rng.integers(1, 1200, size=int(rng.integers(1, 30)))}
        consent = tc_string(purposes, vendors=vendors)
        reference = decode(consent)
        assert {p for p, granted in reference.purposes_consent.items() if granted} == purposes
        assert (consent_refusal(consent) is None) == all(reference.is_purpose_allowed(p) for p in (3, 4))
