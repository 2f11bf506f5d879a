"""Factorization machine (Rendle, ICDM 2010) over hashed features, trained by AdaGrad, in Numba.

Besides one weight per feature, every feature has a vector of k factors, and a pair of features that
occur together adds the inner product of their factors to the logit: an interaction between, say, a
campaign and a slot size is learned from each one's other pairings, so pairs seldom seen together still
get a sensible estimate (a hashed cross would need to see the pair itself).

Per-coordinate AdaGrad steps, learning_rate / (1 + sqrt(sum of squared gradients)), with L2 applied on
every step a coordinate is used. As in FTRL the bias is the last weight, and `offset` (the log's base
rate) is a fixed logit, so that regularisation pulls rare features towards the average CTR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from personabid.ctr.logistic import sigmoid


@dataclass(frozen=True)
class FmParams:
    factors: int = 8
    learning_rate: float = 0.05
    l2_linear: float = 1e-5
    l2_factors: float = 1e-4
    init_scale: float = 0.01  # standard deviation of the initial factors
    epochs: int = 1
    seed: int = 0


@nb.njit(cache=True)
def _fm_epoch(
    indices: np.ndarray,
    labels: np.ndarray,
    w: np.ndarray,
    v: np.ndarray,
    nw: np.ndarray,
    nv: np.ndarray,
    learning_rate: float,
    l2_linear: float,
    l2_factors: float,
    offset: float,
) -> float:
    rows, width = indices.shape
    k = v.shape[1]
    bias = w.shape[0] - 1
    sums = np.empty(k, dtype=np.float64)
    loss = 0.0
    for r in range(rows):
        logit = offset + w[bias]
        for j in range(width):
            logit += w[indices[r, j]]
        for f in range(k):
            total = 0.0
            squares = 0.0
            for j in range(width):
                x = v[indices[r, j], f]
                total += x
                squares += x * x
            sums[f] = total
            logit += 0.5 * (total * total - squares)
        p = sigmoid(logit)
        y = labels[r]
        loss -= np.log(p) if y > 0 else np.log(1.0 - p)
        g = p - y
        nw[bias] += g * g
        w[bias] -= learning_rate * g / (1.0 + np.sqrt(nw[bias]))
        for j in range(width):
            key = indices[r, j]
            gw = g + l2_linear * w[key]
            nw[key] += gw * gw
            w[key] -= learning_rate * gw / (1.0 + np.sqrt(nw[key]))
            for f in range(k):
                # d logit / d v[key, f] is the sum of the other features' factors.
                gv = g * (sums[f] - v[key, f]) + l2_factors * v[key, f]
                nv[key, f] += gv * gv
                v[key, f] -= learning_rate * gv / (1.0 + np.sqrt(nv[key, f]))
    return loss / max(rows, 1)


class FmTrainer:
    """Online trainer: call `partial_fit` on chunks of a log, then `weights()` and `factors()`."""

    def __init__(self, size: int, params: FmParams, offset: float = 0.0) -> None:
        if params.factors < 1:
            raise ValueError(f"factors={params.factors}: a factorization machine needs at least 1")
        self.params = params
        self.offset = offset
        self.w = np.zeros(size + 1, dtype=np.float64)
        self.nw = np.zeros(size + 1, dtype=np.float64)
        rng = np.random.default_rng(params.seed)
        self.v = rng.normal(0.0, params.init_scale, size=(size, params.factors))
        self.nv = np.zeros((size, params.factors), dtype=np.float64)

    def partial_fit(self, indices: np.ndarray, labels: np.ndarray) -> float:
        """One pass over int64 (rows, width) feature indices and labels (rows,) in {0, 1}; mean log loss."""
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        labels = np.ascontiguousarray(labels, dtype=np.float64)
        if indices.ndim != 2 or labels.shape != (indices.shape[0],):
            raise ValueError(f"indices {indices.shape} and labels {labels.shape} do not match")
        if indices.size and (indices.min() < 0 or indices.max() >= self.v.shape[0]):
            raise ValueError(f"feature indices must lie in [0, {self.v.shape[0]})")
        p = self.params
        return _fm_epoch(
            indices, labels, self.w, self.v, self.nw, self.nv, p.learning_rate, p.l2_linear, p.l2_factors,
            self.offset,
        )  # fmt: skip

    def weights(self) -> np.ndarray:
        """float32 (size + 1,): hashed feature weights, bias (offset included) last."""
        weights = self.w.astype(np.float32)
        weights[-1] += self.offset
        return weights

    def factors(self) -> np.ndarray:
        """float32 (size, k): the factors of every hashed feature."""
        return self.v.astype(np.float32)
