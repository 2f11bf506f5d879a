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
        vector = np.array(tag_vector, dtype=np.float32).reshape(1, -1)
    else:
        vector = np.zeros((1, vocab.dims), dtype=np.float32)
        for tag, weight in tags:
            position = vocab.position(tag)
            if position >= 0:
                vector[0, position] = weight
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not np.isfinite(norm):
        return None
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
