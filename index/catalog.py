"""Campaign catalogs: JSON Lines or CSV in, validated CampaignSpecs out, every error reported at once.

One campaign per JSON line:

    {"id": "cmp-1", "advertiser": "Acme", "status": "active",
     "schedule": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-31T00:00:00Z"},
     "daily_budget": 500, "base_bid": 2.0, "max_bid": 5.0, "currency": "USD", "min_match": 0.3,
     "creatives": [{"id": "cr-1", "size": "300x250", "adomain": "acme.example", "category": "IAB2-1"}],
     "targeting": {"countries": ["USA"], "regions": ["USA-CA"], "device_types": [4, 5], "os": ["ios"]},
     "blocked_categories": ["IAB25"], "frequency_cap": {"count": 3, "window_hours": 24},
     "persona": {"tags": {"interest:travel": 0.8}}}

`persona` is exactly one of `{"tags": {tag: weight}}`, `{"vector": [one weight per vocabulary tag]}` or
`{"seed_audience": "path"}` (lookalike: a file of user profiles, see lookalike.py; relative to the
catalog), or a list of such objects for a campaign with several personas.

Optional campaign fields for OpenRTB deals and blocking: `deals` (deal ids the campaign may buy through),
`deal_only` (true: it bids only through one of its deals; false by default), `bundle` (the app store
bundle it advertises, matched against bapp) and `language` (ISO 639-1 code of its creatives, "en",
matched against wlang).

Creatives. Every creative has `id`, `adomain` and `category` (an IAB content category; one adomain and
one category per campaign), optionally `attr` (AdCOM creative attributes, whole numbers 1 to 17) and
`iurl` (a sample image URL), and a `type` (banner when absent) with its own fields (URLs are https://,
http:// or protocol-relative //):

    banner  `size` "WxH"; exactly one of `markup` (HTML) or `image` (an image URL, which the server
            wraps in a link to `landing`); `landing` (click-through URL, required with `image`)
    video   `mime` ("video/mp4"), `duration` (whole seconds > 0), `protocol` (AdCOM protocol of the
            VAST, 1 to 12: 2 VAST 2.0, 3 VAST 3.0, 7 VAST 4.0...), `vast` (the VAST XML document),
            optionally `size` "WxH"
    audio   `mime` ("audio/mp4"), `duration`, `protocol`, `vast` (a VAST or DAAST XML document)
    native  `native` (the `native` object of an OpenRTB Native 1.2 response: `assets`, a non-empty
            list, `link` with its `url`, trackers...), optionally `ver` ("1.2", the default)

    {"id": "cr-2", "type": "video", "mime": "video/mp4", "duration": 30, "protocol": 3,
     "vast": "<VAST version=\"3.0\">...</VAST>", "adomain": "acme.example", "category": "IAB2-1"}

A creative is secure (served where an impression requires https) when none of its markup and URLs holds
"http://"; that is derived, never stated. A field of another type (`vast` on a banner) is an error.

CSV has one column per field; lists are `;`-separated, `persona_tags` is `tag=weight;...`,
`persona_vector` is `w;w;...`, `frequency_cap` is `count/hours`, dates are ISO 8601, `deal_only` is
true or false. The `creatives` column holds the creatives as a JSON array of the objects above. The
older short form `id:WxH:adomain:category;...` still parses, but it has no room for markup: each such
creative is reported as `creatives[i].markup`.

Only active campaigns are indexed; paused and ended ones are counted and left out.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from personabid.ctr.features import token
from personabid.index.campaigns import DEVICE_TYPES, MTYPES, CampaignSpec, Creative
from personabid.index.lookalike import lookalike_personas, read_seed_audience
from personabid.index.vocab import Vocabulary

STATUSES = ("active", "paused", "ended")
CURRENCIES = ("USD",)
SIZE = re.compile(r"^(\d{1,4})x(\d{1,4})$")
COUNTRY = re.compile(r"^[A-Z]{3}$")
REGION = re.compile(r"^[A-Z]{3}-[A-Z0-9]{1,3}$")
CATEGORY = re.compile(r"^IAB\d{1,2}(-\d{1,2})?$")
MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
URL = re.compile(r"^(https?:)?//[^\s/?#]+\S*$", re.IGNORECASE)
LANGUAGE = re.compile(r"^[a-z]{2}$")
PROTOCOLS = range(1, 13)  # AdCOM list "Creative Subtypes - Audio/Video" (VAST 1.0 to VAST 4.2 wrapper)
ATTRIBUTES = range(1, 18)  # AdCOM list "Creative Attributes"
NATIVE_VERSIONS = ("1.1", "1.2")
# The markup and media fields each creative type takes; the same field on another type is an error.
TYPE_FIELDS = {
    "banner": ("size", "markup", "image", "landing"),
    "video": ("size", "mime", "duration", "protocol", "vast"),
    "audio": ("mime", "duration", "protocol", "vast"),
    "native": ("native", "ver"),
}
XML_ROOTS = {"video": ("VAST",), "audio": ("VAST", "DAAST")}


@dataclass(frozen=True)
class CatalogIssue:
    line: int
    campaign_id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: campaign {self.campaign_id or '?'}: {self.field}: {self.message}"


@dataclass
class Catalog:
    campaigns: list[CampaignSpec]
    issues: list[CatalogIssue]
    inactive: int  # paused or ended, left out
    sha256: str
    lines: int
    unknown_tags: dict[str, int] = field(default_factory=dict)  # tag -> times hashed into the vocabulary


class CatalogError(ValueError):
    def __init__(self, issues: list[CatalogIssue]) -> None:
        self.issues = issues
        shown = "\n".join(f"  {i}" for i in issues[:50])
        more = f"\n  ... and {len(issues) - 50} more" if len(issues) > 50 else ""
        super().__init__(f"the catalog has {len(issues)} error(s):\n{shown}{more}")


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message


def read_catalog(path: Path, vocab: Vocabulary, hash_unknown_tags: bool = False) -> Catalog:
    """Read and validate every campaign of `path` (.jsonl/.json or .csv). Never raises for bad rows:
    they are returned as issues, so that the caller decides whether any issue is fatal."""
    records = _csv_records(path) if path.suffix.lower() == ".csv" else _jsonl_records(path)
    campaigns: list[CampaignSpec] = []
    issues: list[CatalogIssue] = []
    seen_campaigns: dict[str, int] = {}
    seen_creatives: dict[str, int] = {}
    inactive = 0
    lines = 0
    unknown: dict[str, int] = {}
    for line, record in records:
        lines = line
        if isinstance(record, _Invalid):
            issues.append(CatalogIssue(line, "", record.field, record.message))
            continue
        campaign_id = str(record.get("id", "")) if isinstance(record, dict) else ""
        try:
            spec = _campaign(record, vocab, path.parent, hash_unknown_tags, unknown)
            if spec.id in seen_campaigns:
                raise _Invalid("id", f"duplicate of line {seen_campaigns[spec.id]}")
            for creative in spec.creatives:
                if creative.id in seen_creatives:
                    raise _Invalid(
                        "creatives.id", f"{creative.id!r} duplicates line {seen_creatives[creative.id]}"
                    )
        except _Invalid as bad:
            issues.append(CatalogIssue(line, campaign_id, bad.field, bad.message))
            continue
        seen_campaigns[spec.id] = line
        seen_creatives.update({c.id: line for c in spec.creatives})
        if record.get("status", "active") != "active":
            inactive += 1
            continue
        campaigns.append(spec)
    return Catalog(campaigns, issues, inactive, _sha256(path), lines, unknown)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | _Invalid]]:
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except ValueError as exc:
                yield line, _Invalid("(line)", f"not JSON: {exc}")
                continue
            yield line, record if isinstance(record, dict) else _Invalid("(line)", "not a JSON object")


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | _Invalid]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            line = reader.line_num
            if None in row or None in row.values():
                yield (
                    line,
                    _Invalid(
                        "(line)", f"column count differs from the header's {len(reader.fieldnames or [])}"
                    ),
                )
                continue
            try:
                yield line, _from_csv(row)
            except _Invalid as bad:
                yield line, bad


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(";") if part.strip()]


def _from_csv(row: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
    record["schedule"] = {k: record.pop(k) for k in ("start", "end") if k in record}
    record["creatives"] = _csv_creatives(row.get("creatives") or "")
    if "deals" in record:
        record["deals"] = _split(record["deals"])
    record["targeting"] = {
        "countries": _split(row.get("countries")),
        "regions": _split(row.get("regions")),
        "device_types": _split(row.get("device_types")),
        "os": _split(row.get("os")),
    }
    for key in ("countries", "regions", "device_types", "os"):
        record.pop(key, None)
    record["blocked_categories"] = _split(row.get("blocked_categories"))
    persona: dict[str, Any] = {}
    if row.get("persona_tags"):
        tags = {}
        for pair in _split(row["persona_tags"]):
            tag, sep, weight = pair.rpartition("=")
            if not sep:
                raise _Invalid("persona_tags", f"{pair!r}: expected tag=weight")
            tags[tag] = weight
        persona["tags"] = tags
    if row.get("persona_vector"):
        persona["vector"] = _split(row["persona_vector"])
    if row.get("seed_audience"):
        persona["seed_audience"] = row["seed_audience"]
    for key in ("persona_tags", "persona_vector", "seed_audience"):
        record.pop(key, None)
    record["persona"] = persona
    return record


def _csv_creatives(text: str) -> list[Any]:
    if text.lstrip().startswith("["):
        try:
            creatives = json.loads(text)
        except ValueError as exc:
            raise _Invalid("creatives", f"not a JSON array of creatives: {exc}") from None
        if not isinstance(creatives, list):
            raise _Invalid("creatives", "not a JSON array of creatives")
        return creatives
    short = []
    for part in _split(text):
        parts = part.split(":")
        if len(parts) != 4:
            raise _Invalid("creatives", f"{part!r}: expected id:WxH:adomain:category or a JSON array")
        short.append(dict(zip(("id", "size", "adomain", "category"), parts, strict=True)))
    return short


def _number(record: dict[str, Any], name: str, default: float | None = None) -> float:
    if name not in record:
        if default is None:
            raise _Invalid(name, "missing")
        return default
    try:
        value = float(record[name])
    except (TypeError, ValueError):
        raise _Invalid(name, f"{record[name]!r} is not a number") from None
    if not math.isfinite(value):
        raise _Invalid(name, f"{value} is not finite")
    return value


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(name, "missing" if value is None else f"{value!r} is not a non-empty string")
    return value.strip()


def _timestamp(value: Any, name: str) -> int:
    if value in (None, ""):
        return 0
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _Invalid(name, f"{value!r} is not an ISO 8601 date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def _campaign(
    record: dict[str, Any], vocab: Vocabulary, base: Path, hash_unknown: bool, unknown: dict[str, int]
) -> CampaignSpec:
    campaign_id = _text(record, "id")
    advertiser = _text(record, "advertiser")
    status = record.get("status", "active")
    if status not in STATUSES:
        raise _Invalid("status", f"{status!r} is not one of {STATUSES}")
    base_bid = _number(record, "base_bid")
    max_bid = _number(record, "max_bid")
    if base_bid <= 0:
        raise _Invalid("base_bid", f"{base_bid} must be positive")
    if max_bid < base_bid:
        raise _Invalid("max_bid", f"{max_bid} is below base_bid {base_bid}")
    budget = _number(record, "daily_budget", 0.0)
    if budget < 0:
        raise _Invalid("daily_budget", f"{budget} is negative")
    min_match = _number(record, "min_match", 0.3)
    if not -1.0 <= min_match <= 1.0:
        raise _Invalid("min_match", f"{min_match} is outside [-1, 1]")
    currency = record.get("currency", "USD")
    if currency not in CURRENCIES:
        raise _Invalid("currency", f"{currency!r} is not supported; supported: {list(CURRENCIES)}")
    schedule = record.get("schedule") or {}
    if not isinstance(schedule, dict):
        raise _Invalid("schedule", "must be an object with start and end")
    start = _timestamp(schedule.get("start"), "schedule.start")
    end = _timestamp(schedule.get("end"), "schedule.end")
    if end and end <= start:
        raise _Invalid("schedule.end", f"{schedule.get('end')!r} is not after the start")
    creatives, adomain, category = _creatives(record.get("creatives"))
    targeting = record.get("targeting") or {}
    if not isinstance(targeting, dict):
        raise _Invalid("targeting", "must be an object")
    countries = _codes(targeting.get("countries"), "targeting.countries", COUNTRY, str.upper)
    regions = _codes(targeting.get("regions"), "targeting.regions", REGION, str.upper)
    os_names = tuple(str(o).strip().lower() for o in targeting.get("os") or ())
    device_types = _device_types(targeting.get("device_types"))
    blocked = _codes(record.get("blocked_categories"), "blocked_categories", CATEGORY, str)
    cap, window = _frequency_cap(record.get("frequency_cap"))
    deals = _deals(record.get("deals"))
    deal_only = _flag(record.get("deal_only"), "deal_only")
    if deal_only and not deals:
        raise _Invalid("deal_only", "true, but deals lists no deal to bid through")
    bundle = _optional_text(record, "bundle")
    if any(c.isspace() for c in bundle):
        raise _Invalid("bundle", f"{bundle!r} is not an app store bundle")
    language = _optional_text(record, "language").lower()
    if language and not LANGUAGE.match(language):
        raise _Invalid("language", f"{record['language']!r} is not an ISO 639-1 code (two letters)")
    personas = _personas(record.get("persona"), vocab, base, hash_unknown, unknown)
    return CampaignSpec(
        id=campaign_id,
        advertiser=advertiser,
        adomain=adomain,
        category=category,
        base_bid=base_bid,
        max_bid=max_bid,
        personas=personas,
        creatives=creatives,
        countries=countries,
        regions=regions,
        device_types=device_types,
        os=os_names,
        min_match=min_match,
        start=start,
        end=end,
        daily_budget=budget,
        currency=currency,
        blocked_categories=blocked,
        frequency_cap=cap,
        frequency_window=window,
        deals=deals,
        deal_only=deal_only,
        bundle=bundle,
        language=language,
    )


def _optional_text(record: dict[str, Any], name: str) -> str:
    return "" if record.get(name) in (None, "") else _text(record, name)


def _flag(value: Any, name: str) -> bool:
    if value in (None, ""):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _Invalid(name, f"{value!r} is not true or false")


def _deals(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Invalid("deals", f"{value!r} is not a list of deal ids")
    for i, deal in enumerate(value):
        if not isinstance(deal, str) or not deal.strip():
            raise _Invalid(f"deals[{i}]", f"{deal!r} is not a non-empty string")
    return tuple(dict.fromkeys(deal.strip() for deal in value))


def _frequency_cap(value: Any) -> tuple[int, float]:
    if value in (None, "", {}):
        return 0, 86_400.0
    if isinstance(value, str):
        given_count, sep, given_hours = value.partition("/")
        value = {"count": given_count, "window_hours": given_hours if sep else 24}
    if not isinstance(value, dict):
        raise _Invalid("frequency_cap", f"{value!r}: expected {{count, window_hours}}")
    try:
        count, hours = int(value["count"]), float(value.get("window_hours", 24))
    except (KeyError, TypeError, ValueError):
        raise _Invalid("frequency_cap", f"{value!r}: expected a whole count and a number of hours") from None
    if count < 1 or not 0 < hours <= 24 * 31:
        raise _Invalid(
            "frequency_cap", f"count {count}, window_hours {hours}: need count >= 1, 0 < hours <= 744"
        )
    return count, hours * 3600.0


def _creatives(value: Any) -> tuple[tuple[Creative, ...], str, str]:
    if not isinstance(value, list) or not value:
        raise _Invalid("creatives", "at least one creative is required")
    creatives = []
    domains, categories = set(), set()
    for i, item in enumerate(value):
        where = f"creatives[{i}]"
        if not isinstance(item, dict):
            raise _Invalid(where, "must be an object")
        creative_id = _text(item, "id") if item.get("id") else ""
        if not creative_id:
            raise _Invalid(f"{where}.id", "missing")
        kind = item.get("type", "banner")
        if kind not in MTYPES:
            raise _Invalid(f"{where}.type", f"{kind!r} is not one of {tuple(MTYPES)}")
        for name in sorted({f for fields in TYPE_FIELDS.values() for f in fields} - set(TYPE_FIELDS[kind])):
            if item.get(name) not in (None, ""):
                raise _Invalid(f"{where}.{name}", f"not a field of a {kind} creative")
        w, h = _size(item, where, required=kind == "banner")
        category = str(item.get("category", ""))
        if not CATEGORY.match(category):
            raise _Invalid(f"{where}.category", f"{category!r} is not an IAB category")
        adomain = str(item.get("adomain", "")).strip().lower()
        if not adomain or "." not in adomain:
            raise _Invalid(f"{where}.adomain", f"{item.get('adomain')!r} is not a domain")
        domains.add(adomain)
        categories.add(category)
        attr = _attributes(item.get("attr"), f"{where}.attr")
        creative = Creative(creative_id, w, h, kind, attr=attr, iurl=_url(item, "iurl", where, False))
        if kind == "banner":
            creatives.append(_banner_markup(item, where, creative))
        elif kind == "native":
            creatives.append(_native(item, where, creative))
        else:
            creatives.append(_playback(item, where, creative))
    # Blocking (badv, bcat) works per campaign in this format version.
    if len(domains) > 1 or len(categories) > 1:
        raise _Invalid("creatives", "all creatives of a campaign must share one adomain and one category")
    return tuple(creatives), domains.pop(), categories.pop()


def _size(item: dict[str, Any], where: str, required: bool) -> tuple[int, int]:
    if not required and item.get("size") in (None, ""):
        return 0, 0
    size = SIZE.match(str(item.get("size", "")))
    if not size or int(size.group(1)) == 0 or int(size.group(2)) == 0:
        raise _Invalid(f"{where}.size", f"{item.get('size')!r} is not WxH")
    return int(size.group(1)), int(size.group(2))


def _url(item: dict[str, Any], name: str, where: str, required: bool) -> str:
    value = item.get(name)
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or not URL.match(value.strip()):
        raise _Invalid(f"{where}.{name}", "missing" if value is None else f"{value!r} is not a URL")
    return value.strip()


def _banner_markup(item: dict[str, Any], where: str, creative: Creative) -> Creative:
    forms = [k for k in ("markup", "image") if item.get(k) not in (None, "")]
    if len(forms) != 1:
        given = "both" if forms else "neither"
        raise _Invalid(f"{where}.markup", f"give exactly one of markup (HTML) or image (a URL), not {given}")
    if forms[0] == "image":
        image, landing = _url(item, "image", where, True), _url(item, "landing", where, True)
        return replace(creative, image=image, landing=landing)
    markup = item["markup"]
    if not isinstance(markup, str) or not markup.strip():
        raise _Invalid(f"{where}.markup", f"{markup!r} is not HTML")
    return replace(creative, markup=markup, landing=_url(item, "landing", where, False))


def _playback(item: dict[str, Any], where: str, creative: Creative) -> Creative:
    """`creative` with the fields of a video or audio creative."""
    kind = creative.type
    mime = str(item.get("mime") or "").strip().lower()
    if not MIME.match(mime):
        raise _Invalid(f"{where}.mime", "missing" if not mime else f"{item['mime']!r} is not type/subtype")
    duration = _whole(item.get("duration"), f"{where}.duration", range(1, 2**31))
    protocol = _whole(item.get("protocol"), f"{where}.protocol", PROTOCOLS)
    vast = item.get("vast")
    if not isinstance(vast, str) or not vast.strip():
        raise _Invalid(f"{where}.vast", "missing" if vast is None else f"{vast!r} is not a VAST document")
    try:
        root = ET.fromstring(vast).tag.rpartition("}")[2]
    except ET.ParseError as exc:
        raise _Invalid(f"{where}.vast", f"not well-formed XML: {exc}") from None
    if root not in XML_ROOTS[kind]:
        raise _Invalid(
            f"{where}.vast", f"the document is <{root}>, expected <{'> or <'.join(XML_ROOTS[kind])}>"
        )
    return replace(creative, mime=mime, duration=duration, protocol=protocol, markup=vast)


def _native(item: dict[str, Any], where: str, creative: Creative) -> Creative:
    native = item.get("native")
    if not isinstance(native, dict):
        raise _Invalid(
            f"{where}.native", "missing" if native is None else "must be a Native 1.2 response object"
        )
    assets = native.get("assets")
    if not isinstance(assets, list) or not assets:
        raise _Invalid(f"{where}.native.assets", "must be a non-empty list of assets")
    link = native.get("link")
    url = link.get("url") if isinstance(link, dict) else None
    if not isinstance(url, str) or not URL.match(url.strip()):
        raise _Invalid(f"{where}.native.link.url", "missing" if url is None else f"{url!r} is not a URL")
    ver = str(item.get("ver") or "1.2")
    if ver not in NATIVE_VERSIONS:
        raise _Invalid(f"{where}.ver", f"{ver!r} is not one of {NATIVE_VERSIONS}")
    markup = json.dumps(native, separators=(",", ":"), ensure_ascii=False)
    return replace(creative, markup=markup, ver=ver)


def _whole(value: Any, name: str, allowed: range) -> int:
    if value is None or value == "":
        raise _Invalid(name, "missing")
    if isinstance(value, bool) or not isinstance(value, int | str):
        number = None
    else:
        try:
            number = int(value)
        except ValueError:
            number = None
    if number is None:
        raise _Invalid(name, f"{value!r} is not a whole number")
    if number not in allowed:
        raise _Invalid(name, f"{number} is outside {allowed.start} to {allowed.stop - 1}")
    return number


def _attributes(value: Any, name: str) -> tuple[int, ...]:
    if value in (None, ""):
        return ()
    if not isinstance(value, list):
        raise _Invalid(name, f"{value!r} is not a list of creative attributes")
    return tuple(sorted({_whole(a, name, ATTRIBUTES) for a in value}))


def _codes(value: Any, name: str, pattern: re.Pattern[str], normalise: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Invalid(name, f"{value!r} is not a list")
    codes = tuple(normalise(str(v).strip()) for v in value)
    for code in codes:
        if not pattern.match(code):
            raise _Invalid(name, f"{code!r} is not a valid code")
    return codes


def _device_types(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Invalid("targeting.device_types", f"{value!r} is not a list")
    types = []
    for v in value:
        try:
            t = int(v)
        except (TypeError, ValueError):
            raise _Invalid("targeting.device_types", f"{v!r} is not an OpenRTB device type") from None
        if not 0 <= t < DEVICE_TYPES:
            raise _Invalid("targeting.device_types", f"{t} is not an OpenRTB device type (0 to 8)")
        types.append(t)
    return tuple(types)


def _personas(
    value: Any, vocab: Vocabulary, base: Path, hash_unknown: bool, unknown: dict[str, int]
) -> np.ndarray:
    if isinstance(value, list) and value:
        return np.concatenate([_personas(v, vocab, base, hash_unknown, unknown) for v in value])
    if not isinstance(value, dict):
        raise _Invalid("persona", "missing: give tags, vector or seed_audience")
    forms = [k for k in ("tags", "vector", "seed_audience") if value.get(k) not in (None, "", [], {})]
    if len(forms) != 1:
        raise _Invalid("persona", f"give exactly one of tags, vector or seed_audience, not {forms or 'none'}")
    if forms[0] == "tags":
        vectors = _tag_vector(value["tags"], vocab, hash_unknown, unknown).reshape(1, -1)
    elif forms[0] == "vector":
        vectors = _explicit_vector(value["vector"], vocab.dims).reshape(1, -1)
    else:
        seeds = base / str(value["seed_audience"])
        try:
            users = read_seed_audience(seeds, vocab)
        except (OSError, ValueError) as exc:
            raise _Invalid("persona.seed_audience", f"{seeds}: {exc}") from None
        vectors = lookalike_personas(users)
    norms = np.linalg.norm(vectors, axis=1)
    if np.any(norms == 0):
        raise _Invalid("persona", "has no weight on any tag")
    return (vectors / norms[:, None]).astype(np.float32)


def _tag_vector(tags: Any, vocab: Vocabulary, hash_unknown: bool, unknown: dict[str, int]) -> np.ndarray:
    if not isinstance(tags, dict):
        raise _Invalid("persona.tags", "must be an object of tag: weight")
    vector = np.zeros(vocab.dims, dtype=np.float32)
    for tag, raw in tags.items():
        try:
            weight = float(raw)
        except (TypeError, ValueError):
            raise _Invalid(f"persona.tags.{tag}", f"{raw!r} is not a number") from None
        if not math.isfinite(weight):
            raise _Invalid(f"persona.tags.{tag}", f"{weight} is not finite")
        position = vocab.position(tag)
        if position < 0:
            if not hash_unknown:
                raise _Invalid(f"persona.tags.{tag}", "unknown tag (--unknown-tags hash places such tags)")
            # A stable hash, so that the same unknown tag always lands on the same axis.
            position = token(tag) % vocab.dims
            unknown[tag] = unknown.get(tag, 0) + 1
        vector[position] += weight
    return vector


def _explicit_vector(values: Any, dims: int) -> np.ndarray:
    if not isinstance(values, list):
        raise _Invalid("persona.vector", "must be a list of numbers")
    if len(values) != dims:
        raise _Invalid("persona.vector", f"has {len(values)} weights, the vocabulary {dims}")
    try:
        vector = np.array([float(v) for v in values], dtype=np.float32)
    except (TypeError, ValueError):
        raise _Invalid("persona.vector", "holds a value that is not a number") from None
    bad = np.flatnonzero(~np.isfinite(vector))
    if bad.size:
        raise _Invalid(f"persona.vector[{bad[0]}]", f"{vector[bad[0]]} is not finite")
    return vector


def write_catalog(specs: list[CampaignSpec], vocab: Vocabulary, path: Path) -> None:
    """Write campaigns as a JSON Lines catalog that read_catalog reads back to the same campaigns."""

    def persona(vector: np.ndarray) -> dict[str, Any]:
        return {"tags": {vocab.tags[i]: round(float(vector[i]), 6) for i in np.flatnonzero(vector)}}

    def when(seconds: int) -> str | None:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat() if seconds else None

    with path.open("w", encoding="utf-8") as handle:
        for s in specs:
            record = {
                "id": s.id,
                "advertiser": s.advertiser,
                "status": "active",
                "schedule": {"start": when(s.start), "end": when(s.end)},
                "daily_budget": s.daily_budget,
                "base_bid": s.base_bid,
                "max_bid": s.max_bid,
                "currency": s.currency,
                "min_match": s.min_match,
                "creatives": [_creative_record(c, s) for c in s.creatives],
                "targeting": {
                    "countries": list(s.countries),
                    "regions": list(s.regions),
                    "device_types": list(s.device_types),
                    "os": list(s.os),
                },
                "blocked_categories": list(s.blocked_categories),
                "frequency_cap": (
                    {"count": s.frequency_cap, "window_hours": s.frequency_window / 3600}
                    if s.frequency_cap
                    else None
                ),
                "persona": [persona(v) for v in s.personas]
                if len(s.personas) > 1
                else persona(s.personas[0]),
                "deals": list(s.deals) or None,
                "deal_only": s.deal_only or None,
                "bundle": s.bundle or None,
                "language": s.language or None,
            }
            record = {k: v for k, v in record.items() if v is not None or k == "frequency_cap"}
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")


def _creative_record(c: Creative, spec: CampaignSpec) -> dict[str, Any]:
    """A creative as the catalog states it: the fields of its type, without those left empty."""
    record: dict[str, Any] = {"id": c.id, "type": c.type}
    if c.w and c.h:
        record["size"] = f"{c.w}x{c.h}"
    if c.type == "native":
        record["native"] = json.loads(c.markup) if c.markup else None
        record["ver"] = c.ver
    elif c.type in ("video", "audio"):
        record.update(mime=c.mime, duration=c.duration, protocol=c.protocol, vast=c.markup)
    else:
        record.update(markup=c.markup, image=c.image, landing=c.landing)
    record.update(adomain=spec.adomain, category=spec.category, attr=list(c.attr), iurl=c.iurl)
    return {k: v for k, v in record.items() if v not in (None, "", [])}
