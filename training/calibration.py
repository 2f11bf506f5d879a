"""Platt calibration of a trained model's logits on held-out rows: the (scale, shift) that a model
artifact carries and the bidder applies."""

from __future__ import annotations

import numpy as np

from personabid.ctr.logistic import sigmoid_array


def fit_platt(logits: np.ndarray, labels: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """Fit sigmoid(scale * logit + shift) to labels by Newton's method on the log loss (Platt scaling).

    Uses Platt's smoothed targets so that a held-out slice with few clicks cannot drive the fit to
    infinity.
    """
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    positives = y.sum()
    negatives = len(y) - positives
    target = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    scale, shift = 1.0, 0.0
    for _ in range(iterations):
        p = sigmoid_array(scale * x + shift)
        gradient = np.array([np.dot(p - target, x), np.sum(p - target)])
        weight = p * (1 - p) + 1e-12
        hessian = np.array(
            [[np.dot(weight, x * x), np.dot(weight, x)], [np.dot(weight, x), np.sum(weight)]]
        ) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        scale, shift = scale - step[0], shift - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return float(scale), float(shift)
