"""The user's profile as a unit vector over the index's tag vocabulary."""

from __future__ import annotations

import numba as nb
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
    if count < 0:
        raise ValueError(f"count={count}: must be at least 0")
    return _strongest(np.asarray(user, dtype=np.float32).ravel(), count)


@nb.njit(cache=True)
def _strongest(weights: np.ndarray, count: int) -> np.ndarray:
    # One pass keeping the best `count` in order by insertion: a user weighs a few dozen of some
    # hundred tags, and NumPy's filter, lexsort and fancy indexing cost several times as much at that
    # size (each call's overhead, on every auction's path). Positions come in ascending order, so a
    # tie goes after the weights equal to it, and ties stay by position.
    out = np.full(count, -1, dtype=np.int64)
    kept = np.empty(count, dtype=np.float32)
    filled = 0
    if count == 0:
        return out
    for position in range(weights.shape[0]):
        weight = weights[position]
        if not weight > 0.0 or (filled == count and not weight > kept[count - 1]):
            continue  # not positive (NaN neither), or no heavier than the lightest kept of a full set
        at = min(filled, count - 1)
        while at > 0 and kept[at - 1] < weight:
            kept[at] = kept[at - 1]
            out[at] = out[at - 1]
            at -= 1
        kept[at] = weight
        out[at] = position
        filled = min(filled + 1, count)
    return out
