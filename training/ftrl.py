"""FTRL-Proximal logistic regression over hashed features (McMahan et al., KDD 2013), in Numba.

Per-coordinate learning rates and L1 make it the standard for sparse, hashed CTR features: one pass over
a log, memory independent of its size, and many weights exactly zero. Every row has an implicit bias
feature, stored as the last coordinate (no L1 on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from personabid.ctr.logistic import sigmoid


@dataclass(frozen=True)
class FtrlParams:
    alpha: float = 0.05
    beta: float = 1.0
    l1: float = 1.0
    l2: float = 1.0
    epochs: int = 1


@nb.njit(cache=True, inline="always")
def _weight(z: float, n: float, alpha: float, beta: float, l1: float, l2: float) -> float:
    if abs(z) <= l1:
        return 0.0
    sign = 1.0 if z > 0 else -1.0
    return -(z - sign * l1) / ((beta + np.sqrt(n)) / alpha + l2)


@nb.njit(cache=True)
def _ftrl_epoch(
    indices: np.ndarray,
    labels: np.ndarray,
    z: np.ndarray,
    n: np.ndarray,
    alpha: float,
    beta: float,
    l1: float,
    l2: float,
    offset: float,
) -> float:
    bias = z.shape[0] - 1
    rows: int
    width: int
    rows, width = indices.shape
    w = np.empty(width + 1, dtype=np.float64)
    loss = 0.0
    for r in range(rows):
        logit = 0.0
        for j in range(width):
            k = indices[r, j]
            w[j] = _weight(z[k], n[k], alpha, beta, l1, l2)
            logit += w[j]
        w[width] = _weight(z[bias], n[bias], alpha, beta, 0.0, l2)
        logit += w[width] + offset
        p = sigmoid(logit)
        y = labels[r]
        loss -= np.log(p) if y > 0 else np.log(1.0 - p)
        g = p - y
        g2 = g * g
        for j in range(width + 1):
            k = indices[r, j] if j < width else bias
            sigma = (np.sqrt(n[k] + g2) - np.sqrt(n[k])) / alpha
            z[k] += g - sigma * w[j]
            n[k] += g2
    return loss / max(rows, 1)


@nb.njit(cache=True)
def _ftrl_weights(
    z: np.ndarray, n: np.ndarray, alpha: float, beta: float, l1: float, l2: float
) -> np.ndarray:
    out = np.empty(z.shape[0], dtype=np.float32)
    last = z.shape[0] - 1
    for k in range(z.shape[0]):
        out[k] = _weight(z[k], n[k], alpha, beta, l1 if k < last else 0.0, l2)
    return out


class FtrlTrainer:
    """Online trainer: call `partial_fit` on chunks of a log, then `weights()`.

    `offset` is a fixed logit added to every row, normally the log's base rate: regularisation then pulls
    a rare or unseen feature towards the average CTR instead of towards whatever the bias has not yet
    absorbed, which would make unseen values look like good ones.
    """

    def __init__(self, size: int, params: FtrlParams, offset: float = 0.0) -> None:
        self.params = params
        self.offset = offset
        self.z = np.zeros(size + 1, dtype=np.float64)
        self.n = np.zeros(size + 1, dtype=np.float64)

    def partial_fit(self, indices: np.ndarray, labels: np.ndarray) -> float:
        """One pass over int64 (rows, width) feature indices and labels (rows,) in {0, 1}; mean log loss."""
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        labels = np.ascontiguousarray(labels, dtype=np.float64)
        if indices.ndim != 2 or labels.shape != (indices.shape[0],):
            raise ValueError(f"indices {indices.shape} and labels {labels.shape} do not match")
        if indices.size and (indices.min() < 0 or indices.max() >= self.z.shape[0] - 1):
            raise ValueError(f"feature indices must lie in [0, {self.z.shape[0] - 1})")
        p = self.params
        return _ftrl_epoch(
            indices,
            labels,
            self.z,
            self.n,
            p.alpha,
            p.beta,
            p.l1,
            p.l2,
            self.offset,
        )

    def weights(self) -> np.ndarray:
        """float32 (size + 1,): hashed feature weights, bias (offset included) last."""
        p = self.params
        weights = _ftrl_weights(self.z, self.n, p.alpha, p.beta, p.l1, p.l2)
        weights[-1] += self.offset
        return weights
