"""The factorization machine against a slow NumPy reference written from Rendle's model equation."""

from __future__ import annotations

import numpy as np
import pytest

from personabid.ctr.features import FeatureSpec
from personabid.ctr.model import CtrModel
from personabid.training.fm import FmParams, FmTrainer

SPEC = FeatureSpec(fields=("campaign", "slot", "os"), crosses=(), bits=8)


def reference_logit(row: np.ndarray, w: np.ndarray, v: np.ndarray, offset: float) -> float:
    """offset + bias + sum of weights + sum over pairs i < j of <v_i, v_j>, pair by pair."""
    logit = offset + w[-1] + sum(w[k] for k in row)
    for i in range(len(row)):
        for j in range(i + 1, len(row)):
            logit += float(np.dot(v[row[i]], v[row[j]]))
    return logit


def reference_fm(
    indices: np.ndarray, labels: np.ndarray, size: int, p: FmParams, offset: float
) -> tuple[np.ndarray, np.ndarray]:
    """AdaGrad on the log loss, one row at a time; gradients from the row's factors before its update."""
    w = np.zeros(size + 1)
    v = np.random.default_rng(p.seed).normal(0.0, p.init_scale, size=(size, p.factors))
    nw = np.zeros(size + 1)
    nv = np.zeros((size, p.factors))
    for row, y in zip(indices, labels, strict=True):
        prob = 1 / (1 + np.exp(-np.clip(reference_logit(row, w, v, offset), -35, 35)))
        g = prob - y
        sums = v[row].sum(axis=0)
        nw[-1] += g * g
        w[-1] -= p.learning_rate * g / (1 + np.sqrt(nw[-1]))
        for k in row:
            gw = g + p.l2_linear * w[k]
            nw[k] += gw * gw
            w[k] -= p.learning_rate * gw / (1 + np.sqrt(nw[k]))
            gv = g * (sums - v[k]) + p.l2_factors * v[k]
            nv[k] += gv * gv
            v[k] -= p.learning_rate * gv / (1 + np.sqrt(nv[k]))
    w[-1] += offset
    return w, v


def test_fm_parameters_equal_the_reference() -> None:
    rng = np.random.default_rng(0)
    indices = rng.integers(0, SPEC.size, size=(300, SPEC.width))
    labels = (rng.random(300) < 0.3).astype(np.float64)
    params = FmParams(factors=4, learning_rate=0.1, l2_linear=0.01, l2_factors=0.02, init_scale=0.1, seed=3)
    trainer = FmTrainer(SPEC.size, params, offset=-0.5)
    trainer.partial_fit(indices, labels)
    w, v = reference_fm(indices, labels, SPEC.size, params, offset=-0.5)
    np.testing.assert_allclose(trainer.weights(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trainer.factors(), v, rtol=1e-5, atol=1e-6)


def test_fm_pctr_equals_the_pairwise_reference() -> None:
    rng = np.random.default_rng(1)
    weights = rng.normal(0, 0.3, size=SPEC.size + 1).astype(np.float32)
    factors = rng.normal(0, 0.3, size=(SPEC.size, 5)).astype(np.float32)
    model = CtrModel(SPEC, weights, (0.9, -0.2), 0.02, model_type="fm", factors=factors)
    indices = rng.integers(0, SPEC.size, size=(50, SPEC.width))
    logits = np.array([reference_logit(row, weights, factors, 0.0) for row in indices])
    np.testing.assert_allclose(model.logits(indices), logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.pctr(indices), 1 / (1 + np.exp(-(0.9 * logits - 0.2))), rtol=1e-5)


def test_fm_pctr_of_no_rows_is_empty() -> None:
    model = CtrModel(
        SPEC,
        np.zeros(SPEC.size + 1, np.float32),
        (1.0, 0.0),
        0.02,
        model_type="fm",
        factors=np.zeros((SPEC.size, 2), np.float32),
    )
    assert model.pctr(np.zeros((0, SPEC.width), dtype=np.int64)).shape == (0,)


def test_fm_learns_an_interaction_a_linear_model_cannot() -> None:
    # Clicks come when a and b agree (XOR-like): a weight on a or on b alone says nothing.
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 2, size=(2, 40_000))
    labels = (rng.random(40_000) < np.where(a == b, 0.3, 0.05)).astype(np.float64)
    indices = np.stack([a, 2 + b], axis=1)
    trainer = FmTrainer(4, FmParams(factors=2, learning_rate=0.1, init_scale=0.1))
    for _ in range(3):
        trainer.partial_fit(indices, labels)
    w, v = trainer.weights(), trainer.factors()
    agree = [reference_logit(np.array(pair), w, v, 0.0) for pair in ((0, 2), (1, 3))]
    differ = [reference_logit(np.array(pair), w, v, 0.0) for pair in ((0, 3), (1, 2))]
    assert min(agree) > max(differ) + 1.0


@pytest.mark.parametrize(
    ("indices", "labels"),
    [(np.zeros((3, 2), np.int64), np.zeros(2)), (np.full((1, 2), 300, np.int64), np.zeros(1))],
    ids=["labels of another length", "index outside the hash space"],
)
def test_fm_refuses_rows_it_cannot_use(indices: np.ndarray, labels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="indices"):
        FmTrainer(SPEC.size, FmParams()).partial_fit(indices, labels)
