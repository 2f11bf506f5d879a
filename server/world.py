"""The embedded demo world: a seeded synthetic market of users, campaigns and clicks with known truth.

Users are drawn from latent segments (a sparse tag profile each, plus noise); a campaign targets a
segment, so its persona sits near that segment's users. Clicks follow a ground-truth logistic model of
similarity, campaign quality, device, slot size and their pairing, so a trained CTR model can be judged
against the truth. A campaign's quality is mostly its content category's (some categories draw clicks,
others do not), less its advertiser's and least its own, as in real logs, where a model learns what is
shared by many impressions and cannot learn what only a handful of clicks would show. Click rates come
out around 2 % (0.5 % to 6 % for most impressions). Everything is a pure function of the seed.

Every campaign has one to three banner creatives, served as an image with a landing page or as HTML, all
https; some add a video, an audio or a native creative, a few buy through deals (a third of those only
through them), some advertise an app bundle, most state their language. These are drawn from a stream of
their own, so that adding them changed nothing the other streams draw (personas, targeting, truth).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np

from personabid.index.campaigns import CampaignSpec, Creative
from personabid.index.vocab import Vocabulary
from personabid.profiles.taxonomy import standard

COUNTRIES = (
    "USA", "GBR", "DEU", "FRA", "ESP", "ITA", "NLD", "SWE", "POL", "CAN",
    "MEX", "BRA", "ARG", "JPN", "KOR", "CHN", "IND", "IDN", "AUS", "ZAF",
)  # fmt: skip
SIZES = ((300, 250), (728, 90), (320, 50), (160, 600), (300, 600), (970, 250), (320, 480))
# (devicetype, os) pairs users come with: phone, tablet, personal computer, connected TV.
DEVICES = ((4, "ios"), (4, "android"), (5, "ios"), (5, "android"), (2, "windows"), (2, "macos"), (3, "tizen"))
DEVICE_SIZES = {4: (2, 6, 0), 5: (0, 6, 1), 2: (0, 1, 3, 4, 5), 3: (5, 0)}
DEALS = tuple(f"deal-{i}" for i in range(1, 6))
LANGUAGES = ("en", "en", "en", "en", "en", "en", "es", "de", "fr", "")  # drawn uniformly: mostly English


def vocabulary() -> Vocabulary:
    """The standard vocabulary (IAB Tech Lab Audience Taxonomy tags and personabid's own families)."""
    return standard().vocabulary()


@dataclass(frozen=True)
class Users:
    vectors: np.ndarray  # float32 (n, dims), not normalised
    segment: np.ndarray  # int32 (n,)
    devicetype: np.ndarray  # int32 (n,)
    os: np.ndarray  # <U (n,)
    country: np.ndarray  # <U (n,)


class World:
    """The demo world of a seed. Segments are cheap; campaigns are made on demand."""

    def __init__(self, seed: int = 7, segments: int = 48) -> None:
        self.seed = seed
        self.vocab = vocabulary()
        seeds = np.random.SeedSequence(seed).spawn(4)
        self._campaign_seed, self._truth_seed, self._creative_seed = seeds[1], seeds[2], seeds[3]
        rng = np.random.default_rng(seeds[0])
        families = self.vocab.families()
        self._parent = np.array(
            [self.vocab.position(tag.split("/", 1)[0]) if "/" in tag else -1 for tag in self.vocab.tags]
        )
        self.segment_country = rng.integers(0, len(COUNTRIES), size=segments)
        self.segment_device = rng.integers(0, len(DEVICES), size=segments)
        profiles = np.zeros((segments, self.vocab.dims), dtype=np.float32)
        for s in range(segments):
            picks = [
                (families["age"], 1, 0.6, 1.0),
                (families["gender"], 1, 0.4, 1.0),
                (families["income"], 1, 0.3, 0.8),
                (families["interest"], 6, 0.5, 1.0),
                (families["intent"], 2, 0.4, 1.0),
                (families["app"], 3, 0.3, 0.8),
            ]
            for positions, count, low, high in picks:
                chosen = rng.choice(positions, size=count, replace=False)
                profiles[s, chosen] = rng.uniform(low, high, size=count)
            # An interest in soccer is an interest in sports: the parent gets half, as the taxonomy's
            # rules give it half of every signal of its children.
            for child in np.flatnonzero(profiles[s]):
                parent = self._parent[child]
                if parent >= 0:
                    profiles[s, parent] = max(profiles[s, parent], 0.5 * profiles[s, child])
            profiles[s, self.vocab.position(f"region:{COUNTRIES[self.segment_country[s]]}")] = 0.7
            profiles[s, self.vocab.position(f"device:{DEVICES[self.segment_device[s]][1]}")] = 0.5
        self.profiles = profiles
        truth = np.random.default_rng(self._truth_seed)
        self.device_effect = {t: truth.normal(0.0, 0.3) for t in range(9)}
        self.size_effect = truth.normal(0.0, 0.3, size=len(SIZES))
        # A slot size works better on some devices than on others (a banner on a TV...).
        self.device_size_effect = truth.normal(0.0, 0.3, size=(9, len(SIZES)))
        # Content categories: IAB1..IAB26, subcategories 1..5 (0 is the parent itself).
        self.category_effect = truth.normal(0.0, 0.5, size=(27, 1)) + truth.normal(0.0, 0.15, size=(27, 6))

    @property
    def segments(self) -> int:
        return len(self.profiles)

    def users(self, n: int, rng: np.random.Generator) -> Users:
        segment = rng.integers(0, self.segments, size=n).astype(np.int32)
        base = self.profiles[segment]
        keep = rng.random(base.shape) > 0.15
        vectors = base * keep * rng.uniform(0.7, 1.3, size=base.shape).astype(np.float32)
        noise_tags = rng.integers(0, self.vocab.dims, size=(n, 4))
        np.put_along_axis(
            vectors,
            noise_tags,
            np.maximum(np.take_along_axis(vectors, noise_tags, 1), rng.uniform(0.05, 0.4, (n, 4))),
            1,
        )
        # Most users carry their segment's device and country; some travel or switch devices.
        device = np.where(rng.random(n) < 0.8, self.segment_device[segment], rng.integers(0, len(DEVICES), n))
        country = np.where(
            rng.random(n) < 0.9, self.segment_country[segment], rng.integers(0, len(COUNTRIES), n)
        )
        return Users(
            vectors=vectors.astype(np.float32),
            segment=segment,
            devicetype=np.array([DEVICES[d][0] for d in device], dtype=np.int32),
            os=np.array([DEVICES[d][1] for d in device]),
            country=np.array([COUNTRIES[c] for c in country]),
        )

    def campaigns(self, count: int) -> tuple[list[CampaignSpec], np.ndarray]:
        """`count` campaigns and their ground-truth quality (float64 (count,), a logit offset)."""
        rng = np.random.default_rng(self._campaign_seed)
        advertisers = max(1, count // 7)
        advertiser_category = [
            f"IAB{rng.integers(1, 27)}-{rng.integers(1, 6)}"
            if rng.random() < 0.8
            else f"IAB{rng.integers(1, 27)}"
            for _ in range(advertisers)
        ]
        # Quality is mostly the category's, then the advertiser's (brand, creatives), a little the campaign's.
        advertiser_quality = rng.normal(0.0, 0.05, size=advertisers) + [
            self._category_effect(c) for c in advertiser_category
        ]
        quality = rng.normal(0.0, 0.05, size=count)
        specs = []
        for c in range(count):
            segments = [int(rng.integers(self.segments))]
            if rng.random() < 0.15:
                segments.append(int(rng.integers(self.segments)))
            personas = np.stack([self._persona(self.profiles[s], rng) for s in segments])
            advertiser = int(rng.integers(advertisers))
            quality[c] += advertiser_quality[advertiser]
            base_bid = float(np.round(np.exp(rng.normal(0.7, 0.5)), 2))
            home = COUNTRIES[self.segment_country[segments[0]]]
            sizes = rng.choice(len(SIZES), size=int(rng.integers(1, 4)), replace=False)
            specs.append(
                CampaignSpec(
                    id=f"cmp-{c:06d}",
                    advertiser=f"advertiser-{advertiser:05d}",
                    adomain=f"brand{advertiser:05d}.example",
                    category=advertiser_category[advertiser],
                    base_bid=base_bid,
                    max_bid=float(np.round(base_bid * rng.uniform(1.5, 3.0), 2)),
                    personas=personas,
                    creatives=tuple(
                        Creative(f"cr-{c:06d}-{SIZES[s][0]}x{SIZES[s][1]}", *SIZES[s]) for s in sorted(sizes)
                    ),
                    countries=() if rng.random() < 0.55 else (home,),
                    device_types=() if rng.random() < 0.7 else ((4, 5) if rng.random() < 0.6 else (2,)),
                    min_match=float(np.round(rng.uniform(0.25, 0.4), 3)),
                    daily_budget=float(np.round(rng.uniform(100, 5000), 0)),
                    frequency_cap=(0, 0, 3, 5, 10)[c % 5],  # not drawn: keeps the seed's stream as it was
                )
            )
        extras = np.random.default_rng(self._creative_seed)
        return [_serving(spec, extras) for spec in specs], quality

    def _persona(self, profile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        persona = profile * (rng.random(profile.shape) > 0.2) * rng.uniform(0.8, 1.2, profile.shape)
        extra = rng.integers(0, len(profile), size=2)
        persona[extra] = np.maximum(persona[extra], rng.uniform(0.2, 0.5, size=2))
        persona = persona.astype(np.float32)
        return persona / np.linalg.norm(persona)

    def _category_effect(self, category: str) -> float:
        parent, _, child = category.removeprefix("IAB").partition("-")
        return float(self.category_effect[int(parent), int(child or 0)])

    def true_ctr(
        self, similarity: np.ndarray, quality: np.ndarray, devicetype: np.ndarray, size: np.ndarray
    ) -> np.ndarray:
        """Ground-truth click probability (float64 (n,)) of impressions; `size` indexes SIZES."""
        device = np.array([self.device_effect[int(t)] for t in range(9)])[devicetype]
        logit = (
            -4.2
            + 12.0 * (similarity - 0.85)
            + quality
            + device
            + self.size_effect[size]
            + self.device_size_effect[devicetype, size]
        )
        return 1.0 / (1.0 + np.exp(-logit))


def _serving(spec: CampaignSpec, rng: np.random.Generator) -> CampaignSpec:
    """`spec` with what serving it takes: markup for its banners, maybe a video, audio or native creative,
    deals, an app bundle and a language. Banners stay first, in size order, as the campaign drew them."""
    site = f"https://{spec.adomain}"
    banners = tuple(_banner(c, site, rng) for c in spec.creatives)
    extra: list[Creative] = []
    if rng.random() < 0.2:
        extra.append(_playback(spec.id, "video", site, rng))
    if rng.random() < 0.03:
        extra.append(_playback(spec.id, "audio", site, rng))
    if rng.random() < 0.1:
        extra.append(_native(spec.id, site, rng))
    deals: tuple[str, ...] = ()
    deal_only = False
    if rng.random() < 0.05:
        deals = (DEALS[int(rng.integers(len(DEALS)))],)
        deal_only = bool(rng.random() < 1 / 3)
    bundle = f"com.{spec.adomain.split('.')[0]}.app" if rng.random() < 0.1 else ""
    return replace(
        spec,
        creatives=banners + tuple(extra),
        deals=deals,
        deal_only=deal_only,
        bundle=bundle,
        language=LANGUAGES[int(rng.integers(len(LANGUAGES)))],
    )


def _banner(creative: Creative, site: str, rng: np.random.Generator) -> Creative:
    image = f"{site}/ads/{creative.id}.png"
    landing = f"{site}/?utm_content={creative.id}"
    if rng.random() < 0.7:
        return replace(creative, image=image, landing=landing, iurl=image)
    markup = (
        f'<a href="{landing}" target="_blank"><img src="{image}" width="{creative.w}" '
        f'height="{creative.h}" alt="" style="border:0"></a>'
    )
    attr = (3,) if rng.random() < 0.1 else ()  # expandable, automatically
    return replace(creative, markup=markup, landing=landing, iurl=image, attr=attr)


def _playback(campaign: str, kind: str, site: str, rng: np.random.Generator) -> Creative:
    """A video (VAST 3.0 or 4.0, mp4) or audio (VAST 3.0, mp4 audio) creative of 15 or 30 seconds."""
    duration = int(rng.choice((15, 30)))
    creative_id = f"cr-{campaign.removeprefix('cmp-')}-{kind}"
    if kind == "video":
        protocol, version = (3, "3.0") if rng.random() < 0.6 else (7, "4.0")
        w, h = ((640, 360), (1280, 720))[int(rng.integers(2))]
        mime = "video/mp4"
        media = f'type="{mime}" width="{w}" height="{h}"'
    else:
        protocol, version, w, h, mime = 3, "3.0", 0, 0, "audio/mp4"
        media = f'type="{mime}" width="0" height="0"'
    # VAST 4 asks every creative for a universal ad id (registry unknown for a demo).
    universal = (
        f'<UniversalAdId idRegistry="unknown" idValue="{creative_id}">{creative_id}</UniversalAdId>'
        if version == "4.0"
        else ""
    )
    vast = (
        f'<VAST version="{version}"><Ad id="{creative_id}"><InLine><AdSystem>personabid demo</AdSystem>'
        f"<AdTitle>{campaign}</AdTitle><Impression><![CDATA[{site}/imp?cr={creative_id}]]></Impression>"
        f'<Creatives><Creative id="{creative_id}">{universal}<Linear>'
        f"<Duration>00:00:{duration:02d}</Duration><MediaFiles>"
        f'<MediaFile delivery="progressive" {media}><![CDATA[{site}/ads/{creative_id}.mp4]]></MediaFile>'
        f"</MediaFiles><VideoClicks><ClickThrough><![CDATA[{site}/]]></ClickThrough></VideoClicks>"
        "</Linear></Creative></Creatives></InLine></Ad></VAST>"
    )
    return Creative(creative_id, w, h, kind, markup=vast, mime=mime, duration=duration, protocol=protocol)


def _native(campaign: str, site: str, rng: np.random.Generator) -> Creative:
    """A Native 1.2 response: a title, a main image and the brand, a link and an impression tracker."""
    creative_id = f"cr-{campaign.removeprefix('cmp-')}-native"
    w, h = ((1200, 627), (600, 600))[int(rng.integers(2))]
    image = f"{site}/ads/{creative_id}.jpg"
    native = {
        "ver": "1.2",
        "assets": [
            {"id": 1, "required": 1, "title": {"text": f"Offer {campaign}"}},
            {"id": 2, "required": 1, "img": {"type": 3, "url": image, "w": w, "h": h}},
            {"id": 3, "data": {"type": 1, "value": site.removeprefix("https://")}},
        ],
        "link": {"url": f"{site}/?utm_content={creative_id}"},
        "eventtrackers": [{"event": 1, "method": 1, "url": f"{site}/imp?cr={creative_id}"}],
    }
    markup = json.dumps(native, separators=(",", ":"))
    return Creative(creative_id, type="native", markup=markup, iurl=image, ver="1.2")
