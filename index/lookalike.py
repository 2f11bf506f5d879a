"""Lookalike personas: the centroids of a seed audience (the users who converted).

A seed audience is a file of user profiles: `.npy` float32 (n, dims), or JSON Lines with one user per
line, either `{"tag": weight, ...}` or a list of dims weights. Spherical k-means (faiss.Kmeans) on the
unit profiles gives the centroids. The seed's size bounds k (one centroid per SEEDS_PER_CENTROID users,
at most MAX_CENTROIDS), so that a small seed gives one stable persona instead of several noisy ones;
within that bound k grows while one more centroid still improves the fit (mean cosine of a user to its
centroid) by MIN_GAIN: past the elbow, more centroids only split real segments in two.
"""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np

from personabid.index.vocab import Vocabulary

SEEDS_PER_CENTROID = 100
MAX_CENTROIDS = 8
MIN_SEEDS = 10
MIN_GAIN = 0.01


def centroid_count(seeds: int) -> int:
    return int(np.clip(seeds // SEEDS_PER_CENTROID, 1, MAX_CENTROIDS))


def read_seed_audience(path: Path, vocab: Vocabulary) -> np.ndarray:
    """float32 (n, vocab.dims) profiles from a seed audience file; raises ValueError naming the line."""
    if path.suffix == ".npy":
        users = np.load(path, allow_pickle=False)
        if users.ndim != 2 or users.shape[1] != vocab.dims:
            raise ValueError(f"shape {users.shape}, expected (n, {vocab.dims})")
        users = users.astype(np.float32)
    else:
        rows = []
        with path.open(encoding="utf-8") as handle:
            for line, text in enumerate(handle, start=1):
                if text.strip():
                    rows.append(_profile(text, vocab, line))
        users = np.array(rows, dtype=np.float32).reshape(-1, vocab.dims)
    if not np.all(np.isfinite(users)):
        raise ValueError("holds weights that are not finite")
    users = users[np.linalg.norm(users, axis=1) > 0]
    if len(users) < MIN_SEEDS:
        raise ValueError(f"{len(users)} usable seed users, at least {MIN_SEEDS} are needed")
    return users


def _profile(text: str, vocab: Vocabulary, line: int) -> np.ndarray:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"line {line}: not JSON: {exc}") from None
    if isinstance(value, list):
        if len(value) != vocab.dims:
            raise ValueError(f"line {line}: {len(value)} weights, expected {vocab.dims}")
        return np.array(value, dtype=np.float32)
    if isinstance(value, dict):
        unknown = [tag for tag in value if vocab.position(tag) < 0]
        if unknown:
            raise ValueError(f"line {line}: unknown tags {unknown[:5]}")
        return vocab.dense({tag: float(w) for tag, w in value.items()})
    raise ValueError(f"line {line}: expected a list of weights or an object of tag: weight")


def lookalike_personas(users: np.ndarray, seed: int = 1234) -> np.ndarray:
    """float32 (k, dims) unit centroids of float32 (n, dims) seed profiles."""
    unit = np.ascontiguousarray(users, dtype=np.float32).copy()
    faiss.normalize_L2(unit)
    fit, centroids = _cluster(unit, 1, seed)
    for k in range(2, centroid_count(len(unit)) + 1):
        next_fit, next_centroids = _cluster(unit, k, seed)
        if next_fit - fit < MIN_GAIN:
            break
        fit, centroids = next_fit, next_centroids
    return centroids


def _cluster(unit: np.ndarray, k: int, seed: int) -> tuple[float, np.ndarray]:
    """(mean cosine of each user to its nearest centroid, float32 (k, dims) unit centroids)."""
    if k == 1:
        centroids = unit.mean(axis=0, keepdims=True)
    else:
        kmeans = faiss.Kmeans(unit.shape[1], k, niter=25, seed=seed, spherical=True, verbose=False)
        kmeans.train(unit)
        trained = kmeans.centroids
        assert trained is not None, "Kmeans.train sets the centroids"
        centroids = trained.copy()
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    faiss.normalize_L2(centroids)
    return float((unit @ centroids.T).max(axis=1).mean()), centroids
