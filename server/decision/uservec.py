"""The user's profile as a unit vector over the index's tag vocabulary."""

from __future__ import annotations

import numpy as np

from personabid.index.vocab import Vocabulary
from personabid.openrtb.request import Tag


def user_vector(tag_vector: np.ndarray | None, tags: tuple[Tag, ...], vocab: Vocabulary) -> np.ndarray | None:
    """float32 (1, dims) L2-normalised profile, or None when it has no weight on any known tag."""
    vector = caller_profile(tag_vector, tags, vocab)
    if vector is None or unit(vector) is None:
        return None
    return vector.astype(np.float32)


def caller_profile(
    tag_vector: np.ndarray | None, tags: tuple[Tag, ...], vocab: Vocabulary
) -> np.ndarray | None:
    """float64 (1, dims) weights of the profile the caller sent, not normalised; None when it sent none.

    A dense `tag_vector` is used as given (validated to have vocab.dims finite weights); sparse `tags`
    are placed through the vocabulary, and tags it does not know are ignored.
    """
    if tag_vector is not None and len(tag_vector) > 0:
        return np.array(tag_vector, dtype=np.float64).reshape(1, -1)
    if not tags:
        return None
    vector = np.zeros((1, vocab.dims), dtype=np.float64)
    for tag in tags:
        position = vocab.position(tag.id)
        if position >= 0:
            vector[0, position] = tag.weight
    return vector


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
