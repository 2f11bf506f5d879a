"""The demo world's people and what they do: a population with ids, and the raw behaviour events a
collector would record of them.

Each person is a user of the world (a segment's profile with noise, personabid.world) with an id. Their
behaviour follows their true profile: every tag they weigh produces a few events of the kind that tag is
learnt from (interests: page views of a page in a matching IAB content category, or of a page with a
matching keyword, or searches; purchase intent: purchases and searches for a product category;
demographics: declared attributes; region: locations; device: device reports; app usage: app sessions),
at random moments of the days before `as_of`. The events go through the same profile build as real ones
(`personabid profiles build`), and the true segment stays known, so the demo can measure how well
profiles built from behaviour recover it.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from personabid.profiles.taxonomy import Taxonomy, standard
from personabid.world import Users, World

EVENTS_PER_WEIGHT = 3.0  # a tag of weight w gives Poisson(3 w) events over the period
DAY = 86_400


@dataclass(frozen=True)
class Population:
    ids: tuple[str, ...]
    users: Users


def population(world: World, count: int) -> Population:
    """`count` people of the world, the same ones for the same seed: ids demo-user-000000, ..."""
    rng = np.random.default_rng(np.random.SeedSequence(world.seed).spawn(5)[4])
    return Population(tuple(f"demo-user-{i:06d}" for i in range(count)), world.users(count, rng))


@functools.cache
def _signals(taxonomy: Taxonomy) -> dict[str, dict[str, list[str]]]:
    """For every tag, the signal keys that give it in full (weight 1), by namespace."""
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for key, tag, weight in taxonomy.rule_rows():
        if weight == 1.0:
            namespace, _, value = key.partition(":")
            found[tag][namespace].append(value)
    return {tag: dict(keys) for tag, keys in found.items()}


def _event(tag: str, keys: dict[str, list[str]], rng: np.random.Generator) -> dict[str, Any] | None:
    """One event that the rules turn into `tag`, or None if no event kind can say it."""

    def pick(namespace: str) -> str:
        values = keys[namespace]
        return values[int(rng.integers(len(values)))]

    family = tag.split(":", 1)[0]
    if family == "interest":
        if "cat" in keys and rng.random() < 0.7:
            return {"type": "page_view", "url": "https://pages.example/a", "cat": [pick("cat")]}
        if "kw" in keys:
            if rng.random() < 0.5:
                return {"type": "search", "query": pick("kw")}
            return {"type": "page_view", "url": "https://pages.example/b", "keywords": [pick("kw")]}
        return None
    if family == "intent" and "product" in keys:
        if rng.random() < 0.5:
            amount = round(float(rng.lognormal(3.5, 1.0)), 2)
            order = f"o-{rng.integers(1 << 40):x}"
            return {"type": "purchase", "category": pick("product"), "amount": amount, "currency": "USD",
                    "order_id": order}  # fmt: skip
        return {"type": "search", "query": pick("product")}
    value = tag.split(":", 1)[1]
    if family == "age":
        return {"type": "declared", "age_band": value}
    if family == "gender":
        return {"type": "declared", "gender": value}
    if family == "income":
        low, _, high = value.rstrip("+").partition("-")
        return {"type": "declared", "income": (int(low) + int(high or int(low) * 1.2)) // 2}
    if family == "region":
        return {"type": "location", "country": value}
    if family == "device":
        return {"type": "device", "devicetype": 5} if value == "tablet" else {"type": "device", "os": value}
    if family == "app" and "appcat" in keys:
        minutes = round(float(rng.uniform(1, 30)), 1)
        return {"type": "app_use", "app_category": pick("appcat"), "minutes": minutes}
    return None


def behaviour(
    world: World, people: Population, as_of: float, days: int, rng: np.random.Generator
) -> Iterator[dict[str, Any]]:
    """Raw events of every person over the `days` days before `as_of`, person by person (ids raw, as a
    collector records them; the profile build pseudonymises them on read)."""
    signals = _signals(standard())
    tags = world.vocab.tags
    for person, vector in zip(people.ids, people.users.vectors, strict=True):
        for position in np.flatnonzero(vector > 0):
            tag = tags[position]
            for _ in range(int(rng.poisson(EVENTS_PER_WEIGHT * float(vector[position])))):
                event = _event(tag, signals.get(tag, {}), rng)
                if event is not None:
                    ts = as_of - float(rng.uniform(0.0, days * DAY))
                    yield {"user": person, "ts": round(ts, 3), **event}


def page_category(world: World, vector: np.ndarray, rng: np.random.Generator, on_topic: float = 0.7) -> str:
    """The IAB content category (1.0) of a page the person reads: with probability `on_topic` one of the
    person's interests, otherwise any category."""
    signals = _signals(standard())
    tags = world.vocab.tags
    interests = [
        codes
        for p in np.flatnonzero(vector > 0)
        if tags[p].startswith("interest:") and (codes := signals.get(tags[p], {}).get("cat"))
    ]
    if interests and rng.random() < on_topic:
        codes = interests[int(rng.integers(len(interests)))]
    else:
        codes = _categories()
    return codes[int(rng.integers(len(codes)))]


@functools.cache
def _categories() -> list[str]:
    """Every content category a rule maps onto a tag in full."""
    return sorted({code for keys in _signals(standard()).values() for code in keys.get("cat", ())})
