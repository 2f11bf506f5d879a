"""The user's profile as a unit vector over the index's tag vocabulary."""

from __future__ import annotations

import numpy as np

from personabid.decision.blend import profile_only
from personabid.index.vocab import Vocabulary
from personabid.openrtb.request import Tag


def user_vector(tag_vector: np.ndarray | None, tags: tuple[Tag, ...], vocab: Vocabulary) -> np.ndarray | None:
    """float32 (1, dims) L2-normalised vector of the profile a caller sent (a dense `tag_vector`, or
    sparse `tags` placed through the vocabulary, unknown ones ignored), or None when it has no weight on
    any known tag: the blend of that profile alone, as the decision makes it (decision/blend.py)."""
    return profile_only(vocab).blend(tags=tags, tag_vector=tag_vector)[0]


def strongest_tags(user: np.ndarray, count: int) -> np.ndarray:
    """int64 (count,) vocabulary positions of the user's `count` heaviest tags with positive weight,
    heaviest first (ties by position), padded with -1: the `tags` feature and what the event log keeps."""
    weights = np.asarray(user, dtype=np.float32).ravel()
    positive = np.flatnonzero(weights > 0)
    # lexsort's last key is the primary one: weight descending, then position ascending.
    order = positive[np.lexsort((positive, -weights[positive]))][:count]
    out = np.full(count, -1, dtype=np.int64)
    out[: len(order)] = order
    return out
