"""The standard tag vocabulary and the rules that map signals onto it.

A *signal key* names one thing a user did or a request carries, in a namespace of its own:

    cat:IAB17-1        a Content Taxonomy 1.0 category (site.cat, pagecat, an event's categories)
    aud:608            an Audience Taxonomy 1.1 segment id (user.data[].segment[] with segtax 4)
    kw:soccer          a keyword or phrase (keywords, kwarray, search queries)
    product:cameras    a product category (purchases; search queries)
    age:25-29  gender:female  income:50000-74999      demographics
    country:USA  os:ios  devicetype:5  appcat:social   place, device, kind of app

The rules map a key onto vocabulary tags with weights (`cat:IAB17-1` -> `interest:sports/auto-racing` 1.0
and `interest:sports` 0.5). The profile builder and the bid-time blend read the same rules, so a tag
means the same thing offline and online. The vocabulary and the rules ship with the package
(server/profiles/iab/), derived from the IAB Tech Lab's Audience and Content taxonomies (CC BY 3.0) by
personabid.index.taxonomy_build, which documents what is taken and why.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from personabid.errors import ArtifactError
from personabid.index.vocab import Vocabulary

SHIPPED = Path(__file__).resolve().parent / "iab"
FAMILIES = ("age", "gender", "income", "interest", "intent", "region", "device", "app")
AGE_BANDS = ((18, 20), (21, 24), (25, 29), (30, 34), (35, 39), (40, 44), (45, 49), (50, 54), (55, 59),
             (60, 64), (65, 69), (70, 74))  # fmt: skip
INCOME_BANDS = (10_000, 15_000, 20_000, 40_000, 50_000, 75_000, 100_000, 150_000, 175_000, 200_000, 250_000)
MAX_PHRASE_WORDS = 4  # the longest keyword phrase the rules hold
WORD = re.compile(r"[a-z0-9]+")


def age_key(age: int) -> str | None:
    """The age band key of someone `age` years old; None under 18 (no band: children are not profiled)."""
    if age < 18:
        return None
    for low, high in AGE_BANDS:
        if low <= age <= high:
            return f"age:{low}-{high}"
    return "age:75+"


def income_key(usd: float) -> str | None:
    """The household income band key of a yearly income in USD; None for a negative one."""
    if usd < 0:
        return None
    low = 0
    for bound in INCOME_BANDS:
        if usd < bound:
            return f"income:{low}-{bound - 1}"
        low = bound
    return f"income:{INCOME_BANDS[-1]}+"


@dataclass(frozen=True)
class Taxonomy:
    tags: tuple[str, ...]
    table: tuple[tuple[str, str, float], ...]  # (key, tag, weight)
    _rules: dict[str, tuple[tuple[str, float], ...]] = field(init=False, repr=False, compare=False)

    _phrases: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _reach: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rules: dict[str, list[tuple[str, float]]] = defaultdict(list)
        known = set(self.tags)
        for key, tag, weight in self.table:
            if tag not in known:
                raise ArtifactError(f"taxonomy rule {key!r} -> {tag!r}: the vocabulary has no such tag")
            rules[key].append((tag, weight))
        object.__setattr__(self, "_rules", {key: tuple(tags) for key, tags in rules.items()})
        # The kw: and product: keys of each phrase (kw: first), and, by a phrase's first word, the most
        # words a phrase starting with it has: most words of a text start no phrase, and are passed over
        # with one look-up instead of one per phrase length.
        phrases: dict[str, list[str]] = {}
        for key in sorted(self._rules, key=lambda k: not k.startswith("kw:")):
            space, _, phrase = key.partition(":")
            words = phrase.split(" ")
            if (
                space in ("kw", "product")
                and len(words) <= MAX_PHRASE_WORDS
                and WORD.findall(phrase) == words
            ):
                phrases.setdefault(phrase, []).append(key)
        reach: dict[str, int] = {}
        for phrase in phrases:
            first, *rest = phrase.split(" ")
            reach[first] = max(reach.get(first, 0), 1 + len(rest))
        object.__setattr__(self, "_phrases", {phrase: tuple(keys) for phrase, keys in phrases.items()})
        object.__setattr__(self, "_reach", reach)

    def vocabulary(self) -> Vocabulary:
        return Vocabulary(self.tags)

    def rules(self, key: str) -> tuple[tuple[str, float], ...]:
        """The tags (and weights) signal `key` stands for; () for a key no rule knows."""
        return self._rules.get(key, ())

    def rule_rows(self) -> list[tuple[str, str, float]]:
        """Every rule as (key, tag, weight): the table an engine joins signals with."""
        return list(self.table)

    def phrase_words(self) -> set[str]:
        """Every word of a phrase that a kw: or product: rule knows."""
        return {word for phrase in self._phrases for word in phrase.split(" ")}

    def text_keys(self, text: str) -> list[str]:
        """The `kw:` and `product:` keys a piece of free text holds: its words and phrases of up to
        MAX_PHRASE_WORDS words that some rule knows, longest first where phrases overlap."""
        words = WORD.findall(text.lower())
        found: list[str] = []
        start, end = 0, len(words)
        while start < end:
            for length in range(min(self._reach.get(words[start], 0), end - start), 0, -1):
                hits = self._phrases.get(" ".join(words[start : start + length]))
                if hits:
                    found += hits
                    start += length
                    break
            else:
                start += 1
        return found


def _rows(path: Path) -> list[list[str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ArtifactError(f"{path}: {exc.strerror or exc}") from exc
    body = [line for line in lines if line and not line.startswith("#")]
    return [line.split("\t") for line in body[1:]]  # the first is the header


def load(directory: Path = SHIPPED) -> Taxonomy:
    tags = tuple(row[0] for row in _rows(directory / "vocabulary.tsv"))
    try:
        table = tuple((key, tag, float(weight)) for key, tag, weight in _rows(directory / "rules.tsv"))
    except ValueError as exc:
        raise ArtifactError(f"{directory / 'rules.tsv'}: malformed rule: {exc}") from exc
    return Taxonomy(tags, table)


@functools.cache
def standard() -> Taxonomy:
    """The taxonomy that ships with personabid."""
    return load()
