"""Model quality measures: AUC, log loss, and predicted against actual CTR."""

from __future__ import annotations

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half). NaN if one class is missing."""
    labels = np.asarray(labels, dtype=bool)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average ranks over runs of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    average = (starts + ends - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def report(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    actual = float(np.mean(labels))
    predicted = float(np.mean(probabilities))
    return {
        "rows": len(labels),
        "auc": auc(labels, probabilities),
        "log_loss": log_loss(labels, probabilities),
        "actual_ctr": actual,
        "predicted_ctr": predicted,
        "predicted_over_actual": predicted / actual if actual > 0 else float("nan"),
    }
