"""Requests given as JSON (`personabid call`, a JSON gateway): OpenRTB 2.5 and 2.6 spellings alike."""

from __future__ import annotations

import json

from personabid.client import parse_request


def test_openrtb_2_5_ext_gdpr_and_consent_become_the_2_6_fields() -> None:
    request = parse_request(
        json.dumps(
            {
                "id": "a1",
                "imp": [{"id": "1"}],
                "regs": {"ext": {"gdpr": 1}},
                "user": {"id": "u", "ext": {"consent": "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"}},
            }
        )
    )
    assert request.regs.gdpr == 1
    assert request.user.consent == "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"


def test_the_2_6_fields_win_over_their_2_5_ext_forms() -> None:
    request = parse_request(
        json.dumps(
            {
                "id": "a1",
                "imp": [{"id": "1"}],
                "regs": {"gdpr": 0, "ext": {"gdpr": 1}},
                "user": {"consent": "new", "ext": {"consent": "old"}},
            }
        )
    )
    assert request.regs.gdpr == 0 and request.user.consent == "new"
