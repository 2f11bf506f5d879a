"""The user's profile as a unit vector over the index's tag vocabulary."""

from __future__ import annotations

import numpy as np

from personabid.index.vocab import Vocabulary


def user_vector(
    tag_vector: np.ndarray | None, tags: tuple[tuple[str, float], ...], vocab: Vocabulary
) -> np.ndarray | None:
    """float32 (1, dims) L2-normalised profile, or None when it has no weight on any known tag.

    A dense `tag_vector` is used as given (validated to have vocab.dims finite weights); sparse `tags`
    are placed through the vocabulary, and tags it does not know are ignored.
    """
    if tag_vector is not None and len(tag_vector) > 0:
        vector = np.array(tag_vector, dtype=np.float64).reshape(1, -1)
    else:
        vector = np.zeros((1, vocab.dims), dtype=np.float64)
        for tag, weight in tags:
            position = vocab.position(tag)
            if position >= 0:
                vector[0, position] = weight
    # Any finite weights are a valid profile, up to float32's limits: scaling by the largest weight first
    # keeps the sum of squares from overflowing (226 weights of 1e20, or one of 3.4e38, are still a
    # direction), and the norm is taken in float64 so that tiny weights do not underflow to zero.
    largest = float(np.max(np.abs(vector))) if vector.size else 0.0
    if largest == 0.0 or not np.isfinite(largest):
        return None
    vector /= largest
    vector /= np.linalg.norm(vector)
    return vector.astype(np.float32)


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
