"""Matching: the campaigns whose personas are nearest to the user."""

from __future__ import annotations

import faiss
import numpy as np


def match(
    index: faiss.Index, persona_rows: np.ndarray, user: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k campaigns for a float32 (1, dims) unit user vector.

    Returns campaign rows (int32 (m,)) and their similarity (float32 (m,)), best first, m <= k. A campaign
    that owns several personas appears once, with its best similarity.
    """
    scores, labels = index.search(user, k)
    found = labels[0] >= 0
    rows = persona_rows[labels[0][found]]
    sims = scores[0][found]
    if len(rows) == len(np.unique(rows)):
        return rows, sims
    # Results are sorted by similarity, so the first occurrence of a campaign is its best persona.
    _, first = np.unique(rows, return_index=True)
    first.sort()
    return rows[first], sims[first]
