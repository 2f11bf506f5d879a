"""Model quality measures: AUC, log loss, predicted against actual CTR, and the reliability table."""

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


def auc_interval(value: float, positives: int, negatives: int) -> tuple[float, float]:
    """95% interval of an AUC from its standard error (Hanley and McNeil, 1982): on a few hundred clicks
    an AUC is only known to a few hundredths."""
    if positives == 0 or negatives == 0 or not np.isfinite(value):
        return float("nan"), float("nan")
    q1 = value / (2 - value)
    q2 = 2 * value * value / (1 + value)
    variance = (
        value * (1 - value) + (positives - 1) * (q1 - value**2) + (negatives - 1) * (q2 - value**2)
    ) / (positives * negatives)
    half = 1.96 * float(np.sqrt(max(variance, 0.0)))
    return max(0.0, value - half), min(1.0, value + half)


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def reliability(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Predicted against actual CTR in `bins` bins of equal row count, by predicted CTR.

    Each bin: its rows, the range and mean of its predictions, its actual click rate and that rate's
    95% Wilson interval (so that a bin with few clicks is not read as miscalibrated).
    """
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    out = []
    for part in np.array_split(order, min(bins, len(order))):
        n = len(part)
        clicks = float(y[part].sum())
        low, high = _wilson(clicks, n)
        out.append(
            {
                "rows": n,
                "clicks": clicks,
                "min_predicted": float(p[part[0]]),
                "max_predicted": float(p[part[-1]]),
                "predicted_ctr": float(p[part].mean()),
                "actual_ctr": clicks / n,
                "actual_low": low,
                "actual_high": high,
            }
        )
    return out


def _wilson(clicks: float, n: int, z: float = 1.96) -> tuple[float, float]:
    rate = clicks / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def report(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> dict[str, object]:
    """AUC, log loss, predicted and actual CTR and the reliability table of predictions on rows."""
    actual = float(np.mean(labels))
    predicted = float(np.mean(probabilities))
    clicks = int(np.sum(labels))
    value = auc(labels, probabilities)
    return {
        "rows": len(labels),
        "clicks": clicks,
        "auc": value,
        "auc_ci95": list(auc_interval(value, clicks, len(labels) - clicks)),
        "log_loss": log_loss(labels, probabilities),
        "actual_ctr": actual,
        "predicted_ctr": predicted,
        "predicted_over_actual": predicted / actual if actual > 0 else float("nan"),
        "reliability": reliability(labels, probabilities, bins),
    }
