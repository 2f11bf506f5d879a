"""Evaluation measures: AUC against a pairwise reference, its interval, and the reliability table."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from personabid.training.evaluate import auc, auc_interval, reliability, report


def reference_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The share of (click, no click) pairs the scores order correctly, ties counted half."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives))
    return wins / (len(positives) * len(negatives))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_the_pairwise_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = (rng.random(300) < 0.2).astype(float)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)  # rounded: many ties
    assert auc(labels, scores) == pytest.approx(reference_auc(labels, scores))


def test_auc_of_one_class_is_nan() -> None:
    assert np.isnan(auc(np.zeros(5), np.arange(5.0)))


def test_auc_interval_narrows_with_more_clicks() -> None:
    low_few, high_few = auc_interval(0.7, 20, 2000)
    low_many, high_many = auc_interval(0.7, 2000, 200_000)
    assert low_few < low_many < 0.7 < high_many < high_few


def test_reliability_bins_hold_equal_rows_in_order_of_prediction() -> None:
    rng = np.random.default_rng(3)
    probabilities = rng.random(1000) * 0.1
    bins = reliability((rng.random(1000) < probabilities).astype(float), probabilities, bins=10)
    assert [b["rows"] for b in bins] == [100] * 10
    assert all(a["max_predicted"] <= b["min_predicted"] for a, b in itertools.pairwise(bins))


def test_a_calibrated_model_lies_on_the_diagonal_of_its_reliability_table() -> None:
    rng = np.random.default_rng(4)
    probabilities = rng.beta(1, 40, size=200_000)
    labels = (rng.random(len(probabilities)) < probabilities).astype(float)
    bins = reliability(labels, probabilities, bins=10)
    inside = [b["actual_low"] <= b["predicted_ctr"] <= b["actual_high"] for b in bins]
    assert sum(inside) >= 8  # a 95% interval misses now and then


def test_report_gives_predicted_over_actual_ctr() -> None:
    labels = np.array([1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    result = report(labels, np.full(10, 0.2))
    assert result["actual_ctr"] == pytest.approx(0.1) and result["predicted_over_actual"] == pytest.approx(
        2.0
    )
