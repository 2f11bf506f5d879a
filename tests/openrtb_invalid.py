"""Invalid OpenRTB requests, one per validation rule, and their golden answers.

Each case is a valid base request with one change (a JSON path and the value put there). The expected
answer of each, as the HTTP door gives it (status and body), is a golden file in
tests/golden/openrtb_invalid/NAME.json beside its request; tests/test_golden_invalid.py replays them
through both doors. After a deliberate change of a rule or its message, rewrite them and review the diff:

    .venv/bin/python -m tests.openrtb_invalid --write
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from pathlib import Path
from typing import Any

from personabid.errors import InvalidRequest
from personabid.openrtb.codec import decode_request
from personabid.openrtb.validation import validate
from personabid.world import vocabulary

GOLDEN = Path(__file__).resolve().parent / "golden" / "openrtb_invalid"
DIMS = vocabulary().dims  # the demo world's vocabulary, which the test server serves
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

BASE: dict[str, Any] = {
    "id": "golden-1",
    "imp": [
        {
            "id": "1",
            "banner": {"w": 300, "h": 250, "format": [{"w": 300, "h": 250}, {"w": 320, "h": 50}]},
            "bidfloor": 0.5,
            "bidfloorcur": "USD",
            "pmp": {"private_auction": 0, "deals": [{"id": "deal-1", "bidfloor": 1.0}]},
        },
        {
            "id": "2",
            "video": {"mimes": ["video/mp4"], "minduration": 5, "maxduration": 30, "protocols": [2, 3, 7]},
        },
        {"id": "3", "audio": {"mimes": ["audio/mp4"], "maxduration": 30}},
        {"id": "4", "native": {"request": '{"ver":"1.2","assets":[]}', "ver": "1.2"}},
    ],
    "site": {
        "id": "s1",
        "domain": "news.example",
        "cat": ["IAB12"],
        "publisher": {"id": "p1"},
        "content": {"language": "en"},
    },
    "device": {
        "devicetype": 2,
        "ua": "Mozilla/5.0",
        "ip": "192.0.2.1",
        "language": "en",
        "geo": {"country": "USA", "lat": 37.7, "lon": -122.4, "type": 2, "utcoffset": -480},
    },
    "user": {
        "id": "u1",
        "yob": 1990,
        "gender": "F",
        "data": [{"id": "x", "segment": [{"id": "1"}], "ext": {"segtax": 4}}],
        "eids": [{"source": "id.example", "uids": [{"id": "abc", "atype": 1}]}],
    },
    "source": {
        "tid": "t1",
        "schain": {"complete": 1, "ver": "1.0", "nodes": [{"asi": "x.example", "sid": "1", "hp": 1}]},
    },
    "regs": {"coppa": 0, "gdpr": 0, "us_privacy": "1YN-", "gpp_sid": [2]},
    "tmax": 100,
    "cur": ["USD"],
}

DELETE = object()  # as a case's value: take the field out

# name -> (JSON path, value): the one change that breaks the rule.
CASES: dict[str, tuple[str, Any]] = {
    "id-empty": ("id", ""),
    "id-too-long": ("id", "x" * 257),
    "tmax-not-positive": ("tmax", 0),
    "at-unknown": ("at", 3),
    "test-not-a-flag": ("test", 2),
    "allimps-not-a-flag": ("allimps", 2),
    "cattax-not-positive": ("cattax", 0),
    "cur-not-iso-4217": ("cur", ["usd"]),
    "wlang-not-iso-639-1": ("wlang", ["eng"]),
    "bcat-too-many": ("bcat", ["IAB1"] * 1025),
    "imp-missing": ("imp", []),
    "imp-too-many": ("imp", [{"id": str(i), "banner": {}} for i in range(65)]),
    "imp-id-empty": ("imp[0].id", ""),
    "imp-id-duplicate": ("imp[1].id", "1"),
    "imp-without-medium": ("imp[0]", {"id": "1"}),
    "imp-bidfloor-negative": ("imp[0].bidfloor", -1),
    "imp-bidfloorcur-not-iso-4217": ("imp[0].bidfloorcur", "dollars"),
    "imp-tagid-too-long": ("imp[0].tagid", "t" * 1025),
    "imp-instl-not-a-flag": ("imp[0].instl", 2),
    "imp-secure-not-a-flag": ("imp[0].secure", 3),
    "imp-rwdd-not-a-flag": ("imp[0].rwdd", 2),
    "imp-exp-negative": ("imp[0].exp", -1),
    "banner-w-negative": ("imp[0].banner.w", -300),
    "banner-w-without-h": ("imp[0].banner.h", 0),
    "banner-format-h-zero": ("imp[0].banner.format[1].h", 0),
    "banner-format-w-zero": ("imp[0].banner.format[0].w", 0),
    "banner-format-ratio-without-hratio": ("imp[0].banner.format[1]", {"wratio": 16, "wmin": 300}),
    "banner-pos-unknown": ("imp[0].banner.pos", 8),
    "banner-battr-unknown": ("imp[0].banner.battr", [18]),
    "banner-topframe-not-a-flag": ("imp[0].banner.topframe", 2),
    "banner-vcm-not-a-flag": ("imp[0].banner.vcm", 2),
    "video-mimes-missing": ("imp[1].video.mimes", DELETE),
    "video-mime-malformed": ("imp[1].video.mimes", ["mp4"]),
    "video-minduration-negative": ("imp[1].video.minduration", -1),
    "video-maxduration-zero": ("imp[1].video.maxduration", 0),
    "video-maxduration-below-minduration": ("imp[1].video.maxduration", 4),
    "video-rqddurs-with-durations": ("imp[1].video.rqddurs", [15, 30]),
    "video-protocol-unknown": ("imp[1].video.protocols", [0]),
    "video-startdelay-below-minus-2": ("imp[1].video.startdelay", -3),
    "video-w-negative": ("imp[1].video.w", -640),
    "video-plcmt-unknown": ("imp[1].video.plcmt", 5),
    "video-placement-unknown": ("imp[1].video.placement", 6),
    "video-linearity-unknown": ("imp[1].video.linearity", 3),
    "video-skip-not-a-flag": ("imp[1].video.skip", 2),
    "video-boxingallowed-not-a-flag": ("imp[1].video.boxingallowed", 2),
    "video-maxbitrate-below-minbitrate": (
        "imp[1].video",
        {"mimes": ["video/mp4"], "minbitrate": 2000, "maxbitrate": 1000},
    ),
    "video-battr-unknown": ("imp[1].video.battr", [0]),
    "audio-mimes-missing": ("imp[2].audio.mimes", []),
    "audio-rqddurs-zero": ("imp[2].audio", {"mimes": ["audio/mp4"], "rqddurs": [0]}),
    "native-request-missing": ("imp[3].native.request", ""),
    "pmp-private-auction-not-a-flag": ("imp[0].pmp.private_auction", 2),
    "deal-id-empty": ("imp[0].pmp.deals[0].id", ""),
    "deal-id-duplicate": ("imp[0].pmp.deals", [{"id": "d"}, {"id": "d"}]),
    "deal-bidfloor-negative": ("imp[0].pmp.deals[0].bidfloor", -0.5),
    "deal-bidfloorcur-not-iso-4217": ("imp[0].pmp.deals[0].bidfloorcur", "eur"),
    "deal-at-unknown": ("imp[0].pmp.deals[0].at", 4),
    "site-and-app": ("app", {"id": "a1", "bundle": "com.example"}),
    "site-cattax-not-positive": ("site.cattax", 0),
    "site-mobile-not-a-flag": ("site.mobile", 2),
    "site-publisher-cattax-not-positive": ("site.publisher.cattax", -1),
    "site-content-language-not-iso-639-1": ("site.content.language", "english"),
    "site-content-livestream-not-a-flag": ("site.content.livestream", 2),
    "device-devicetype-unknown": ("device.devicetype", 9),
    "device-dnt-not-a-flag": ("device.dnt", 2),
    "device-lmt-not-a-flag": ("device.lmt", 2),
    "device-w-negative": ("device.w", -1),
    "device-ppi-zero": ("device.ppi", 0),
    "device-pxratio-zero": ("device.pxratio", 0),
    "device-connectiontype-unknown": ("device.connectiontype", 8),
    "device-ip-not-ipv4": ("device.ip", "300.1.2.3"),
    "device-ipv6-not-ipv6": ("device.ipv6", "2001:db8::zz"),
    "device-language-not-iso-639-1": ("device.language", "eng"),
    "geo-lat-out-of-range": ("device.geo.lat", 91.0),
    "geo-lon-out-of-range": ("device.geo.lon", -181.0),
    "geo-type-unknown": ("device.geo.type", 4),
    "geo-accuracy-negative": ("device.geo.accuracy", -1),
    "geo-ipservice-unknown": ("device.geo.ipservice", 5),
    "geo-utcoffset-out-of-range": ("device.geo.utcoffset", 900),
    "geo-country-not-alpha-3": ("device.geo.country", "US"),
    "user-yob-implausible": ("user.yob", 1800),
    "user-gender-unknown": ("user.gender", "X"),
    "user-consent-too-long": ("user.consent", "C" * 16385),
    "user-geo-lat-out-of-range": ("user.geo", {"lat": -95.0}),
    "user-data-segtax-not-positive": ("user.data[0].ext.segtax", 0),
    "user-eid-source-missing": ("user.eids[0].source", ""),
    "user-eid-uids-missing": ("user.eids[0].uids", []),
    "user-eid-uid-id-empty": ("user.eids[0].uids[0].id", ""),
    "user-eid-uid-atype-unknown": ("user.eids[0].uids[0].atype", 4),
    "user-tag-vector-wrong-length": ("user.tag_vector", [0.5, 0.5]),
    "user-tag-vector-and-tags": ("user", {"tag_vector": [0.0] * DIMS, "tags": [{"id": "a", "weight": 1}]}),
    "user-tags-duplicate": ("user.tags", [{"id": "a", "weight": 1}, {"id": "a", "weight": 2}]),
    "user-tags-id-empty": ("user.tags", [{"id": "", "weight": 1}]),
    "source-fd-not-a-flag": ("source.fd", 2),
    "schain-complete-missing": ("source.schain.complete", DELETE),
    "schain-ver-missing": ("source.schain.ver", DELETE),
    "schain-nodes-missing": ("source.schain.nodes", []),
    "schain-node-asi-missing": ("source.schain.nodes[0].asi", DELETE),
    "schain-node-sid-missing": ("source.schain.nodes[0].sid", ""),
    "schain-node-hp-missing": ("source.schain.nodes[0].hp", DELETE),
    "regs-coppa-not-a-flag": ("regs.coppa", 2),
    "regs-gdpr-not-a-flag": ("regs.gdpr", 5),
    "regs-us-privacy-malformed": ("regs.us_privacy", "YYY"),
    "regs-gpp-sid-zero": ("regs.gpp_sid", [0]),
    "json-wrong-type": ("imp[0].banner.w", "300"),
    "json-wrong-type-in-a-list": ("bcat", ["IAB1", 7]),
}


def request_of(name: str) -> dict[str, Any]:
    """The base request with case `name`'s change."""
    path, value = CASES[name]
    request = copy.deepcopy(BASE)
    steps = [key or int(index) for key, index in _STEP.findall(path)]
    parent: Any = request
    for step in steps[:-1]:
        parent = parent[step]
    if value is DELETE:
        del parent[steps[-1]]
    else:
        parent[steps[-1]] = value
    return request


def expected_answer(request: dict[str, Any]) -> dict[str, Any]:
    """The door's answer to `request` as the core gives it: 400 and the refusal's parts."""
    try:
        validate(decode_request(json.dumps(request).encode()), DIMS)
    except InvalidRequest as refused:
        return {
            "status": 400,
            "body": {
                "error": str(refused),
                "field": refused.field,
                "value": refused.value,
                "reason": refused.reason,
            },
        }
    raise AssertionError(f"not refused: {json.dumps(request)[:200]}")


def golden_path(name: str) -> Path:
    return GOLDEN / f"{name}.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite every golden file from the cases")
    args = parser.parse_args()
    if not args.write:
        parser.print_help()
        return 2
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for stale in GOLDEN.glob("*.json"):
        stale.unlink()
    validate(decode_request(json.dumps(BASE).encode()), DIMS)  # the base itself must be valid
    for name in CASES:
        request = request_of(name)
        golden = {"request": request, **expected_answer(request)}
        golden_path(name).write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {len(CASES)} golden files to {GOLDEN}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
