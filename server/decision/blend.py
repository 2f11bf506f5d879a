"""The user vector of a request: the stored profile, what the exchange says of the user and the context,
each made a unit vector and blended by weight.

    v = w_profile * unit(profile) + w_segments * unit(segments) + w_context * unit(context), L2-normalised

Each source is normalised before it is weighted so that the weights, not the number of signals a source
happens to carry, decide how much it counts: a page with twelve keywords must not outweigh a profile
built from months of behaviour. Only the sources a request has are blended, so a request with context
alone is matched on its context at full strength, and the weights only say how sources share the vector
when there are several.

Signal keys (personabid.decision.signals) become tag weights through the taxonomy's rules, resolved once
per vocabulary into (position, weight) pairs: the request path does a dict lookup per key. Tags the
vocabulary does not have are left out, so any vocabulary works with the standard rules.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import numpy as np

from personabid.index.vocab import Vocabulary
from personabid.openrtb.request import Tag
from personabid.profiles.store import Profile
from personabid.profiles.taxonomy import Taxonomy, standard

SOURCES = ("profile", "segments", "context")

# A rule as the request path reads it: (position, weight) pairs. A request has a handful of keys of one or
# two tags each, which plain Python sums in less time than one numpy call per key would take.
Rule = tuple[tuple[int, float], ...]
PROFILE, SEGMENTS, CONTEXT = range(3)


@functools.lru_cache(maxsize=8)  # one per vocabulary served; a reload of the same one reuses it
def key_table(vocab: Vocabulary, taxonomy: Taxonomy) -> dict[str, Rule]:
    """Every signal key with a rule onto a tag of `vocab`: the tags' positions and the rules' weights."""
    tags: dict[str, dict[int, float]] = {}
    for key, tag, weight in taxonomy.rule_rows():
        position = vocab.position(tag)
        if position >= 0:
            into = tags.setdefault(key, {})
            into[position] = into.get(position, 0.0) + weight
    return {key: tuple(found.items()) for key, found in tags.items()}


def unit(vector: np.ndarray) -> np.ndarray | None:
    """L2-normalise the float64 `vector` in place and return it; None (and the vector left scaled
    anyhow) when it has no finite, non-zero weight to normalise."""
    # Any finite weights are a valid profile. In float64 the sum of squares of float32-range weights can
    # neither overflow (226 weights of 3.4e38 square to 2.6e79) nor underflow (1e-45 squares to 1e-90),
    # so one norm suffices; only weights beyond float32's range (possible through the core's own API)
    # need scaling by the largest first.
    norm = float(np.sqrt(np.dot(vector.ravel(), vector.ravel())))
    if not 0.0 < norm < np.inf:
        largest = float(np.max(np.abs(vector))) if vector.size else 0.0
        if largest == 0.0 or not np.isfinite(largest):
            return None
        vector /= largest
        norm = float(np.sqrt(np.dot(vector.ravel(), vector.ravel())))
    vector /= norm
    return vector


def check_weights(weights: Sequence[float]) -> None:
    """Raise ValueError unless every weight is finite and non-negative, as a blend needs them."""
    for name, weight in zip(SOURCES, weights, strict=True):
        if not (math.isfinite(weight) and weight >= 0.0):
            raise ValueError(f"the {name} blend weight must be finite and non-negative, not {weight!r}")


# One source's weights: sparse ({position: weight}) or a stored profile.
Source = dict[int, float] | Profile


class Blender:
    """Blends the sources of a request into a user vector over one vocabulary."""

    def __init__(self, vocab: Vocabulary, taxonomy: Taxonomy, weights: Sequence[float]) -> None:
        check_weights(weights)
        self.vocab = vocab
        self.dims = vocab.dims
        self.weights = tuple(float(w) for w in weights)
        self._rules = key_table(vocab, taxonomy)

    def _keys(self, keys: Iterable[str]) -> dict[int, float]:
        rules = self._rules
        summed: dict[int, float] = {}
        for key in keys:
            for position, weight in rules.get(key, ()):
                summed[position] = summed.get(position, 0.0) + weight
        return summed

    def _segments(
        self, keys: Iterable[str], tags: tuple[Tag, ...], tag_vector: np.ndarray | None
    ) -> dict[int, float]:
        summed = self._keys(keys)
        if tag_vector is not None and len(tag_vector) > 0:
            # A dense vector is as sparse as a profile in practice: its non-zero weights, as a dict.
            nonzero = np.flatnonzero(tag_vector)
            sent = dict(
                zip(nonzero.tolist(), np.asarray(tag_vector, np.float64)[nonzero].tolist(), strict=True)
            )
        elif tags:
            position_of = self.vocab.position
            sent = {}
            for tag in tags:  # a tag sent twice counts once, at its last weight, as in user_vector
                position = position_of(tag.id)
                if position >= 0:
                    sent[position] = tag.weight
        else:
            return summed
        for position, weight in sent.items():
            summed[position] = summed.get(position, 0.0) + weight
        return summed

    def _dense(self, source: Source) -> np.ndarray:
        """float64 (1, dims) copy of `source`."""
        dense = np.zeros((1, self.dims), dtype=np.float64)
        if isinstance(source, dict):
            for position, weight in source.items():
                dense[0, position] = weight
        else:
            dense[0, source.positions] = source.weights
        return dense

    def blend(
        self,
        profile: Profile | None = None,
        segment_keys: Iterable[str] = (),
        context_keys: Iterable[str] = (),
        tags: tuple[Tag, ...] = (),
        tag_vector: np.ndarray | None = None,
    ) -> tuple[np.ndarray | None, tuple[str, ...]]:
        """float32 (1, dims) unit user vector and the sources it used (a subset of SOURCES, in that
        order), or (None, ()) when no source has weight on a tag of the vocabulary.

        The profile is the stored one, or else the one the caller sent (sparse `tags` or a dense
        `tag_vector`, in the vocabulary's names; with a stored profile, those count among the
        segments); the segments are `segment_keys` through the rules; the context is `context_keys`
        through the rules. Signal keys without a rule onto the vocabulary are ignored. The profile's
        positions are distinct, as a store returns them.
        """
        w_profile, w_segments, w_context = self.weights
        found: list[tuple[int, float, Source]] = []  # (source, its blend weight, its tag weights)
        if profile is not None and len(profile.positions):
            if w_profile > 0.0:
                found.append((PROFILE, w_profile, profile))
        elif tags or (tag_vector is not None and len(tag_vector) > 0):
            # A profile the caller sent (user.tags, tag_vector) stands for the user as a stored one does,
            # and counts as one: the same user gets the same bids whether the exchange sends their
            # profile or their id.
            caller = self._segments((), tags, tag_vector)
            if w_profile > 0.0 and len(caller):
                found.append((PROFILE, w_profile, caller))
            tags, tag_vector = (), None
        if w_segments > 0.0:
            segments = self._segments(segment_keys, tags, tag_vector)
            if len(segments):
                found.append((SEGMENTS, w_segments, segments))
        if w_context > 0.0:
            context = self._keys(context_keys)
            if context:
                found.append((CONTEXT, w_context, context))
        # A request's sources hold a few dozen weights: plain Python sums them in less time than the
        # dozen numpy calls over the whole vocabulary would take (a known user's vector is on the request
        # path of every auction). Each source's norm first.
        normed: list[tuple[int, float, list[int], list[float], float]] = []
        for s, weight, source in found:
            if isinstance(source, dict):
                positions, values = list(source), list(source.values())
            else:
                positions, values = source.positions.tolist(), source.weights.tolist()
            squares = 0.0
            for value in values:
                squares += value * value
            if 0.0 < squares < math.inf:
                normed.append((s, weight, positions, values, math.sqrt(squares)))
                continue
            # Weights whose squares leave float64's range, or that are all zero: the careful way.
            dense = self._dense(source)
            if unit(dense) is not None:
                nonzero = np.flatnonzero(dense[0])
                normed.append((s, weight, nonzero.tolist(), dense[0, nonzero].tolist(), 1.0))
        if not normed:
            return None, ()
        # Relative to the largest weight of the sources present, so that no weight, however large,
        # overflows the sum, and a source alone counts in full whatever its weight.
        largest = max(weight for _, weight, _, _, _ in normed)
        from_profile: dict[int, float] = {}
        from_keys: dict[int, float] = {}
        used: list[str] = []
        for s, weight, positions, values, norm in normed:
            factor = weight / largest / norm
            if factor == 0.0:  # a weight too small beside the largest to count at all
                continue
            used.append(SOURCES[s])
            into = from_profile if s == PROFILE else from_keys
            for position, value in zip(positions, values, strict=True):
                into[position] = into.get(position, 0.0) + factor * value
        for position, value in from_keys.items():
            from_profile[position] = from_profile.get(position, 0.0) + value
        # Every term is at most 1 in norm now, so the squares are finite; they are 0 only where opposite
        # weights (a caller's own tags may be negative) cancelled out, or too small to square.
        squares = 0.0
        for value in from_profile.values():
            squares += value * value
        count = len(from_profile)
        where = np.fromiter(from_profile, np.intp, count)
        weights = np.fromiter(from_profile.values(), np.float64, count)
        if 0.0 < squares < math.inf:
            out = np.zeros((1, self.dims), dtype=np.float32)
            out[0, where] = weights * (1.0 / math.sqrt(squares))
            return out, tuple(used)
        dense = np.zeros((1, self.dims), dtype=np.float64)
        dense[0, where] = weights
        if not used or unit(dense) is None:
            return None, ()
        return dense.astype(np.float32), tuple(used)


@functools.lru_cache(maxsize=8)
def profile_only(vocab: Vocabulary) -> Blender:
    """The blend of a caller's profile alone over `vocab` (decision/uservec.py's user_vector)."""
    return Blender(vocab, standard(), (1.0, 0.0, 0.0))
