"""Matching: the campaigns whose personas are nearest to the user."""

from __future__ import annotations

import numba as nb
import numpy as np

from personabid.index.sparse import Searcher


def match(
    index: Searcher, persona_rows: np.ndarray, user: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k campaigns for a float32 (1, dims) unit user vector.

    Returns campaign rows (int32 (m,)) and their similarity (float32 (m,)), best first, m <= k. A campaign
    that owns several personas appears once, with its best similarity.
    """
    scores, labels = index.search(user, k)
    return best_per_campaign(persona_rows, labels[0], scores[0])


@nb.njit(cache=True)
def best_per_campaign(
    persona_rows: np.ndarray, labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The campaign rows of the found personas (label -1: none found) and their scores, each campaign once
    at its first, best-scored, place: FAISS answers best first."""
    found = 0
    for label in labels:
        if label >= 0:
            found += 1
    rows = np.empty(found, dtype=persona_rows.dtype)
    sims = np.empty(found, dtype=scores.dtype)
    m = 0
    for i in range(labels.shape[0]):
        if labels[i] < 0:
            continue
        row = persona_rows[labels[i]]
        # k is about 100: a scan of the rows kept so far costs less than a set's hashing.
        seen = False
        for j in range(m):
            if rows[j] == row:
                seen = True
                break
        if not seen:
            rows[m] = row
            sims[m] = scores[i]
            m += 1
    return rows[:m], sims[:m]
